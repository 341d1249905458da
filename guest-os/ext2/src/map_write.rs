//! Writing through the block map: [`Ext2::fill`] puts bytes (or zeros into holes) at any offset
//! of a file, directory or slow symlink, allocating the data and indirect blocks it lacks.
//!
//! The work goes one leaf at a time (the 12 direct pointers, or one indirect block), up to
//! [`BATCH`] pointers per pass: read the pointers once, allocate each run of holes as one
//! physically contiguous run where the bitmap allows (the goal is always the block after the
//! previous one), write the data with as few device writes as the runs allow (one per stretch
//! of contiguous blocks, straight from the caller's buffer), then write the new pointers as one
//! write into the indirect block, or into the inode in memory. A missing indirect block on the
//! way is allocated, zeroed on disk and only then linked into its parent.
//!
//! Crash order: bitmap bits, then data and zeroed indirect blocks, then the pointers that make
//! them reachable; the inode (size, `i_blocks`, the direct and root pointers) is written last,
//! by the caller. A crash in between leaves blocks marked used that nothing points at, or
//! blocks past the old size: `e2fsck -fy` frees or adopts them, and no block holds another
//! file's data or stale bytes.

use crate::bytes::le32;
use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::Result;
use crate::fs::Ext2;
use crate::inode::{DIRECT_BLOCKS, InodeNo};
use crate::raw_inode::RawInode;

/// Pointers handled per pass (512 bytes of them on the stack).
const BATCH: usize = 128;

/// What [`Ext2::fill`] writes.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// These bytes, at the offset.
    Data(&'a [u8]),
    /// Zeros into every hole of the range (whole blocks); existing blocks are left alone.
    ZeroHoles,
}

/// What a fill did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Filled {
    /// Bytes of the range done: all of it, or a prefix when the disk filled up.
    pub(crate) bytes: u64,
    /// Blocks allocated, data and indirect.
    pub(crate) allocated: u64,
    /// The disk filled up before the end of the range.
    pub(crate) full: bool,
}

/// Where the pointers to a run of logical blocks live.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    /// `i_block[index..12]`, in the inode.
    Direct(usize),
    /// Entries from `index` of the indirect block `table`.
    Indirect { table: u64, index: u64 },
}

/// A data write not yet issued: `len` bytes of the source from `at`, to device byte `offset`.
#[derive(Debug, Clone, Copy)]
struct Pending {
    offset: u64,
    at: usize,
    len: usize,
}

impl<D: BlockDevice> Ext2<D> {
    /// Checks a nonzero block pointer of `ino` that a write goes through: inside the file system
    /// and not at metadata.
    pub(crate) fn check_pointer(&self, ino: InodeNo, block: u64) -> Result<u64> {
        let block = self.check_block_u64(ino, block)?;
        if self.is_metadata(block, 1) {
            return Err(Corrupt::PointsAtMetadata { ino, block }.into());
        }
        Ok(block)
    }

    /// The largest regular file: Linux ext2's `ext2_max_size` (the block map's reach, and a
    /// dense file's sectors, metadata included, within the 32-bit `i_blocks`), below 2 GiB on
    /// revision 0, which has no `large_file`.
    pub(crate) fn max_file_size(&self) -> u64 {
        if self.geo.revision == 0 {
            return (1 << 31) - 1;
        }
        let bits = self.geo.block_size.trailing_zeros();
        let per = self.geo.pointers_per_block();
        let dir = DIRECT_BLOCKS as u64;
        let upper = ((1u64 << 32) - 1) >> (bits - 9);
        let reach = dir + per + per * per + per * per * per;
        let meta = 1 + (1 + per) + (1 + per + per * per);
        let blocks = if reach + meta <= upper {
            reach
        } else {
            let mut left = upper - dir - per;
            let meta = if left < per * per {
                1 + 1 + left.div_ceil(per)
            } else {
                left -= per * per;
                1 + (1 + per) + 1 + left.div_ceil(per) + left.div_ceil(per * per)
            };
            upper - meta
        };
        (blocks << bits).min(i64::MAX as u64)
    }

    /// Writes `source` over bytes `offset..offset + len` of `raw`'s block map (see the module
    /// doc). `raw` gains its new direct and root pointers in memory; the caller updates the
    /// size and `i_blocks` (by `allocated`) and writes it. The caller keeps the range within
    /// [`Self::max_file_size`].
    pub(crate) fn fill(
        &mut self,
        raw: &mut RawInode,
        offset: u64,
        len: u64,
        source: Source<'_>,
    ) -> Result<Filled> {
        let mut filled = Filled::default();
        if len == 0 {
            return Ok(filled);
        }
        let bs = self.geo.block_size;
        let end = offset + len;
        let last = (end - 1) / bs;
        let mut lblock = offset / bs;
        // Where the next new block should go; found when first needed.
        let mut goal = None;
        // Each pass handles at least one block (or stops), at most BATCH.
        while lblock <= last {
            let Some((leaf, slots)) = self.leaf_for(raw, lblock, &mut goal, &mut filled)? else {
                filled.full = true;
                break;
            };
            let n = slots.min(last - lblock + 1).min(BATCH as u64) as usize;
            let mut pointers = [0u32; BATCH];
            let pointers = pointers.get_mut(..n).unwrap_or_default();
            self.read_leaf(raw, leaf, pointers)?;
            let mut changed: Option<(usize, usize)> = None;
            let mut pending: Option<Pending> = None;
            let mut k = 0;
            // Each pass handles at least one pointer.
            while k < n {
                let here = lblock + k as u64;
                let pointer = pointers.get(k).copied().unwrap_or(0);
                if pointer != 0 {
                    let block = self.check_pointer(raw.ino, u64::from(pointer))?;
                    if let Source::Data(data) = source {
                        let piece = Piece::new(here, block, offset, end, bs);
                        self.queue(data, &mut pending, piece)?;
                    }
                    goal = Some(block + 1);
                    k += 1;
                    continue;
                }
                let holes = pointers
                    .get(k..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&p| p == 0)
                    .count();
                let near = self.goal(goal, raw, here);
                let Some((start, count)) = self.alloc_blocks(near, holes as u64)? else {
                    filled.full = true;
                    break;
                };
                for j in 0..count {
                    if let Some(slot) = pointers.get_mut(k + j as usize) {
                        // Blocks are below blocks_count, a u32.
                        *slot = (start + j) as u32;
                    }
                    let piece = Piece::new(here + j, start + j, offset, end, bs);
                    match source {
                        Source::Data(data) => {
                            // Zero what the data does not cover: never expose stale bytes.
                            if piece.head > 0 {
                                self.write_zeros(piece.block_offset, piece.head)?;
                            }
                            if piece.tail > 0 {
                                self.write_zeros(piece.device_end(), piece.tail)?;
                            }
                            self.queue(data, &mut pending, piece)?;
                        }
                        Source::ZeroHoles => self.write_zeros(piece.block_offset, bs)?,
                    }
                }
                let (lo, hi) = (k, k + count as usize);
                changed = Some(changed.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                filled.allocated += count;
                goal = Some(start + count);
                k += count as usize;
            }
            if let Source::Data(data) = source {
                self.issue(data, pending.take())?;
            }
            if let Some((lo, hi)) = changed {
                self.write_leaf(raw, leaf, pointers, lo, hi)?;
            }
            lblock += k as u64;
            if filled.full {
                break;
            }
        }
        filled.bytes = (lblock * bs).min(end).saturating_sub(offset);
        Ok(filled)
    }

    /// Where a new block for logical block `lblock` should go: `goal` if the fill has one, else
    /// after the block before it, else at the start of the inode's group.
    fn goal(&self, goal: Option<u64>, raw: &RawInode, lblock: u64) -> u64 {
        if let Some(goal) = goal {
            return goal;
        }
        let mapped = lblock
            .checked_sub(1)
            .and_then(|prev| {
                let inode = self.to_inode(raw).ok()?;
                self.map_run(&inode, prev, 1).ok()?.start
            })
            .map(|block| block + 1);
        mapped.unwrap_or_else(|| self.inode_goal(raw.ino))
    }

    /// The leaf holding logical block `lblock`'s pointer, and how many slots it has from there;
    /// allocates the indirect blocks on the way. `None` when the disk is full.
    fn leaf_for(
        &mut self,
        raw: &mut RawInode,
        lblock: u64,
        goal: &mut Option<u64>,
        filled: &mut Filled,
    ) -> Result<Option<(Leaf, u64)>> {
        let direct = DIRECT_BLOCKS as u64;
        if lblock < direct {
            return Ok(Some((Leaf::Direct(lblock as usize), direct - lblock)));
        }
        let per = self.geo.pointers_per_block();
        let bs = self.geo.block_size;
        let (mut rel, mut span, mut depth) = (lblock - direct, per, 1u32);
        while rel >= span && depth < 3 {
            rel -= span;
            span = span.saturating_mul(per);
            depth += 1;
        }
        if rel >= span {
            return Err(Corrupt::FileTooLarge {
                ino: raw.ino,
                size: lblock.saturating_mul(bs),
            }
            .into());
        }
        let root_index = DIRECT_BLOCKS + depth as usize - 1;
        let mut table = match raw.block(root_index) {
            0 => {
                let Some(block) = self.alloc_indirect(raw, lblock, goal, filled)? else {
                    return Ok(None);
                };
                raw.set_block(root_index, block as u32);
                block
            }
            root => self.check_pointer(raw.ino, u64::from(root))?,
        };
        // One level per pass, at most three.
        for level in (1..=depth).rev() {
            let child_span = per.pow(level - 1);
            let index = rel / child_span;
            if level == 1 {
                return Ok(Some((Leaf::Indirect { table, index }, per - index)));
            }
            let at = table * bs + index * 4;
            let mut entry = [0u8; 4];
            self.disk.read(at, &mut entry)?;
            table = match u32::from_le_bytes(entry) {
                0 => {
                    let Some(block) = self.alloc_indirect(raw, lblock, goal, filled)? else {
                        return Ok(None);
                    };
                    self.disk.write(at, &(block as u32).to_le_bytes())?;
                    block
                }
                child => self.check_pointer(raw.ino, u64::from(child))?,
            };
            rel %= child_span;
        }
        Err(Corrupt::FileTooLarge {
            ino: raw.ino,
            size: lblock.saturating_mul(bs),
        }
        .into())
    }

    /// Allocates a block for an indirect table on the way to `lblock` and zeroes it on disk.
    /// `None` when full.
    fn alloc_indirect(
        &mut self,
        raw: &RawInode,
        lblock: u64,
        goal: &mut Option<u64>,
        filled: &mut Filled,
    ) -> Result<Option<u64>> {
        let near = self.goal(*goal, raw, lblock);
        let Some((block, _)) = self.alloc_blocks(near, 1)? else {
            return Ok(None);
        };
        self.write_zeros(block * self.geo.block_size, self.geo.block_size)?;
        filled.allocated += 1;
        *goal = Some(block + 1);
        Ok(Some(block))
    }

    /// Reads `pointers.len()` pointers of `leaf`.
    fn read_leaf(&self, raw: &RawInode, leaf: Leaf, pointers: &mut [u32]) -> Result<()> {
        match leaf {
            Leaf::Direct(index) => {
                for (k, slot) in pointers.iter_mut().enumerate() {
                    *slot = raw.block(index + k);
                }
            }
            Leaf::Indirect { table, index } => {
                let mut bytes = [0u8; BATCH * 4];
                let bytes = bytes.get_mut(..pointers.len() * 4).unwrap_or_default();
                self.disk
                    .read(table * self.geo.block_size + index * 4, bytes)?;
                for (slot, b) in pointers.iter_mut().zip(bytes.chunks_exact(4)) {
                    *slot = le32(b, 0);
                }
            }
        }
        Ok(())
    }

    /// Writes pointers `lo..hi` of `leaf` back: to the inode in memory, or to the indirect block
    /// in one device write.
    fn write_leaf(
        &self,
        raw: &mut RawInode,
        leaf: Leaf,
        pointers: &[u32],
        lo: usize,
        hi: usize,
    ) -> Result<()> {
        let changed = pointers.get(lo..hi).unwrap_or_default();
        match leaf {
            Leaf::Direct(index) => {
                for (k, &pointer) in changed.iter().enumerate() {
                    raw.set_block(index + lo + k, pointer);
                }
                Ok(())
            }
            Leaf::Indirect { table, index } => {
                let mut bytes = [0u8; BATCH * 4];
                for (b, pointer) in bytes.chunks_exact_mut(4).zip(changed) {
                    b.copy_from_slice(&pointer.to_le_bytes());
                }
                let bytes = bytes.get(..changed.len() * 4).unwrap_or_default();
                let at = table * self.geo.block_size + (index + lo as u64) * 4;
                self.disk.write(at, bytes)
            }
        }
    }

    /// Adds `piece` of `data` to the pending device write, issuing the pending one first if the
    /// two are not contiguous on the device and in the buffer.
    fn queue(&self, data: &[u8], pending: &mut Option<Pending>, piece: Piece) -> Result<()> {
        let next = Pending {
            offset: piece.device_start(),
            at: piece.source_at,
            len: piece.len as usize,
        };
        match pending {
            Some(p) if p.offset + p.len as u64 == next.offset && p.at + p.len == next.at => {
                p.len += next.len;
                Ok(())
            }
            _ => {
                let previous = pending.replace(next);
                self.issue(data, previous)
            }
        }
    }

    /// Issues a pending data write.
    fn issue(&self, data: &[u8], pending: Option<Pending>) -> Result<()> {
        match pending {
            Some(p) => match data.get(p.at..p.at + p.len) {
                Some(bytes) => self.disk.write(p.offset, bytes),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }
}

/// The part of one block a fill covers.
#[derive(Debug, Clone, Copy)]
struct Piece {
    /// Device byte where the block starts.
    block_offset: u64,
    /// Bytes of the block before the covered part.
    head: u64,
    /// Covered bytes.
    len: u64,
    /// Bytes of the block after the covered part.
    tail: u64,
    /// Where the covered part starts in the source.
    source_at: usize,
}

impl Piece {
    /// Logical block `lblock`, at physical `block`, of a fill of bytes `start..end`.
    fn new(lblock: u64, block: u64, start: u64, end: u64, bs: u64) -> Piece {
        let (first, after) = (lblock * bs, (lblock + 1) * bs);
        let lo = start.max(first);
        let hi = end.min(after);
        Piece {
            block_offset: block * bs,
            head: lo - first,
            len: hi.saturating_sub(lo),
            tail: after - hi.max(lo),
            source_at: (lo - start) as usize,
        }
    }

    fn device_start(&self) -> u64 {
        self.block_offset + self.head
    }

    fn device_end(&self) -> u64 {
        self.block_offset + self.head + self.len
    }
}
