//! Reading Xen's `hvm_start_info` (the PVH boot information): the memory map, the command line and
//! the ACPI RSDP address. It is read once, through the direct map (the loader puts it in the first
//! GiB, which the assembled tables map); what the kernel needs is copied into fixed-size statics.

use crate::mm::PhysAddr;

const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Memory-map entry type for usable RAM (E820 numbering, as PVH uses).
pub const MEMMAP_RAM: u32 = 1;
/// Most memory-map entries we keep; the VMM writes a handful, QEMU about ten.
pub const MAX_MEMMAP: usize = 32;
/// Longest command line we keep (the VMM allows 4 KiB including the NUL).
pub const MAX_CMDLINE: usize = 4095;

#[repr(C)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    pub(crate) reserved: u32,
}

/// What the boot CPU keeps of `hvm_start_info`.
pub struct StartInfo {
    pub memmap: [MemmapEntry; MAX_MEMMAP],
    pub memmap_len: usize,
    pub cmdline: [u8; MAX_CMDLINE],
    pub cmdline_len: usize,
    pub rsdp: PhysAddr,
}

impl StartInfo {
    pub fn memmap(&self) -> &[MemmapEntry] {
        &self.memmap[..self.memmap_len]
    }

    /// The command line; bytes that are not UTF-8 end it early.
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

/// Copies the start info at `paddr` into `out`.
///
/// # Safety
/// `paddr` is the value the loader passed in `EBX`, below 1 GiB.
pub unsafe fn read(paddr: u64, out: &mut StartInfo) {
    // Everything the loader wrote must lie where the assembled direct map reaches.
    let phys = |addr: u64| {
        if addr >= 1 << 30 {
            crate::crash::early_panic("PVH boot data lies above 1 GiB");
        }
        PhysAddr(addr).to_virt()
    };
    // SAFETY: the loader placed the structure there; the direct map covers it.
    let info = unsafe { core::ptr::read_unaligned(phys(paddr) as *const HvmStartInfo) };
    if info.magic != HVM_START_MAGIC {
        crate::crash::early_panic("PVH start info has a bad magic");
    }
    out.rsdp = PhysAddr(info.rsdp_paddr);
    if info.version >= 1 && info.memmap_paddr != 0 {
        let n = (info.memmap_entries as usize).min(MAX_MEMMAP);
        for (i, slot) in out.memmap[..n].iter_mut().enumerate() {
            let entry = phys(info.memmap_paddr) as *const MemmapEntry;
            // SAFETY: `i < memmap_entries`, inside the table the loader wrote.
            *slot = unsafe { core::ptr::read_unaligned(entry.add(i)) };
        }
        out.memmap_len = n;
    }
    if info.cmdline_paddr != 0 {
        let src = phys(info.cmdline_paddr) as *const u8;
        let mut len = 0;
        while len < MAX_CMDLINE {
            // SAFETY: the string is NUL-terminated; we stop at the NUL or at our buffer's end.
            let byte = unsafe { src.add(len).read() };
            if byte == 0 {
                break;
            }
            out.cmdline[len] = byte;
            len += 1;
        }
        out.cmdline_len = len;
    }
}
