//! procfs, mounted at /proc: a directory per process (`/proc/<pid>/`, see [`pid_dir`]), the
//! `self` and `thread-self` links, and the system files programs read — `cpuinfo`, `meminfo`,
//! `mounts` (a link to `self/mounts`, as in Linux), `stat`, `uptime` and `cmdline`.
//!
//! Nothing is stored: every lookup makes a fresh node that names what it shows (a pid, a tid,
//! an fd), and the content is generated when it is read ([`node::TextFile`]), from the task and
//! memory cores' read-only accessors. A process that has gone makes its files read ESRCH and its
//! names ENOENT.
//!
//! Inode numbers: the root is 1, /proc's own entries 2.., a process's nodes
//! `pid << 32 | extra << 8 | slot` (see [`pid_ino`]).
//!
//! Owns: the /proc name space. Reads, never changes, tasks and memory maps.

mod boot_cmdline;
mod cmdline;
mod cpuinfo;
mod fd_dir;
mod kernel_stat;
mod maps;
mod meminfo;
mod mounts;
pub mod node;
mod pid_dir;
mod pid_stat;
mod status;
mod task_info;
pub mod text;

pub use boot_cmdline::set as set_boot_cmdline;

use crate::fs::{DirEntry, FileKind, Inode, InodeId, InodeRef};
use crate::task::{Process, Thread};
use alloc::sync::Arc;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{PROC_SUPER_MAGIC, Stat, Statfs, makedev};
use node::{FsInfo, Link, Listed, Name, TextFile};
use text::TextBuf;

/// `st_dev` and magic of /proc (Linux's procfs is 0:21 on most systems too).
pub static PROC: FsInfo = FsInfo {
    dev: makedev(0, 21),
    magic: PROC_SUPER_MAGIC,
};

const ROOT_INO: u64 = 1;
/// Listing keys of the process directories: this plus the pid (past /proc's own entries).
const PID_KEY_BASE: u64 = 256;

/// An inode number for a node of process `pid`: `extra` is a tid or fd, `slot` which entry.
pub fn pid_ino(pid: u32, extra: u32, slot: u8) -> u64 {
    (u64::from(pid) << 32) | (u64::from(extra & 0x00ff_ffff) << 8) | u64::from(slot)
}

/// The root of /proc.
pub fn root() -> InodeRef {
    Arc::new(ProcRoot)
}

/// What an entry of /proc itself is.
#[derive(Clone, Copy)]
enum RootEntry {
    SelfLink,
    ThreadSelfLink,
    MountsLink,
    File(fn() -> SysResult<node::Text>),
}

const ROOT_ENTRIES: &[(&[u8], RootEntry)] = &[
    (b"self", RootEntry::SelfLink),
    (b"thread-self", RootEntry::ThreadSelfLink),
    (b"cpuinfo", RootEntry::File(cpuinfo::generate)),
    (b"meminfo", RootEntry::File(meminfo::generate)),
    (b"mounts", RootEntry::MountsLink),
    (b"stat", RootEntry::File(kernel_stat::generate_stat)),
    (b"uptime", RootEntry::File(kernel_stat::generate_uptime)),
    (b"cmdline", RootEntry::File(boot_cmdline::generate)),
];

impl RootEntry {
    fn kind(self) -> FileKind {
        match self {
            RootEntry::File(_) => FileKind::Regular,
            _ => FileKind::Symlink,
        }
    }

    fn node(self, ino: u64) -> InodeRef {
        match self {
            RootEntry::SelfLink => Link::inode(
                &PROC,
                ino,
                0o777,
                alloc::boxed::Box::new(|| {
                    let me = caller()?;
                    let mut out = TextBuf::with_capacity(12);
                    out.num(u64::from(me.process.pid));
                    Ok(out.into_bytes())
                }),
            ),
            RootEntry::ThreadSelfLink => Link::inode(
                &PROC,
                ino,
                0o777,
                alloc::boxed::Box::new(|| {
                    let me = caller()?;
                    let mut out = TextBuf::with_capacity(24);
                    out.num(u64::from(me.process.pid))
                        .str("/task/")
                        .num(u64::from(me.tid));
                    Ok(out.into_bytes())
                }),
            ),
            RootEntry::MountsLink => Link::inode(
                &PROC,
                ino,
                0o777,
                alloc::boxed::Box::new(|| Ok(b"self/mounts".to_vec())),
            ),
            RootEntry::File(generate) => TextFile::proc(
                &PROC,
                ino,
                0o444,
                Errno::EIO,
                alloc::boxed::Box::new(generate),
            ),
        }
    }
}

/// The thread asking (ENOENT when no process runs: boot, in-kernel tests).
fn caller() -> SysResult<Arc<Thread>> {
    crate::task::sched::try_current().ok_or(Errno::ENOENT)
}

/// The process `pid` (zombies included); ESRCH once it is gone.
pub fn process(pid: u32) -> SysResult<Arc<Process>> {
    crate::task::process::find(pid).ok_or(Errno::ESRCH)
}

/// The process that has a thread `tid` (other than its first, which has the process's ID).
fn process_of_thread(tid: u32) -> Option<Arc<Process>> {
    crate::task::process::all()
        .into_iter()
        .find(|p| p.threads.lock().iter().any(|t| t.tid == tid))
}

struct ProcRoot;

impl Inode for ProcRoot {
    fn id(&self) -> InodeId {
        (PROC.dev, ROOT_INO)
    }

    fn kind(&self) -> FileKind {
        FileKind::Directory
    }

    fn stat(&self) -> SysResult<Stat> {
        let processes = crate::task::process::pids().len() as u64;
        Ok(node::dir_stat(&PROC, ROOT_INO, 0o555, 2 + processes))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(node::statfs(&PROC))
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        if name == b"." || name == b".." {
            return Ok(root());
        }
        if let Some(index) = ROOT_ENTRIES.iter().position(|(n, _)| *n == name) {
            let (_, entry) = ROOT_ENTRIES[index];
            return Ok(entry.node(2 + index as u64));
        }
        let id = node::parse_number(name).ok_or(Errno::ENOENT)?;
        if crate::task::process::find(id).is_some() {
            return Ok(pid_dir::PidDir::process(id));
        }
        // Linux answers /proc/<tid> for any thread too (it is not listed).
        let owner = process_of_thread(id).ok_or(Errno::ENOENT)?;
        Ok(pid_dir::PidDir::thread(owner.pid, id))
    }

    fn parent(&self) -> SysResult<InodeRef> {
        Ok(root())
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        let own = ROOT_ENTRIES
            .iter()
            .enumerate()
            .map(|(i, (name, entry))| Listed {
                key: 2 + i as u64,
                name: Name::Text(name),
                ino: 2 + i as u64,
                kind: entry.kind(),
            });
        let first_pid = offset.saturating_sub(PID_KEY_BASE);
        let pids = crate::task::process::pids()
            .into_iter()
            .filter(|&pid| u64::from(pid) >= first_pid)
            .map(|pid| Listed {
                key: PID_KEY_BASE + u64::from(pid),
                name: Name::Number(u64::from(pid)),
                ino: pid_ino(pid, 0, 0),
                kind: FileKind::Directory,
            });
        node::list(offset, ROOT_INO, ROOT_INO, own.chain(pids), sink)
    }
}
