//! Directories: look a name up, list entries (all at once, one at a time by offset, or streamed
//! from an offset for `getdents64`). Offsets are byte positions in the directory, as in Linux
//! ext2: an entry's offset is where it starts, its `next_offset` where the next one does.
//!
//! A directory is scanned block by block, each block read whole and every entry in it validated
//! from the start of the block, so an offset that points into the middle of an entry (a stale or
//! made-up `lseek` position) resumes at the next entry boundary instead of parsing garbage.
//! Directories are at most [`MAX_DIR_BYTES`] and a whole number of blocks; holes hold no entries.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::NAME_MAX;
use crate::bytes::{byte, le16, le32};
use crate::corrupt::{Corrupt, DirEntryProblem};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{FileType, Inode, InodeNo};

/// The largest directory we scan. Real directories hold up to a few thousand entries; the cap
/// bounds the work (one block read per block) and the memory of [`Ext2::read_dir`] that a
/// hostile directory size can cause.
pub(crate) const MAX_DIR_BYTES: u64 = 32 << 20;

/// A directory entry, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: InodeNo,
    /// From the entry's type byte: [`FileType::Unknown`] without the `filetype` feature.
    pub file_type: FileType,
}

/// A directory entry borrowed from the block being scanned, with its place in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryRef<'a> {
    pub name: &'a [u8],
    pub ino: InodeNo,
    pub file_type: FileType,
    /// Where this entry starts (to resume at it).
    pub offset: u64,
    /// Where the next entry starts (to resume after it; `d_off` of `getdents64`).
    pub next_offset: u64,
}

impl DirEntryRef<'_> {
    /// An owned copy.
    pub fn to_entry(&self) -> DirEntry {
        DirEntry {
            name: self.name.to_vec(),
            ino: self.ino,
            file_type: self.file_type,
        }
    }
}

impl<D: BlockDevice> Ext2<D> {
    /// Looks `name` (one path component; `.` and `..` are entries like any other) up in `dir`.
    /// `None` when there is no such entry; names that no entry can have (empty, or holding `/` or
    /// NUL) are not found either.
    pub fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<InodeNo>> {
        if name.len() > NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let mut found = None;
        self.scan_dir(dir, 0, &mut |entry| {
            if entry.name == name {
                found = Some(entry.ino);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// All entries of `dir`, `.` and `..` included, in on-disk order.
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        self.scan_dir(dir, 0, &mut |entry| {
            entries.push(entry.to_entry());
            ControlFlow::Continue(())
        })?;
        Ok(entries)
    }

    /// The first entry of `dir` at or after byte `offset`, and the offset of the entry after it;
    /// `None` at the end of the directory. Each call reads a directory block: to stream many
    /// entries, use [`Self::read_dir_from`].
    pub fn read_dir_at(&self, dir: &Inode, offset: u64) -> Result<Option<(DirEntry, u64)>> {
        let mut first = None;
        self.scan_dir(dir, offset, &mut |entry| {
            first = Some((entry.to_entry(), entry.next_offset));
            ControlFlow::Break(())
        })?;
        Ok(first)
    }

    /// Streams the entries of `dir` at or after byte `offset` to `visit`, reading each block once.
    /// `visit` returns `Continue` to take an entry and go on, or `Break` to stop without taking
    /// it (a full `getdents64` buffer). Returns the offset to resume from: the refused entry's,
    /// or the directory's size once every entry was taken.
    pub fn read_dir_from(
        &self,
        dir: &Inode,
        offset: u64,
        mut visit: impl FnMut(&DirEntryRef<'_>) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.scan_dir(dir, offset, &mut visit)
    }

    /// Checks that `dir` is a directory of a sane size; returns its size.
    pub(crate) fn check_dir(&self, dir: &Inode) -> Result<u64> {
        let ino = dir.ino();
        if dir.file_type() != FileType::Directory {
            return Err(Error::NotADirectory { ino });
        }
        let (size, block_size) = (dir.size(), self.geo.block_size);
        if size > MAX_DIR_BYTES {
            return Err(Corrupt::DirectoryTooLarge {
                ino,
                size,
                max: MAX_DIR_BYTES,
            }
            .into());
        }
        if !size.is_multiple_of(block_size) {
            return Err(Corrupt::DirectorySize {
                ino,
                size,
                block_size,
            }
            .into());
        }
        Ok(size)
    }

    /// Visits the live entries of `dir` that start at or after `from`; see [`Self::read_dir_from`].
    fn scan_dir(
        &self,
        dir: &Inode,
        from: u64,
        visit: &mut dyn FnMut(&DirEntryRef<'_>) -> ControlFlow<()>,
    ) -> Result<u64> {
        let size = self.check_dir(dir)?;
        let bs = self.geo.block_size;
        let mut buf = vec![0u8; self.geo.block_len()];
        let (mut block, end) = (from / bs, size / bs);
        // At most MAX_DIR_BYTES / 1024 blocks; each run covers at least one.
        while block < end {
            let run = self.map_run(dir, block, end - block)?;
            // A hole in a directory holds no entries.
            if let Some(start) = run.start {
                for i in 0..run.blocks {
                    self.disk.read((start + i) * bs, &mut buf)?;
                    let block_offset = (block + i) * bs;
                    let scanned = self.scan_block(dir, &buf, block_offset, from, visit)?;
                    if let ControlFlow::Break(resume) = scanned {
                        return Ok(resume);
                    }
                }
            }
            block += run.blocks;
        }
        Ok(size)
    }

    /// Validates every entry of one directory block and visits the live ones at or after
    /// `from`; breaks with the offset of the entry `visit` refused.
    fn scan_block(
        &self,
        dir: &Inode,
        block: &[u8],
        block_offset: u64,
        from: u64,
        visit: &mut dyn FnMut(&DirEntryRef<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<u64>> {
        let mut at = 0;
        // rec_len is at least 8, so the scan always moves forward.
        while let Some(rest) = block.get(at..).filter(|rest| !rest.is_empty()) {
            let offset = block_offset + at as u64;
            let raw = self
                .parse_entry(rest)
                .map_err(|problem| Corrupt::DirEntry {
                    dir: dir.ino(),
                    offset,
                    problem,
                })?;
            at += raw.rec_len;
            if raw.ino == 0 || offset < from {
                continue;
            }
            let entry = DirEntryRef {
                name: raw.name,
                ino: InodeNo::new(raw.ino),
                file_type: raw.file_type,
                offset,
                next_offset: block_offset + at as u64,
            };
            if visit(&entry).is_break() {
                return Ok(ControlFlow::Break(offset));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Parses and validates the entry at the start of `rest` (the remainder of a block).
    pub(crate) fn parse_entry<'b>(
        &self,
        rest: &'b [u8],
    ) -> core::result::Result<RawEntry<'b>, DirEntryProblem> {
        if rest.len() < 8 {
            return Err(DirEntryProblem::CutOff);
        }
        let ino = le32(rest, 0);
        let mut rec_len = usize::from(le16(rest, 4));
        // A 64 KiB record does not fit in 16 bits; Linux stores it as 0 or 65535.
        if rest.len() == 1 << 16 && (rec_len == 0 || rec_len == 0xffff) {
            rec_len = 1 << 16;
        }
        // Linux ext2 uses an 8-bit name length; the next byte is the file type (revision 1 with
        // `filetype`) or 0.
        let name_len = usize::from(byte(rest, 6));
        if rec_len < 8 || !rec_len.is_multiple_of(4) {
            return Err(DirEntryProblem::BadRecLen { rec_len });
        }
        if rec_len > rest.len() {
            return Err(DirEntryProblem::RecLenPastEnd { rec_len });
        }
        let name = rest
            .get(8..8 + name_len)
            .filter(|_| 8 + name_len <= rec_len)
            .ok_or(DirEntryProblem::NameLen { name_len, rec_len })?;
        if ino != 0 {
            if ino > self.geo.inodes_count {
                return Err(DirEntryProblem::InodeOutOfRange { ino });
            }
            if name.is_empty() || name.iter().any(|&b| b == b'/' || b == 0) {
                return Err(DirEntryProblem::BadName);
            }
        }
        let file_type = if self.geo.dir_file_type {
            FileType::from_dir_entry(byte(rest, 7))
        } else {
            FileType::Unknown
        };
        Ok(RawEntry {
            ino,
            rec_len,
            name,
            file_type,
        })
    }
}

/// One parsed directory entry; `ino` 0 marks an unused record.
pub(crate) struct RawEntry<'b> {
    pub(crate) ino: u32,
    pub(crate) rec_len: usize,
    pub(crate) name: &'b [u8],
    pub(crate) file_type: FileType,
}
