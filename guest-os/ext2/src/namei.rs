//! Names: [`Ext2::create`] (files, directories, device nodes, fifos, sockets),
//! [`Ext2::symlink`], [`Ext2::link`], [`Ext2::unlink`] and [`Ext2::rmdir`]. Renames are in
//! `rename`.
//!
//! Crash order, so that every crash state is one `e2fsck -fy` repairs without losing anything
//! synced before: room for the entry first (a directory grows by an empty block before anything
//! else), then the inode bit, the new inode's blocks, the inode itself, and only then the entry
//! that names it; the parent's link count and times last. Removing goes the other way: the entry
//! first, then the link count. An inode whose count reaches 0 is not freed here: the caller
//! frees it with [`Ext2::free_inode`] when nothing has it open any more (unlink of open files).

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::features::EXT2_INDEX_FL;
use crate::fs::Ext2;
use crate::inode::{BLOCK_POINTERS, DeviceNumber, FileType, Inode, InodeNo, LINK_MAX};
use crate::map_write::Source;
use crate::name::check_name;
use crate::raw_inode::RawInode;

/// The longest symlink target Linux stores (`PATH_MAX` less the NUL).
const SYMLINK_MAX: u64 = 4095;
/// Targets shorter than this live in `i_block` (a fast symlink), as Linux ext2 stores them.
const FAST_SYMLINK_LEN: usize = 4 * BLOCK_POINTERS;

impl<D: BlockDevice> Ext2<D> {
    /// Reads directory `dir` for a change to its entries: a directory that still exists.
    pub(crate) fn dir_for_change(&self, dir: InodeNo) -> Result<RawInode> {
        self.check_changeable(dir)?;
        let raw = self.read_raw(dir)?;
        if !raw.is_dir() {
            return Err(Error::NotADirectory { ino: dir });
        }
        if raw.links() == 0 {
            // Removed, still open: Linux refuses new entries with ENOENT.
            return Err(Error::NotFound);
        }
        Ok(raw)
    }

    /// Records a change to directory `dir`'s entries (times, link count `delta`) and writes it.
    /// A changed directory loses its htree flag, as with Linux ext2, which keeps no index.
    pub(crate) fn dir_changed(&self, dir: &mut RawInode, links_delta: i32, now: u32) -> Result<()> {
        let links = (i32::from(dir.links()) + links_delta).clamp(0, i32::from(u16::MAX));
        dir.set_links(links as u16);
        dir.touch(now);
        dir.set_flags(dir.flags() & !EXT2_INDEX_FL);
        self.write_raw(dir)
    }

    /// Creates `name` in directory `dir`: a regular file, directory (with `.` and `..`), fifo,
    /// socket, or character or block device (`rdev` in Linux's 32-bit encoding, see
    /// [`DeviceNumber::decode32`]), as `mode`'s `S_IFMT` bits say, with its permission bits.
    /// Symlinks are made by [`Self::symlink`].
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        dir: InodeNo,
        name: &[u8],
        mode: u16,
        uid: u16,
        gid: u16,
        rdev: u32,
        now: u32,
    ) -> Result<Inode> {
        self.writer(now)?;
        check_name(name)?;
        let file_type = FileType::from_mode(mode)
            .ok_or(Error::InvalidArgument("the mode names no file type"))?;
        if file_type == FileType::Symlink {
            return Err(Error::InvalidArgument("symlinks are created by symlink"));
        }
        let is_dir = file_type == FileType::Directory;
        let mut parent = self.dir_for_change(dir)?;
        if is_dir && parent.links() >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        let room = self.prepare_room(&mut parent, name)?;
        let mut raw = self.new_inode(dir, is_dir, mode, uid, gid, now)?;
        match file_type {
            FileType::Directory => {
                raw.set_links(2);
                let block = self.dir_block_start(raw.ino, dir);
                if let Err(e) = self.fill_new(&mut raw, &block) {
                    self.abandon(&raw)?;
                    return Err(e);
                }
                raw.set_size(self.geo.block_size, self.geo.revision);
            }
            FileType::CharDevice | FileType::BlockDevice => {
                let dev = DeviceNumber::decode32(rdev);
                if dev.major < 256 && dev.minor < 256 {
                    raw.set_block(0, dev.major << 8 | dev.minor);
                } else {
                    raw.set_block(1, rdev);
                }
            }
            _ => {}
        }
        self.write_new_raw(&raw)?;
        self.write_entry(room, name, raw.ino, file_type)?;
        self.dir_changed(&mut parent, i32::from(is_dir), now)?;
        self.flush_bitmaps()?;
        self.to_inode(&raw)
    }

    /// Creates symlink `name` in directory `dir` pointing at `target` (stored as given, never
    /// resolved): in the inode below 60 bytes, else in a data block. Permissions are 0777.
    pub fn symlink(
        &mut self,
        dir: InodeNo,
        name: &[u8],
        target: &[u8],
        uid: u16,
        gid: u16,
        now: u32,
    ) -> Result<Inode> {
        self.writer(now)?;
        check_name(name)?;
        if target.is_empty() {
            return Err(Error::NotFound);
        }
        if target.contains(&0) {
            return Err(Error::InvalidArgument("a symlink target holds a NUL"));
        }
        let max = (self.geo.block_size - 1).min(SYMLINK_MAX);
        if target.len() as u64 > max {
            return Err(Error::NameTooLong);
        }
        let mut parent = self.dir_for_change(dir)?;
        let room = self.prepare_room(&mut parent, name)?;
        let mode = FileType::Symlink.mode_bits() | 0o777;
        let mut raw = self.new_inode(dir, false, mode, uid, gid, now)?;
        if target.len() < FAST_SYMLINK_LEN {
            if let Some(words) = raw.block_bytes_mut().get_mut(..target.len()) {
                words.copy_from_slice(target);
            }
        } else if let Err(e) = self.fill_new(&mut raw, target) {
            self.abandon(&raw)?;
            return Err(e);
        }
        raw.set_size(target.len() as u64, self.geo.revision);
        self.write_new_raw(&raw)?;
        self.write_entry(room, name, raw.ino, FileType::Symlink)?;
        self.dir_changed(&mut parent, 0, now)?;
        self.flush_bitmaps()?;
        self.to_inode(&raw)
    }

    /// Adds the name `name` in directory `dir` for inode `ino` (not a directory); returns the
    /// inode with its new link count.
    pub fn link(&mut self, dir: InodeNo, name: &[u8], ino: InodeNo, now: u32) -> Result<Inode> {
        self.writer(now)?;
        check_name(name)?;
        self.check_changeable(ino)?;
        let mut target = self.read_raw(ino)?;
        let mut parent = self.dir_for_change(dir)?;
        // An existing name fails first, as in Linux.
        let room = self.prepare_room(&mut parent, name)?;
        if target.is_dir() {
            return Err(Error::NotPermitted("a hard link to a directory"));
        }
        if target.links() == 0 {
            return Err(Error::NotFound);
        }
        if target.links() >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        // The count first: a crash leaves one too many, which e2fsck lowers.
        target.set_links(target.links() + 1);
        target.set_ctime(now);
        self.write_raw(&target)?;
        self.write_entry(room, name, ino, target.file_type())?;
        self.dir_changed(&mut parent, 0, now)?;
        self.to_inode(&target)
    }

    /// Removes the name `name` (not a directory) from directory `dir`; returns the inode with
    /// its link count lowered. At 0 links the caller frees it with [`Self::free_inode`] once no
    /// one has it open.
    pub fn unlink(&mut self, dir: InodeNo, name: &[u8], now: u32) -> Result<Inode> {
        self.writer(now)?;
        check_name(name)?;
        let mut parent = self.dir_for_change(dir)?;
        let found = self
            .find_entry(&self.to_inode(&parent)?, name)?
            .ok_or(Error::NotFound)?;
        self.check_changeable(found.ino)?;
        let mut target = self.read_raw(found.ino)?;
        if target.is_dir() {
            return Err(Error::IsADirectory { ino: found.ino });
        }
        self.remove_entry(&found)?;
        target.set_links(target.links().saturating_sub(1));
        target.set_ctime(now);
        self.write_raw(&target)?;
        self.dir_changed(&mut parent, 0, now)?;
        self.to_inode(&target)
    }

    /// Removes the empty directory `name` from directory `dir`; returns it with 0 links, for
    /// [`Self::free_inode`] once no one has it open.
    pub fn rmdir(&mut self, dir: InodeNo, name: &[u8], now: u32) -> Result<Inode> {
        self.writer(now)?;
        match name {
            b"." => return Err(Error::InvalidArgument("rmdir of '.'")),
            b".." => return Err(Error::NotEmpty),
            _ => check_name(name)?,
        }
        let mut parent = self.dir_for_change(dir)?;
        let found = self
            .find_entry(&self.to_inode(&parent)?, name)?
            .ok_or(Error::NotFound)?;
        self.check_changeable(found.ino)?;
        let mut target = self.read_raw(found.ino)?;
        if !target.is_dir() {
            return Err(Error::NotADirectory { ino: found.ino });
        }
        if !self.dir_is_empty(&self.to_inode(&target)?)? {
            return Err(Error::NotEmpty);
        }
        self.remove_entry(&found)?;
        target.set_links(0);
        target.set_ctime(now);
        self.write_raw(&target)?;
        self.dir_changed(&mut parent, -1, now)?;
        self.to_inode(&target)
    }

    /// Allocates and fills in a new inode (not yet written) for something created in `dir`.
    fn new_inode(
        &mut self,
        dir: InodeNo,
        is_dir: bool,
        mode: u16,
        uid: u16,
        gid: u16,
        now: u32,
    ) -> Result<RawInode> {
        let ino = self
            .alloc_inode(self.inode_group(dir), is_dir)?
            .ok_or(Error::NoSpace)?;
        let mut raw = RawInode::zeroed(ino);
        raw.set_mode(mode);
        raw.set_uid(uid);
        raw.set_gid(gid);
        raw.set_atime(now);
        raw.touch(now);
        raw.set_links(1);
        Ok(raw)
    }

    /// Writes `data` at the start of the new inode `raw`, whole or not at all.
    fn fill_new(&mut self, raw: &mut RawInode, data: &[u8]) -> Result<()> {
        let filled = self.fill(raw, 0, data.len() as u64, Source::Data(data))?;
        self.add_sectors(raw, filled.allocated);
        if filled.full {
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    /// Gives back a new inode that could not be completed (never written, never named): its
    /// blocks and its bit.
    fn abandon(&mut self, raw: &RawInode) -> Result<()> {
        for index in 0..BLOCK_POINTERS {
            let block = raw.block(index);
            if block != 0 {
                self.free_blocks(raw.ino, u64::from(block), 1)?;
            }
        }
        self.free_inode_bit(raw.ino, raw.is_dir())?;
        self.flush_bitmaps()
    }

    /// The start of a new directory's first block: `.` (12 bytes) and `..` (the rest of the
    /// block); the fill zeroes what follows.
    fn dir_block_start(&self, ino: InodeNo, parent: InodeNo) -> [u8; 24] {
        let code = if self.geo.dir_file_type {
            FileType::Directory.dir_entry_code()
        } else {
            0
        };
        let dotdot_len = u16::try_from(self.geo.block_size - 12).unwrap_or(u16::MAX);
        let [a, b, c, d] = ino.get().to_le_bytes();
        let [e, f, g, h] = parent.get().to_le_bytes();
        let [i, j] = dotdot_len.to_le_bytes();
        [
            a, b, c, d, 12, 0, 1, code, b'.', 0, 0, 0, //
            e, f, g, h, i, j, 2, code, b'.', b'.', 0, 0,
        ]
    }
}
