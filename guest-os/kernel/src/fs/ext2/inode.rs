//! [`Ext2Inode`]: an ext2 inode as the VFS sees it — reads, writes, directory changes and
//! attributes, each a call into `noa-ext2` under the file system's lock (see the parent module
//! for the locking and lifetime rules).
//!
//! Data moves between the device and user memory through the file layer's bounce buffers, a
//! chunk at a time, with the lock taken per chunk and never while user memory is touched. A
//! `write` also updates the page-cache pages of its range, and a `read` of a file with pages
//! mapped shared and writable takes those pages ([`crate::mm::page_cache`]).
//!
//! Owns: the VFS face of ext2 inodes.

use super::{Ext2Fs, errno};
use crate::fs::iobuf::with_bounce;
use crate::fs::{
    DirEntry, FileKind, Inode, InodeId, InodeRef, Io, ReadBuf, SetAttr, WriteBuf, downcast,
};
use crate::mm::page_cache;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::ControlFlow;
use noa_ext2::{FileType, InodeNo, RenameFlags};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{EXT2_SUPER_MAGIC, S_IFMT, Stat, Statfs};
use noa_linux_abi::time::Timespec;
use spin::Mutex;

/// `ST_RDONLY` in `f_flags`.
const ST_RDONLY: i64 = 1;
const PAGE: u64 = 4096;

/// An ext2 inode.
pub struct Ext2Inode {
    fs: Arc<Ext2Fs>,
    ino: InodeNo,
    /// The on-disk fields, replaced after every change (under the file system's write lock).
    raw: Mutex<noa_ext2::Inode>,
    /// Serialises O_APPEND writes, so each lands at the end the previous one left.
    append: Mutex<()>,
}

fn kind_of(file_type: FileType) -> FileKind {
    match file_type {
        FileType::Directory => FileKind::Directory,
        FileType::Symlink => FileKind::Symlink,
        FileType::CharDevice => FileKind::CharDevice,
        FileType::BlockDevice => FileKind::BlockDevice,
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
        FileType::Regular | FileType::Unknown => FileKind::Regular,
    }
}

impl Ext2Inode {
    pub(super) fn new(fs: Arc<Ext2Fs>, raw: noa_ext2::Inode) -> Arc<Ext2Inode> {
        Arc::new(Ext2Inode {
            fs,
            ino: raw.ino(),
            raw: Mutex::new(raw),
            append: Mutex::new(()),
        })
    }

    pub(super) fn ino(&self) -> InodeNo {
        self.ino
    }

    pub(super) fn links(&self) -> u16 {
        self.raw.lock().links()
    }

    pub(super) fn set_raw(&self, raw: noa_ext2::Inode) {
        *self.raw.lock() = raw;
    }

    fn raw(&self) -> noa_ext2::Inode {
        self.raw.lock().clone()
    }

    fn file_type(&self) -> FileType {
        self.raw.lock().file_type()
    }

    /// Another inode of the same file system (a rename's target directory, a link's target),
    /// else EXDEV.
    fn same_fs(&self, other: &InodeRef) -> SysResult<Arc<Ext2Inode>> {
        let other = downcast::<Ext2Inode>(other).ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(&other.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        Ok(other)
    }

    /// Creates `name` here with `mode` (type and permission bits); its object.
    fn make(&self, name: &[u8], mode: u16, rdev: u32) -> SysResult<Arc<Ext2Inode>> {
        let dir = self.ino;
        let raw = self.fs.change(|fs, now| {
            let made = fs.create(dir, name, mode, 0, 0, rdev, now)?;
            self.fs.refresh(fs, dir);
            Ok(made)
        })?;
        self.fs.set_name(dir, name, Some(raw.ino()));
        self.fs.inode_object(raw.ino())
    }

    /// Reads through the page cache: pages mapped shared and writable may be newer than the
    /// disk.
    fn read_through_cache(
        &self,
        offset: u64,
        buf: &mut ReadBuf<'_>,
        size: u64,
    ) -> SysResult<usize> {
        let key = self.id();
        let len = (buf.len() as u64).min(size.saturating_sub(offset)) as usize;
        let mut done = 0;
        while done < len {
            let pos = offset + done as u64;
            let n = ((PAGE - pos % PAGE) as usize).min(len - done);
            with_bounce(n, |bounce| -> SysResult<()> {
                match page_cache::cached(key, pos - pos % PAGE) {
                    Some(page) => page.read((pos % PAGE) as usize, bounce),
                    None => {
                        let fs = self.fs.fs.read();
                        fs.read(&self.raw(), pos, bounce).map_err(errno)?;
                    }
                }
                buf.put(done, bounce)
            })?;
            done += n;
        }
        Ok(len)
    }

    /// Writes `buf` at `offset`; the bytes written.
    fn write_data(&self, offset: u64, buf: &WriteBuf<'_>) -> SysResult<usize> {
        match self.file_type() {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        if !self.fs.writable {
            return Err(Errno::EROFS);
        }
        let key = self.id();
        let mut done = 0u64;
        // A short write (the disk filled up) ends the loop; the error comes only when nothing
        // at all was written.
        buf.drain_via_kernel(|chunk| {
            let pos = offset + done;
            let (raw, written) = self
                .fs
                .change(|fs, now| fs.write_prefix(self.ino, pos, chunk, now))?;
            self.set_raw(raw);
            page_cache::update(key, pos, &chunk[..written]);
            done += written as u64;
            Ok(written)
        })
    }
}

impl Drop for Ext2Inode {
    fn drop(&mut self) {
        if self.fs.writable && self.raw.get_mut().links() == 0 {
            self.fs.orphans.lock().push(self.ino);
        }
    }
}

impl Inode for Ext2Inode {
    fn id(&self) -> InodeId {
        (self.fs.dev, u64::from(self.ino.get()))
    }

    fn kind(&self) -> FileKind {
        kind_of(self.file_type())
    }

    fn stat(&self) -> SysResult<Stat> {
        let raw = self.raw();
        let time = |sec: i64| Timespec { sec, nsec: 0 };
        Ok(Stat {
            dev: self.fs.dev,
            ino: u64::from(raw.ino().get()),
            nlink: u64::from(raw.links()),
            mode: u32::from(raw.mode()),
            uid: raw.uid(),
            gid: raw.gid(),
            rdev: raw.rdev().map_or(0, |d| d.encode()),
            size: raw.size().min(i64::MAX as u64) as i64,
            blksize: self.fs.block_size as i64,
            blocks: raw.blocks() as i64,
            atime: time(raw.atime()),
            mtime: time(raw.mtime()),
            ctime: time(raw.ctime()),
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        let s = self.fs.fs.read().statfs();
        Ok(Statfs {
            f_type: EXT2_SUPER_MAGIC,
            bsize: s.block_size as i64,
            blocks: s.blocks,
            bfree: s.free_blocks,
            bavail: s.available_blocks,
            files: s.inodes,
            ffree: s.free_inodes,
            fsid: [self.fs.dev as i32, 0],
            namelen: s.name_max as i64,
            frsize: s.block_size as i64,
            flags: if self.fs.writable { 0 } else { ST_RDONLY },
        })
    }

    fn read_at(&self, offset: u64, buf: &mut ReadBuf<'_>, _io: Io) -> SysResult<usize> {
        match self.file_type() {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        let size = self.size();
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        if page_cache::dirty_mapped(self.id()) {
            return self.read_through_cache(offset, buf, size);
        }
        buf.fill_via_kernel(|at, slice| {
            // The fields are read under the lock: a truncate cannot free blocks between.
            let fs = self.fs.fs.read();
            let raw = self.raw();
            fs.read(&raw, offset + at, slice).map_err(errno)
        })
    }

    fn write_at(&self, offset: u64, buf: &WriteBuf<'_>, _io: Io) -> SysResult<usize> {
        self.write_data(offset, buf)
    }

    fn append(&self, buf: &WriteBuf<'_>, _io: Io) -> SysResult<(usize, u64)> {
        let _serial = self.append.lock();
        let end = self.size();
        let written = self.write_data(end, buf)?;
        Ok((written, end + written as u64))
    }

    fn size(&self) -> u64 {
        self.raw.lock().size()
    }

    /// Each physically contiguous stretch of the range is one device request straight into
    /// the buffer, all in one batch; holes are zeroed, and a last piece that is not whole
    /// sectors goes through the file system's own read.
    fn read_pages(&self, offset: u64, pages: &mut [u8]) -> SysResult<()> {
        const SECTOR: u64 = 512;
        const MAX_EXTENTS: usize = 64;
        if self.file_type() != FileType::Regular {
            return Err(Errno::EINVAL);
        }
        let fs = self.fs.fs.read();
        let raw = self.raw();
        let valid = raw.size().saturating_sub(offset).min(pages.len() as u64) as usize;
        let extents = fs
            .extents(&raw, offset, valid as u64, MAX_EXTENTS)
            .map_err(errno)?;
        let (mut rest, past_end) = pages.split_at_mut(valid);
        let mut pos = offset;
        let mut direct: Vec<(u64, &mut [u8])> = Vec::new();
        let mut by_fs: Vec<(u64, &mut [u8])> = Vec::new();
        for extent in &extents {
            if extent.offset != pos {
                break;
            }
            let len = (extent.len as usize).min(rest.len());
            let (piece, tail) = core::mem::take(&mut rest).split_at_mut(len);
            match extent.device {
                Some(device) if device % SECTOR == 0 => {
                    let whole = len - len % SECTOR as usize;
                    let (sectors, remainder) = piece.split_at_mut(whole);
                    if !sectors.is_empty() {
                        direct.push((device, sectors));
                    }
                    if !remainder.is_empty() {
                        by_fs.push((pos + whole as u64, remainder));
                    }
                }
                Some(_) => by_fs.push((pos, piece)),
                None => piece.fill(0),
            }
            rest = tail;
            pos += len as u64;
        }
        // Past the extents asked for (a very fragmented range): the file system's read.
        if !rest.is_empty() {
            by_fs.push((pos, rest));
        }
        fs.device()
            .read_batch(&mut direct)
            .map_err(|_| Errno::EIO)?;
        for (at, buf) in by_fs {
            fs.read(&raw, at, buf).map_err(errno)?;
        }
        past_end.fill(0);
        Ok(())
    }

    fn cache_key(&self) -> Option<InodeId> {
        (self.file_type() == FileType::Regular).then(|| self.id())
    }

    fn write_back(&self, offset: u64, data: &[u8]) -> SysResult<()> {
        let raw = self
            .fs
            .change(|fs, now| fs.write(self.ino, offset, data, now))?;
        self.set_raw(raw);
        Ok(())
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        let raw = self.raw();
        if raw.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let ino = self.fs.lookup(&raw, name)?.ok_or(Errno::ENOENT)?;
        self.fs.inode(ino)
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        let fs = self.fs.fs.read();
        let raw = self.raw();
        if raw.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        fs.read_dir_from(&raw, offset, |entry| {
            let taken = sink(&DirEntry {
                name: entry.name,
                ino: u64::from(entry.ino.get()),
                d_type: entry.file_type.dirent_type(),
                next: entry.next_offset,
            });
            if taken {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .map_err(errno)
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        let fs = self.fs.fs.read();
        fs.read_link(&self.raw()).map_err(errno)
    }

    fn create(&self, name: &[u8], kind: FileKind, mode: u32) -> SysResult<InodeRef> {
        if self.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let mode = (kind.mode_bits() & S_IFMT) | (mode & 0o7777);
        Ok(self.make(name, mode as u16, 0)?)
    }

    fn symlink(&self, name: &[u8], target: &[u8]) -> SysResult<()> {
        if self.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let dir = self.ino;
        let raw = self.fs.change(|fs, now| {
            let made = fs.symlink(dir, name, target, 0, 0, now)?;
            self.fs.refresh(fs, dir);
            Ok(made)
        })?;
        self.fs.set_name(dir, name, Some(raw.ino()));
        Ok(())
    }

    fn link(&self, name: &[u8], target: &InodeRef) -> SysResult<()> {
        let target = self.same_fs(target)?;
        let dir = self.ino;
        let raw = self
            .fs
            .change(|fs, now| fs.link(dir, name, target.ino, now))?;
        self.fs.publish(&raw);
        self.fs.refresh(&self.fs.fs.read(), dir);
        self.fs.set_name(dir, name, Some(target.ino));
        Ok(())
    }

    fn unlink(&self, name: &[u8], want_dir: bool) -> SysResult<()> {
        let dir = self.ino;
        self.fs.change(|fs, now| {
            let raw = if want_dir {
                fs.rmdir(dir, name, now)?
            } else {
                fs.unlink(dir, name, now)?
            };
            self.fs.set_name(dir, name, None);
            self.fs.publish(&raw);
            self.fs.refresh(fs, dir);
            if raw.links() == 0 {
                self.fs.unlinked(fs, raw.ino());
            }
            Ok(())
        })
    }

    fn rename(
        &self,
        old_name: &[u8],
        new_dir: &InodeRef,
        new_name: &[u8],
        noreplace: bool,
    ) -> SysResult<()> {
        let new_parent = self.same_fs(new_dir)?;
        let (old_dir, new_dir) = (self.ino, new_parent.ino);
        let moved = self
            .fs
            .lookup(&self.raw(), old_name)?
            .ok_or(Errno::ENOENT)?;
        let flags = RenameFlags {
            noreplace,
            exchange: false,
        };
        self.fs.change(|fs, now| {
            let replaced = fs.rename(old_dir, old_name, new_dir, new_name, flags, now)?;
            self.fs.set_name(old_dir, old_name, None);
            self.fs.set_name(new_dir, new_name, Some(moved));
            self.fs.refresh(fs, old_dir);
            self.fs.refresh(fs, new_dir);
            self.fs.refresh(fs, moved);
            if let Some(raw) = replaced {
                self.fs.publish(&raw);
                if raw.links() == 0 {
                    self.fs.unlinked(fs, raw.ino());
                }
            }
            Ok(())
        })
    }

    fn truncate(&self, size: u64) -> SysResult<()> {
        match self.file_type() {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        let raw = self.fs.change(|fs, now| fs.truncate(self.ino, size, now))?;
        self.set_raw(raw);
        page_cache::truncate(self.id(), size);
        Ok(())
    }

    fn set_attr(&self, attr: &SetAttr) -> SysResult<()> {
        let secs = |t: Option<Timespec>| t.map(|t| t.sec.clamp(0, i64::from(u32::MAX)) as u32);
        let change = noa_ext2::SetAttr {
            mode: attr.mode.map(|m| (m & 0o7777) as u16),
            uid: attr.uid.map(|u| u as u16),
            gid: attr.gid.map(|g| g as u16),
            atime: secs(attr.atime),
            mtime: secs(attr.mtime),
            ctime: None,
        };
        let raw = self.fs.change(|fs, now| {
            fs.set_attr(
                self.ino,
                noa_ext2::SetAttr {
                    ctime: Some(now),
                    ..change
                },
            )
        })?;
        self.set_raw(raw);
        Ok(())
    }

    fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> SysResult<()> {
        if self.file_type() != FileType::Regular {
            return Err(Errno::ENODEV);
        }
        let raw = self
            .fs
            .change(|fs, now| fs.allocate(self.ino, offset, len, keep_size, now))?;
        self.set_raw(raw);
        Ok(())
    }

    fn sync(&self) -> SysResult<()> {
        if !self.fs.writable {
            return Ok(());
        }
        if let Some(key) = self.cache_key() {
            page_cache::write_back(key, 0, u64::MAX)?;
        }
        self.fs.sync()
    }

    fn read_only(&self) -> bool {
        !self.fs.writable
    }
}
