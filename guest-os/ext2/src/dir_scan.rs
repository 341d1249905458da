//! The directory walk every reader and writer of entries shares: [`Ext2::walk_dir`] visits the
//! entries of a directory, live or unused, block by block, each block validated from its start.
//!
//! Costs, since in ring 0 every instruction may be emulated: a block is copied into the caller's
//! buffer in as few device reads as the buffer allows (one per block when the buffer holds a
//! block; the reader passes a 4 KiB buffer on its stack, the writer its scratch block, so no scan
//! allocates), and an entry costs a handful of instructions: its header fields are read in place
//! and checked (`rec_len`, `name_len`, the inode number), and nothing looks at the name's bytes.
//! Names are checked where they leave the crate ([`Ext2::read_dir_from`] and friends, through
//! [`crate::name::is_entry_name`]); a lookup compares names with one it checked, so an entry it
//! finds has a good name. Linux ext2 checks entry headers the same way.

use core::ops::ControlFlow;

use crate::NAME_MAX;
use crate::corrupt::{Corrupt, DirEntryProblem};
use crate::device::BlockDevice;
use crate::error::Result;
use crate::fs::Ext2;
use crate::inode::{FileType, Inode};

/// The header and longest name of an entry: a buffer at least this long holds any entry's.
pub(crate) const ENTRY_MAX: usize = 8 + NAME_MAX;

/// One entry, its header checked; `ino` 0 marks an unused record.
pub(crate) struct RawEntry<'b> {
    pub(crate) ino: u32,
    pub(crate) rec_len: usize,
    /// Not checked: see [`crate::name::is_entry_name`].
    pub(crate) name: &'b [u8],
    /// The type byte after `name_len` (the file type with the `filetype` feature).
    pub(crate) type_code: u8,
}

/// Where an entry is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryPlace {
    /// Byte offset of the entry in the directory.
    pub(crate) offset: u64,
    /// Byte offset of the entry on the device.
    pub(crate) device: u64,
    /// The entry before it in its block: (device offset, `rec_len`).
    pub(crate) prev: Option<(u64, usize)>,
}

impl<D: BlockDevice> Ext2<D> {
    /// Visits every entry, live or unused, of the blocks of `dir` from the one holding byte
    /// `from`, through `buf` (at least [`ENTRY_MAX`] bytes; a block's worth reads each block
    /// once), until `visit` breaks.
    ///
    /// Generic over the visitor, so that each caller's loop is one function with the visitor
    /// inlined: a call through a pointer per entry costs more than the entry's own checks.
    pub(crate) fn walk_dir<F>(
        &self,
        dir: &Inode,
        from: u64,
        buf: &mut [u8],
        mut visit: F,
    ) -> Result<()>
    where
        F: FnMut(&EntryPlace, &RawEntry<'_>) -> ControlFlow<()>,
    {
        let size = self.check_dir(dir)?;
        let bs = self.geo.block_size;
        let (mut block, end) = (from / bs, size / bs);
        // At most MAX_DIR_BYTES / 1024 blocks; each run covers at least one.
        while block < end {
            let run = self.map_run(dir, block, end - block)?;
            // A hole in a directory holds no entries.
            if let Some(start) = run.start {
                for i in 0..run.blocks {
                    let at = ((block + i) * bs, (start + i) * bs);
                    if self.walk_block(dir, at, buf, &mut visit)?.is_break() {
                        return Ok(());
                    }
                }
            }
            block += run.blocks;
        }
        Ok(())
    }

    /// Visits the entries of the directory block at `(directory offset, device offset)`.
    ///
    /// The loop runs on `rest`, the buffered bytes from the current entry on, and reads on only
    /// when fewer than [`ENTRY_MAX`] of them are left before the end of the block is buffered;
    /// with a whole block in `buf` that is one read and one compare per entry.
    #[inline(always)]
    fn walk_block<F>(
        &self,
        dir: &Inode,
        (offset, device): (u64, u64),
        buf: &mut [u8],
        visit: &mut F,
    ) -> Result<ControlFlow<()>>
    where
        F: FnMut(&EntryPlace, &RawEntry<'_>) -> ControlFlow<()>,
    {
        let block_len = self.geo.block_len();
        let inodes = self.geo.inodes_count;
        let corrupt = |at: usize, problem| Corrupt::DirEntry {
            dir: dir.ino(),
            offset: offset + at as u64,
            problem,
        };
        // The entry at `at` (in the block) starts `rest`, the buffered bytes up to `held_end`.
        let (mut at, mut held_end) = (0, 0);
        let mut rest: &[u8] = &[];
        let mut prev = None;
        // rec_len is at least 8: the walk moves forward.
        while at < block_len {
            if rest.len() < ENTRY_MAX && held_end < block_len {
                let len = buf.len().min(block_len - at);
                let chunk = buf.get_mut(..len).unwrap_or_default();
                self.disk.read(device + at as u64, chunk)?;
                held_end = at + len;
                rest = chunk;
            }
            let left = block_len - at;
            let Some((header, after)) = rest.split_first_chunk::<8>() else {
                return Err(corrupt(at, DirEntryProblem::CutOff).into());
            };
            let [i0, i1, i2, i3, r0, r1, name_len, type_code] = *header;
            let ino = u32::from_le_bytes([i0, i1, i2, i3]);
            let mut rec_len = usize::from(u16::from_le_bytes([r0, r1]));
            // A 64 KiB record does not fit in 16 bits; Linux stores it as 0 or 65535.
            if left == 1 << 16 && (rec_len == 0 || rec_len == 0xffff) {
                rec_len = 1 << 16;
            }
            // Linux ext2 uses an 8-bit name length; the next byte is the file type (revision 1
            // with `filetype`) or 0.
            let name_len = usize::from(name_len);
            if rec_len < 8 || !rec_len.is_multiple_of(4) {
                return Err(corrupt(at, DirEntryProblem::BadRecLen { rec_len }).into());
            }
            if rec_len > left {
                return Err(corrupt(at, DirEntryProblem::RecLenPastEnd { rec_len }).into());
            }
            let name = after.get(..name_len).filter(|_| 8 + name_len <= rec_len);
            let Some(name) = name else {
                let problem = DirEntryProblem::NameLen { name_len, rec_len };
                return Err(corrupt(at, problem).into());
            };
            if ino > inodes {
                return Err(corrupt(at, DirEntryProblem::InodeOutOfRange { ino }).into());
            }
            let entry = RawEntry {
                ino,
                rec_len,
                name,
                type_code,
            };
            let place = EntryPlace {
                offset: offset + at as u64,
                device: device + at as u64,
                prev,
            };
            if visit(&place, &entry).is_break() {
                return Ok(ControlFlow::Break(()));
            }
            prev = Some((place.device, rec_len));
            at += rec_len;
            // Past the buffered bytes: read on at the next entry.
            rest = rest.get(rec_len..).unwrap_or_default();
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The file type an entry's type byte records: [`FileType::Unknown`] without `filetype`.
    pub(crate) fn entry_file_type(&self, type_code: u8) -> FileType {
        if self.geo.dir_file_type {
            FileType::from_dir_entry(type_code)
        } else {
            FileType::Unknown
        }
    }
}
