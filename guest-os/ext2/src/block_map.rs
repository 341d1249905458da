//! The ext2 block map: which physical block holds each logical block of a file, a directory or a
//! slow symlink, in runs, so that reads coalesce.
//!
//! `i_block` holds 12 direct pointers, then the roots of single, double and triple indirect trees.
//! Mapping one logical block walks at most three levels, reading one pointer per level; at the
//! last level it reads a batch of consecutive pointers (never the whole indirect block) and
//! returns the run of physically consecutive blocks, or of holes, they start. A zero pointer at
//! any level is a hole as big as its subtree. Every nonzero pointer that leads to a read is
//! checked to lie inside the file system; the depth is fixed by the slot, so a pointer cycle ends.

use crate::bytes::le32;
use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::Result;
use crate::fs::Ext2;
use crate::inode::{DIRECT_BLOCKS, Inode, InodeNo};

/// Pointers read from an indirect block at once (512 bytes, on the stack).
const POINTER_BATCH: usize = 128;

/// A run of logical blocks: `blocks` physically consecutive blocks from `start`, or a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// The physical block of the run's first logical block; `None` for a hole.
    pub(crate) start: Option<u64>,
    /// At least 1.
    pub(crate) blocks: u64,
}

impl<D: BlockDevice> Ext2<D> {
    /// Blocks a block map can address at this block size: 12 + p + p² + p³ for p pointers per
    /// block (at most about 2^42, no overflow).
    pub(crate) fn addressable_blocks(&self) -> u64 {
        let per = self.geo.pointers_per_block();
        DIRECT_BLOCKS as u64 + per + per * per + per * per * per
    }

    /// Checks that `inode`'s size fits its block map; returns its size in blocks.
    pub(crate) fn check_size(&self, inode: &Inode) -> Result<u64> {
        let blocks = inode.size().div_ceil(self.geo.block_size);
        if blocks > self.addressable_blocks() {
            return Err(Corrupt::FileTooLarge {
                ino: inode.ino(),
                size: inode.size(),
            }
            .into());
        }
        Ok(blocks)
    }

    /// Maps logical block `block` of `inode` and as many of the next `want - 1` as continue its
    /// run. The caller keeps `block` inside the file's size (checked by [`Self::check_size`]).
    pub(crate) fn map_run(&self, inode: &Inode, block: u64, want: u64) -> Result<Run> {
        let want = want.max(1);
        let words = inode.block_words();
        if block < DIRECT_BLOCKS as u64 {
            let direct = words.get(block as usize..DIRECT_BLOCKS).unwrap_or_default();
            return self.run_of(inode.ino(), direct.iter().copied(), want);
        }
        let per = self.geo.pointers_per_block();
        let mut rel = block.saturating_sub(DIRECT_BLOCKS as u64);
        let mut span = per;
        for (depth, &root) in (1..).zip(words.iter().skip(DIRECT_BLOCKS)) {
            if rel < span {
                return self.map_indirect(inode.ino(), root, depth, rel, want);
            }
            rel -= span;
            span = span.saturating_mul(per);
        }
        Err(Corrupt::FileTooLarge {
            ino: inode.ino(),
            size: inode.size(),
        }
        .into())
    }

    /// Maps block `rel` of the subtree of height `depth` (1..=3) under `pointer`.
    fn map_indirect(
        &self,
        ino: InodeNo,
        mut pointer: u32,
        depth: u32,
        mut rel: u64,
        want: u64,
    ) -> Result<Run> {
        let per = self.geo.pointers_per_block();
        let bs = self.geo.block_size;
        // One level per pass: at most three passes.
        for level in (1..=depth).rev() {
            let child_span = per.pow(level - 1);
            if pointer == 0 {
                let rest = per.pow(level).saturating_sub(rel).min(want);
                return Ok(Run {
                    start: None,
                    blocks: rest.max(1),
                });
            }
            let table = self.check_block(ino, pointer)? * bs;
            let index = rel / child_span;
            if level == 1 {
                let n = (per - index).min(want).min(POINTER_BATCH as u64) as usize;
                let mut raw = [0u8; POINTER_BATCH * 4];
                let raw = raw.get_mut(..n * 4).unwrap_or_default();
                self.disk.read(table + index * 4, raw)?;
                let pointers = raw.chunks_exact(4).map(|p| le32(p, 0));
                return self.run_of(ino, pointers, want);
            }
            let mut entry = [0u8; 4];
            self.disk.read(table + index * 4, &mut entry)?;
            pointer = u32::from_le_bytes(entry);
            rel %= child_span;
        }
        Err(Corrupt::FileTooLarge { ino, size: 0 }.into())
    }

    /// The run that `pointers` (one per logical block, in order) start with, at most `want`
    /// blocks: consecutive zeros (a hole) or consecutive block numbers.
    fn run_of(
        &self,
        ino: InodeNo,
        mut pointers: impl Iterator<Item = u32>,
        want: u64,
    ) -> Result<Run> {
        let first = pointers.next().unwrap_or(0);
        // A hole continues with zeros, a run with the next block numbers: one compare per
        // pointer (this loop runs once per block of every large read).
        let step = u64::from(first != 0);
        let mut expected = u64::from(first) + step;
        let mut blocks = 1u64;
        for next in pointers.take(usize::try_from(want.saturating_sub(1)).unwrap_or(usize::MAX)) {
            if u64::from(next) != expected {
                break;
            }
            expected += step;
            blocks += 1;
        }
        if first == 0 {
            return Ok(Run {
                start: None,
                blocks,
            });
        }
        let start = self.check_block(ino, first)?;
        // The run's blocks are consecutive, so checking the last checks them all.
        self.check_block_u64(ino, start + blocks - 1)?;
        Ok(Run {
            start: Some(start),
            blocks,
        })
    }

    /// Checks that a nonzero block pointer of inode `ino` lies inside the file system.
    pub(crate) fn check_block(&self, ino: InodeNo, pointer: u32) -> Result<u64> {
        self.check_block_u64(ino, u64::from(pointer))
    }

    pub(crate) fn check_block_u64(&self, ino: InodeNo, block: u64) -> Result<u64> {
        if block >= self.geo.blocks_count {
            return Err(Corrupt::BlockPointer {
                ino,
                block,
                blocks: self.geo.blocks_count,
            }
            .into());
        }
        Ok(block)
    }
}
