//! /dev: a fixed directory of device nodes — null, zero, full, random, urandom, console and
//! tty (the console tty, [`super::tty`]) — plus the empty directories shm (a tmpfs is mounted
//! there) and pts.
//!
//! /dev/random and /dev/urandom read the virtio-rng device directly: it fills the buffer at host
//! speed, where a ChaCha20 generator in ring 0 would cost ~1 ms per 64-byte block here (every
//! instruction emulated). Without the device they fall back to xorshift64* seeded from the TSC —
//! not cryptographic, and the boot log says so. [`fill_random`] serves getrandom and AT_RANDOM
//! from the same source.
//!
//! /dev/stdin, /dev/stdout, /dev/stderr and /dev/fd are missing: they are symlinks into
//! /proc/self/fd, which does not exist yet.
//!
//! Owns: the device nodes and the entropy device.

use super::iobuf::PAGE;
use super::{DirEntry, FileKind, Inode, InodeId, InodeRef, Io, ReadBuf, WriteBuf};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use hal_pv::virtio::Device;
use hal_pv::virtio::misc::Rng;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{Stat, Statfs, makedev};
use spin::Mutex;

/// `st_dev` of devfs and the tty nodes.
pub const DEV: u64 = makedev(0, 5);
/// Linux's `TMPFS_MAGIC` is what devtmpfs reports too.
const DEVFS_MAGIC: i64 = noa_linux_abi::stat::TMPFS_MAGIC;

static RNG: Mutex<Option<Rng>> = Mutex::new(None);
static XORSHIFT: AtomicU64 = AtomicU64::new(0);

/// Takes the entropy device (or notes its absence).
pub fn init_random(device: Option<Device>) {
    match device.map(Rng::open) {
        Some(Ok(rng)) => *RNG.lock() = Some(rng),
        Some(Err(e)) => hal_pv::println!(
            "devfs: virtio-rng not opened ({e}); /dev/urandom is not cryptographic"
        ),
        None => hal_pv::println!("devfs: no virtio-rng; /dev/urandom is not cryptographic"),
    }
}

/// Fills `buf` with random bytes: from the entropy device, else from xorshift64*.
pub fn fill_random(buf: &mut [u8]) {
    if let Some(rng) = RNG.lock().as_mut()
        && rng.fill(buf).is_ok()
    {
        return;
    }
    let mut state = XORSHIFT.load(Ordering::Relaxed);
    if state == 0 {
        state = hal_pv::cpu::rdtsc() | 1;
    }
    for chunk in buf.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    XORSHIFT.store(state, Ordering::Relaxed);
}

pub fn statfs() -> SysResult<Statfs> {
    Ok(Statfs {
        f_type: DEVFS_MAGIC,
        bsize: PAGE as i64,
        namelen: 255,
        frsize: PAGE as i64,
        fsid: [DEV as i32, 0],
        ..Statfs::default()
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
}

/// Directory entries: name, inode number, what it is.
enum Entry {
    Device(Node, u32, u32),
    Tty,
    Dir,
}

const ENTRIES: &[(&[u8], u64, Entry)] = &[
    (b"null", 10, Entry::Device(Node::Null, 1, 3)),
    (b"zero", 11, Entry::Device(Node::Zero, 1, 5)),
    (b"full", 12, Entry::Device(Node::Full, 1, 7)),
    (b"random", 13, Entry::Device(Node::Random, 1, 8)),
    (b"urandom", 14, Entry::Device(Node::Urandom, 1, 9)),
    (b"console", 2, Entry::Tty),
    (b"tty", 2, Entry::Tty),
    (b"shm", 20, Entry::Dir),
    (b"pts", 21, Entry::Dir),
];

/// The root of /dev.
pub fn root() -> InodeRef {
    Arc::new(DevDir { ino: 1 })
}

struct DevDir {
    ino: u64,
}

struct DevNode {
    node: Node,
    ino: u64,
    rdev: u64,
}

fn dir_stat(ino: u64) -> Stat {
    Stat {
        dev: DEV,
        ino,
        nlink: 2,
        mode: FileKind::Directory.mode_bits() | 0o755,
        blksize: PAGE as i64,
        ..Stat::default()
    }
}

impl Inode for DevDir {
    fn id(&self) -> InodeId {
        (DEV, self.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::Directory
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(dir_stat(self.ino))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        statfs()
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        if self.ino != 1 {
            // shm and pts are empty (a mount covers shm).
            return match name {
                b"." => Ok(Arc::new(DevDir { ino: self.ino })),
                b".." => Ok(root()),
                _ => Err(Errno::ENOENT),
            };
        }
        if name == b"." || name == b".." {
            return Ok(root());
        }
        let (_, ino, entry) = ENTRIES
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or(Errno::ENOENT)?;
        Ok(match entry {
            Entry::Device(node, major, minor) => Arc::new(DevNode {
                node: *node,
                ino: *ino,
                rdev: makedev(*major, *minor),
            }),
            Entry::Tty => super::tty::console(),
            Entry::Dir => Arc::new(DevDir { ino: *ino }),
        })
    }

    fn parent(&self) -> SysResult<InodeRef> {
        Ok(root())
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        let dir_type = FileKind::Directory.dirent_type();
        let mut at = offset;
        let listed: &[(&[u8], u64, Entry)] = if self.ino == 1 { ENTRIES } else { &[] };
        loop {
            let entry = match at {
                0 => DirEntry {
                    name: b".",
                    ino: self.ino,
                    d_type: dir_type,
                    next: 1,
                },
                1 => DirEntry {
                    name: b"..",
                    ino: 1,
                    d_type: dir_type,
                    next: 2,
                },
                _ => {
                    let Some((name, ino, entry)) = listed.get((at - 2) as usize) else {
                        return Ok(at);
                    };
                    let kind = match entry {
                        Entry::Device(..) | Entry::Tty => FileKind::CharDevice,
                        Entry::Dir => FileKind::Directory,
                    };
                    DirEntry {
                        name,
                        ino: *ino,
                        d_type: kind.dirent_type(),
                        next: at + 1,
                    }
                }
            };
            if !sink(&entry) {
                return Ok(at);
            }
            at += 1;
        }
    }
}

impl Inode for DevNode {
    fn id(&self) -> InodeId {
        (DEV, self.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::CharDevice
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: DEV,
            ino: self.ino,
            nlink: 1,
            mode: FileKind::CharDevice.mode_bits() | 0o666,
            rdev: self.rdev,
            blksize: PAGE as i64,
            ..Stat::default()
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        statfs()
    }

    fn read_at(&self, _offset: u64, buf: &mut ReadBuf<'_>, _io: Io) -> SysResult<usize> {
        let len = buf.len();
        match self.node {
            Node::Null => Ok(0),
            Node::Zero | Node::Full => {
                buf.zero(0, len)?;
                Ok(len)
            }
            Node::Random | Node::Urandom => buf.fill_via_kernel(|_, slice| {
                fill_random(slice);
                Ok(slice.len())
            }),
        }
    }

    fn write_at(&self, _offset: u64, buf: &WriteBuf<'_>, _io: Io) -> SysResult<usize> {
        match self.node {
            Node::Full => Err(Errno::ENOSPC),
            _ => Ok(buf.len()),
        }
    }

    fn size(&self) -> u64 {
        0
    }
}
