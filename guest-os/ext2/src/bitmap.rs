//! [`BitmapCache`]: one group's block or inode bitmap, held in memory while the allocator works in
//! that group, so that a run of allocations reads the bitmap block once and each change writes
//! only the bytes it changed.
//!
//! Bits that mark something in use are written at once ([`BitmapCache::set_run`] returns the
//! byte range, which the caller writes before anything points at what it allocated). Bits that
//! free something may wait ([`BitmapCache::clear_run`] only marks the bytes dirty): the pointers
//! to what was freed are already gone, so a crash before the write only leaks, and `e2fsck`
//! reclaims. Dirty bytes are written when the cache moves to another group and at the end of
//! every operation ([`Ext2::flush_bitmaps`](crate::Ext2)).
//!
//! Searches go a `u64` at a time; the callers keep every bit index below `8 * block size`.

use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::disk::Disk;
use crate::error::Result;

/// One group's bitmap block, cached.
#[derive(Debug, Default)]
pub(crate) struct BitmapCache {
    /// The group whose bitmap `bits` holds, if any.
    group: Option<u64>,
    /// Byte offset of the bitmap block on the device.
    offset: u64,
    bits: Vec<u8>,
    /// Bytes `lo..hi` changed in memory and not yet written.
    dirty: Option<(usize, usize)>,
}

impl BitmapCache {
    /// Makes the cache hold `group`'s bitmap, at device byte `offset`, `len` bytes long.
    pub(crate) fn load<D: BlockDevice>(
        &mut self,
        disk: &Disk<D>,
        group: u64,
        offset: u64,
        len: usize,
    ) -> Result<()> {
        if self.group == Some(group) {
            return Ok(());
        }
        self.write_back(disk)?;
        self.group = None;
        self.bits.resize(len, 0);
        disk.read(offset, &mut self.bits)?;
        self.group = Some(group);
        self.offset = offset;
        Ok(())
    }

    /// Writes the dirty bytes, if any.
    pub(crate) fn write_back<D: BlockDevice>(&mut self, disk: &Disk<D>) -> Result<()> {
        if let Some((lo, hi)) = self.dirty.take() {
            self.write_bytes(disk, lo, hi)?;
        }
        Ok(())
    }

    /// Writes bytes `lo..hi` now; on failure the cache is dropped, to be read again.
    pub(crate) fn write_bytes<D: BlockDevice>(
        &mut self,
        disk: &Disk<D>,
        lo: usize,
        hi: usize,
    ) -> Result<()> {
        let result = match self.bits.get(lo..hi) {
            Some(bytes) => disk.write(self.offset + lo as u64, bytes),
            None => Ok(()),
        };
        if result.is_err() {
            self.forget();
        }
        result
    }

    /// Drops the cached bitmap (after a failed write, memory and disk may differ).
    pub(crate) fn forget(&mut self) {
        self.group = None;
        self.dirty = None;
    }

    fn word(&self, index: usize) -> u64 {
        self.bits
            .get(index * 8..)
            .and_then(|rest| rest.first_chunk::<8>())
            .map_or(u64::MAX, |w| u64::from_le_bytes(*w))
    }

    /// Whether bit `bit` is set (out of range: set, so never handed out).
    pub(crate) fn is_set(&self, bit: usize) -> bool {
        self.bits
            .get(bit / 8)
            .is_none_or(|byte| byte & (1 << (bit % 8)) != 0)
    }

    /// The first clear bit in `from..limit`.
    pub(crate) fn find_clear(&self, from: usize, limit: usize) -> Option<usize> {
        let mut bit = from;
        // One pass per 64 bits: at most `limit / 64 + 1` passes.
        while bit < limit {
            let free = !self.word(bit / 64) >> (bit % 64);
            if free != 0 {
                let found = bit + free.trailing_zeros() as usize;
                return (found < limit).then_some(found);
            }
            bit = (bit / 64 + 1) * 64;
        }
        None
    }

    /// How many clear bits follow from `at` (included), at most `max`, below `limit`.
    pub(crate) fn clear_run(&self, at: usize, max: usize, limit: usize) -> usize {
        let end = limit.min(at.saturating_add(max));
        (at..end).take_while(|&bit| !self.is_set(bit)).count()
    }

    /// Sets bits `at..at + len` (all clear); returns the byte range to write now.
    pub(crate) fn set_run(&mut self, at: usize, len: usize) -> (usize, usize) {
        for bit in at..at + len {
            if let Some(byte) = self.bits.get_mut(bit / 8) {
                *byte |= 1 << (bit % 8);
            }
        }
        (at / 8, (at + len).div_ceil(8).min(self.bits.len()))
    }

    /// Clears bits `at..at + len`, marking the bytes dirty; returns how many were set.
    pub(crate) fn clear_bits(&mut self, at: usize, len: usize) -> u64 {
        let end = (at + len).min(self.bits.len() * 8);
        if at >= end {
            return 0;
        }
        let mut cleared = 0u64;
        let mut bit = at;
        // Whole bytes at once in the middle, single bits at the ends.
        while bit < end {
            let Some(byte) = self.bits.get_mut(bit / 8) else {
                break;
            };
            if bit.is_multiple_of(8) && bit + 8 <= end {
                cleared += u64::from(byte.count_ones());
                *byte = 0;
                bit += 8;
            } else {
                let mask = 1 << (bit % 8);
                if *byte & mask != 0 {
                    cleared += 1;
                    *byte &= !mask;
                }
                bit += 1;
            }
        }
        let (lo, hi) = (at / 8, end.div_ceil(8));
        self.dirty = Some(match self.dirty {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
        cleared
    }
}
