//! File contents: [`Ext2::write`], [`Ext2::write_prefix`] (the short-write form `write(2)`
//! needs), [`Ext2::truncate`] and [`Ext2::allocate`] (`fallocate`).
//!
//! Each writes data and pointers through [`Ext2::fill`] (see `map_write` for the crash order)
//! and the inode last: size, `i_blocks`, times. A file passing 2 GiB sets the `large_file`
//! feature in the superblock first. When the disk fills up mid-write, everything before the
//! first block that found no room is written and committed, nothing after it, and the counts
//! stay exact; nothing written before is ever touched.

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{FileType, Inode, InodeNo};
use crate::map_write::Source;
use crate::raw_inode::RawInode;

/// Sizes past this need `large_file` (`i_size_high`).
const LARGE_FILE_SIZE: u64 = (1 << 31) - 1;

impl<D: BlockDevice> Ext2<D> {
    /// Writes all of `data` at byte `offset` of regular file `ino`, allocating what it needs
    /// (holes stay holes), growing the size; returns the updated inode. If the disk fills up
    /// ([`Error::NoSpace`]) or the file would pass the largest size ([`Error::FileTooBig`]), a
    /// prefix may have been written; [`Self::write_prefix`] says how much.
    pub fn write(&mut self, ino: InodeNo, offset: u64, data: &[u8], now: u32) -> Result<Inode> {
        let (inode, written) = self.write_prefix(ino, offset, data, now)?;
        if written < data.len() {
            let end = offset.saturating_add(written as u64);
            return Err(if end >= self.max_file_size() {
                Error::FileTooBig
            } else {
                Error::NoSpace
            });
        }
        Ok(inode)
    }

    /// [`Self::write`] as `write(2)` works: writes as much of `data` as fits (the disk filling
    /// up, or the largest file size) and returns the updated inode and the bytes written; fails
    /// only when nothing could be written.
    pub fn write_prefix(
        &mut self,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
        now: u32,
    ) -> Result<(Inode, usize)> {
        self.writer(now)?;
        let mut raw = self.regular_for_change(ino)?;
        if data.is_empty() {
            return Ok((self.to_inode(&raw)?, 0));
        }
        let max = self.max_file_size();
        if offset >= max {
            return Err(Error::FileTooBig);
        }
        let len = (data.len() as u64).min(max - offset);
        let data = data.get(..len as usize).unwrap_or_default();
        let filled = self.fill(&mut raw, offset, len, Source::Data(data))?;
        self.add_sectors(&mut raw, filled.allocated);
        let end = offset + filled.bytes;
        if end > raw.size(self.geo.revision) {
            self.set_file_size(&mut raw, end)?;
        }
        if filled.bytes > 0 {
            raw.touch(now);
        }
        self.write_raw(&raw)?;
        self.flush_bitmaps()?;
        if filled.bytes == 0 {
            return Err(Error::NoSpace);
        }
        Ok((self.to_inode(&raw)?, filled.bytes as usize))
    }

    /// Sets regular file `ino`'s size. Shrinking zeroes the rest of the new last block on disk
    /// and frees every block past it (indirect blocks included); growing leaves a hole.
    pub fn truncate(&mut self, ino: InodeNo, size: u64, now: u32) -> Result<Inode> {
        self.writer(now)?;
        let mut raw = self.regular_for_change(ino)?;
        if size > self.max_file_size() {
            return Err(Error::FileTooBig);
        }
        let old = raw.size(self.geo.revision);
        raw.touch(now);
        if size >= old {
            self.set_file_size(&mut raw, size)?;
            self.write_raw(&raw)?;
            return self.to_inode(&raw);
        }
        let bs = self.geo.block_size;
        let within = size % bs;
        if within != 0 {
            let inode = self.to_inode(&raw)?;
            if let Some(block) = self.map_run(&inode, size / bs, 1)?.start {
                let block = self.check_pointer(ino, block)?;
                // Bytes past the old size are zero already.
                let end = (old - (size - within)).min(bs);
                self.write_zeros(block * bs + within, end - within)?;
            }
        }
        raw.set_size(size, self.geo.revision);
        self.release_blocks(&mut raw, size.div_ceil(bs))?;
        self.to_inode(&raw)
    }

    /// Allocates zeroed blocks for the holes in bytes `offset..offset + len` of regular file
    /// `ino` (`fallocate`). With `keep_size` the size stays, and only holes below it are filled
    /// (ext2 has no way to mark blocks past the size as allocated); without, the file grows to
    /// cover the range. Fails with [`Error::NoSpace`] if the disk fills up, keeping what was
    /// allocated.
    pub fn allocate(
        &mut self,
        ino: InodeNo,
        offset: u64,
        len: u64,
        keep_size: bool,
        now: u32,
    ) -> Result<Inode> {
        self.writer(now)?;
        let mut raw = self.regular_for_change(ino)?;
        if len == 0 {
            return Err(Error::InvalidArgument("fallocate of 0 bytes"));
        }
        let end = offset.checked_add(len).ok_or(Error::FileTooBig)?;
        if end > self.max_file_size() {
            return Err(Error::FileTooBig);
        }
        let size = raw.size(self.geo.revision);
        let fill_end = if keep_size { end.min(size) } else { end };
        let filled = if fill_end > offset {
            self.fill(&mut raw, offset, fill_end - offset, Source::ZeroHoles)?
        } else {
            Default::default()
        };
        self.add_sectors(&mut raw, filled.allocated);
        let reached = offset + filled.bytes;
        if !keep_size && reached > size {
            self.set_file_size(&mut raw, reached)?;
            raw.touch(now);
        } else {
            raw.set_ctime(now);
        }
        self.write_raw(&raw)?;
        self.flush_bitmaps()?;
        if filled.full {
            return Err(Error::NoSpace);
        }
        self.to_inode(&raw)
    }

    /// Reads regular file `ino` for a change to its contents.
    fn regular_for_change(&self, ino: InodeNo) -> Result<RawInode> {
        self.check_changeable(ino)?;
        let raw = self.read_raw(ino)?;
        match raw.file_type() {
            FileType::Regular => Ok(raw),
            FileType::Directory => Err(Error::IsADirectory { ino }),
            file_type => Err(Error::NotARegularFile { ino, file_type }),
        }
    }

    /// Sets a regular file's size, first setting `large_file` if it passes 2 GiB.
    fn set_file_size(&mut self, raw: &mut RawInode, size: u64) -> Result<()> {
        if size > LARGE_FILE_SIZE {
            self.set_large_file()?;
        }
        raw.set_size(size, self.geo.revision);
        Ok(())
    }
}
