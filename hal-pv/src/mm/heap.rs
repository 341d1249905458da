//! The kernel heap: talc over physically contiguous chunks from the frame allocator, reached
//! through the direct map. The heap grows a chunk at a time on demand (talc's `Source`), so boot
//! claims only the first chunk — and, as those frames are pristine, touches only talc's metadata.

use super::{PAGE_SIZE, frames};
use core::alloc::Layout;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;

/// Heap growth step.
const CHUNK_BYTES: u64 = 2 << 20;

/// A talc `Source` that claims fresh chunks of contiguous frames.
#[derive(Debug)]
pub struct FrameSource;

// SAFETY: `acquire` only claims memory it just took from the frame allocator, which nobody else
// uses, and never touches the allocator that calls it.
unsafe impl Source for FrameSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the request, its alignment and talc's per-heap metadata.
        let need = (layout.size() + layout.align()) as u64 + PAGE_SIZE;
        let bytes = need.max(CHUNK_BYTES).next_multiple_of(PAGE_SIZE);
        let base = frames::alloc_contiguous(bytes / PAGE_SIZE).ok_or(())?;
        // SAFETY: the chunk is ours alone, mapped through the direct map, and lives forever.
        unsafe { talc.claim(base.to_virt(), bytes as usize) }
            .map(|_| ())
            .ok_or(())
    }
}

#[global_allocator]
static HEAP: Heap = Heap {
    talc: talc::TalcLock::new(FrameSource),
    small: spinning_top::Spinlock::new([0; SMALL_CLASSES]),
};

/// Size classes of the small-block cache: 16, 32, 64, 128 and 256 bytes.
const SMALL_CLASSES: usize = 5;
const SMALL_MAX: usize = 16 << (SMALL_CLASSES - 1);

/// talc, with a cache of small blocks in front. Every ring-0 instruction is emulated on PVM
/// hosts, and the kernel allocates small things all the time (paths, vectors of a few
/// entries): a talc allocation costs ~150 instructions, a pop from a free list ~15. Small blocks
/// are rounded up to a power of two and, once freed, stay on their class's list (a block's first
/// word links to the next) — they never go back to talc, so the cache is as large as the most
/// small blocks ever live at once.
struct Heap {
    talc: talc::TalcLock<spinning_top::RawSpinlock, FrameSource>,
    /// Per class, the first free block (0: none).
    small: spinning_top::Spinlock<[usize; SMALL_CLASSES]>,
}

/// The small class of `layout`, if it has one.
fn small_class(layout: Layout) -> Option<usize> {
    if layout.size() > SMALL_MAX || layout.align() > 16 {
        return None;
    }
    let size = layout.size().max(16).next_power_of_two();
    Some(size.trailing_zeros() as usize - 4)
}

// SAFETY: small blocks are handed out once (popped under the lock) and come back only through
// `dealloc` with the layout they were allocated with, so their class is the same; each is at
// least 16 bytes and 16-aligned (allocated from talc as such), so the link word fits. Everything
// else is talc's.
unsafe impl core::alloc::GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = small_class(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.talc.alloc(layout) };
        };
        {
            let mut heads = self.small.lock();
            let head = heads[class];
            if head != 0 {
                // SAFETY: a free block of this class; its first word is the next link.
                heads[class] = unsafe { (head as *const usize).read() };
                return head as *mut u8;
            }
        }
        let size = 16 << class;
        // SAFETY: a valid layout (power-of-two size and alignment 16).
        unsafe { self.talc.alloc(Layout::from_size_align_unchecked(size, 16)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if small_class(layout).is_none() {
            // SAFETY: the caller's contract, passed on (talc knows which memory is pristine).
            return unsafe { self.talc.alloc_zeroed(layout) };
        }
        // SAFETY: the caller's contract; a non-null block is valid for `layout.size()` bytes.
        unsafe {
            let ptr = self.alloc(layout);
            if !ptr.is_null() {
                core::ptr::write_bytes(ptr, 0, layout.size());
            }
            ptr
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = small_class(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.talc.dealloc(ptr, layout) };
        };
        let mut heads = self.small.lock();
        // SAFETY: the block is ours again and at least 16 bytes: its first word takes the link.
        unsafe { (ptr as *mut usize).write(heads[class]) };
        heads[class] = ptr as usize;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract (a valid new size for this alignment).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (small_class(layout), small_class(new_layout)) {
            // Both large: talc may grow the block in place.
            // SAFETY: the caller's contract, passed on.
            (None, None) => unsafe { self.talc.realloc(ptr, layout, new_size) },
            // The same small class: the block already has room.
            (Some(a), Some(b)) if a == b => ptr,
            _ => {
                // SAFETY: a valid layout; the old block is valid for `min` bytes.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: distinct blocks, each valid for at least `min` bytes.
                    unsafe {
                        core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}
