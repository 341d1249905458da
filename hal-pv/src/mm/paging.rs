//! The kernel's page tables: 4-level x86-64 paging with NX.
//!
//! [`init`] replaces the boot tables (2 MiB pages, everything executable) with:
//! - the kernel image in 4 KiB pages — text read+execute, rodata read-only NX, data/bss read-write
//!   NX — so a stray write into code or a jump into data faults;
//! - the direct map of RAM, NX, in 1 GiB pages where the CPU has them (2 MiB otherwise), and the
//!   local APIC and IOAPIC pages uncached;
//! - no identity map: the lower half is left for user address spaces.
//!
//! New tables come from pristine frames (already zero), so building them writes only the entries.

use super::{DIRECT_MAP_BASE, KERNEL_IMAGE_BASE, PAGE_SIZE, PhysAddr, frames};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
const MIB2: u64 = 2 << 20;

/// Until the direct map exists, tables are reached through the boot identity map (first GiB).
static DIRECT_MAP_READY: AtomicBool = AtomicBool::new(false);
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

fn table(phys: u64) -> *mut u64 {
    if DIRECT_MAP_READY.load(Ordering::Relaxed) {
        (DIRECT_MAP_BASE + phys) as *mut u64
    } else {
        phys as *mut u64
    }
}

fn new_table() -> u64 {
    match frames::alloc_zeroed() {
        Some(frame) => frame.0,
        None => crate::crash::early_panic("out of memory for page tables"),
    }
}

/// Returns the table the entry `index` of `parent` points to, creating it if absent.
///
/// # Safety
/// `parent` is the physical address of a live page table reachable through [`table`].
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

/// Maps one 4 KiB page in the tree rooted at `root`.
///
/// # Safety
/// `root` is a live PML4; the mapping must not break memory the kernel relies on.
pub unsafe fn map_4k(root: u64, virt: u64, phys: u64, flags: u64) {
    // SAFETY: each level is a table by construction.
    unsafe {
        let pdpt = next_level(root, index(virt, 3));
        let pd = next_level(pdpt, index(virt, 2));
        let pt = next_level(pd, index(virt, 1));
        table(pt)
            .add(index(virt, 0))
            .write_volatile(phys | flags | PRESENT);
    }
}

/// Builds the kernel's tables and switches to them. Runs once, on the boot CPU.
/// `ram` lists the physical ranges to reach through the direct map.
pub(crate) fn init(ram: impl Iterator<Item = (u64, u64)>, gib_pages: bool) {
    let root = new_table();
    map_kernel_image(root);
    map_direct(root, ram, gib_pages);
    // SAFETY: the new tables map the kernel image (code, stack, data) at the same virtual
    // addresses as the boot tables, so execution continues after the switch.
    unsafe { x86::controlregs::cr3_write(root) };
    DIRECT_MAP_READY.store(true, Ordering::Relaxed);
    KERNEL_ROOT.store(root, Ordering::Relaxed);
}

/// The physical address of the kernel's PML4 (for other CPUs and, later, user address spaces).
pub fn kernel_root() -> PhysAddr {
    PhysAddr(KERNEL_ROOT.load(Ordering::Relaxed))
}

fn map_kernel_image(root: u64) {
    let sections = [
        (super::kernel_text(), 0),
        (super::kernel_rodata(), NO_EXECUTE),
        (super::kernel_data(), WRITABLE | NO_EXECUTE),
    ];
    for ((start, end), flags) in sections {
        let mut virt = start & !(PAGE_SIZE - 1);
        while virt < end {
            // SAFETY: `root` is the fresh PML4; these pages are the kernel image.
            unsafe { map_4k(root, virt, virt - KERNEL_IMAGE_BASE, flags | GLOBAL) };
            virt += PAGE_SIZE;
        }
    }
}

/// Maps `ranges` (physical, any alignment) into the direct map, plus the local APIC and IOAPIC
/// pages uncached. Only RAM is mapped: with 2 MiB pages each entry is a few emulated instructions
/// on PVM hosts (which offer no 1 GiB pages), so mapping the whole 4 GiB would cost ~50 ms.
fn map_direct(root: u64, ram: impl Iterator<Item = (u64, u64)>, gib_pages: bool) {
    for (start, end) in ram {
        map_direct_range(root, start, end, 0, gib_pages);
    }
    // The IOAPIC (0xfec00000) and local APIC (0xfee00000) pages.
    map_direct_range(
        root,
        0xfec0_0000,
        0xfef0_0000,
        NO_CACHE | WRITE_THROUGH,
        false,
    );
}

fn map_direct_range(root: u64, start: u64, end: u64, cache: u64, gib_pages: bool) {
    let flags = PRESENT | WRITABLE | NO_EXECUTE | GLOBAL | HUGE | cache;
    let (step, level) = if gib_pages { (GIB, 2) } else { (MIB2, 1) };
    let mut phys = start & !(step - 1);
    let end = end.min(512 * GIB);
    while phys < end {
        let virt = DIRECT_MAP_BASE + phys;
        // SAFETY: fresh tables under `root`; the direct map aliases nothing the kernel uses yet.
        unsafe {
            let pdpt = next_level(root, index(virt, 3));
            let leaf_table = if gib_pages {
                pdpt
            } else {
                next_level(pdpt, index(virt, 2))
            };
            // Fill the rest of this table in one tight loop.
            let slots = table(leaf_table);
            let mut slot = index(virt, level);
            while slot < 512 && phys < end {
                slots.add(slot).write_volatile(phys | flags);
                slot += 1;
                phys += step;
            }
        }
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
