//! What virtio-drivers needs from us (its `Hal` trait): DMA memory from the frame allocator,
//! reached through the direct map, and the physical address of a buffer the driver shares.
//!
//! Guest-physical is what the device sees (no IOMMU), and every kernel buffer lives in the direct
//! map or the kernel image — both physically contiguous — so sharing is an address translation.

use crate::mm::{PAGE_SIZE, PhysAddr, frames, paging, virt_to_phys};
use core::ptr::NonNull;
use virtio_drivers::{BufferDirection, Hal};

pub struct VirtioHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory used by nothing else until freed;
// `share` returns the physical address of the very bytes the driver passed.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(
        pages: usize,
        _direction: BufferDirection,
    ) -> (virtio_drivers::PhysAddr, NonNull<u8>) {
        let frame = if pages == 1 {
            frames::alloc_zeroed_raw()
        } else {
            frames::alloc_contiguous(pages as u64)
        };
        let Some(frame) = frame else {
            panic!("virtio: out of memory for {pages} DMA pages");
        };
        let virt = NonNull::new(frame.to_virt()).expect("the direct map is not at address 0");
        (frame.0 as virtio_drivers::PhysAddr, virt)
    }

    unsafe fn dma_dealloc(
        paddr: virtio_drivers::PhysAddr,
        _vaddr: NonNull<u8>,
        pages: usize,
    ) -> i32 {
        for page in 0..pages as u64 {
            frames::free_raw(PhysAddr(paddr + page * PAGE_SIZE));
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: virtio_drivers::PhysAddr, size: usize) -> NonNull<u8> {
        paging::map_mmio(paddr, size as u64);
        NonNull::new(PhysAddr(paddr).to_virt()).expect("the direct map is not at address 0")
    }

    unsafe fn share(
        buffer: NonNull<[u8]>,
        _direction: BufferDirection,
    ) -> virtio_drivers::PhysAddr {
        virt_to_phys(buffer.as_ptr() as *mut u8 as u64).0 as virtio_drivers::PhysAddr
    }

    unsafe fn unshare(
        _paddr: virtio_drivers::PhysAddr,
        _buffer: NonNull<[u8]>,
        _direction: BufferDirection,
    ) {
    }
}
