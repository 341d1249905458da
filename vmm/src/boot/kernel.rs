//! Loading the kernel ELF into guest memory (linux-loader), after checking its program headers
//! ourselves: linux-loader would load a segment anywhere in RAM, including over the boot
//! structures below 1 MiB, and reports a segment outside memory only as a bare read error.

use super::layout::KERNEL_MIN_ADDR;
use anyhow::{Context, bail};
use linux_loader::loader::KernelLoader;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use vm_memory::{GuestAddress, GuestMemoryMmap};

const PT_LOAD: u32 = 1;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;

/// The loaded kernel: where its PVH entry is.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    pub pvh_entry: GuestAddress,
}

/// Checks `elf` (named `name` in errors): an x86-64 ELF whose loadable segments lie in RAM
/// between 1 MiB and `ram_end`. Needs no KVM, so bad kernels are refused before anything starts.
pub fn check(elf: &[u8], name: &str, ram_end: u64) -> anyhow::Result<()> {
    check_segments(elf, ram_end).with_context(|| format!("{name}: bad kernel"))
}

/// Loads a kernel [`check`] accepted at its physical addresses.
pub fn load(mem: &GuestMemoryMmap, elf: &[u8], name: &str) -> anyhow::Result<LoadedKernel> {
    let result = Elf::load(
        mem,
        None,
        &mut std::io::Cursor::new(elf),
        Some(GuestAddress(KERNEL_MIN_ADDR)),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| format!("{name}: cannot load the kernel"))?;
    match result.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(entry) => {
            if entry.0 < KERNEL_MIN_ADDR || entry.0 >= 1 << 32 {
                bail!(
                    "{name}: PVH entry {:#x} is not a 32-bit address above 1 MiB",
                    entry.0
                );
            }
            Ok(LoadedKernel { pvh_entry: entry })
        }
        _ => bail!("{name}: the kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Every loadable segment must lie in low RAM above 1 MiB, and its file bytes in the file.
fn check_segments(elf: &[u8], ram_end: u64) -> anyhow::Result<()> {
    if elf.len() < EHDR_LEN || &elf[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 || u16_at(elf, 18) != 62 {
        bail!("not a 64-bit little-endian x86-64 ELF file");
    }
    let phoff = u64_at(elf, 32);
    let phentsize = usize::from(u16_at(elf, 54));
    let phnum = usize::from(u16_at(elf, 56));
    if phentsize != PHDR_LEN {
        bail!("program header size {phentsize}, expected {PHDR_LEN}");
    }
    let table_end = phoff
        .checked_add((phnum * PHDR_LEN) as u64)
        .filter(|&end| end <= elf.len() as u64);
    let Some(_) = table_end else {
        bail!("program headers lie outside the file")
    };
    let mut loadable = 0;
    for i in 0..phnum {
        let ph = &elf[phoff as usize + i * PHDR_LEN..][..PHDR_LEN];
        if u32_at(ph, 0) != PT_LOAD {
            continue;
        }
        let (offset, paddr, filesz, memsz) = (
            u64_at(ph, 8),
            u64_at(ph, 24),
            u64_at(ph, 32),
            u64_at(ph, 40),
        );
        if filesz > memsz
            || offset
                .checked_add(filesz)
                .is_none_or(|end| end > elf.len() as u64)
        {
            bail!("segment {i} has file bytes outside the file");
        }
        let end = paddr.checked_add(memsz);
        if paddr < KERNEL_MIN_ADDR || end.is_none_or(|end| end > ram_end) {
            bail!(
                "segment {i} at {paddr:#x}..{:#x} is outside guest memory (RAM for the kernel: {KERNEL_MIN_ADDR:#x}..{ram_end:#x})",
                paddr.saturating_add(memsz)
            );
        }
        loadable += 1;
    }
    if loadable == 0 {
        bail!("no loadable segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: header + one PT_LOAD program header.
    fn elf_with_segment(paddr: u64, memsz: u64) -> Vec<u8> {
        let mut elf = vec![0u8; EHDR_LEN + PHDR_LEN + 16];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[18..20].copy_from_slice(&62u16.to_le_bytes());
        elf[32..40].copy_from_slice(&(EHDR_LEN as u64).to_le_bytes());
        elf[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = &mut elf[EHDR_LEN..EHDR_LEN + PHDR_LEN];
        ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
        ph[8..16].copy_from_slice(&((EHDR_LEN + PHDR_LEN) as u64).to_le_bytes());
        ph[24..32].copy_from_slice(&paddr.to_le_bytes());
        ph[32..40].copy_from_slice(&16u64.to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        elf
    }

    #[test]
    fn accepts_a_segment_in_ram() {
        check_segments(&elf_with_segment(0x20_0000, 0x1000), 64 << 20).unwrap();
    }

    #[test]
    fn rejects_segments_outside_ram() {
        for (paddr, memsz) in [
            (0x1000, 0x10),
            (63 << 20, 2 << 20),
            (u64::MAX - 4, 0x10),
            (0x20_0000, u64::MAX),
        ] {
            let err = check_segments(&elf_with_segment(paddr, memsz), 64 << 20).unwrap_err();
            assert!(err.to_string().contains("outside guest memory"), "{err}");
        }
    }

    #[test]
    fn rejects_non_elf_and_truncated_headers() {
        assert!(
            check_segments(
                b"MZ\x90\x00 not an elf at all, just some bytes...........................",
                1 << 30
            )
            .unwrap_err()
            .to_string()
            .contains("not an ELF")
        );
        let mut elf = elf_with_segment(0x20_0000, 0x1000);
        elf.truncate(EHDR_LEN + 8);
        assert!(
            check_segments(&elf, 1 << 30)
                .unwrap_err()
                .to_string()
                .contains("outside the file")
        );
    }
}
