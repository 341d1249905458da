//! The file layer (VFS): what every file is to the kernel ([`Inode`]), open files shared by
//! dup and fork ([`OpenFile`]), per-process descriptor tables ([`fd::FdTable`]) and path
//! contexts ([`FsContext`]), path resolution and the mount table ([`path`]), and the file
//! systems and special files under them: the ext2 root ([`ext2`]), /dev ([`devfs`]), /tmp and
//! /dev/shm ([`tmpfs`]), /proc ([`procfs`]), /sys ([`sysfs`]), the console tty ([`tty`]),
//! pipes, eventfd, poll and epoll.
//!
//! The core calls [`init`] once at boot (it mounts everything and opens the consoles), gives
//! init [`stdio`] as fds 0–2, loads programs from [`open_exec`] with [`OpenFile::read_at`], and
//! the syscall layer (`syscall/{file,path,poll}.rs`) does the rest through the types here.
//!
//! Ring 0 is slow here (every instruction emulated, memcpy ~12 MB/s): file systems copy straight
//! between their storage and user memory ([`iobuf`]), metadata is cached (ext2 block cache and
//! name cache), and nothing is zeroed or copied that need not be.
//!
//! Owns: `fs/`. Must not touch the task or memory core beyond `crate::task::{current, wait,
//! signal}` and `crate::mm::uaccess`; procfs reads (never changes) processes, threads and
//! memory maps through their accessors.

pub mod devfs;
pub mod epoll;
pub mod eventfd;
pub mod ext2;
pub mod fd;
pub mod file;
pub mod flock;
pub mod iobuf;
pub mod path;
pub mod pipe;
pub mod poll;
pub mod procfs;
pub mod ring;
pub mod sysfs;
pub mod tmpfs;
pub mod tty;
pub mod volumes;

pub use fd::FdTable;
pub use file::{FileRef, OpenFile};
pub use iobuf::{ReadBuf, WriteBuf};
pub use path::FsContext;
pub use poll::Pollee;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use hal_pv::virtio::{Device, Kind};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::fcntl::{O_RDONLY, O_WRONLY};
use noa_linux_abi::io::{POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use noa_linux_abi::stat::{
    S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, Stat, Statfs,
};
use noa_linux_abi::time::Timespec;

/// A file as the kernel knows it, shared by every open file and name that refers to it.
pub type InodeRef = Arc<dyn Inode>;

/// The longest path a system call accepts (with its NUL: `PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// The longest name of one path component.
pub const NAME_MAX: usize = 255;

/// What kind of file an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileKind {
    /// The `S_IFMT` bits.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileKind::Regular => S_IFREG,
            FileKind::Directory => S_IFDIR,
            FileKind::Symlink => S_IFLNK,
            FileKind::CharDevice => S_IFCHR,
            FileKind::BlockDevice => S_IFBLK,
            FileKind::Fifo => S_IFIFO,
            FileKind::Socket => S_IFSOCK,
        }
    }

    /// `d_type` of a `linux_dirent64`.
    pub const fn dirent_type(self) -> u8 {
        (self.mode_bits() >> 12) as u8
    }
}

/// Identity of an inode: (device, inode number), as `stat` reports them.
pub type InodeId = (u64, u64);

/// One directory entry handed to a [`Inode::readdir`] sink: its name, inode number, `d_type`
/// (0: unknown) and the offset at which the listing resumes after it (`d_off`).
pub struct DirEntry<'a> {
    pub name: &'a [u8],
    pub ino: u64,
    pub d_type: u8,
    pub next: u64,
}

/// Attribute changes for [`Inode::set_attr`]: each `Some` field is set, and ctime with it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    /// Permission bits (and set-id/sticky).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
}

/// How a read or write may behave.
#[derive(Clone, Copy, Debug, Default)]
pub struct Io {
    /// O_NONBLOCK: EAGAIN instead of sleeping.
    pub nonblock: bool,
}

/// Readiness bits as poll reports them (epoll uses the same low bits).
pub const READY_IN: u32 = (POLLIN | POLLRDNORM) as u32;
pub const READY_OUT: u32 = (POLLOUT | POLLWRNORM) as u32;

/// A file: regular file, directory, symlink, device, pipe end, eventfd, epoll instance.
///
/// Methods a kind of file does not support have defaults that give the errno Linux gives.
/// Implementations are shared by many threads at once and guard their own state; none may hold
/// a spin lock while it sleeps.
pub trait Inode: Any + Send + Sync {
    /// (device, inode number): equal for the same file, whatever name reached it.
    fn id(&self) -> InodeId;

    fn kind(&self) -> FileKind;

    fn stat(&self) -> SysResult<Stat>;

    fn statfs(&self) -> SysResult<Statfs>;

    /// Reads into `buf` from `offset` (ignored by unseekable files); returns the bytes read, 0 at
    /// the end of file.
    fn read_at(&self, _offset: u64, _buf: &mut ReadBuf<'_>, _io: Io) -> SysResult<usize> {
        Err(match self.kind() {
            FileKind::Directory => Errno::EISDIR,
            _ => Errno::EINVAL,
        })
    }

    /// Writes `buf` at `offset`; returns the bytes written.
    fn write_at(&self, _offset: u64, _buf: &WriteBuf<'_>, _io: Io) -> SysResult<usize> {
        Err(match self.kind() {
            FileKind::Directory => Errno::EISDIR,
            _ => Errno::EINVAL,
        })
    }

    /// Writes `buf` at the end of the file (O_APPEND), atomically with respect to other
    /// appends; returns the bytes written and the new end of file.
    fn append(&self, buf: &WriteBuf<'_>, io: Io) -> SysResult<(usize, u64)> {
        let written = self.write_at(0, buf, io)?;
        Ok((written, 0))
    }

    /// Whether the file has a position (lseek, pread); false gives ESPIPE.
    fn seekable(&self) -> bool {
        true
    }

    /// Size for SEEK_END.
    fn size(&self) -> u64 {
        self.stat().map_or(0, |s| s.size.max(0) as u64)
    }

    /// The inode `name` (one component, not `.` or `..` unless the file system stores them)
    /// names in this directory.
    fn lookup(&self, _name: &[u8]) -> SysResult<InodeRef> {
        Err(Errno::ENOTDIR)
    }

    /// The parent directory (`..`), for directories; the root of a file system returns itself
    /// (the mount table then steps out of the mount).
    fn parent(&self) -> SysResult<InodeRef> {
        self.lookup(b"..")
    }

    /// Lists entries from `offset` (0: the start), handing each to `sink` until it returns
    /// false (that entry was not taken). Returns the offset to resume from.
    fn readdir(
        &self,
        _offset: u64,
        _sink: &mut dyn FnMut(&DirEntry<'_>) -> bool,
    ) -> SysResult<u64> {
        Err(Errno::ENOTDIR)
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        Err(Errno::EINVAL)
    }

    /// Creates `name` in this directory: a regular file, directory or fifo with permission
    /// bits `mode`. EEXIST if the name exists.
    fn create(&self, _name: &[u8], _kind: FileKind, _mode: u32) -> SysResult<InodeRef> {
        Err(self.read_only_or_not_dir())
    }

    fn symlink(&self, _name: &[u8], _target: &[u8]) -> SysResult<()> {
        Err(self.read_only_or_not_dir())
    }

    /// Adds a hard link `name` to `target` (same file system).
    fn link(&self, _name: &[u8], _target: &InodeRef) -> SysResult<()> {
        Err(self.read_only_or_not_dir())
    }

    /// Removes `name`: a directory (which must be empty) if `dir`, else anything but one.
    fn unlink(&self, _name: &[u8], _dir: bool) -> SysResult<()> {
        Err(self.read_only_or_not_dir())
    }

    /// Moves `old_name` of this directory to `new_name` in `new_dir` (same file system, else
    /// EXDEV), replacing what is there as rename(2) allows.
    fn rename(
        &self,
        _old_name: &[u8],
        _new_dir: &InodeRef,
        _new_name: &[u8],
        _noreplace: bool,
    ) -> SysResult<()> {
        Err(self.read_only_or_not_dir())
    }

    fn truncate(&self, _size: u64) -> SysResult<()> {
        Err(match self.kind() {
            FileKind::Directory => Errno::EISDIR,
            FileKind::Regular => Errno::EROFS,
            _ => Errno::EINVAL,
        })
    }

    /// Changes what `attr` names (chmod, chown, utimensat). Files without stored attributes
    /// (devices, pipes) accept and forget the change, as Linux's do for their in-memory inode.
    fn set_attr(&self, _attr: &SetAttr) -> SysResult<()> {
        if self.read_only() {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// Preallocates `[offset, offset + len)` (fallocate mode 0 or KEEP_SIZE): later writes
    /// there cannot fail for lack of space. EOPNOTSUPP where the file system cannot.
    fn allocate(&self, _offset: u64, _len: u64, _keep_size: bool) -> SysResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// Fills `pages` — whole 4 KiB pages from `offset` (page aligned), in one kernel buffer —
    /// with the file's bytes, zeros past its end. File systems that can do better than reads
    /// through `read_at` override it (ext2: device requests straight into the buffer).
    fn read_pages(&self, offset: u64, pages: &mut [u8]) -> SysResult<()> {
        let mut filled = 0;
        while filled < pages.len() {
            let mut buf = ReadBuf::Kernel(&mut pages[filled..]);
            let n = self.read_at(offset + filled as u64, &mut buf, Io::default())?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        pages[filled..].fill(0);
        Ok(())
    }

    /// The key under which the page cache shares this file's pages between every mapping of
    /// it ([`crate::mm::page_cache`]); None: each fault reads a private copy of the page.
    fn cache_key(&self) -> Option<InodeId> {
        None
    }

    /// Writes a page-cache page back to storage: `data` is the file's content at `offset`
    /// (page aligned), clipped to the file size by the caller. Only files with a
    /// [`cache_key`](Self::cache_key) are asked.
    fn write_back(&self, _offset: u64, _data: &[u8]) -> SysResult<()> {
        Ok(())
    }

    /// Whether writes through this name are refused because the file system is read-only.
    fn read_only(&self) -> bool {
        false
    }

    /// Refuses an open for writing before the file is opened (sysfs attributes: EACCES even for
    /// root, as Linux's kernfs). Files whose writes fail at write time keep the default.
    fn check_open_for_write(&self) -> SysResult<()> {
        Ok(())
    }

    /// Readiness now (POLLIN/POLLOUT/POLLERR/POLLHUP bits). Files that are always ready (regular
    /// files, directories) keep the default.
    fn poll(&self) -> u32 {
        READY_IN | READY_OUT
    }

    /// Where changes of readiness are announced; None for always-ready files.
    fn pollee(&self) -> Option<&Pollee> {
        None
    }

    /// A device-specific request (tty ioctls); ENOTTY for anything else.
    fn ioctl(&self, _file: &OpenFile, _cmd: u32, _arg: u64) -> SysResult<u64> {
        Err(Errno::ENOTTY)
    }

    /// Flushes written data to stable storage (fsync).
    fn sync(&self) -> SysResult<()> {
        Ok(())
    }

    /// What an open file of this inode is named in /proc/self/fd (pipes: `pipe:[N]`); None for
    /// files opened by path.
    fn anon_name(&self) -> Option<String> {
        None
    }

    #[doc(hidden)]
    fn read_only_or_not_dir(&self) -> Errno {
        if self.kind() != FileKind::Directory {
            Errno::ENOTDIR
        } else if self.read_only() {
            Errno::EROFS
        } else {
            Errno::EPERM
        }
    }
}

/// Downcasts an inode to its concrete type (an epoll instance, a tmpfs node).
pub fn downcast<T: Inode>(inode: &InodeRef) -> Option<Arc<T>> {
    let any: Arc<dyn Any + Send + Sync> = inode.clone();
    any.downcast::<T>().ok()
}

/// The time for file timestamps.
pub fn now() -> Timespec {
    Timespec::from_nanos(hal_pv::time::realtime_ns())
}

/// Devices found at boot and not used by the file layer (network, vsock, …), for the core to
/// hand to their drivers.
pub fn init(cmdline: &str) -> Vec<Device> {
    init_from(
        hal_pv::virtio::discover(cmdline),
        &volumes::from_cmdline(cmdline),
    )
}

/// [`init`] over devices already discovered: takes the first disk (the root), one more disk
/// per volume, the first two consoles (hvc0: stdin+stdout, hvc1: stderr) and the first entropy
/// source; returns the rest.
pub fn init_from(devices: Vec<Device>, volumes: &[volumes::Volume]) -> Vec<Device> {
    let mut rest = Vec::new();
    let (mut disk, mut consoles, mut rng) = (None, Vec::new(), None);
    let mut volume_disks = Vec::new();
    for device in devices {
        match device.kind {
            Kind::Block if disk.is_none() => disk = Some(device),
            Kind::Block if volume_disks.len() < volumes.len() => volume_disks.push(device),
            Kind::Console if consoles.len() < 2 => consoles.push(device),
            Kind::Entropy if rng.is_none() => rng = Some(device),
            _ => rest.push(device),
        }
    }
    let mut consoles = consoles.into_iter();
    tty::init(consoles.next(), consoles.next());
    devfs::init_random(rng);
    let root: InodeRef = match disk.map(|d| ext2::Ext2Fs::mount(d, ext2::ROOT_DEV, false)) {
        Some(Ok(fs)) => fs.root(),
        Some(Err(why)) => {
            hal_pv::println!("fs: root disk not mounted ({why}); the root is an empty tmpfs");
            tmpfs::TmpFs::new().root()
        }
        None => {
            hal_pv::println!("fs: no disk; the root is an empty tmpfs");
            tmpfs::TmpFs::new().root()
        }
    };
    path::set_root(root.clone());
    let dev = devfs::root();
    path::mount(&root, b"dev", dev.clone());
    path::mount(&dev, b"shm", tmpfs::TmpFs::new().root());
    path::mount(&root, b"tmp", tmpfs::TmpFs::new().root());
    path::mount(&root, b"proc", procfs::root());
    path::mount(&root, b"sys", sysfs::root());
    for (index, (disk, volume)) in volume_disks.into_iter().zip(volumes).enumerate() {
        volumes::mount(index + 1, disk, volume);
    }
    rest
}

/// `sync(2)`: everything written reaches stable storage.
pub fn sync_all() -> SysResult<()> {
    ext2::sync_all()
}

/// Power-off: everything written reaches the disks, which are left clean.
pub fn unmount_all() {
    ext2::unmount_all()
}

/// Whether [`init`] has run.
#[allow(dead_code)] // for the ktest hook
pub fn initialized() -> bool {
    path::root_if_mounted().is_some()
}

/// init's fds 0, 1 and 2: the console tty for reading (hvc0), for writing (hvc0) and the error
/// port (hvc1), each falling back as [`tty`] describes.
pub fn stdio() -> [FileRef; 3] {
    let (input, output, error) = tty::stdio_inodes();
    [
        OpenFile::new(input, O_RDONLY, b"/dev/console".to_vec()),
        OpenFile::new(output, O_WRONLY, b"/dev/console".to_vec()),
        OpenFile::new(error, O_WRONLY, b"/dev/console".to_vec()),
    ]
}

/// Opens `path` (absolute, or relative to the current process's cwd when there is one) for
/// execution: it must be a regular file with an execute bit (EACCES otherwise).
pub fn open_exec(path: &[u8]) -> SysResult<FileRef> {
    let found = path::resolve_named(path::Start::Cwd, path, true)?;
    let stat = found.inode.stat()?;
    match found.inode.kind() {
        FileKind::Regular => {}
        FileKind::Directory => return Err(Errno::EACCES),
        _ => return Err(Errno::EACCES),
    }
    if stat.mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(OpenFile::new(found.inode, O_RDONLY, found.path))
}

/// The in-guest self-check of the file layer (for the ktest list): reads /boot/cmdline from the
/// root, writes, reads back and unlinks a file in /tmp, and round-trips a pipe.
#[allow(dead_code)] // hooked into the ktest list by the core
pub fn self_test() -> Result<(), String> {
    use alloc::format;
    if !initialized() {
        return Err("fs::init has not run".into());
    }
    let io = Io::default();
    let root_dir = path::root();
    let root = path::Start::At(&root_dir, b"/");
    // The root file system.
    let cmdline = path::resolve_named(root, b"/boot/cmdline", true)
        .map_err(|e| format!("open /boot/cmdline: {e:?}"))?;
    let file = OpenFile::new(cmdline.inode, O_RDONLY, cmdline.path);
    let mut buf = alloc::vec![0u8; 4096];
    let n = file
        .read_at(0, &mut buf)
        .map_err(|e| format!("read /boot/cmdline: {e:?}"))?;
    if n == 0 {
        return Err("/boot/cmdline is empty".into());
    }
    // Names through symlinks and `..` resolve to the same file.
    let again = path::resolve_named(root, b"/tmp/../boot//./cmdline", true)
        .map_err(|e| format!("resolve with ..: {e:?}"))?;
    if again.path != b"/boot/cmdline" {
        return Err(format!(
            "canonical path {:?}",
            String::from_utf8_lossy(&again.path)
        ));
    }
    // tmpfs: create, write, read back, unlink.
    let tmp = path::resolve(root, b"/tmp", true).map_err(|e| format!("/tmp: {e:?}"))?;
    let name = b"fs-self-test";
    let created = tmp
        .inode
        .create(name, FileKind::Regular, 0o644)
        .map_err(|e| format!("create in /tmp: {e:?}"))?;
    let pattern: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let written = created
        .write_at(100, &WriteBuf::Kernel(&pattern), io)
        .map_err(|e| format!("write /tmp file: {e:?}"))?;
    if written != pattern.len() || created.size() != 100 + pattern.len() as u64 {
        return Err(format!("wrote {written}, size {}", created.size()));
    }
    let mut back = alloc::vec![0xffu8; 100 + pattern.len() + 10];
    let read = created
        .read_at(0, &mut ReadBuf::Kernel(&mut back), io)
        .map_err(|e| format!("read /tmp file: {e:?}"))?;
    if read != 100 + pattern.len()
        || back[..100].iter().any(|&b| b != 0)
        || back[100..read] != pattern[..]
    {
        return Err("/tmp file read back differs".into());
    }
    tmp.inode
        .unlink(name, false)
        .map_err(|e| format!("unlink: {e:?}"))?;
    if tmp.inode.lookup(name).is_ok() {
        return Err("the unlinked file is still there".into());
    }
    // The unlinked file lives on while referenced.
    if created.size() != 100 + pattern.len() as u64 {
        return Err("unlinked file lost its data".into());
    }
    // A pipe.
    let (reader, writer) = pipe::new_pipe();
    let sent = writer
        .write_at(0, &WriteBuf::Kernel(b"through the pipe"), io)
        .map_err(|e| format!("pipe write: {e:?}"))?;
    let mut got = [0u8; 32];
    let received = reader
        .read_at(0, &mut ReadBuf::Kernel(&mut got), io)
        .map_err(|e| format!("pipe read: {e:?}"))?;
    if sent != 16 || &got[..received] != b"through the pipe" {
        return Err("pipe round trip differs".into());
    }
    drop(writer);
    let eof = reader
        .read_at(0, &mut ReadBuf::Kernel(&mut got), io)
        .map_err(|e| format!("pipe read at EOF: {e:?}"))?;
    if eof != 0 {
        return Err("no EOF after the writer closed".into());
    }
    Ok(())
}
