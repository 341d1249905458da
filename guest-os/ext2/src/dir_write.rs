//! Changing directories: find an entry or room for one, write an entry into room (splitting a
//! live entry's slack, as ext2 does, or reusing an unused record), grow the directory by a block
//! when no block has room, remove an entry (merged into the previous one's `rec_len`, or marked
//! unused when it starts its block), point an entry at another inode (rename), and repoint a
//! directory's `..`.
//!
//! A change scans its directory once ([`Search`]): the names it needs (a rename's old and new
//! name when both are in one directory), whether the new name exists, and the first room for it,
//! all in the same pass, through the writer's scratch block (see `dir_scan` for the costs).
//!
//! Every change writes only the bytes it changes: an entry header and name, a 2-byte `rec_len`,
//! a 4-byte inode number. A split writes the new entry into the slack first and shrinks the old
//! entry's `rec_len` second, so the new entry never appears half-written. Scans validate every
//! entry header of every block they read (the reader's rules), so a corrupt directory fails the
//! change instead of steering a write. Directories grow to at most [`MAX_DIR_BYTES`].

use core::ops::ControlFlow;

use crate::corrupt::{Corrupt, DirEntryProblem};
use crate::device::BlockDevice;
use crate::dir::MAX_DIR_BYTES;
use crate::dir_scan::{
    EntryPlace, EntryVisitor, Header, RawEntry, entry_len, every_entry, name_tail,
};
use crate::error::{Error, Result};
use crate::features::EXT2_INDEX_FL;
use crate::fs::Ext2;
use crate::inode::{FileType, Inode, InodeNo};
use crate::map_write::Source;
use crate::name::same_name;
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

impl Found {
    /// This entry as it is after a new entry went into `room`: a split of this entry shrinks
    /// its `rec_len`, a split of the entry before it puts the new entry before it.
    pub(crate) fn after_insert(mut self, room: Room) -> Found {
        if let Room::Split {
            offset,
            used,
            rec_len,
        } = room
        {
            if offset == self.offset {
                self.rec_len = used;
            } else if self.prev.is_some_and(|(prev, _)| prev == offset) {
                self.prev = Some((offset + used as u64, rec_len - used));
            }
        }
        self
    }
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

/// `rec_len` as stored: a 64 KiB record does not fit in 16 bits and is stored as 65535.
fn rec_len_to_disk(rec_len: usize) -> u16 {
    u16::try_from(rec_len).unwrap_or(u16::MAX)
}

/// What one pass over a directory found: up to two named entries and, when asked, the first room
/// for a new entry. Its filter costs a few compares per entry: only entries whose name has the
/// length and last 8 bytes of a name looked for, or with room while room is looked for, are
/// visited.
#[derive(Debug)]
pub(crate) struct Search<'n> {
    /// The names to find; an absent second name has length [`NO_NAME`], which no entry has.
    names: [&'n [u8]; 2],
    lens: [usize; 2],
    tails: [u64; 2],
    /// How many of `names` are still to be found.
    missing: usize,
    /// The bytes the new entry needs while room is looked for, else [`NO_ROOM`].
    need: usize,
    pub(crate) found: [Option<Found>; 2],
    pub(crate) room: Option<Room>,
}

/// The length of an absent name: longer than any entry's.
const NO_NAME: usize = usize::MAX;
/// [`Search::need`] when no room is looked for: more than any record holds.
const NO_ROOM: usize = usize::MAX;

impl<'n> Search<'n> {
    /// Looks for `name` (and `other`, if any).
    pub(crate) fn names(name: &'n [u8], other: Option<&'n [u8]>) -> Self {
        let other_name = other.unwrap_or_default();
        Search {
            names: [name, other_name],
            lens: [name.len(), other.map_or(NO_NAME, <[u8]>::len)],
            tails: [name_tail(name), name_tail(other_name)],
            missing: 1 + usize::from(other.is_some()),
            need: NO_ROOM,
            found: [None, None],
            room: None,
        }
    }

    /// Also looks for room for an entry named `name` (one of the names looked for).
    pub(crate) fn with_room_for(mut self, name: &[u8]) -> Self {
        self.need = entry_len(name.len());
        self
    }
}

impl EntryVisitor for Search<'_> {
    #[inline(always)]
    fn wants(&self, head: &Header<'_>) -> bool {
        let [len_a, len_b] = self.lens;
        let [tail_a, tail_b] = self.tails;
        let named = (head.name_len == len_a && head.name_tail() == tail_a)
            || (head.name_len == len_b && head.name_tail() == tail_b);
        (head.ino != 0 && named) || head.slack() >= self.need
    }

    /// Takes one entry in; breaks once every name is found.
    fn visit(&mut self, place: &EntryPlace, entry: &RawEntry<'_>) -> ControlFlow<()> {
        let len = entry.name.len();
        let used = if entry.ino == 0 { 0 } else { entry_len(len) };
        if entry.rec_len.saturating_sub(used) >= self.need {
            self.room = Some(if entry.ino == 0 {
                Room::Unused {
                    offset: place.device,
                    rec_len: entry.rec_len,
                }
            } else {
                Room::Split {
                    offset: place.device,
                    used,
                    rec_len: entry.rec_len,
                }
            });
            self.need = NO_ROOM;
        }
        if entry.ino == 0 {
            return ControlFlow::Continue(());
        }
        for ((name, want), found) in self.names.iter().zip(self.lens).zip(&mut self.found) {
            if len == want && found.is_none() && same_name(entry.name, name) {
                *found = Some(Found {
                    ino: InodeNo::new(entry.ino),
                    offset: place.device,
                    rec_len: entry.rec_len,
                    name_len: len,
                    prev: place.prev,
                });
                self.missing -= 1;
            }
        }
        if self.missing == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl<D: BlockDevice> Ext2<D> {
    /// Walks `dir` with `visit`, reading blocks into the writer's scratch buffer.
    fn walk_entries<V: EntryVisitor>(&mut self, dir: &Inode, visit: &mut V) -> Result<()> {
        let mut buf = self.take_scratch(self.geo.block_len());
        let result = self.walk_dir(dir, 0, &mut buf, visit);
        self.put_scratch(buf);
        result
    }

    /// Runs `search` over `dir` in one pass.
    pub(crate) fn search_dir<'n>(
        &mut self,
        dir: &Inode,
        mut search: Search<'n>,
    ) -> Result<Search<'n>> {
        self.walk_entries(dir, &mut search)?;
        Ok(search)
    }

    /// The live entry `name` of `dir`.
    pub(crate) fn find_entry(&mut self, dir: &Inode, name: &[u8]) -> Result<Option<Found>> {
        let [found, _] = self.search_dir(dir, Search::names(name, None))?.found;
        Ok(found)
    }

    /// Room for `name` in directory `dir` (whose raw inode the caller holds), growing the
    /// directory by a block holding one unused record when no block has room. Fails with
    /// [`Error::Exists`] if the name is there. The grown directory's inode is written.
    pub(crate) fn prepare_room(&mut self, dir: &mut RawInode, name: &[u8]) -> Result<Room> {
        let inode = self.to_inode(dir)?;
        let search = self.search_dir(&inode, Search::names(name, None).with_room_for(name))?;
        if search.found[0].is_some() {
            return Err(Error::Exists);
        }
        self.room_or_grow(dir, search.room)
    }

    /// `room` (found by a [`Search`] of `dir` since its last change), or, when it is `None`, the
    /// block `dir` grows by. Drops the htree flag first. The grown directory's inode is written.
    pub(crate) fn room_or_grow(&mut self, dir: &mut RawInode, room: Option<Room>) -> Result<Room> {
        if dir.flags() & EXT2_INDEX_FL != 0 {
            // An htree keeps its index in the slack of `..` and in empty-looking blocks, where a
            // new entry may go: the flag goes first, so no crash leaves an index over entries.
            dir.set_flags(dir.flags() & !EXT2_INDEX_FL);
            self.write_raw(dir)?;
        }
        if let Some(room) = room {
            return Ok(room);
        }
        let inode = self.to_inode(dir)?;
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
        self.walk_entries(
            dir,
            &mut every_entry(|place: &EntryPlace, entry: &RawEntry<'_>| {
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
                        offset: place.device,
                        rec_len: entry.rec_len,
                        name_len: 2,
                        prev: place.prev,
                    });
                }
                ControlFlow::Break(())
            }),
        )?;
        found
            .filter(|_| dot_ok)
            .ok_or(Corrupt::DotEntries { dir: dir.ino() }.into())
    }

    /// Whether `dir` holds nothing but `.` and `..`.
    pub(crate) fn dir_is_empty(&mut self, dir: &Inode) -> Result<bool> {
        let mut empty = true;
        self.walk_entries(
            dir,
            &mut every_entry(|_: &EntryPlace, entry: &RawEntry<'_>| {
                if entry.ino != 0 && entry.name != b"." && entry.name != b".." {
                    empty = false;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }),
        )?;
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
