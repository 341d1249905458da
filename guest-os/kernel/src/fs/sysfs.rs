//! sysfs, mounted at /sys: only what programs read to size themselves —
//! `/sys/devices/system/cpu/{possible,present,online}` (a CPU list such as `0-2`; glibc's
//! `sysconf(_SC_NPROCESSORS_*)` and llama.cpp read them) and a `cpuN/` directory per CPU (what
//! older glibc counts).
//!
//! A fixed tree built of procfs's nodes ([`super::procfs::node`]); attributes are 0444 with
//! size 4096, and opening one for writing is EACCES even for root, as Linux's kernfs does.
//!
//! Owns: the /sys name space.

use super::procfs::node::{self, FsInfo, Listed, Name, TextFile, text_of};
use super::procfs::text::TextBuf;
use super::{DirEntry, FileKind, Inode, InodeId, InodeRef};
use alloc::sync::Arc;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{SYSFS_MAGIC, Stat, Statfs, makedev};

/// `st_dev` and magic of /sys (0:22, next to procfs's 0:21, as on most Linux systems).
pub static SYS: FsInfo = FsInfo {
    dev: makedev(0, 22),
    magic: SYSFS_MAGIC,
};

/// The root of /sys.
pub fn root() -> InodeRef {
    Arc::new(SysDir(Dir::Root))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Root,
    Devices,
    System,
    Cpu,
    /// `cpuN/`
    CpuN(u32),
}

/// The attributes of `cpu/`, with their inode numbers.
const CPU_FILES: &[(&[u8], u64)] = &[(b"online", 5), (b"possible", 6), (b"present", 7)];
/// Inode numbers of `cpuN/`: this plus N.
const CPU_DIR_INO: u64 = 0x100;

impl Dir {
    fn ino(self) -> u64 {
        match self {
            Dir::Root => 1,
            Dir::Devices => 2,
            Dir::System => 3,
            Dir::Cpu => 4,
            Dir::CpuN(n) => CPU_DIR_INO + u64::from(n),
        }
    }

    fn parent(self) -> Dir {
        match self {
            Dir::Root | Dir::Devices => Dir::Root,
            Dir::System => Dir::Devices,
            Dir::Cpu => Dir::System,
            Dir::CpuN(_) => Dir::Cpu,
        }
    }

    /// The one subdirectory of the fixed part of the tree.
    fn only_child(self) -> Option<(&'static [u8], Dir)> {
        match self {
            Dir::Root => Some((b"devices", Dir::Devices)),
            Dir::Devices => Some((b"system", Dir::System)),
            Dir::System => Some((b"cpu", Dir::Cpu)),
            Dir::Cpu | Dir::CpuN(_) => None,
        }
    }
}

fn cpu_count() -> u32 {
    hal_pv::smp::online_cpus().max(1)
}

/// The CPU list all three attributes show: every CPU is possible, present and online.
fn cpu_list() -> SysResult<Vec<u8>> {
    let count = cpu_count();
    let mut out = TextBuf::with_capacity(16);
    out.byte(b'0');
    if count > 1 {
        out.byte(b'-').num(u64::from(count - 1));
    }
    out.byte(b'\n');
    Ok(out.into_bytes())
}

struct SysDir(Dir);

impl Inode for SysDir {
    fn id(&self) -> InodeId {
        (SYS.dev, self.0.ino())
    }

    fn kind(&self) -> FileKind {
        FileKind::Directory
    }

    fn stat(&self) -> SysResult<Stat> {
        let subdirs = match self.0 {
            Dir::Cpu => u64::from(cpu_count()),
            Dir::CpuN(_) => 0,
            _ => 1,
        };
        Ok(node::dir_stat(&SYS, self.0.ino(), 0o755, 2 + subdirs))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(node::statfs(&SYS))
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        match name {
            b"." => return Ok(Arc::new(SysDir(self.0))),
            b".." => return self.parent(),
            _ => {}
        }
        if let Some((child_name, child)) = self.0.only_child() {
            return if name == child_name {
                Ok(Arc::new(SysDir(child)))
            } else {
                Err(Errno::ENOENT)
            };
        }
        if self.0 != Dir::Cpu {
            return Err(Errno::ENOENT);
        }
        if let Some(&(_, ino)) = CPU_FILES.iter().find(|(n, _)| *n == name) {
            return Ok(TextFile::sys(&SYS, ino, text_of(cpu_list)));
        }
        let cpu = name
            .strip_prefix(b"cpu")
            .and_then(node::parse_number)
            .filter(|&n| n < cpu_count())
            .ok_or(Errno::ENOENT)?;
        Ok(Arc::new(SysDir(Dir::CpuN(cpu))))
    }

    fn parent(&self) -> SysResult<InodeRef> {
        Ok(Arc::new(SysDir(self.0.parent())))
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        let (this, parent) = (self.0.ino(), self.0.parent().ino());
        let mut entries: Vec<Listed> = Vec::new();
        if let Some((name, child)) = self.0.only_child() {
            entries.push(Listed {
                key: 2,
                name: Name::Text(name),
                ino: child.ino(),
                kind: FileKind::Directory,
            });
        } else if self.0 == Dir::Cpu {
            for (i, (name, ino)) in CPU_FILES.iter().enumerate() {
                entries.push(Listed {
                    key: 2 + i as u64,
                    name: Name::Text(name),
                    ino: *ino,
                    kind: FileKind::Regular,
                });
            }
            let first_cpu_key = 2 + CPU_FILES.len() as u64;
            for cpu in 0..u64::from(cpu_count()) {
                entries.push(Listed {
                    key: first_cpu_key + cpu,
                    name: Name::Prefixed(b"cpu", cpu),
                    ino: CPU_DIR_INO + cpu,
                    kind: FileKind::Directory,
                });
            }
        }
        node::list(offset, this, parent, entries, sink)
    }
}
