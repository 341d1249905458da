//! Where things go in guest-physical memory at boot (docs/boot-protocol.md is the contract).

use vm_memory::GuestAddress;

/// `hvm_start_info`.
pub const START_INFO: GuestAddress = GuestAddress(0x6000);
/// The PVH memory map, right after the start info.
pub const MEMMAP: GuestAddress = GuestAddress(0x6800);
/// Room for memory-map entries before the command line.
pub const MEMMAP_MAX_ENTRIES: usize = (0x7000 - 0x6800) / 24;
/// The kernel command line, NUL-terminated.
pub const CMDLINE: GuestAddress = GuestAddress(0x7000);
/// Longest command line, NUL included.
pub const CMDLINE_MAX: usize = 4096;
/// End of conventional low memory (the rest below 1 MiB is the BIOS area, where ACPI lives).
pub const LOW_RAM_END: u64 = 0x9fc00;
/// Kernels load at or above 1 MiB.
pub const KERNEL_MIN_ADDR: u64 = 0x10_0000;
