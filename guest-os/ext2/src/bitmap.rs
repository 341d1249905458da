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
//! Searches go a `u64` at a time (`trailing_zeros` finds the bit), changes a byte at a time. Each
//! group remembers where its first clear bit may be (every bit below is set), so allocating from
//! a group that fills from the start does not scan its full prefix again. The callers keep every
//! bit index below `8 * block size`.

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
    /// Per group (grown as groups are loaded, at most one entry per group): every bit below
    /// it is set, as far as this cache has seen; a search that may start there does.
    first_clear: Vec<u16>,
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
        if let Ok(index) = usize::try_from(group)
            && self.first_clear.len() <= index
        {
            // The caller's group numbers are below the group count (at most 65536).
            self.first_clear.resize(index + 1, 0);
        }
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
        self.set_first_clear(0);
        self.group = None;
        self.dirty = None;
    }

    /// Where the loaded group's first clear bit may be: every bit below is set.
    fn first_clear(&self) -> usize {
        self.group
            .and_then(|g| usize::try_from(g).ok())
            .and_then(|g| self.first_clear.get(g))
            .map_or(0, |&bit| usize::from(bit))
    }

    /// Records that every bit of the loaded group below `bit` is set (capped: a lower bound
    /// stays true).
    fn set_first_clear(&mut self, bit: usize) {
        if let Some(slot) = self
            .group
            .and_then(|g| usize::try_from(g).ok())
            .and_then(|g| self.first_clear.get_mut(g))
        {
            *slot = u16::try_from(bit).unwrap_or(u16::MAX);
        }
    }

    fn word(&self, index: usize) -> u64 {
        self.bits
            .get(index * 8..)
            .and_then(|rest| rest.first_chunk::<8>())
            .map_or(u64::MAX, |w| u64::from_le_bytes(*w))
    }

    /// The first clear bit in `from..limit`.
    pub(crate) fn find_clear(&mut self, from: usize, limit: usize) -> Option<usize> {
        let known = self.first_clear();
        let mut bit = from.max(known);
        // One pass per 64 bits: at most `limit / 64 + 1` passes.
        while bit < limit {
            let free = !self.word(bit / 64) >> (bit % 64);
            if free != 0 {
                let found = bit + free.trailing_zeros() as usize;
                if found >= limit {
                    break;
                }
                if from <= known {
                    self.set_first_clear(found);
                }
                return Some(found);
            }
            bit = (bit / 64 + 1) * 64;
        }
        if from <= known {
            self.set_first_clear(limit.max(known));
        }
        None
    }

    /// How many clear bits follow from `at` (included), at most `max`, below `limit`.
    pub(crate) fn clear_run(&self, at: usize, max: usize, limit: usize) -> usize {
        let end = limit.min(at.saturating_add(max));
        let mut bit = at;
        // One pass per 64 bits, up to `end`.
        while bit < end {
            let used = self.word(bit / 64) >> (bit % 64);
            let in_word = 64 - bit % 64;
            let clear = (used.trailing_zeros() as usize).min(in_word);
            bit += clear;
            if clear < in_word {
                break;
            }
        }
        bit.min(end).saturating_sub(at)
    }

    /// Sets bits `at..at + len` (all clear); returns the byte range to write now.
    pub(crate) fn set_run(&mut self, at: usize, len: usize) -> (usize, usize) {
        let known = self.first_clear();
        if at <= known && at + len > known {
            self.set_first_clear(at + len);
        }
        for (byte, mask) in self.masks(at, len) {
            *byte |= mask;
        }
        (at / 8, (at + len).div_ceil(8).min(self.bits.len()))
    }

    /// Clears bits `at..at + len`, marking the bytes dirty; returns how many were set.
    pub(crate) fn clear_bits(&mut self, at: usize, len: usize) -> u64 {
        let end = (at + len).min(self.bits.len() * 8);
        if at >= end {
            return 0;
        }
        if at < self.first_clear() {
            self.set_first_clear(at);
        }
        let mut cleared = 0u64;
        for (byte, mask) in self.masks(at, end - at) {
            cleared += u64::from((*byte & mask).count_ones());
            *byte &= !mask;
        }
        let (lo, hi) = (at / 8, end.div_ceil(8));
        self.dirty = Some(match self.dirty {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
        cleared
    }

    /// The bytes holding bits `at..at + len` (those inside the bitmap), each with the mask of
    /// its bits in the range.
    fn masks(&mut self, at: usize, len: usize) -> impl Iterator<Item = (&mut u8, u8)> {
        let end = at + len;
        let last = end.div_ceil(8).min(self.bits.len());
        let first = (at / 8).min(last);
        let bytes = self
            .bits
            .get_mut(first..last)
            .unwrap_or_default()
            .iter_mut();
        (first..).zip(bytes).map(move |(index, byte)| {
            let lo = at.max(index * 8) - index * 8;
            let hi = end.min(index * 8 + 8) - index * 8;
            let mask = ((1u16 << hi) - (1u16 << lo)) as u8;
            (byte, mask)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache over `bits` for group 0, as `load` leaves it.
    fn cache(bits: &[u8]) -> BitmapCache {
        BitmapCache {
            group: Some(0),
            offset: 0,
            bits: bits.to_vec(),
            dirty: None,
            first_clear: std::vec![0],
        }
    }

    fn bit(bits: &[u8], i: usize) -> bool {
        bits[i / 8] & (1 << (i % 8)) != 0
    }

    #[test]
    fn word_searches_and_byte_changes_match_bit_by_bit() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        for round in 0..400 {
            // Runs of set and clear bits of random lengths, 24 bytes (192 bits).
            let mut bits = std::vec![0u8; 24];
            let mut i = 0;
            let mut set = round % 2 == 0;
            while i < 192 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = (seed % 70) as usize + 1;
                for j in i..(i + n).min(192) {
                    if set {
                        bits[j / 8] |= 1 << (j % 8);
                    }
                }
                i += n;
                set = !set;
            }
            let c = cache(&bits);
            let limit = 192 - round % 7;
            for at in 0..limit {
                let want = (at..limit).take_while(|&b| !bit(&bits, b)).count();
                assert_eq!(c.clear_run(at, usize::MAX, limit), want, "{round} {at}");
                assert_eq!(c.clear_run(at, 5, limit), want.min(5));
                let first = (at..limit).find(|&b| !bit(&bits, b));
                assert_eq!(cache(&bits).find_clear(at, limit), first);
            }
            let (at, len) = ((seed % 150) as usize, (seed >> 20) as usize % 40);
            let mut c = cache(&bits);
            let cleared = c.clear_bits(at, len);
            let want = (at..at + len).filter(|&b| bit(&bits, b)).count() as u64;
            assert_eq!(cleared, want);
            for b in 0..192 {
                assert_eq!(
                    bit(&c.bits, b),
                    bit(&bits, b) && !(at..at + len).contains(&b)
                );
            }
            let (lo, hi) = c.set_run(at, len);
            assert_eq!((lo, hi), (at / 8, (at + len).div_ceil(8)));
            for b in 0..192 {
                assert_eq!(
                    bit(&c.bits, b),
                    bit(&bits, b) || (at..at + len).contains(&b)
                );
            }
        }
    }

    #[test]
    fn searches_start_at_the_first_clear_bit_seen() {
        let mut c = cache(&[0xff, 0xff, 0x0f, 0, 0, 0, 0, 0]);
        assert_eq!(c.find_clear(0, 32), Some(20));
        assert_eq!(c.first_clear(), 20);
        c.set_run(20, 3);
        assert_eq!(c.first_clear(), 23);
        assert_eq!(c.find_clear(0, 32), Some(23));
        // A search from further on does not move it; a free below it does.
        assert_eq!(c.find_clear(28, 32), Some(28));
        assert_eq!(c.first_clear(), 23);
        c.clear_bits(3, 1);
        assert_eq!(c.first_clear(), 3);
        assert_eq!(c.find_clear(0, 32), Some(3));
        // A full group remembers it is full up to the limit.
        let mut full = cache(&[0xff; 8]);
        assert_eq!(full.find_clear(0, 32), None);
        assert_eq!(full.first_clear(), 32);
        full.clear_bits(31, 1);
        assert_eq!(full.find_clear(0, 32), Some(31));
        // A failed write forgets it.
        full.forget();
        full.group = Some(0);
        assert_eq!(full.first_clear(), 0);
    }
}
