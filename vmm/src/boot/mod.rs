//! Everything the VMM writes into guest memory before the first instruction runs: the kernel, the
//! PVH start info with its memory map, the command line and the ACPI tables.

pub mod acpi;
pub mod kernel;
pub mod layout;

use anyhow::{Context, bail};
use layout::{CMDLINE, CMDLINE_MAX, LOW_RAM_END, MEMMAP, MEMMAP_MAX_ENTRIES, START_INFO};
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// What the boot vCPU needs to start.
#[derive(Debug, Clone, Copy)]
pub struct BootSetup {
    /// The kernel's 32-bit PVH entry.
    pub entry: GuestAddress,
    /// Passed to the kernel in EBX.
    pub start_info: GuestAddress,
}

/// Loads `kernel` (an ELF named `kernel_name` in errors, which passed [`kernel::check`]) and
/// writes the boot structures.
pub fn setup(
    mem: &GuestMemoryMmap,
    mem_bytes: u64,
    kernel: &[u8],
    kernel_name: &str,
    cmdline: &str,
    num_cpus: u32,
) -> anyhow::Result<BootSetup> {
    let ram = crate::memory::ram_ranges(mem_bytes);
    let loaded = kernel::load(mem, kernel, kernel_name)?;
    write_cmdline(mem, cmdline)?;
    let rsdp = acpi::write_acpi_tables(mem, num_cpus).context("cannot write the ACPI tables")?;
    write_start_info(mem, &ram, rsdp)?;
    Ok(BootSetup {
        entry: loaded.pvh_entry,
        start_info: START_INFO,
    })
}

/// End of the RAM below the MMIO hole, where the kernel must load.
pub fn low_ram_end(mem_bytes: u64) -> u64 {
    let ram = crate::memory::ram_ranges(mem_bytes);
    ram[0].0.0 + ram[0].1
}

fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> anyhow::Result<()> {
    if cmdline.len() >= CMDLINE_MAX {
        bail!(
            "the kernel command line is {} bytes; at most {} fit",
            cmdline.len(),
            CMDLINE_MAX - 1
        );
    }
    if cmdline
        .bytes()
        .any(|b| b == 0 || !(b == b' ' || b.is_ascii_graphic()))
    {
        bail!("the kernel command line may hold only printable ASCII and spaces");
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    mem.write_slice(&bytes, CMDLINE)
        .context("cannot write the command line")
}

fn write_start_info(
    mem: &GuestMemoryMmap,
    ram: &[(GuestAddress, u64)],
    rsdp: GuestAddress,
) -> anyhow::Result<()> {
    let mut memmap = vec![
        entry(0, LOW_RAM_END, E820_RAM),
        entry(
            acpi::ACPI_START.0,
            acpi::ACPI_END.0 - acpi::ACPI_START.0,
            E820_RESERVED,
        ),
    ];
    for &(start, len) in ram {
        // The first MiB of the low range is described above.
        let (start, end) = (start.0.max(layout::KERNEL_MIN_ADDR), start.0 + len);
        if end > start {
            memmap.push(entry(start, end - start, E820_RAM));
        }
    }
    debug_assert!(memmap.len() <= MEMMAP_MAX_ENTRIES);
    let start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE.0,
        rsdp_paddr: rsdp.0,
        memmap_paddr: MEMMAP.0,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    let mut params = BootParams::new(&start_info, START_INFO);
    params.set_sections(&memmap, MEMMAP);
    PvhBootConfigurator::write_bootparams(&params, mem)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot write the PVH start info")
}

fn entry(addr: u64, size: u64, type_: u32) -> hvm_memmap_table_entry {
    hvm_memmap_table_entry {
        addr,
        size,
        type_,
        reserved: 0,
    }
}
