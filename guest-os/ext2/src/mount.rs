//! Mounting for writing: [`Ext2::open_rw`], [`Ext2::sync`], [`Ext2::unmount`], and [`Writer`],
//! the state only a writable file system has (the superblock as read, the dirty group
//! descriptors, the bitmap caches, a block of zeros).
//!
//! Like Linux ext2, opening for writing clears `EXT2_VALID_FS` in `s_state` (so a crash leaves a
//! file system that `e2fsck` checks at the next boot), counts the mount and writes the superblock
//! at once; unmounting writes everything back and restores the state found at open. Free counts
//! live in the cached group descriptors while mounted (exact, updated by every allocation and
//! free) and reach the disk, with the superblock's totals, at [`Ext2::sync`]. A crash before that
//! leaves stale counts, which `e2fsck -fy` recomputes; it never leaves a bitmap behind a pointer.

use alloc::vec;
use alloc::vec::Vec;

use crate::bitmap::BitmapCache;
use crate::bytes::{le16, le32};
use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::features::{RO_COMPAT_LARGE_FILE, RO_COMPAT_WRITABLE, Unsupported};
use crate::fs::Ext2;
use crate::group::COUNTS_OFFSET;
use crate::superblock::{GROUP_DESC_SIZE, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};

/// `s_state` bits.
const EXT2_VALID_FS: u16 = 1;
const EXT2_ERROR_FS: u16 = 2;
/// The first non-reserved inode of a revision 0 file system.
const GOOD_OLD_FIRST_INO: u32 = 11;
/// The largest group whose counts fit a descriptor's 16-bit fields (mke2fs's own cap).
const MAX_GROUP_COUNT: u64 = 65528;

// Superblock field offsets.
const S_FREE_BLOCKS: usize = 12;
const S_FREE_INODES: usize = 16;
const S_MTIME: usize = 44;
const S_WTIME: usize = 48;
const S_MNT_COUNT: usize = 52;
const S_STATE: usize = 58;
const S_FIRST_INO: usize = 84;
const S_RO_COMPAT: usize = 100;

/// What a writable file system keeps besides the reader's state.
#[derive(Debug)]
pub(crate) struct Writer {
    /// The superblock as read at open, with our changes; written whole.
    pub(crate) sb: [u8; SUPERBLOCK_SIZE],
    /// `s_state` at open, restored by unmount.
    pub(crate) mount_state: u16,
    /// The first inode that is not reserved.
    pub(crate) first_ino: u32,
    /// One bit per group whose counts changed since the last sync.
    pub(crate) dirty_groups: Vec<u64>,
    pub(crate) block_bitmap: BitmapCache,
    pub(crate) inode_bitmap: BitmapCache,
    /// One block of zeros (allocated on first use) to clear blocks and tails from.
    pub(crate) zero: Vec<u8>,
    /// A buffer for directory and indirect blocks, kept between operations: a fresh zeroed
    /// buffer per scan costs more in ring 0 than the scan's own copy.
    pub(crate) scratch: Vec<u8>,
    /// The latest time an operation passed (`s_wtime` at sync).
    pub(crate) last_time: u32,
}

impl<D: BlockDevice> Ext2<D> {
    /// Opens the file system on `dev` for reading and writing; see [`Self::open_rw_at`], which
    /// also records the mount time. Without a clock this one sets `s_mtime` to the last write
    /// time the superblock records.
    pub fn open_rw(dev: D) -> Result<Self> {
        Self::open_rw_at(dev, None)
    }

    /// Opens the file system on `dev` for reading and writing, at time `now` (seconds since the
    /// epoch; `None`: no clock). Refuses what it cannot write safely: read-only compatible
    /// features other than `sparse_super` and `large_file`, groups too large for 16-bit counts
    /// ([`Error::Unsupported`]), and a file system that records errors ([`Error::NeedsCheck`]).
    /// Then marks the superblock not clean, counts the mount, writes it and flushes.
    pub fn open_rw_at(dev: D, now: Option<u32>) -> Result<Self> {
        let mut fs = Self::open(dev)?;
        let mut sb = [0u8; SUPERBLOCK_SIZE];
        fs.disk.read(SUPERBLOCK_OFFSET, &mut sb)?;
        let geo = &fs.geo;
        if geo.revision >= 1 {
            let unknown = le32(&sb, S_RO_COMPAT) & !RO_COMPAT_WRITABLE;
            if unknown != 0 {
                return Err(Unsupported::RoCompat(unknown).into());
            }
        }
        if geo.blocks_per_group > MAX_GROUP_COUNT || geo.inodes_per_group > MAX_GROUP_COUNT {
            return Err(Unsupported::GroupTooLarge {
                blocks_per_group: geo.blocks_per_group,
                inodes_per_group: geo.inodes_per_group,
            }
            .into());
        }
        let state = le16(&sb, S_STATE);
        if state & EXT2_ERROR_FS != 0 {
            return Err(Error::NeedsCheck { state });
        }
        let first_ino = if geo.revision >= 1 {
            le32(&sb, S_FIRST_INO)
        } else {
            GOOD_OLD_FIRST_INO
        };
        if first_ino < GOOD_OLD_FIRST_INO || first_ino > geo.inodes_count {
            return Err(Corrupt::FirstInode {
                first_ino,
                count: geo.inodes_count,
            }
            .into());
        }
        let last_write = le32(&sb, S_WTIME);
        put16(&mut sb, S_STATE, state & !EXT2_VALID_FS);
        let mounts = le16(&sb, S_MNT_COUNT).wrapping_add(1);
        put16(&mut sb, S_MNT_COUNT, mounts);
        put32(&mut sb, S_MTIME, now.unwrap_or(last_write));
        let words = usize::try_from(geo.group_count.div_ceil(64)).unwrap_or(0);
        fs.rw = Some(Writer {
            sb,
            mount_state: state,
            first_ino,
            dirty_groups: vec![0; words],
            block_bitmap: BitmapCache::default(),
            inode_bitmap: BitmapCache::default(),
            zero: Vec::new(),
            scratch: Vec::new(),
            last_time: now.unwrap_or(last_write),
        });
        fs.write_superblock()?;
        fs.disk.flush()?;
        Ok(fs)
    }

    /// Whether the file system was opened for writing (and not unmounted since).
    pub fn writable(&self) -> bool {
        self.rw.is_some()
    }

    /// Writes what is only in memory (bitmap bytes freed lately, the group descriptors' counts,
    /// the superblock's totals), then flushes the device: everything done before is durable.
    pub fn sync(&mut self) -> Result<()> {
        self.flush_bitmaps()?;
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        for (word_index, word) in rw.dirty_groups.iter_mut().enumerate() {
            // At most 1024 words, 64 groups each.
            while *word != 0 {
                let bit = word.trailing_zeros();
                let group = word_index as u64 * 64 + u64::from(bit);
                if let Some(desc) = usize::try_from(group).ok().and_then(|g| self.groups.get(g)) {
                    let offset = self.geo.gdt_offset + group * GROUP_DESC_SIZE + COUNTS_OFFSET;
                    self.disk.write(offset, &desc.counts_bytes())?;
                }
                *word &= !(1u64 << bit);
            }
        }
        self.write_superblock()?;
        self.disk.flush()
    }

    /// Syncs, then marks the file system clean again (the state found at open) and flushes. The
    /// file system is read-only afterwards. After an unmount `e2fsck -fn` finds nothing to fix.
    pub fn unmount(&mut self) -> Result<()> {
        self.sync()?;
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        let state = rw.mount_state;
        put16(&mut rw.sb, S_STATE, state);
        self.write_superblock()?;
        self.disk.flush()?;
        self.rw = None;
        Ok(())
    }

    /// Writes the superblock with the current free totals and write time.
    pub(crate) fn write_superblock(&mut self) -> Result<()> {
        let (free_blocks, free_inodes) = self.groups.iter().fold((0u64, 0u64), |(b, i), g| {
            (b + u64::from(g.free_blocks), i + u64::from(g.free_inodes))
        });
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        put32(&mut rw.sb, S_FREE_BLOCKS, free_blocks as u32);
        put32(&mut rw.sb, S_FREE_INODES, free_inodes as u32);
        put32(&mut rw.sb, S_WTIME, rw.last_time);
        self.disk.write(SUPERBLOCK_OFFSET, &rw.sb)
    }

    /// Sets the `large_file` feature (a file reaches 2 GiB) and writes the superblock, before
    /// the inode with the large size is written.
    pub(crate) fn set_large_file(&mut self) -> Result<()> {
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        let ro_compat = le32(&rw.sb, S_RO_COMPAT);
        if ro_compat & RO_COMPAT_LARGE_FILE != 0 {
            return Ok(());
        }
        put32(&mut rw.sb, S_RO_COMPAT, ro_compat | RO_COMPAT_LARGE_FILE);
        self.write_superblock()
    }

    /// The writer state, or [`Error::ReadOnly`]; records `now` as the latest time seen.
    pub(crate) fn writer(&mut self, now: u32) -> Result<&mut Writer> {
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        rw.last_time = rw.last_time.max(now);
        Ok(rw)
    }

    /// Notes that `group`'s counts changed.
    pub(crate) fn mark_group_dirty(&mut self, group: u64) {
        if let Some(rw) = self.rw.as_mut()
            && let Some(word) = usize::try_from(group / 64)
                .ok()
                .and_then(|w| rw.dirty_groups.get_mut(w))
        {
            *word |= 1 << (group % 64);
        }
    }

    /// The scratch buffer, at least `len` bytes long, taken out of the writer; give it back with
    /// [`Self::put_scratch`] (a buffer lost to an early error return is made again next time).
    pub(crate) fn take_scratch(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self
            .rw
            .as_mut()
            .map(|rw| core::mem::take(&mut rw.scratch))
            .unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf
    }

    /// Gives the scratch buffer back.
    pub(crate) fn put_scratch(&mut self, buf: Vec<u8>) {
        if let Some(rw) = self.rw.as_mut() {
            rw.scratch = buf;
        }
    }

    /// Writes `len` zero bytes at device byte `offset`, from the cached zero block.
    pub(crate) fn write_zeros(&mut self, offset: u64, len: u64) -> Result<()> {
        let block = self.geo.block_len();
        let rw = self.rw.as_mut().ok_or(Error::ReadOnly)?;
        if rw.zero.len() != block {
            rw.zero = vec![0; block];
        }
        let mut done = 0;
        // One write per block-sized chunk.
        while done < len {
            let n = (len - done).min(block as u64);
            let chunk = rw.zero.get(..n as usize).unwrap_or_default();
            self.disk.write(offset + done, chunk)?;
            done += n;
        }
        Ok(())
    }
}

fn put16(bytes: &mut [u8], at: usize, value: u16) {
    if let Some(field) = bytes.get_mut(at..at + 2) {
        field.copy_from_slice(&value.to_le_bytes());
    }
}

fn put32(bytes: &mut [u8], at: usize, value: u32) {
    if let Some(field) = bytes.get_mut(at..at + 4) {
        field.copy_from_slice(&value.to_le_bytes());
    }
}
