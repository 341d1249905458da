//! Releasing blocks: [`Ext2::release_blocks`] frees every block of a block map from a logical
//! block on (truncate, and freeing an inode), indirect blocks included.
//!
//! Crash order: a pointer is always cleared on disk before its block's bitmap bit. Indirect
//! trees cut in the middle have their tail entries zeroed in one write, then the subtrees they
//! pointed at are freed; pointers held by the inode (direct blocks and whole trees) are cleared
//! in memory, the inode is written, and only then are those blocks freed (reading the detached
//! trees, which are still intact on disk). `i_blocks` shrinks in a second inode write once the
//! count is known; a crash before it leaves a count `e2fsck` fixes.
//!
//! The walk is bounded twice over: by depth (three levels), and by a budget of the blocks the
//! inode says it has (`i_blocks`, at most the file system's size), so a hostile tree of pointers
//! all naming the same indirect block ends with an error instead of reading it forever.

use alloc::vec::Vec;

use crate::bytes::le32;
use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::Result;
use crate::fs::Ext2;
use crate::inode::{BLOCK_POINTERS, DIRECT_BLOCKS, InodeNo};
use crate::raw_inode::RawInode;

/// Subtrees cut off the inode in memory, to free once it is written: (pointer, depth; 0 for a
/// data block).
#[derive(Debug, Default)]
struct Detached {
    roots: [(u32, u32); BLOCK_POINTERS],
    len: usize,
}

impl Detached {
    fn push(&mut self, pointer: u32, depth: u32) {
        if let Some(slot) = self.roots.get_mut(self.len) {
            *slot = (pointer, depth);
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.roots.iter().take(self.len).copied()
    }
}

/// How many more blocks a walk may free.
#[derive(Debug)]
struct Budget {
    ino: InodeNo,
    left: u64,
    total: u64,
}

impl Budget {
    fn take(&mut self) -> Result<()> {
        if self.left == 0 {
            return Err(Corrupt::BlockCountExceeded {
                ino: self.ino,
                blocks: self.total,
            }
            .into());
        }
        self.left -= 1;
        Ok(())
    }
}

/// Consecutive blocks waiting to be freed together.
#[derive(Debug, Default)]
struct FreeRun {
    start: u64,
    count: u64,
}

impl<D: BlockDevice> Ext2<D> {
    /// Frees every block that `raw` maps at logical block `first` or later, with the indirect
    /// blocks that only they needed, and writes `raw` (whose other fields the caller already
    /// set: size, times) with its pointers and `i_blocks` updated. See the module doc.
    pub(crate) fn release_blocks(&mut self, raw: &mut RawInode, first: u64) -> Result<()> {
        let bs = self.geo.block_size;
        let sectors_per_block = bs / 512;
        let total = (u64::from(raw.sectors()) / sectors_per_block).min(self.geo.blocks_count);
        let mut budget = Budget {
            ino: raw.ino,
            left: total,
            total,
        };
        let has_trees = (DIRECT_BLOCKS..BLOCK_POINTERS).any(|i| raw.block(i) != 0);
        let mut scratch = if has_trees {
            self.take_scratch(3 * self.geo.block_len())
        } else {
            Vec::new()
        };
        let result = self.release_with(raw, first, &mut scratch, &mut budget);
        if has_trees {
            self.put_scratch(scratch);
        }
        result
    }

    fn release_with(
        &mut self,
        raw: &mut RawInode,
        first: u64,
        scratch: &mut [u8],
        budget: &mut Budget,
    ) -> Result<()> {
        let mut detached = Detached::default();
        let freed_now = self.detach_from(raw, first, &mut detached, scratch, budget)?;
        self.drop_sectors(raw, freed_now);
        self.write_raw(raw)?;
        let mut run = FreeRun::default();
        let mut freed_later = 0;
        for (pointer, depth) in detached.iter() {
            freed_later += self.free_tree(raw.ino, pointer, depth, scratch, budget, &mut run)?;
        }
        self.free_run(raw.ino, &mut run)?;
        if freed_later > 0 {
            self.drop_sectors(raw, freed_later);
            self.write_raw(raw)?;
        }
        self.flush_bitmaps()
    }

    fn drop_sectors(&self, raw: &mut RawInode, blocks: u64) {
        let sectors = blocks.saturating_mul(self.geo.block_size / 512);
        let left = u64::from(raw.sectors()).saturating_sub(sectors);
        raw.set_sectors(left as u32);
    }

    /// Clears `raw`'s pointers at `first` and later: whole trees and direct blocks go to
    /// `detached`, trees cut in the middle are trimmed on disk now. Returns the blocks freed now.
    fn detach_from(
        &mut self,
        raw: &mut RawInode,
        first: u64,
        detached: &mut Detached,
        scratch: &mut [u8],
        budget: &mut Budget,
    ) -> Result<u64> {
        let per = self.geo.pointers_per_block();
        let mut freed = 0;
        let (mut start, mut span) = (DIRECT_BLOCKS as u64, per);
        for depth in 1..=3u32 {
            let index = DIRECT_BLOCKS + depth as usize - 1;
            let root = raw.block(index);
            if root != 0 {
                if first <= start {
                    detached.push(root, depth);
                    raw.set_block(index, 0);
                } else if first < start + span {
                    freed += self.trim(raw.ino, root, depth, first - start, scratch, budget)?;
                }
            }
            start += span;
            span = span.saturating_mul(per);
        }
        for index in (first.min(DIRECT_BLOCKS as u64) as usize)..DIRECT_BLOCKS {
            let pointer = raw.block(index);
            if pointer != 0 {
                detached.push(pointer, 0);
                raw.set_block(index, 0);
            }
        }
        Ok(freed)
    }

    /// Frees the blocks of the tree of height `depth` under `table` from its block `rel_first`
    /// on, keeping the table itself (it still maps blocks before `rel_first`).
    fn trim(
        &mut self,
        ino: InodeNo,
        table: u32,
        depth: u32,
        rel_first: u64,
        scratch: &mut [u8],
        budget: &mut Budget,
    ) -> Result<u64> {
        let bs = self.geo.block_size;
        let per = self.geo.pointers_per_block();
        let table = self.check_pointer(ino, u64::from(table))?;
        let (buf, rest) = scratch
            .split_at_mut_checked(self.geo.block_len())
            .ok_or(Corrupt::FileTooLarge { ino, size: 0 })?;
        self.disk.read(table * bs, buf)?;
        let child_span = per.pow(depth - 1);
        let (first_index, within) = (rel_first / child_span, rel_first % child_span);
        let mut freed = 0;
        let mut whole_from = first_index;
        if within != 0 {
            let child = le32(buf, first_index as usize * 4);
            if child != 0 && depth > 1 {
                freed += self.trim(ino, child, depth - 1, within, rest, budget)?;
            }
            whole_from += 1;
        }
        let entry = |i: u64| le32(buf, i as usize * 4);
        let Some(lo) = (whole_from..per).find(|&i| entry(i) != 0) else {
            return Ok(freed);
        };
        let hi = (lo..per).rev().find(|&i| entry(i) != 0).unwrap_or(lo) + 1;
        // The pointers go first, in one write; then what they pointed at.
        self.write_zeros(table * bs + lo * 4, (hi - lo) * 4)?;
        let mut run = FreeRun::default();
        for i in lo..hi {
            let child = entry(i);
            if child != 0 {
                freed += self.free_tree(ino, child, depth - 1, rest, budget, &mut run)?;
            }
        }
        self.free_run(ino, &mut run)?;
        Ok(freed)
    }

    /// Frees `pointer` and, at `depth` 1 or more, the whole tree under it; returns the blocks.
    fn free_tree(
        &mut self,
        ino: InodeNo,
        pointer: u32,
        depth: u32,
        scratch: &mut [u8],
        budget: &mut Budget,
        run: &mut FreeRun,
    ) -> Result<u64> {
        budget.take()?;
        let block = self.check_pointer(ino, u64::from(pointer))?;
        let mut freed = 1;
        if depth > 0 {
            let (buf, rest) = scratch
                .split_at_mut_checked(self.geo.block_len())
                .ok_or(Corrupt::FileTooLarge { ino, size: 0 })?;
            self.disk.read(block * self.geo.block_size, buf)?;
            for entry in buf.chunks_exact(4) {
                let child = le32(entry, 0);
                if child == 0 {
                    continue;
                }
                if depth == 1 {
                    // A data block, in line: most of what a large file frees. Only its range is
                    // checked here; `free_blocks` checks each run against the metadata.
                    budget.take()?;
                    let child = self.check_block_u64(ino, u64::from(child))?;
                    self.add_to_run(ino, run, child)?;
                    freed += 1;
                } else {
                    freed += self.free_tree(ino, child, depth - 1, rest, budget, run)?;
                }
            }
        }
        self.add_to_run(ino, run, block)?;
        Ok(freed)
    }

    /// Adds `block` to the run to free, freeing the run first if `block` does not extend it.
    fn add_to_run(&mut self, ino: InodeNo, run: &mut FreeRun, block: u64) -> Result<()> {
        if run.count > 0 && run.start + run.count == block {
            run.count += 1;
        } else {
            self.free_run(ino, run)?;
            *run = FreeRun {
                start: block,
                count: 1,
            };
        }
        Ok(())
    }

    fn free_run(&mut self, ino: InodeNo, run: &mut FreeRun) -> Result<()> {
        if run.count > 0 {
            self.free_blocks(ino, run.start, run.count)?;
            run.count = 0;
        }
        Ok(())
    }
}
