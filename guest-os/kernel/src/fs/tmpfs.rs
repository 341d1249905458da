//! tmpfs: an in-memory read-write file system (/tmp, /dev/shm, and the root when there is no
//! disk): regular files, directories, symlinks and hard links; unlink of open files (the data
//! lives while an open file or a link refers to it), rename, truncate.
//!
//! File data lives in 4 KiB pages allocated on first write (holes read as zeros and cost
//! nothing), so growing a file never moves its data — a reallocating vector would copy it all in
//! ring 0. Reads and writes copy straight between a page and the user's buffer. The whole file
//! system may hold at most half of RAM (ENOSPC beyond).
//!
//! Directory listings use insertion sequence numbers as offsets (`.` is 0, `..` is 1, an entry
//! is its sequence + 2), so an offset stays valid when other entries come and go.
//!
//! Known limit: a read or write holds the file's data lock while it copies to or from user
//! memory; a user buffer that is a not-yet-faulted mapping of the same tmpfs file would deadlock
//! (Linux pre-faults for this case). FIFOs and sockets are names only (opening a FIFO gives ENXIO).
//!
//! Owns: tmpfs instances and their nodes.

use super::iobuf::PAGE;
use super::{
    DirEntry, FileKind, Inode, InodeId, InodeRef, Io, ReadBuf, SetAttr, WriteBuf, downcast,
};
use crate::mm::page_cache;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{Stat, Statfs, TMPFS_MAGIC, makedev};
use noa_linux_abi::time::Timespec;
use spin::Mutex;

/// The largest file (Linux tmpfs: the page cache limit; ours is smaller).
const MAX_FILE_BYTES: u64 = 1 << 40;
static NEXT_DEV: AtomicU64 = AtomicU64::new(0x20);

/// One tmpfs instance.
pub struct TmpFs {
    dev: u64,
    next_ino: AtomicU64,
    /// Bytes of file pages allocated, and the most allowed.
    used: AtomicU64,
    limit: u64,
    root: Mutex<Option<Arc<TmpInode>>>,
}

struct Meta {
    /// Permission bits (and set-id/sticky).
    perm: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
}

struct FileData {
    pages: Vec<Option<Box<[u8]>>>,
    size: u64,
}

struct DirData {
    /// name → (node, sequence number).
    entries: BTreeMap<Vec<u8>, (Arc<TmpInode>, u64)>,
    /// sequence number → name, for listing in a stable order.
    order: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    parent: Weak<TmpInode>,
    /// Removed by rmdir: nothing more may be created in it.
    removed: bool,
}

enum Body {
    File(Mutex<FileData>),
    Dir(Mutex<DirData>),
    Symlink(Vec<u8>),
}

/// A tmpfs node.
pub struct TmpInode {
    fs: Arc<TmpFs>,
    /// This node itself (for the parent links of new children).
    me: Weak<TmpInode>,
    ino: u64,
    kind: FileKind,
    meta: Mutex<Meta>,
    body: Body,
}

impl TmpFs {
    /// A new, empty tmpfs.
    pub fn new() -> Arc<TmpFs> {
        let minor = NEXT_DEV.fetch_add(1, Ordering::Relaxed) as u32;
        let fs = Arc::new(TmpFs {
            dev: makedev(0, minor),
            next_ino: AtomicU64::new(1),
            used: AtomicU64::new(0),
            limit: hal_pv::mm::frames::usable_ram_bytes() / 2,
            root: Mutex::new(None),
        });
        let root = TmpInode::new(&fs, FileKind::Directory, 0o1777, Weak::new());
        *fs.root.lock() = Some(root);
        fs
    }

    pub fn root(&self) -> InodeRef {
        match self.root.lock().as_ref() {
            Some(root) => root.clone(),
            None => unreachable_root(),
        }
    }
}

#[cold]
fn unreachable_root() -> InodeRef {
    // `TmpFs::new` sets the root before anyone can ask; keep the kernel alive regardless.
    TmpFs::new().root()
}

impl TmpInode {
    fn new(fs: &Arc<TmpFs>, kind: FileKind, perm: u32, parent: Weak<TmpInode>) -> Arc<TmpInode> {
        let now = super::now();
        let body = match kind {
            FileKind::Directory => Body::Dir(Mutex::new(DirData {
                entries: BTreeMap::new(),
                order: BTreeMap::new(),
                next_seq: 0,
                parent,
                removed: false,
            })),
            _ => Body::File(Mutex::new(FileData {
                pages: Vec::new(),
                size: 0,
            })),
        };
        Arc::new_cyclic(|me| TmpInode {
            fs: fs.clone(),
            me: me.clone(),
            ino: fs.next_ino.fetch_add(1, Ordering::Relaxed),
            kind,
            meta: Mutex::new(Meta {
                perm: perm & 0o7777,
                nlink: if kind == FileKind::Directory { 2 } else { 1 },
                uid: 0,
                gid: 0,
                atime: now,
                mtime: now,
                ctime: now,
            }),
            body,
        })
    }

    fn dir(&self) -> SysResult<&Mutex<DirData>> {
        match &self.body {
            Body::Dir(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn file(&self) -> SysResult<&Mutex<FileData>> {
        match &self.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(Errno::EISDIR),
            Body::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    fn touch(&self, modified: bool) {
        let now = super::now();
        let mut meta = self.meta.lock();
        if modified {
            meta.mtime = now;
        }
        meta.ctime = now;
    }

    fn add_links(&self, delta: i32) {
        let mut meta = self.meta.lock();
        meta.nlink = meta.nlink.saturating_add_signed(delta);
        meta.ctime = super::now();
    }

    /// Inserts `node` as `name` (the caller checked the name is free).
    fn insert(dir: &mut DirData, name: &[u8], node: Arc<TmpInode>) {
        let seq = dir.next_seq;
        dir.next_seq += 1;
        dir.order.insert(seq, name.to_vec());
        dir.entries.insert(name.to_vec(), (node, seq));
    }

    fn remove(dir: &mut DirData, name: &[u8]) -> Option<Arc<TmpInode>> {
        let (node, seq) = dir.entries.remove(name)?;
        dir.order.remove(&seq);
        Some(node)
    }

    fn is_empty_dir(&self) -> bool {
        match &self.body {
            Body::Dir(dir) => dir.lock().entries.is_empty(),
            _ => false,
        }
    }

    /// Sets the size, freeing pages past it and zeroing the cut part of the last one.
    fn resize(&self, data: &mut FileData, size: u64) -> SysResult<()> {
        if size > MAX_FILE_BYTES {
            return Err(Errno::EFBIG);
        }
        if size < data.size {
            let keep_pages = size.div_ceil(PAGE as u64) as usize;
            let freed = data
                .pages
                .iter()
                .skip(keep_pages)
                .filter(|p| p.is_some())
                .count() as u64
                * PAGE as u64;
            data.pages.truncate(keep_pages);
            self.fs.used.fetch_sub(freed, Ordering::AcqRel);
            let cut = (size % PAGE as u64) as usize;
            if cut != 0
                && let Some(Some(page)) = data.pages.last_mut()
            {
                page[cut..].fill(0);
            }
        }
        data.size = size;
        Ok(())
    }

    /// Gives bytes just written to the page-cache pages of the range, if the file is mapped.
    fn update_cached(&self, data: &FileData, offset: u64, len: usize) {
        let key = self.id();
        if len == 0 || !page_cache::has_pages(key) {
            return;
        }
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let index = (at / PAGE as u64) as usize;
            let in_page = (at % PAGE as u64) as usize;
            let n = (PAGE - in_page).min(len - done);
            if let Some(Some(page)) = data.pages.get(index) {
                page_cache::update(key, at, &page[in_page..in_page + n]);
            }
            done += n;
        }
    }

    fn write_locked(
        &self,
        data: &mut FileData,
        offset: u64,
        buf: &WriteBuf<'_>,
    ) -> SysResult<usize> {
        let len = buf.len();
        let end = offset.checked_add(len as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_BYTES {
            return Err(Errno::EFBIG);
        }
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let index = (at / PAGE as u64) as usize;
            let in_page = (at % PAGE as u64) as usize;
            let n = (PAGE - in_page).min(len - done);
            if index >= data.pages.len() {
                data.pages.resize_with(index + 1, || None);
            }
            if data.pages[index].is_none() {
                let used = self.fs.used.fetch_add(PAGE as u64, Ordering::AcqRel);
                if used + PAGE as u64 > self.fs.limit {
                    self.fs.used.fetch_sub(PAGE as u64, Ordering::AcqRel);
                    if done == 0 {
                        return Err(Errno::ENOSPC);
                    }
                    break;
                }
                data.pages[index] = Some(vec![0u8; PAGE].into_boxed_slice());
            }
            let Some(page) = data.pages[index].as_mut() else {
                break;
            };
            if let Err(e) = buf.get(done, &mut page[in_page..in_page + n]) {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            done += n;
        }
        let written_end = offset + done as u64;
        if written_end > data.size {
            data.size = written_end;
        }
        Ok(done)
    }

    /// Checks that `name` may be created here: a real name, a live directory, not taken.
    fn check_new_name(dir: &DirData, name: &[u8]) -> SysResult<()> {
        if name == b"." || name == b".." || name == b"/" || dir.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        if dir.removed {
            return Err(Errno::ENOENT);
        }
        Ok(())
    }

    /// Whether `node` is `ancestor` or below it (a directory moved into itself).
    fn is_within(node: &Arc<TmpInode>, ancestor: &Arc<TmpInode>) -> bool {
        let mut current = node.clone();
        // Depth is bounded by the tree; a cycle cannot form (this check prevents it).
        for _ in 0..4096 {
            if Arc::ptr_eq(&current, ancestor) {
                return true;
            }
            let parent = match &current.body {
                Body::Dir(dir) => dir.lock().parent.upgrade(),
                _ => None,
            };
            match parent {
                Some(parent) => current = parent,
                None => return false,
            }
        }
        true
    }
}

impl Inode for TmpInode {
    fn id(&self) -> InodeId {
        (self.fs.dev, self.ino)
    }

    fn kind(&self) -> FileKind {
        self.kind
    }

    fn stat(&self) -> SysResult<Stat> {
        let size = match &self.body {
            Body::File(data) => data.lock().size,
            Body::Dir(_) => PAGE as u64,
            Body::Symlink(target) => target.len() as u64,
        };
        let blocks = match &self.body {
            Body::File(data) => data.lock().pages.iter().filter(|p| p.is_some()).count() as i64 * 8,
            _ => 0,
        };
        let meta = self.meta.lock();
        Ok(Stat {
            dev: self.fs.dev,
            ino: self.ino,
            nlink: u64::from(meta.nlink),
            mode: self.kind.mode_bits() | meta.perm,
            uid: meta.uid,
            gid: meta.gid,
            rdev: 0,
            size: size as i64,
            blksize: PAGE as i64,
            blocks,
            atime: meta.atime,
            mtime: meta.mtime,
            ctime: meta.ctime,
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        let pages = self.fs.limit / PAGE as u64;
        let used = self.fs.used.load(Ordering::Acquire) / PAGE as u64;
        Ok(Statfs {
            f_type: TMPFS_MAGIC,
            bsize: PAGE as i64,
            blocks: pages,
            bfree: pages.saturating_sub(used),
            bavail: pages.saturating_sub(used),
            files: 1 << 20,
            ffree: (1u64 << 20).saturating_sub(self.fs.next_ino.load(Ordering::Relaxed)),
            fsid: [self.fs.dev as i32, 0],
            namelen: 255,
            frsize: PAGE as i64,
            flags: 0,
        })
    }

    fn read_at(&self, offset: u64, buf: &mut ReadBuf<'_>, _io: Io) -> SysResult<usize> {
        // Stores through shared writable mappings live in the page cache until written back.
        let key = self.id();
        if page_cache::dirty_mapped(key) {
            page_cache::write_back(key, offset, offset.saturating_add(buf.len() as u64))?;
        }
        let data = self.file()?.lock();
        if offset >= data.size {
            return Ok(0);
        }
        let len = ((data.size - offset).min(buf.len() as u64)) as usize;
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let index = (at / PAGE as u64) as usize;
            let in_page = (at % PAGE as u64) as usize;
            let n = (PAGE - in_page).min(len - done);
            let copied = match data.pages.get(index).and_then(Option::as_ref) {
                Some(page) => buf.put(done, &page[in_page..in_page + n]),
                None => buf.zero(done, n),
            };
            if let Err(e) = copied {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            done += n;
        }
        Ok(done)
    }

    fn write_at(&self, offset: u64, buf: &WriteBuf<'_>, _io: Io) -> SysResult<usize> {
        let written = {
            let mut data = self.file()?.lock();
            let written = self.write_locked(&mut data, offset, buf)?;
            self.update_cached(&data, offset, written);
            written
        };
        self.touch(true);
        Ok(written)
    }

    fn append(&self, buf: &WriteBuf<'_>, _io: Io) -> SysResult<(usize, u64)> {
        let result = {
            let mut data = self.file()?.lock();
            let at = data.size;
            let written = self.write_locked(&mut data, at, buf)?;
            self.update_cached(&data, at, written);
            (written, data.size)
        };
        self.touch(true);
        Ok(result)
    }

    /// Mapped pages come from the page cache, so every mapping of a file shares them (and
    /// `MAP_SHARED` stores reach the file at msync/fsync or the next read).
    fn cache_key(&self) -> Option<InodeId> {
        matches!(self.body, Body::File(_)).then(|| self.id())
    }

    fn write_back(&self, offset: u64, bytes: &[u8]) -> SysResult<()> {
        let mut data = self.file()?.lock();
        self.write_locked(&mut data, offset, &WriteBuf::Kernel(bytes))?;
        Ok(())
    }

    fn size(&self) -> u64 {
        match &self.body {
            Body::File(data) => data.lock().size,
            Body::Dir(_) => PAGE as u64,
            Body::Symlink(target) => target.len() as u64,
        }
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        let dir = self.dir()?.lock();
        match name {
            b"." => {
                drop(dir);
                Ok(self.self_arc()?)
            }
            b".." => {
                let parent = dir.parent.upgrade();
                drop(dir);
                Ok(match parent {
                    Some(parent) => parent,
                    None => self.fs.root(),
                })
            }
            _ => dir
                .entries
                .get(name)
                .map(|(node, _)| node.clone() as InodeRef)
                .ok_or(Errno::ENOENT),
        }
    }

    fn parent(&self) -> SysResult<InodeRef> {
        let parent = self.dir()?.lock().parent.upgrade();
        Ok(match parent {
            Some(parent) => parent,
            // The root of a tmpfs is its own parent; the mount table steps out of it.
            None => self.fs.root(),
        })
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        let dir = self.dir()?.lock();
        let mut at = offset;
        if at == 0 {
            if !sink(&DirEntry {
                name: b".",
                ino: self.ino,
                d_type: FileKind::Directory.dirent_type(),
                next: 1,
            }) {
                return Ok(0);
            }
            at = 1;
        }
        if at == 1 {
            let parent_ino = dir.parent.upgrade().map_or(self.ino, |p| p.ino);
            if !sink(&DirEntry {
                name: b"..",
                ino: parent_ino,
                d_type: FileKind::Directory.dirent_type(),
                next: 2,
            }) {
                return Ok(1);
            }
            at = 2;
        }
        for (&seq, name) in dir.order.range(at - 2..) {
            let Some((node, _)) = dir.entries.get(name) else {
                continue;
            };
            if !sink(&DirEntry {
                name,
                ino: node.ino,
                d_type: node.kind.dirent_type(),
                next: seq + 3,
            }) {
                return Ok(seq + 2);
            }
        }
        Ok(dir.next_seq + 2)
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        match &self.body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn create(&self, name: &[u8], kind: FileKind, mode: u32) -> SysResult<InodeRef> {
        // Sockets (a bound AF_UNIX name) and FIFOs are names with an empty body; opening them
        // is the path layer's business (ENXIO for now, as on ext2).
        if !matches!(
            kind,
            FileKind::Regular | FileKind::Directory | FileKind::Socket | FileKind::Fifo
        ) {
            return Err(Errno::EPERM);
        }
        let me = self.self_arc()?;
        let node = {
            let mut dir = self.dir()?.lock();
            Self::check_new_name(&dir, name)?;
            let node = TmpInode::new(&self.fs, kind, mode, Arc::downgrade(&me));
            Self::insert(&mut dir, name, node.clone());
            node
        };
        if kind == FileKind::Directory {
            self.add_links(1);
        }
        self.touch(true);
        Ok(node)
    }

    fn symlink(&self, name: &[u8], target: &[u8]) -> SysResult<()> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut dir = self.dir()?.lock();
        Self::check_new_name(&dir, name)?;
        let now = super::now();
        let node = Arc::new_cyclic(|me| TmpInode {
            fs: self.fs.clone(),
            me: me.clone(),
            ino: self.fs.next_ino.fetch_add(1, Ordering::Relaxed),
            kind: FileKind::Symlink,
            meta: Mutex::new(Meta {
                perm: 0o777,
                nlink: 1,
                uid: 0,
                gid: 0,
                atime: now,
                mtime: now,
                ctime: now,
            }),
            body: Body::Symlink(target.to_vec()),
        });
        Self::insert(&mut dir, name, node);
        drop(dir);
        self.touch(true);
        Ok(())
    }

    fn link(&self, name: &[u8], target: &InodeRef) -> SysResult<()> {
        let target = downcast::<TmpInode>(target)
            .filter(|t| Arc::ptr_eq(&t.fs, &self.fs))
            .ok_or(Errno::EXDEV)?;
        if target.kind == FileKind::Directory {
            return Err(Errno::EPERM);
        }
        let mut dir = self.dir()?.lock();
        Self::check_new_name(&dir, name)?;
        Self::insert(&mut dir, name, target.clone());
        drop(dir);
        target.add_links(1);
        self.touch(true);
        Ok(())
    }

    fn unlink(&self, name: &[u8], want_dir: bool) -> SysResult<()> {
        match name {
            b"." => {
                return Err(if want_dir {
                    Errno::EINVAL
                } else {
                    Errno::EISDIR
                });
            }
            b".." => {
                return Err(if want_dir {
                    Errno::ENOTEMPTY
                } else {
                    Errno::EISDIR
                });
            }
            b"/" => {
                return Err(if want_dir {
                    Errno::EBUSY
                } else {
                    Errno::EISDIR
                });
            }
            _ => {}
        }
        let removed = {
            let mut dir = self.dir()?.lock();
            let node = dir
                .entries
                .get(name)
                .map(|(n, _)| n.clone())
                .ok_or(Errno::ENOENT)?;
            let is_dir = node.kind == FileKind::Directory;
            if want_dir && !is_dir {
                return Err(Errno::ENOTDIR);
            }
            if !want_dir && is_dir {
                return Err(Errno::EISDIR);
            }
            if is_dir {
                let mut child = node.dir()?.lock();
                if !child.entries.is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
                child.removed = true;
            }
            Self::remove(&mut dir, name);
            node
        };
        if removed.kind == FileKind::Directory {
            self.add_links(-1);
            removed.add_links(-2);
        } else {
            removed.add_links(-1);
        }
        self.touch(true);
        Ok(())
    }

    fn rename(
        &self,
        old_name: &[u8],
        new_dir: &InodeRef,
        new_name: &[u8],
        noreplace: bool,
    ) -> SysResult<()> {
        let new_parent = downcast::<TmpInode>(new_dir)
            .filter(|d| Arc::ptr_eq(&d.fs, &self.fs))
            .ok_or(Errno::EXDEV)?;
        for name in [old_name, new_name] {
            if matches!(name, b"." | b".." | b"/") {
                return Err(Errno::EBUSY);
            }
        }
        let old_parent = self.self_arc()?;
        let moving = self
            .dir()?
            .lock()
            .entries
            .get(old_name)
            .map(|(n, _)| n.clone())
            .ok_or(Errno::ENOENT)?;
        if moving.kind == FileKind::Directory && Self::is_within(&new_parent, &moving) {
            return Err(Errno::EINVAL);
        }
        let replaced = if Arc::ptr_eq(&old_parent, &new_parent) {
            let mut dir = self.dir()?.lock();
            if Self::check_rename(&dir, &dir, &moving, old_name, new_name, noreplace)? {
                return Ok(());
            }
            let replaced = Self::remove(&mut dir, new_name);
            Self::remove(&mut dir, old_name);
            Self::insert(&mut dir, new_name, moving.clone());
            replaced
        } else {
            // Both directories locked: an ancestor before its descendant (unlink locks a
            // directory, then its child), else the lower inode number first.
            let (old_lock, new_lock) = (self.dir()?, new_parent.dir()?);
            let old_first = if Self::is_within(&new_parent, &old_parent) {
                true
            } else if Self::is_within(&old_parent, &new_parent) {
                false
            } else {
                self.ino < new_parent.ino
            };
            let (mut old, mut new);
            if old_first {
                old = old_lock.lock();
                new = new_lock.lock();
            } else {
                new = new_lock.lock();
                old = old_lock.lock();
            }
            if Self::check_rename(&old, &new, &moving, old_name, new_name, noreplace)? {
                return Ok(());
            }
            let replaced = Self::remove(&mut new, new_name);
            Self::remove(&mut old, old_name);
            Self::insert(&mut new, new_name, moving.clone());
            replaced
        };
        if let Some(replaced) = replaced.filter(|r| !Arc::ptr_eq(r, &moving)) {
            if replaced.kind == FileKind::Directory {
                if let Ok(dir) = replaced.dir() {
                    dir.lock().removed = true;
                }
                replaced.add_links(-2);
                new_parent.add_links(-1);
            } else {
                replaced.add_links(-1);
            }
        }
        if moving.kind == FileKind::Directory && !Arc::ptr_eq(&old_parent, &new_parent) {
            if let Ok(dir) = moving.dir() {
                dir.lock().parent = Arc::downgrade(&new_parent);
            }
            old_parent.add_links(-1);
            new_parent.add_links(1);
        }
        moving.touch(false);
        old_parent.touch(true);
        new_parent.touch(true);
        Ok(())
    }

    fn truncate(&self, size: u64) -> SysResult<()> {
        {
            let mut data = self.file()?.lock();
            self.resize(&mut data, size)?;
        }
        page_cache::truncate(self.id(), size);
        self.touch(true);
        Ok(())
    }

    fn set_attr(&self, attr: &SetAttr) -> SysResult<()> {
        let mut meta = self.meta.lock();
        if let Some(mode) = attr.mode {
            meta.perm = mode & 0o7777;
        }
        if let Some(uid) = attr.uid {
            meta.uid = uid;
        }
        if let Some(gid) = attr.gid {
            meta.gid = gid;
        }
        if let Some(atime) = attr.atime {
            meta.atime = atime;
        }
        if let Some(mtime) = attr.mtime {
            meta.mtime = mtime;
        }
        meta.ctime = super::now();
        Ok(())
    }
}

impl TmpInode {
    /// This node as an `Arc` (it is alive: someone holds it to call us).
    fn self_arc(&self) -> SysResult<Arc<TmpInode>> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    /// The checks of rename(2), with both directories locked (`old` and `new` may be the same).
    /// True: nothing to do (both names already link the same file).
    fn check_rename(
        old: &DirData,
        new: &DirData,
        moving: &Arc<TmpInode>,
        old_name: &[u8],
        new_name: &[u8],
        noreplace: bool,
    ) -> SysResult<bool> {
        // The entry may have changed between the first look and the locks.
        if !old
            .entries
            .get(old_name)
            .is_some_and(|(n, _)| Arc::ptr_eq(n, moving))
        {
            return Err(Errno::ENOENT);
        }
        if new.removed {
            return Err(Errno::ENOENT);
        }
        if let Some((existing, _)) = new.entries.get(new_name) {
            if Arc::ptr_eq(existing, moving) {
                return Ok(true);
            }
            if noreplace {
                return Err(Errno::EEXIST);
            }
            match (
                moving.kind == FileKind::Directory,
                existing.kind == FileKind::Directory,
            ) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !existing.is_empty_dir() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        Ok(false)
    }
}

impl Drop for TmpInode {
    fn drop(&mut self) {
        if let Body::File(data) = &self.body {
            page_cache::forget(self.id());
            let pages = data.lock().pages.iter().filter(|p| p.is_some()).count() as u64;
            self.fs
                .used
                .fetch_sub(pages * PAGE as u64, Ordering::AcqRel);
        }
    }
}
