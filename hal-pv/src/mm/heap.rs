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
static HEAP: talc::TalcLock<spinning_top::RawSpinlock, FrameSource> =
    talc::TalcLock::new(FrameSource);
