//! The root file system: ext2 on the first virtio disk, read-only for now, over `noa-ext2`.
//!
//! [`Disk`] is the `BlockDevice` under the reader: the HAL's virtio-blk driver behind a spin
//! mutex, with a block cache for what the reader asks in small pieces (superblock, inodes,
//! indirect blocks, directory blocks, small file reads). Large sector-aligned reads — file data
//! for a program load or a big `read` — go from the device straight into the caller's buffer:
//! on these hosts the device fills memory at host speed, while copying the same bytes out of a
//! cache in ring 0 costs ~320 µs per 4 KiB. So the cache holds metadata and small reads, and a
//! repeated exec re-reads its data from the device (one request per contiguous run) rather than
//! copying it in ring 0. The cache is 2-way set-associative with 128 sets of 4 KiB lines (1 MiB):
//! a lookup is a few instructions, where an LRU list would cost a scan.
//!
//! Above the reader, a name cache (directory inode, name) → inode number, negative entries
//! included, and an inode cache keep path walks off the directory blocks: a directory scan
//! allocates and copies a whole block per lookup, a cached name costs a hash. The image never
//! changes under a read-only mount, so nothing here is ever invalidated.
//!
//! Owns: the root disk, its caches, and the ext2 [`Inode`] implementation. The on-disk format is
//! `noa-ext2`'s.

use super::{DirEntry, FileKind, Inode, InodeId, InodeRef, Io, ReadBuf};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;
use hal_pv::virtio::Device;
use hal_pv::virtio::block::Block;
use noa_ext2::{BlockDevice, Ext2, FileType, InodeNo, IoError};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{EXT2_SUPER_MAGIC, Stat, Statfs, makedev};
use noa_linux_abi::time::Timespec;
use spin::Mutex;

/// `st_dev` of the root file system: vda is 254:0 on Linux.
pub const DEV: u64 = makedev(254, 0);
const SECTOR: u64 = 512;
const LINE: usize = 4096;
const SETS: usize = 128;
const WAYS: usize = 2;
/// Sector-aligned reads at least this long bypass the cache.
const DIRECT_MIN: usize = 4096;
/// Name cache slots (direct-mapped).
const NAME_SLOTS: usize = 1024;
/// Inode cache slots (direct-mapped).
const INODE_SLOTS: usize = 512;
/// `ST_RDONLY` in `f_flags`.
const ST_RDONLY: i64 = 1;

struct Line {
    /// Device line number (byte offset / 4096); u64::MAX: empty.
    tag: u64,
    /// Valid bytes (less than a line only at the end of the device).
    len: usize,
    data: Box<[u8]>,
}

struct DiskInner {
    block: Block,
    lines: Vec<Line>,
    /// Per set: the way used last (the other is the victim).
    recent: [u8; SETS],
}

/// The root disk as a `noa_ext2::BlockDevice`.
pub struct Disk {
    inner: Mutex<DiskInner>,
    len: u64,
}

impl Disk {
    fn new(block: Block) -> Disk {
        let len = block.capacity_sectors().saturating_mul(SECTOR);
        let lines = (0..SETS * WAYS)
            .map(|_| Line {
                tag: u64::MAX,
                len: 0,
                data: Box::default(),
            })
            .collect();
        Disk {
            inner: Mutex::new(DiskInner {
                block,
                lines,
                recent: [0; SETS],
            }),
            len,
        }
    }
}

impl DiskInner {
    /// The cache line holding device line `line`, filling it from the device on a miss.
    fn line(&mut self, line: u64, device_len: u64) -> Result<&Line, IoError> {
        let set = (line % SETS as u64) as usize;
        let base = set * WAYS;
        if let Some(way) = (0..WAYS).find(|&w| self.lines[base + w].tag == line) {
            self.recent[set] = way as u8;
            return Ok(&self.lines[base + way]);
        }
        let way = (usize::from(self.recent[set]) + 1) % WAYS;
        let start = line * LINE as u64;
        let len = device_len.saturating_sub(start).min(LINE as u64) as usize;
        if len == 0 {
            return Err(IoError::OutOfRange);
        }
        let slot = &mut self.lines[base + way];
        if slot.data.len() != LINE {
            slot.data = vec![0u8; LINE].into_boxed_slice();
        }
        slot.tag = u64::MAX;
        // The device length is whole sectors, so `len` is too.
        self.block
            .read(start / SECTOR, &mut slot.data[..len])
            .map_err(|_| IoError::Errno(Errno::EIO.0))?;
        slot.tag = line;
        slot.len = len;
        self.recent[set] = way as u8;
        Ok(&self.lines[base + way])
    }

    /// Copies `buf.len()` bytes at `offset` out of the cache.
    fn cached_read(&mut self, offset: u64, buf: &mut [u8], device_len: u64) -> Result<(), IoError> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let line = self.line(at / LINE as u64, device_len)?;
            let in_line = (at % LINE as u64) as usize;
            let n = (line.len.saturating_sub(in_line)).min(buf.len() - done);
            if n == 0 {
                return Err(IoError::OutOfRange);
            }
            buf[done..done + n].copy_from_slice(&line.data[in_line..in_line + n]);
            done += n;
        }
        Ok(())
    }
}

impl BlockDevice for Disk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len)
            .ok_or(IoError::OutOfRange)?;
        let mut inner = self.inner.lock();
        // Split into an unaligned head, a sector-aligned middle and an unaligned tail; a long
        // enough middle goes straight from the device into `buf`.
        let head = ((SECTOR - offset % SECTOR) % SECTOR).min(buf.len() as u64) as usize;
        let tail = ((end % SECTOR) as usize).min(buf.len() - head);
        let middle = buf.len() - head - tail;
        if middle < DIRECT_MIN {
            return inner.cached_read(offset, buf, self.len);
        }
        let (head_buf, rest) = buf.split_at_mut(head);
        let (middle_buf, tail_buf) = rest.split_at_mut(middle);
        if head > 0 {
            inner.cached_read(offset, head_buf, self.len)?;
        }
        inner
            .block
            .read((offset + head as u64) / SECTOR, middle_buf)
            .map_err(|_| IoError::Errno(Errno::EIO.0))?;
        if tail > 0 {
            inner.cached_read(end - tail as u64, tail_buf, self.len)?;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

struct NameEntry {
    dir: u32,
    name: Box<[u8]>,
    ino: Option<u32>,
}

/// A mounted ext2 file system.
pub struct Ext2Fs {
    fs: Ext2<Disk>,
    names: Mutex<Vec<Option<NameEntry>>>,
    inodes: Mutex<Vec<Option<Arc<Ext2Inode>>>>,
}

/// The errno for a reader error.
fn errno(e: noa_ext2::Error) -> Errno {
    use noa_ext2::Error as E;
    match e {
        E::NotFound => Errno::ENOENT,
        E::NameTooLong => Errno::ENAMETOOLONG,
        E::NotADirectory { .. } => Errno::ENOTDIR,
        E::NotARegularFile {
            file_type: FileType::Directory,
            ..
        } => Errno::EISDIR,
        E::NotARegularFile { .. } | E::NotASymlink { .. } => Errno::EINVAL,
        // Linux's EFSCORRUPTED.
        E::Corrupt(_) => Errno::EUCLEAN,
        E::Unsupported(_) => Errno::EOPNOTSUPP,
        _ => Errno::EIO,
    }
}

fn name_hash(dir: u32, name: &[u8]) -> usize {
    // FNV-1a: a few instructions per byte.
    let mut h: u32 = 0x811c_9dc5 ^ dir;
    for &b in name {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h as usize) % NAME_SLOTS
}

impl Ext2Fs {
    /// Opens the disk and the file system on it.
    pub fn mount(device: Device) -> Result<Arc<Ext2Fs>, String> {
        let block = Block::open(device).map_err(|e| format!("{e}"))?;
        let fs = Ext2::open(Disk::new(block)).map_err(|e| format!("{e}"))?;
        Ok(Arc::new(Ext2Fs {
            fs,
            names: Mutex::new((0..NAME_SLOTS).map(|_| None).collect()),
            inodes: Mutex::new((0..INODE_SLOTS).map(|_| None).collect()),
        }))
    }

    pub fn root(self: &Arc<Self>) -> InodeRef {
        match self.inode(InodeNo::ROOT) {
            Ok(root) => root,
            // Ext2::open checked the root; an I/O error since then leaves an empty tmpfs.
            Err(_) => super::tmpfs::TmpFs::new().root(),
        }
    }

    fn inode(self: &Arc<Self>, ino: InodeNo) -> SysResult<InodeRef> {
        let slot = ino.get() as usize % INODE_SLOTS;
        if let Some(cached) = self.inodes.lock()[slot]
            .as_ref()
            .filter(|i| i.raw.ino() == ino)
        {
            return Ok(cached.clone());
        }
        let raw = self.fs.inode(ino).map_err(errno)?;
        let inode = Arc::new(Ext2Inode {
            fs: self.clone(),
            raw,
        });
        self.inodes.lock()[slot] = Some(inode.clone());
        Ok(inode)
    }

    /// Looks `name` up in `dir`, through the name cache.
    fn lookup(&self, dir: &noa_ext2::Inode, name: &[u8]) -> SysResult<Option<InodeNo>> {
        let dir_no = dir.ino().get();
        let slot = name_hash(dir_no, name);
        if let Some(entry) = self.names.lock()[slot]
            .as_ref()
            .filter(|e| e.dir == dir_no && *e.name == *name)
        {
            return Ok(entry.ino.map(InodeNo::new));
        }
        let found = self.fs.lookup(dir, name).map_err(errno)?;
        self.names.lock()[slot] = Some(NameEntry {
            dir: dir_no,
            name: name.into(),
            ino: found.map(InodeNo::get),
        });
        Ok(found)
    }
}

/// An ext2 inode, as read at lookup (the image does not change while mounted).
pub struct Ext2Inode {
    fs: Arc<Ext2Fs>,
    raw: noa_ext2::Inode,
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

impl Inode for Ext2Inode {
    fn id(&self) -> InodeId {
        (DEV, u64::from(self.raw.ino().get()))
    }

    fn kind(&self) -> FileKind {
        kind_of(self.raw.file_type())
    }

    fn stat(&self) -> SysResult<Stat> {
        let raw = &self.raw;
        let time = |sec: i64| Timespec { sec, nsec: 0 };
        Ok(Stat {
            dev: DEV,
            ino: u64::from(raw.ino().get()),
            nlink: u64::from(raw.links()),
            mode: u32::from(raw.mode()),
            uid: raw.uid(),
            gid: raw.gid(),
            rdev: raw.rdev().map_or(0, |d| d.encode()),
            size: raw.size().min(i64::MAX as u64) as i64,
            blksize: self.fs.fs.block_size() as i64,
            blocks: raw.blocks() as i64,
            atime: time(raw.atime()),
            mtime: time(raw.mtime()),
            ctime: time(raw.ctime()),
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        let s = self.fs.fs.statfs();
        Ok(Statfs {
            f_type: EXT2_SUPER_MAGIC,
            bsize: s.block_size as i64,
            blocks: s.blocks,
            bfree: s.free_blocks,
            bavail: s.available_blocks,
            files: s.inodes,
            ffree: s.free_inodes,
            fsid: [0xfe00, 0],
            namelen: s.name_max as i64,
            frsize: s.block_size as i64,
            flags: ST_RDONLY,
        })
    }

    fn read_at(&self, offset: u64, buf: &mut ReadBuf<'_>, _io: Io) -> SysResult<usize> {
        match self.raw.file_type() {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        if offset >= self.raw.size() || buf.is_empty() {
            return Ok(0);
        }
        buf.fill_via_kernel(|at, slice| {
            self.fs
                .fs
                .read(&self.raw, offset + at, slice)
                .map_err(errno)
        })
    }

    fn size(&self) -> u64 {
        self.raw.size()
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        if self.raw.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let ino = self.fs.lookup(&self.raw, name)?.ok_or(Errno::ENOENT)?;
        self.fs.inode(ino)
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        if self.raw.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        self.fs
            .fs
            .read_dir_from(&self.raw, offset, |entry| {
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
        self.fs.fs.read_link(&self.raw).map_err(errno)
    }

    fn read_only(&self) -> bool {
        true
    }
}
