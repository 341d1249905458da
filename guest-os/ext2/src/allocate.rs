//! Block and inode allocation: find free bits in the group bitmaps, mark them used on disk
//! before the caller points anything at them, and keep the group counts exact; and the reverse.
//!
//! Blocks: a run of up to `want` free blocks at or after a goal (the block after the file's
//! previous one, so files stay contiguous and reads stay one device request), in the goal's
//! group first, then in the following groups, wrapping around. Inodes: a new directory goes to
//! the group with the most free inodes (spreading the tree), anything else to its parent's
//! group. The free counts in the descriptors steer the search past full groups; the bitmaps
//! decide. A bitmap that offers metadata (superblock copy, descriptor table, bitmaps, inode
//! table) or a reserved inode is corrupt, and the allocation fails instead of handing it out.
//!
//! Freeing checks the same fences, so a corrupt pointer never frees metadata, and counts only
//! the bits that were set, so the counts stay true to the bitmaps.

use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::InodeNo;

impl<D: BlockDevice> Ext2<D> {
    /// Whether blocks `start..start + count` (inside one group) hold metadata, or lie outside
    /// the group area of the file system.
    pub(crate) fn is_metadata(&self, start: u64, count: u64) -> bool {
        let geo = &self.geo;
        if start < geo.first_data_block || start + count > geo.blocks_count {
            return true;
        }
        let group = geo.group_of_block(start);
        let first = geo.group_first_block(group);
        if start < first + geo.super_blocks_in_group(group) {
            return true;
        }
        usize::try_from(group)
            .ok()
            .and_then(|g| self.groups.get(g))
            .is_none_or(|desc| desc.holds_metadata(geo, start, count))
    }

    /// Allocates up to `want` (at least 1) consecutive blocks, at `goal` or as soon after it as
    /// possible; marks them used on disk. `None` when no block is free.
    pub(crate) fn alloc_blocks(&mut self, goal: u64, want: u64) -> Result<Option<(u64, u64)>> {
        let geo = self.geo;
        let goal = goal.clamp(geo.first_data_block, geo.blocks_count - 1);
        let goal_group = geo.group_of_block(goal).min(geo.group_count - 1);
        // The goal's group from the goal, every other group, then the goal's group again from
        // its start: group_count + 1 passes.
        for pass in 0..=geo.group_count {
            let group = (goal_group + pass) % geo.group_count;
            let Some(desc) = usize::try_from(group).ok().and_then(|g| self.groups.get(g)) else {
                continue;
            };
            if desc.free_blocks == 0 {
                continue;
            }
            let first = geo.group_first_block(group);
            let limit = geo.blocks_in_group(group) as usize;
            let from = if pass == 0 {
                (goal - first) as usize
            } else {
                0
            };
            let bitmap_offset = u64::from(desc.block_bitmap) * geo.block_size;
            let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
            rw.block_bitmap
                .load(&self.disk, group, bitmap_offset, geo.block_len())?;
            let Some(bit) = rw.block_bitmap.find_clear(from, limit) else {
                continue;
            };
            let start = first + bit as u64;
            let max = usize::try_from(want.max(1)).unwrap_or(usize::MAX);
            let mut run = rw.block_bitmap.clear_run(bit, max, limit) as u64;
            // Never hand out metadata, whatever the bitmap says: shorten the run before it, or
            // fail if it starts on it.
            if self.is_metadata(start, 1) {
                return Err(Corrupt::MetadataMarkedFree {
                    group: group as u32,
                    block: start,
                }
                .into());
            }
            if self.is_metadata(start, run) {
                run = (1..run)
                    .find(|&n| self.is_metadata(start + n, 1))
                    .unwrap_or(1);
            }
            let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
            let (lo, hi) = rw.block_bitmap.set_run(bit, run as usize);
            rw.block_bitmap.write_bytes(&self.disk, lo, hi)?;
            if let Some(desc) = usize::try_from(group)
                .ok()
                .and_then(|g| self.groups.get_mut(g))
            {
                desc.free_blocks = desc.free_blocks.saturating_sub(run as u16);
            }
            self.mark_group_dirty(group);
            return Ok(Some((start, run)));
        }
        Ok(None)
    }

    /// Frees blocks `start..start + count` of inode `ino` (bits already clear are skipped). The
    /// bitmap bytes are written by [`Self::flush_bitmaps`] or when the cache moves on.
    pub(crate) fn free_blocks(&mut self, ino: InodeNo, start: u64, count: u64) -> Result<()> {
        let geo = self.geo;
        let mut done = 0;
        // One pass per group the range touches.
        while done < count {
            let block = start + done;
            let group = geo.group_of_block(block);
            let first = geo.group_first_block(group);
            let group_end = first + geo.blocks_in_group(group);
            let n = (count - done).min(group_end.saturating_sub(block)).max(1);
            if self.is_metadata(block, n) {
                return Err(Corrupt::PointsAtMetadata { ino, block }.into());
            }
            let Some(desc) = usize::try_from(group).ok().and_then(|g| self.groups.get(g)) else {
                return Err(Corrupt::PointsAtMetadata { ino, block }.into());
            };
            let bitmap_offset = u64::from(desc.block_bitmap) * geo.block_size;
            let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
            rw.block_bitmap
                .load(&self.disk, group, bitmap_offset, geo.block_len())?;
            let cleared = rw
                .block_bitmap
                .clear_bits((block - first) as usize, n as usize);
            if let Some(desc) = usize::try_from(group)
                .ok()
                .and_then(|g| self.groups.get_mut(g))
            {
                desc.free_blocks = desc.free_blocks.saturating_add(cleared as u16);
            }
            self.mark_group_dirty(group);
            done += n;
        }
        Ok(())
    }

    /// Allocates an inode for a directory (`dir`) or anything else created in a directory of
    /// group `parent_group`; marks it used on disk. `None` when no inode is free.
    pub(crate) fn alloc_inode(&mut self, parent_group: u64, dir: bool) -> Result<Option<InodeNo>> {
        let geo = self.geo;
        let start = if dir {
            // The group with the most free inodes (the first of equals).
            self.groups
                .iter()
                .enumerate()
                .max_by_key(|(i, g)| (g.free_inodes, core::cmp::Reverse(*i)))
                .map_or(0, |(i, _)| i as u64)
        } else {
            parent_group.min(geo.group_count - 1)
        };
        for pass in 0..geo.group_count {
            let group = (start + pass) % geo.group_count;
            let Some(desc) = usize::try_from(group).ok().and_then(|g| self.groups.get(g)) else {
                continue;
            };
            if desc.free_inodes == 0 {
                continue;
            }
            let bitmap_offset = u64::from(desc.inode_bitmap) * geo.block_size;
            let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
            rw.inode_bitmap
                .load(&self.disk, group, bitmap_offset, geo.block_len())?;
            let Some(bit) = rw.inode_bitmap.find_clear(0, geo.inodes_per_group as usize) else {
                continue;
            };
            // At most 2^32 inodes in all (checked at open), so this fits.
            let ino = InodeNo::new((group * geo.inodes_per_group + bit as u64 + 1) as u32);
            if ino.get() < rw.first_ino {
                return Err(Corrupt::ReservedInodeMarkedFree { ino }.into());
            }
            let (lo, hi) = rw.inode_bitmap.set_run(bit, 1);
            rw.inode_bitmap.write_bytes(&self.disk, lo, hi)?;
            if let Some(desc) = usize::try_from(group)
                .ok()
                .and_then(|g| self.groups.get_mut(g))
            {
                desc.free_inodes = desc.free_inodes.saturating_sub(1);
                if dir {
                    desc.used_dirs = desc.used_dirs.saturating_add(1);
                }
            }
            self.mark_group_dirty(group);
            return Ok(Some(ino));
        }
        Ok(None)
    }

    /// Frees inode `ino` in its bitmap (a directory also leaves its group's directory count).
    pub(crate) fn free_inode_bit(&mut self, ino: InodeNo, dir: bool) -> Result<()> {
        let geo = self.geo;
        let index = u64::from(ino.get().saturating_sub(1));
        let group = index / geo.inodes_per_group;
        let bit = (index % geo.inodes_per_group) as usize;
        let Some(desc) = usize::try_from(group).ok().and_then(|g| self.groups.get(g)) else {
            return Err(Corrupt::InodeNumber {
                ino,
                count: geo.inodes_count,
            }
            .into());
        };
        let bitmap_offset = u64::from(desc.inode_bitmap) * geo.block_size;
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        rw.inode_bitmap
            .load(&self.disk, group, bitmap_offset, geo.block_len())?;
        if rw.inode_bitmap.clear_bits(bit, 1) == 0 {
            return Err(Corrupt::InodeAlreadyFree { ino }.into());
        }
        if let Some(desc) = usize::try_from(group)
            .ok()
            .and_then(|g| self.groups.get_mut(g))
        {
            desc.free_inodes = desc.free_inodes.saturating_add(1);
            if dir {
                desc.used_dirs = desc.used_dirs.saturating_sub(1);
            }
        }
        self.mark_group_dirty(group);
        Ok(())
    }

    /// Writes the bitmap bytes freeing left dirty.
    pub(crate) fn flush_bitmaps(&mut self) -> Result<()> {
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        rw.block_bitmap.write_back(&self.disk)?;
        rw.inode_bitmap.write_back(&self.disk)
    }

    /// The group of inode `ino`.
    pub(crate) fn inode_group(&self, ino: InodeNo) -> u64 {
        u64::from(ino.get().saturating_sub(1)) / self.geo.inodes_per_group
    }

    /// The first block of inode `ino`'s group: where its first data block should go.
    pub(crate) fn inode_goal(&self, ino: InodeNo) -> u64 {
        self.geo.group_first_block(self.inode_group(ino))
    }
}
