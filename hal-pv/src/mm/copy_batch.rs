//! Copies of memory that the host makes where ring 0 is emulated: a [`CopyBatch`] collects the
//! page-sized pieces of one copy (a `read` into a user buffer, a copy-on-write break) and hands
//! them to the VMM in one port write (`pvport::copy_ranges`), where the kernel's own
//! `rep movsq` would cost ~323 µs per 4 KiB (PVM hosts). Elsewhere, and for small copies, there
//! is no batch and the caller copies itself: deciding once per copy keeps the common small
//! copy (a system call's struct) as short as it was.
//!
//! One rule for callers: a destination frame that was a page table and has not been a page
//! since (`frames::was_table`) is filled by the CPU, never by the host: `frames::copy_page`
//! keeps that rule for every page copy.

use super::{DIRECT_MAP_BASE, KERNEL_IMAGE_BASE, virt_to_phys};
use crate::pvport::{self, COPY_MAX_LEN, CopyRange};
use core::mem::MaybeUninit;

/// Copies shorter than this the kernel makes itself even where the host could: filling an
/// entry and the port write (~16 µs) cost about as much as 256 bytes of emulated `rep movsq`.
const HOST_MIN: usize = 256;
/// Pieces collected before a port write (a 64 KiB copy in one).
const BATCH: usize = 16;

/// Copies collected for the host; everything collected is copied by the time the batch is
/// finished or dropped.
pub(crate) struct CopyBatch {
    count: usize,
    /// `pending[..count]` are set. Left uninitialised: clearing 384 bytes is ~50 emulated
    /// instructions.
    pending: [MaybeUninit<Piece>; BATCH],
}

/// A copy collected: destination, source, length (at most a page).
type Piece = (*mut u8, *const u8, usize);

impl CopyBatch {
    /// A batch for a copy of `len` bytes to or from the kernel buffer at `kernel`, if the host
    /// should make it: where ring 0 is emulated, for copies of at least [`HOST_MIN`] bytes whose
    /// kernel side lies in the kernel image or the direct map (physically contiguous there).
    pub(crate) fn for_copy(len: usize, kernel: *const u8) -> Option<CopyBatch> {
        if len >= HOST_MIN && linear(kernel as u64, len) {
            Self::for_pages()
        } else {
            None
        }
    }

    /// A batch for copies between whole frames (direct map), if the host should make them.
    pub(crate) fn for_pages() -> Option<CopyBatch> {
        pvport::host_copy_available().then(|| CopyBatch {
            count: 0,
            pending: [const { MaybeUninit::uninit() }; BATCH],
        })
    }

    /// Collects a copy of `len` bytes (at most a page) from `src` to `dst`.
    ///
    /// # Safety
    /// Both ranges lie in the kernel image or the direct map; until the batch is finished or
    /// dropped, `src..src+len` stays readable and `dst..dst+len` writable by us alone (a racing
    /// user write to user pages only changes the bytes copied), and the two do not overlap.
    pub(crate) unsafe fn add(&mut self, dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(len <= COPY_MAX_LEN);
        self.pending[self.count] = MaybeUninit::new((dst, src, len));
        self.count += 1;
        if self.count == BATCH {
            self.flush();
        }
    }

    /// Makes every copy collected.
    pub(crate) fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if self.count == 0 {
            return;
        }
        // SAFETY: the first `count` pieces were set by `add`.
        let pending: &[Piece] =
            unsafe { core::slice::from_raw_parts(self.pending.as_ptr().cast(), self.count) };
        let done = pvport::copy_ranges(pending.len(), |i| {
            let (dst, src, len) = pending[i];
            CopyRange {
                dst: virt_to_phys(dst as u64).0,
                src: virt_to_phys(src as u64).0,
                len: len as u64,
            }
        });
        // Whatever the host refused (a bug) is copied here, so the copy is never short.
        for &(dst, src, len) in &pending[done..] {
            // SAFETY: as promised to `add`.
            unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        }
        self.count = 0;
    }
}

/// One copy of `len` bytes (at most a page): collected into `batch` for the host, or made now
/// by the CPU when there is no batch.
///
/// # Safety
/// As for [`CopyBatch::add`] (both ranges valid and apart until the batch is done).
#[inline]
pub(crate) unsafe fn copy(batch: Option<&mut CopyBatch>, to: *mut u8, from: *const u8, len: usize) {
    match batch {
        // SAFETY: the caller's promise.
        Some(batch) => unsafe { batch.add(to, from, len) },
        // SAFETY: the caller's promise. `rep movsq` for whole words, never per byte.
        None => unsafe { core::ptr::copy_nonoverlapping(from, to, len) },
    }
}

impl Drop for CopyBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Whether `virt..virt+len` lies in the kernel image or the direct map, whose virtual
/// addresses are physical ones plus a constant.
fn linear(virt: u64, len: usize) -> bool {
    let Some(end) = virt.checked_add(len as u64) else {
        return false;
    };
    virt >= KERNEL_IMAGE_BASE
        || (virt >= DIRECT_MAP_BASE && end <= DIRECT_MAP_BASE + super::paging::DIRECT_MAP_END)
}
