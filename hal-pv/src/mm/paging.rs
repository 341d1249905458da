//! The kernel's page tables: 4-level x86-64 paging with NX.
//!
//! Most of them are assembled into the image (`boot/pvh.rs`, `kernel_pml4`) and loaded before any
//! Rust runs: the kernel image in one 2 MiB page per section (text read+execute, rodata read-only
//! NX, data/bss read-write NX, so a stray write into code or a jump into data faults), the direct
//! map of physical 0..1 GiB (NX), and the IOAPIC and local APIC pages uncached. There is no identity
//! map: the lower half is left to user address spaces.
//!
//! [`init`] adds the RAM above 1 GiB to the direct map, in 1 GiB pages where the CPU has them (PVM
//! hosts offer none) and 2 MiB pages otherwise, one leaf table at a time in a tight loop. New
//! tables come from pristine frames (already zero), so building them writes only the entries.

use super::{DIRECT_MAP_BASE, PhysAddr, frames};

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const USER: u64 = 1 << 2;
pub const WRITE_THROUGH: u64 = 1 << 3;
pub const NO_CACHE: u64 = 1 << 4;
pub const HUGE: u64 = 1 << 7;
pub const GLOBAL: u64 = 1 << 8;
pub const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

const GIB: u64 = 1 << 30;
/// What the assembled tables already map of the direct map.
const STATIC_DIRECT_MAP_END: u64 = GIB;
/// The direct map's reach: one PML4 entry.
pub(crate) const DIRECT_MAP_END: u64 = 512 * GIB;

unsafe extern "C" {
    static kernel_pml4: u8;
}

/// The physical address of the kernel's PML4 (for other CPUs and, later, user address spaces).
pub fn kernel_root() -> PhysAddr {
    // SAFETY: only the symbol's address is taken; it is linked at its physical address.
    PhysAddr(unsafe { &kernel_pml4 as *const u8 as u64 })
}

fn table(phys: u64) -> *mut u64 {
    (DIRECT_MAP_BASE + phys) as *mut u64
}

fn new_table() -> u64 {
    match frames::alloc_zeroed_raw() {
        Some(frame) => frame.0,
        None => crate::crash::early_panic("out of memory for page tables"),
    }
}

/// Returns the table the entry `index` of `parent` points to, creating it if absent.
///
/// # Safety
/// `parent` is the physical address of a live page table.
unsafe fn next_level(parent: u64, index: usize) -> u64 {
    // SAFETY: `index < 512` and the caller guarantees `parent` is a table.
    let slot = unsafe { table(parent).add(index) };
    // SAFETY: as above.
    let entry = unsafe { slot.read_volatile() };
    if entry & PRESENT != 0 {
        return entry & ADDR_MASK;
    }
    let child = new_table();
    // Intermediate entries are permissive; the leaf decides.
    // SAFETY: as above.
    unsafe { slot.write_volatile(child | PRESENT | WRITABLE) };
    child
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Adds the RAM in `ram` (physical ranges) above what the assembled tables map to the direct map.
/// Runs once, on the boot CPU.
pub(crate) fn init(ram: impl Iterator<Item = (u64, u64)>, gib_pages: bool) {
    let root = kernel_root().0;
    let (level, step) = if gib_pages { (2, GIB) } else { (1, 2 << 20) };
    for (start, end) in ram {
        let start = (start & !(step - 1)).max(STATIC_DIRECT_MAP_END);
        let end = end.min(DIRECT_MAP_END);
        if start < end {
            fill_huge(
                root,
                DIRECT_MAP_BASE + start,
                start,
                end,
                WRITABLE | NO_EXECUTE | GLOBAL,
                level,
            );
        }
    }
}

/// Maps the device registers at physical `[phys, phys + len)` into the direct map, uncached (in
/// 2 MiB pages; the MMIO window holds nothing else).
pub fn map_mmio(phys: u64, len: u64) {
    let start = phys & !((2 << 20) - 1);
    let end = phys.saturating_add(len).min(DIRECT_MAP_END);
    let flags = WRITABLE | NO_EXECUTE | GLOBAL | NO_CACHE | WRITE_THROUGH;
    fill_huge(
        kernel_root().0,
        DIRECT_MAP_BASE + start,
        start,
        end,
        flags,
        1,
    );
}

/// Maps physical `[phys, end)` at `virt` with huge pages at `level` (1: 2 MiB, 2: 1 GiB), one
/// leaf table at a time.
fn fill_huge(root: u64, mut virt: u64, mut phys: u64, end: u64, flags: u64, level: u32) {
    let step = 1u64 << (12 + 9 * level);
    while phys < end {
        // SAFETY: live kernel tables; the new entries map only RAM not mapped before.
        let leaf = unsafe {
            let pdpt = next_level(root, index(virt, 3));
            if level == 2 {
                pdpt
            } else {
                next_level(pdpt, index(virt, 2))
            }
        };
        let first = index(virt, level);
        let count = ((end - phys).div_ceil(step) as usize).min(512 - first);
        // SAFETY: `leaf` is a page table of 512 entries, reached through the direct map.
        let slots = unsafe { core::slice::from_raw_parts_mut(table(leaf), 512) };
        let mut entry = phys | flags | PRESENT | HUGE;
        for slot in &mut slots[first..first + count] {
            *slot = entry;
            entry += step;
        }
        phys += step * count as u64;
        virt += step * count as u64;
    }
}

/// Walks the kernel tables: the physical address `virt` maps to and the leaf's flags, if mapped.
pub fn translate(virt: u64) -> Option<(PhysAddr, u64)> {
    let mut table_phys = kernel_root().0;
    for level in (0..4).rev() {
        // SAFETY: walking live kernel tables through the direct map; reads only.
        let entry = unsafe { table(table_phys).add(index(virt, level)).read_volatile() };
        if entry & PRESENT == 0 {
            return None;
        }
        let leaf_size = 1u64 << (12 + 9 * level);
        if level == 0 || entry & HUGE != 0 {
            let base = entry & ADDR_MASK & !(leaf_size - 1);
            return Some((
                PhysAddr(base + (virt & (leaf_size - 1))),
                entry & !ADDR_MASK,
            ));
        }
        table_phys = entry & ADDR_MASK;
    }
    None
}
