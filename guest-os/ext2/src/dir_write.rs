//! Changing directories: find an entry or room for one, write an entry into room (splitting a
//! live entry's slack, as ext2 does, or reusing an unused record), grow the directory by a block
//! when no block has room, remove an entry (merged into the previous one's `rec_len`, or marked
//! unused when it starts its block), point an entry at another inode (rename), and repoint a
//! directory's `..`.
//!
//! Every change writes only the bytes it changes: an entry header and name, a 2-byte `rec_len`,
//! a 4-byte inode number. A split writes the new entry into the slack first and shrinks the old
//! entry's `rec_len` second, so the new entry never appears half-written. Scans validate every
//! entry of every block they read (the reader's rules), so a corrupt directory fails the change
//! instead of steering a write. Directories grow to at most [`MAX_DIR_BYTES`].

use core::ops::ControlFlow;

use crate::corrupt::{Corrupt, DirEntryProblem};
use crate::device::BlockDevice;
use crate::dir::{MAX_DIR_BYTES, RawEntry};
use crate::error::{Error, Result};
use crate::features::EXT2_INDEX_FL;
use crate::fs::Ext2;
use crate::inode::{FileType, Inode, InodeNo};
use crate::map_write::Source;
use crate::raw_inode::RawInode;

/// A live entry, found for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) ino: InodeNo,
    /// Device byte offset of the entry.
    pub(crate) offset: u64,
    pub(crate) rec_len: usize,
    pub(crate) name_len: usize,
    /// The entry before it in its block: (device offset, `rec_len`).
    pub(crate) prev: Option<(u64, usize)>,
}

/// Room for a new entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// An unused record (inode 0) at device byte `offset`, `rec_len` long.
    Unused { offset: u64, rec_len: usize },
    /// The slack of a live entry at `offset`, whose own record needs `used` of its `rec_len`.
    Split {
        offset: u64,
        used: usize,
        rec_len: usize,
    },
}

/// A directory walk's visitor: gets each entry's device offset, the entry before it in its block
/// (device offset, `rec_len`) and the entry.
type EntryVisitor<'v> = dyn FnMut(u64, Option<(u64, usize)>, &RawEntry<'_>) -> ControlFlow<()> + 'v;

/// Bytes an entry with a `name_len`-byte name needs: the 8-byte header and the name, rounded up
/// to 4.
pub(crate) fn entry_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

/// `rec_len` as stored: a 64 KiB record does not fit in 16 bits and is stored as 65535.
fn rec_len_to_disk(rec_len: usize) -> u16 {
    u16::try_from(rec_len).unwrap_or(u16::MAX)
}

impl<D: BlockDevice> Ext2<D> {
    /// Visits every entry, live or unused, of every block of `dir` with its device offset and
    /// the entry before it in its block. Blocks are read into the writer's scratch buffer.
    fn walk_entries(&mut self, dir: &Inode, visit: &mut EntryVisitor<'_>) -> Result<()> {
        let mut buf = self.take_scratch(self.geo.block_len());
        let result = self.walk_entries_in(dir, &mut buf, visit);
        self.put_scratch(buf);
        result
    }

    fn walk_entries_in(
        &self,
        dir: &Inode,
        buf: &mut [u8],
        visit: &mut EntryVisitor<'_>,
    ) -> Result<()> {
        let size = self.check_dir(dir)?;
        let bs = self.geo.block_size;
        let buf = buf.get_mut(..self.geo.block_len()).unwrap_or_default();
        let (mut block, end) = (0, size / bs);
        // At most MAX_DIR_BYTES / 1024 blocks; each run covers at least one.
        while block < end {
            let run = self.map_run(dir, block, end - block)?;
            if let Some(start) = run.start {
                for i in 0..run.blocks {
                    let device = (start + i) * bs;
                    self.disk.read(device, buf)?;
                    let mut at = 0;
                    let mut prev = None;
                    // rec_len is at least 8: the scan moves forward.
                    while let Some(rest) = buf.get(at..).filter(|rest| !rest.is_empty()) {
                        let entry =
                            self.parse_entry(rest)
                                .map_err(|problem| Corrupt::DirEntry {
                                    dir: dir.ino(),
                                    offset: (block + i) * bs + at as u64,
                                    problem,
                                })?;
                        let offset = device + at as u64;
                        if visit(offset, prev, &entry).is_break() {
                            return Ok(());
                        }
                        prev = Some((offset, entry.rec_len));
                        at += entry.rec_len;
                    }
                }
            }
            block += run.blocks;
        }
        Ok(())
    }

    /// The live entry `name` of `dir`.
    pub(crate) fn find_entry(&mut self, dir: &Inode, name: &[u8]) -> Result<Option<Found>> {
        let mut found = None;
        self.walk_entries(dir, &mut |offset, prev, entry| {
            if entry.ino != 0 && entry.name == name {
                found = Some(Found {
                    ino: InodeNo::new(entry.ino),
                    offset,
                    rec_len: entry.rec_len,
                    name_len: entry.name.len(),
                    prev,
                });
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// The first room for an entry named `name` in `dir`, after checking the whole directory
    /// has no such entry ([`Error::Exists`]). `None`: every block is full.
    fn find_room(&mut self, dir: &Inode, name: &[u8]) -> Result<Option<Room>> {
        let need = entry_len(name.len());
        let mut room = None;
        let mut exists = false;
        self.walk_entries(dir, &mut |offset, _, entry| {
            if entry.ino != 0 && entry.name == name {
                exists = true;
                return ControlFlow::Break(());
            }
            if room.is_none() {
                if entry.ino == 0 && entry.rec_len >= need {
                    room = Some(Room::Unused {
                        offset,
                        rec_len: entry.rec_len,
                    });
                } else if entry.ino != 0 {
                    let used = entry_len(entry.name.len());
                    if entry.rec_len >= used + need {
                        room = Some(Room::Split {
                            offset,
                            used,
                            rec_len: entry.rec_len,
                        });
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        if exists {
            return Err(Error::Exists);
        }
        Ok(room)
    }

    /// Room for `name` in directory `dir` (whose raw inode the caller holds), growing the
    /// directory by a block holding one unused record when no block has room. Fails with
    /// [`Error::Exists`] if the name is there. The grown directory's inode is written.
    pub(crate) fn prepare_room(&mut self, dir: &mut RawInode, name: &[u8]) -> Result<Room> {
        if dir.flags() & EXT2_INDEX_FL != 0 {
            // An htree keeps its index in the slack of `..` and in empty-looking blocks, where a
            // new entry may go: the flag goes first, so no crash leaves an index over entries.
            dir.set_flags(dir.flags() & !EXT2_INDEX_FL);
            self.write_raw(dir)?;
        }
        let inode = self.to_inode(dir)?;
        if let Some(room) = self.find_room(&inode, name)? {
            return Ok(room);
        }
        let bs = self.geo.block_size;
        let size = self.check_dir(&inode)?;
        if size + bs > MAX_DIR_BYTES {
            return Err(Error::NoSpace);
        }
        // An unused record over the whole block; the rest of the block is zeroed by the fill.
        let [lo, hi] = rec_len_to_disk(self.geo.block_len()).to_le_bytes();
        let header = [0, 0, 0, 0, lo, hi, 0, 0];
        let filled = self.fill(dir, size, 8, Source::Data(&header))?;
        self.add_sectors(dir, filled.allocated);
        if filled.full {
            // Any indirect block allocated on the way is linked and counted.
            self.write_raw(dir)?;
            return Err(Error::NoSpace);
        }
        dir.set_size(size + bs, self.geo.revision);
        self.write_raw(dir)?;
        let block = self
            .map_run(&self.to_inode(dir)?, size / bs, 1)?
            .start
            .ok_or(Corrupt::DirEntry {
                dir: dir.ino,
                offset: size,
                problem: DirEntryProblem::CutOff,
            })?;
        Ok(Room::Unused {
            offset: block * bs,
            rec_len: self.geo.block_len(),
        })
    }

    /// Adds `blocks` blocks to `raw`'s `i_blocks`.
    pub(crate) fn add_sectors(&self, raw: &mut RawInode, blocks: u64) {
        let sectors = blocks.saturating_mul(self.geo.block_size / 512);
        let total = u64::from(raw.sectors()).saturating_add(sectors);
        raw.set_sectors(total.min(u64::from(u32::MAX)) as u32);
    }

    /// Writes the entry `name` → `ino` (of `file_type`) into `room`.
    pub(crate) fn write_entry(
        &self,
        room: Room,
        name: &[u8],
        ino: InodeNo,
        file_type: FileType,
    ) -> Result<()> {
        match room {
            Room::Unused { offset, rec_len } => {
                self.write_entry_at(offset, rec_len, name, ino, file_type)
            }
            Room::Split {
                offset,
                used,
                rec_len,
            } => {
                self.write_entry_at(offset + used as u64, rec_len - used, name, ino, file_type)?;
                self.disk
                    .write(offset + 4, &rec_len_to_disk(used).to_le_bytes())
            }
        }
    }

    /// Writes an entry header and name at device byte `offset`.
    fn write_entry_at(
        &self,
        offset: u64,
        rec_len: usize,
        name: &[u8],
        ino: InodeNo,
        file_type: FileType,
    ) -> Result<()> {
        let mut bytes = [0u8; 8 + crate::NAME_MAX];
        let header = self.entry_header(ino, rec_len, name.len(), file_type);
        let (head, tail) = bytes.split_at_mut(8);
        head.copy_from_slice(&header);
        let name_field = tail.get_mut(..name.len()).ok_or(Error::NameTooLong)?;
        name_field.copy_from_slice(name);
        self.disk
            .write(offset, bytes.get(..8 + name.len()).unwrap_or_default())
    }

    fn entry_header(
        &self,
        ino: InodeNo,
        rec_len: usize,
        name_len: usize,
        file_type: FileType,
    ) -> [u8; 8] {
        let [a, b, c, d] = ino.get().to_le_bytes();
        let [e, f] = rec_len_to_disk(rec_len).to_le_bytes();
        let code = if self.geo.dir_file_type {
            file_type.dir_entry_code()
        } else {
            0
        };
        [a, b, c, d, e, f, name_len as u8, code]
    }

    /// Removes the entry `found`: merged into the previous entry, or marked unused when it is
    /// the first of its block.
    pub(crate) fn remove_entry(&self, found: &Found) -> Result<()> {
        match found.prev {
            Some((prev, prev_len)) => self.disk.write(
                prev + 4,
                &rec_len_to_disk(prev_len + found.rec_len).to_le_bytes(),
            ),
            None => self.disk.write(found.offset, &0u32.to_le_bytes()),
        }
    }

    /// Points the entry `found` at `ino` (of `file_type`), in place.
    pub(crate) fn retarget_entry(
        &self,
        found: &Found,
        ino: InodeNo,
        file_type: FileType,
    ) -> Result<()> {
        let header = self.entry_header(ino, found.rec_len, found.name_len, file_type);
        self.disk.write(found.offset, &header)
    }

    /// The `..` entry of directory `dir`: the second entry of its first block, after `.`.
    pub(crate) fn dotdot(&mut self, dir: &Inode) -> Result<Found> {
        let mut seen = 0;
        let mut found = None;
        let mut dot_ok = false;
        self.walk_entries(dir, &mut |offset, prev, entry| {
            seen += 1;
            if seen == 1 {
                dot_ok = entry.ino == dir.ino().get() && entry.name == b".";
                return if dot_ok {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                };
            }
            if entry.ino != 0 && entry.name == b".." {
                found = Some(Found {
                    ino: InodeNo::new(entry.ino),
                    offset,
                    rec_len: entry.rec_len,
                    name_len: 2,
                    prev,
                });
            }
            ControlFlow::Break(())
        })?;
        found
            .filter(|_| dot_ok)
            .ok_or(Corrupt::DotEntries { dir: dir.ino() }.into())
    }

    /// Whether `dir` holds nothing but `.` and `..`.
    pub(crate) fn dir_is_empty(&mut self, dir: &Inode) -> Result<bool> {
        let mut empty = true;
        self.walk_entries(dir, &mut |_, _, entry| {
            if entry.ino != 0 && entry.name != b"." && entry.name != b".." {
                empty = false;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(empty)
    }

    /// Whether directory `ancestor` is `dir` or one of its ancestors, following `..` up from
    /// `dir` (at most one step per inode, so a corrupt `..` cycle ends in an error).
    pub(crate) fn is_within(&mut self, dir: InodeNo, ancestor: InodeNo) -> Result<bool> {
        let mut current = dir;
        let steps = self.geo.inodes_count.min(1 << 16);
        for _ in 0..=steps {
            if current == ancestor {
                return Ok(true);
            }
            if current == InodeNo::ROOT {
                return Ok(false);
            }
            let inode = self.inode_any_links(current)?;
            current = self.dotdot(&inode)?.ino;
        }
        Err(Corrupt::DirectoryLoop { dir }.into())
    }
}
