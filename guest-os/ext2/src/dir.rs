//! Directories: look a name up, list entries (all at once, one at a time by offset, or streamed
//! from an offset for `getdents64`). Offsets are byte positions in the directory, as in Linux
//! ext2: an entry's offset is where it starts, its `next_offset` where the next one does.
//!
//! A directory is scanned block by block (see `dir_scan`), every entry validated from the start
//! of its block, so an offset that points into the middle of an entry (a stale or made-up `lseek`
//! position) resumes at the next entry boundary instead of parsing garbage. Directories are at
//! most [`MAX_DIR_BYTES`] and a whole number of blocks; holes hold no entries. Every name handed
//! out is checked (not empty, no `/` or NUL); a lookup checks the name it looks for instead.

use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::NAME_MAX;
use crate::corrupt::{Corrupt, DirEntryProblem};
use crate::device::BlockDevice;
use crate::dir_scan::{EntryPlace, Header, RawEntry, Visitor, name_tail};
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{FileType, Inode, InodeNo};
use crate::name::{is_entry_name, same_name};

/// The buffer a reader's scan copies directory blocks into, on the stack: one device read per
/// block up to 4 KiB blocks; zeroing it costs less in ring 0 than allocating one.
const READ_BUF: usize = 4096;

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
        self.check_dir(dir)?;
        if !is_entry_name(name) {
            return Ok(None);
        }
        let mut found = None;
        let mut buf = [0u8; READ_BUF];
        let buf = buf.get_mut(..self.read_buf_len()).unwrap_or_default();
        let (len, tail) = (name.len(), name_tail(name));
        let mut visitor = Visitor {
            wants: |head: &Header<'_>| {
                head.ino != 0 && head.name_len == len && head.name_tail() == tail
            },
            visit: |_: &EntryPlace, entry: &RawEntry<'_>| {
                if same_name(entry.name, name) {
                    found = Some(InodeNo::new(entry.ino));
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        };
        self.walk_dir(dir, 0, buf, &mut visitor)?;
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

    /// How much of a reader's stack buffer a scan uses: a block, at most [`READ_BUF`].
    fn read_buf_len(&self) -> usize {
        self.geo.block_len().min(READ_BUF)
    }

    /// Hands the live entries of `dir` that start at or after `from` to `visit`, their names
    /// checked; see [`Self::read_dir_from`].
    fn scan_dir(
        &self,
        dir: &Inode,
        from: u64,
        visit: &mut dyn FnMut(&DirEntryRef<'_>) -> ControlFlow<()>,
    ) -> Result<u64> {
        let size = self.check_dir(dir)?;
        let mut buf = [0u8; READ_BUF];
        let buf = buf.get_mut(..self.read_buf_len()).unwrap_or_default();
        let mut stop = None;
        let mut visitor = Visitor {
            wants: |head: &Header<'_>| head.ino != 0,
            visit: |place: &EntryPlace, entry: &RawEntry<'_>| {
                if place.offset < from {
                    return ControlFlow::Continue(());
                }
                if !is_entry_name(entry.name) {
                    stop = Some(Err(place.offset));
                    return ControlFlow::Break(());
                }
                let entry = DirEntryRef {
                    name: entry.name,
                    ino: InodeNo::new(entry.ino),
                    file_type: self.entry_file_type(entry.type_code),
                    offset: place.offset,
                    next_offset: place.offset + entry.rec_len as u64,
                };
                if visit(&entry).is_break() {
                    stop = Some(Ok(entry.offset));
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        };
        self.walk_dir(dir, from, buf, &mut visitor)?;
        match stop {
            None => Ok(size),
            Some(Ok(resume)) => Ok(resume),
            Some(Err(offset)) => Err(Corrupt::DirEntry {
                dir: dir.ino(),
                offset,
                problem: DirEntryProblem::BadName,
            }
            .into()),
        }
    }
}
