//! Memory shared with a device: zeroed pages from the frame allocator, reached through the direct
//! map, read and written only with volatile accesses of plain integers (the device changes it
//! behind the compiler's back).
//!
//! Accesses are bounds- and alignment-checked, so the drivers built on it ([`super::ring`],
//! [`super::block`]) hold no raw pointers of their own; the unchecked forms are for hot paths
//! whose offsets are in range by construction (a masked ring index).

use super::hal::VirtioHal;
use crate::mm::PAGE_SIZE;
use core::ptr::NonNull;
use virtio_drivers::{BufferDirection, Hal};

/// The integers a device reads and writes in shared memory.
pub trait Plain: Copy + private::Sealed {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}

mod private {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
}

/// Physically contiguous pages shared with a device, freed on drop.
pub struct Dma {
    virt: NonNull<u8>,
    phys: u64,
    pages: usize,
}

// SAFETY: `Dma` owns its pages; moving it to another CPU moves that ownership.
unsafe impl Send for Dma {}

impl Dma {
    /// `pages` zeroed pages.
    pub fn new(pages: usize) -> Dma {
        let (phys, virt) = VirtioHal::dma_alloc(pages, BufferDirection::Both);
        let dma = Dma { virt, phys, pages };
        // SAFETY: the pages are ours alone and mapped for `len` bytes (the direct map).
        unsafe { core::ptr::write_bytes(virt.as_ptr(), 0, dma.len()) };
        dma
    }

    pub fn len(&self) -> usize {
        self.pages * PAGE_SIZE as usize
    }

    /// The device's (guest-physical) address of byte `offset`.
    pub fn phys(&self, offset: usize) -> u64 {
        assert!(offset <= self.len(), "DMA offset {offset} out of range");
        self.phys + offset as u64
    }

    pub fn read<T: Plain>(&self, offset: usize) -> T {
        // SAFETY: `at` checks the range and alignment; the memory is ours and initialised.
        unsafe { self.at::<T>(offset).read_volatile() }
    }

    pub fn write<T: Plain>(&mut self, offset: usize, value: T) {
        // SAFETY: as in `read`; `&mut self`: no other reference of ours aliases the write.
        unsafe { self.at::<T>(offset).write_volatile(value) }
    }

    /// [`Dma::read`] without the check, for hot paths whose offsets are in range by construction.
    ///
    /// # Safety
    /// `offset` is a multiple of `size_of::<T>()` and `offset + size_of::<T>() <= self.len()`.
    pub unsafe fn read_unchecked<T: Plain>(&self, offset: usize) -> T {
        debug_assert!(offset.is_multiple_of(core::mem::size_of::<T>()));
        debug_assert!(offset + core::mem::size_of::<T>() <= self.len());
        // SAFETY: in range and aligned, as the caller promises.
        unsafe { self.virt.as_ptr().add(offset).cast::<T>().read_volatile() }
    }

    /// [`Dma::write`] without the check.
    ///
    /// # Safety
    /// As for [`Dma::read_unchecked`].
    pub unsafe fn write_unchecked<T: Plain>(&mut self, offset: usize, value: T) {
        debug_assert!(offset.is_multiple_of(core::mem::size_of::<T>()));
        debug_assert!(offset + core::mem::size_of::<T>() <= self.len());
        // SAFETY: in range and aligned, as the caller promises.
        unsafe {
            self.virt
                .as_ptr()
                .add(offset)
                .cast::<T>()
                .write_volatile(value)
        }
    }

    /// The checked address of a `T` at `offset`.
    fn at<T: Plain>(&self, offset: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.len(),
            "DMA access of {size} bytes at {offset} out of range or misaligned"
        );
        // SAFETY: in range of the allocation, checked above.
        unsafe { self.virt.as_ptr().add(offset).cast::<T>() }
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        // SAFETY: allocated by `dma_alloc` with this size; the device no longer uses it (the
        // owner resets or abandons the queue first).
        unsafe { VirtioHal::dma_dealloc(self.phys, self.virt, self.pages) };
    }
}
