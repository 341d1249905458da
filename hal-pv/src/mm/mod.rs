//! Memory: physical frames, the kernel's page tables and its heap.
//!
//! Address-space layout of the kernel (the lower half is left to user programs):
//! - `0xffff_8000_0000_0000 + p`: the direct map of physical address `p` (all RAM, and the local
//!   APIC and IOAPIC pages uncached);
//! - `0xffff_ffff_8000_0000 + p`: the kernel image, loaded at physical `p` (2 MiB).

pub mod address_space;
mod copy_batch;
pub mod frames;
pub mod heap;
pub mod paging;

/// A guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PhysAddr(pub u64);

/// Where the direct map of physical memory starts.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// Where the kernel image is mapped: virtual = physical + this.
pub const KERNEL_IMAGE_BASE: u64 = 0xffff_ffff_8000_0000;
pub const PAGE_SIZE: u64 = 4096;

impl PhysAddr {
    /// The address of this physical byte in the direct map.
    pub fn to_virt(self) -> *mut u8 {
        (DIRECT_MAP_BASE + self.0) as *mut u8
    }
}

/// The physical address of a kernel-image or direct-map virtual address.
pub fn virt_to_phys(virt: u64) -> PhysAddr {
    if virt >= KERNEL_IMAGE_BASE {
        PhysAddr(virt - KERNEL_IMAGE_BASE)
    } else {
        PhysAddr(virt - DIRECT_MAP_BASE)
    }
}

unsafe extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_end: u8;
}

/// Physical range of the whole image, boot sections and static page tables included.
pub(crate) fn kernel_phys_range() -> (PhysAddr, PhysAddr) {
    // SAFETY: linker-script symbols; only their addresses are used. `__kernel_phys_start` is
    // linked at its physical address, `__kernel_end` in the kernel image mapping.
    unsafe {
        let start = &__kernel_phys_start as *const u8 as u64;
        let end = &__kernel_end as *const u8 as u64 - KERNEL_IMAGE_BASE;
        (PhysAddr(start), PhysAddr(end))
    }
}
