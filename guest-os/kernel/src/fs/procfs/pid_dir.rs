//! `/proc/<pid>/` and `/proc/<pid>/task/<tid>/`: a process's (or one thread's) directory — the
//! links `exe`, `cwd`, `root`, the directory `fd/` ([`super::fd_dir`]), and the generated files
//! `cmdline`, `environ`, `comm`, `stat`, `statm`, `status`, `maps`, `mounts` — and `task/`, the
//! directory of its threads.
//!
//! A thread's directory has the same entries (but `task/`); the files show that thread where
//! they show one (`stat`, `status`), the process otherwise.

use super::node::{self, Link, Listed, Name, TextFile, text_of};
use super::{PROC, pid_ino, process};
use crate::fs::{DirEntry, FileKind, Inode, InodeId, InodeRef};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{Stat, Statfs};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Task,
    Fd,
    Exe,
    Cwd,
    Root,
    Cmdline,
    Environ,
    Comm,
    Stat,
    Statm,
    Status,
    Maps,
    Mounts,
}

/// The entries, in listing order; an entry's inode slot is its index + 1 (0 is the directory).
const ENTRIES: &[(&[u8], Entry)] = &[
    (b"task", Entry::Task),
    (b"fd", Entry::Fd),
    (b"exe", Entry::Exe),
    (b"cwd", Entry::Cwd),
    (b"root", Entry::Root),
    (b"cmdline", Entry::Cmdline),
    (b"environ", Entry::Environ),
    (b"comm", Entry::Comm),
    (b"stat", Entry::Stat),
    (b"statm", Entry::Statm),
    (b"status", Entry::Status),
    (b"maps", Entry::Maps),
    (b"mounts", Entry::Mounts),
];

impl Entry {
    fn kind(self) -> FileKind {
        match self {
            Entry::Task | Entry::Fd => FileKind::Directory,
            Entry::Exe | Entry::Cwd | Entry::Root => FileKind::Symlink,
            _ => FileKind::Regular,
        }
    }

    fn slot(index: usize) -> u8 {
        index as u8 + 1
    }
}

/// A process's directory, or one of its threads'.
pub struct PidDir {
    pid: u32,
    /// The thread shown, for a thread's directory.
    tid: Option<u32>,
    /// Reached through `/proc/<pid>/task/` (its `..` is that), not as `/proc/<tid>`.
    in_task_dir: bool,
}

impl PidDir {
    pub fn process(pid: u32) -> InodeRef {
        Arc::new(PidDir {
            pid,
            tid: None,
            in_task_dir: false,
        })
    }

    /// Thread `tid` of process `pid`, as `/proc/<tid>`.
    pub fn thread(pid: u32, tid: u32) -> InodeRef {
        Arc::new(PidDir {
            pid,
            tid: Some(tid),
            in_task_dir: false,
        })
    }

    fn extra(&self) -> u32 {
        self.tid.unwrap_or(0)
    }

    fn ino(&self) -> u64 {
        pid_ino(self.pid, self.extra(), 0)
    }

    /// The entries this directory has (a thread's has no `task/`).
    fn entries(&self) -> impl Iterator<Item = (usize, &'static [u8], Entry)> + '_ {
        ENTRIES
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| !(self.tid.is_some() && *e == Entry::Task))
            .map(|(i, (name, e))| (i, *name, *e))
    }

    fn node(&self, index: usize, entry: Entry) -> InodeRef {
        let (pid, tid) = (self.pid, self.tid);
        let ino = pid_ino(pid, self.extra(), Entry::slot(index));
        let file = |perm: u32, generate: node::GenerateText| {
            TextFile::proc(&PROC, ino, perm, Errno::EINVAL, generate)
        };
        match entry {
            Entry::Task => Arc::new(TaskDir { pid }),
            Entry::Fd => super::fd_dir::FdDir::inode(pid, self.extra(), self.ino()),
            Entry::Exe => Link::inode(&PROC, ino, 0o777, Box::new(move || exe_path(pid))),
            Entry::Cwd => Link::inode(
                &PROC,
                ino,
                0o777,
                Box::new(move || Ok(process(pid)?.fs.lock().cwd_path().to_vec())),
            ),
            Entry::Root => Link::inode(&PROC, ino, 0o777, Box::new(|| Ok(b"/".to_vec()))),
            Entry::Cmdline => file(0o444, text_of(move || super::cmdline::cmdline(pid))),
            Entry::Environ => file(0o400, text_of(move || super::cmdline::environ(pid))),
            Entry::Comm => file(
                0o644,
                text_of(move || {
                    let mut name = super::task_info::comm(&*process(pid)?);
                    name.push(b'\n');
                    Ok(name)
                }),
            ),
            Entry::Stat => file(0o444, text_of(move || super::pid_stat::stat(pid, tid))),
            Entry::Statm => file(0o444, text_of(move || super::pid_stat::statm(pid))),
            Entry::Status => file(0o444, text_of(move || super::status::generate(pid, tid))),
            Entry::Maps => file(0o444, text_of(move || super::maps::generate(pid))),
            Entry::Mounts => file(0o444, text_of(super::mounts::generate)),
        }
    }
}

/// The executable's path (ENOENT for a process without one: a zombie, or before exec).
fn exe_path(pid: u32) -> SysResult<Vec<u8>> {
    let exe = process(pid)?.mm().exec_info().exe.ok_or(Errno::ENOENT)?;
    Ok(exe.opened_path().to_vec())
}

impl Inode for PidDir {
    fn id(&self) -> InodeId {
        (PROC.dev, self.ino())
    }

    fn kind(&self) -> FileKind {
        FileKind::Directory
    }

    fn stat(&self) -> SysResult<Stat> {
        process(self.pid).map_err(|_| Errno::ENOENT)?;
        let subdirs = if self.tid.is_some() { 1 } else { 2 };
        Ok(node::dir_stat(&PROC, self.ino(), 0o555, 2 + subdirs))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(node::statfs(&PROC))
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        if name == b"." {
            return Ok(Arc::new(PidDir { ..*self }));
        }
        if name == b".." {
            return self.parent();
        }
        process(self.pid).map_err(|_| Errno::ENOENT)?;
        let (index, _, entry) = self
            .entries()
            .find(|(_, n, _)| *n == name)
            .ok_or(Errno::ENOENT)?;
        Ok(self.node(index, entry))
    }

    fn parent(&self) -> SysResult<InodeRef> {
        if self.in_task_dir {
            Ok(Arc::new(TaskDir { pid: self.pid }))
        } else {
            Ok(super::root())
        }
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        process(self.pid).map_err(|_| Errno::ENOENT)?;
        let parent = if self.in_task_dir {
            pid_ino(self.pid, 0, Entry::slot(0))
        } else {
            1
        };
        let entries = self.entries().map(|(index, name, entry)| Listed {
            key: 2 + index as u64,
            name: Name::Text(name),
            ino: pid_ino(self.pid, self.extra(), Entry::slot(index)),
            kind: entry.kind(),
        });
        node::list(offset, self.ino(), parent, entries, sink)
    }
}

/// `/proc/<pid>/task/`: a directory per live thread.
pub struct TaskDir {
    pid: u32,
}

impl TaskDir {
    fn ino(&self) -> u64 {
        pid_ino(self.pid, 0, Entry::slot(0))
    }

    fn tids(&self) -> SysResult<Vec<u32>> {
        let process = process(self.pid).map_err(|_| Errno::ENOENT)?;
        let mut tids: Vec<u32> = process.threads.lock().iter().map(|t| t.tid).collect();
        tids.sort_unstable();
        Ok(tids)
    }
}

impl Inode for TaskDir {
    fn id(&self) -> InodeId {
        (PROC.dev, self.ino())
    }

    fn kind(&self) -> FileKind {
        FileKind::Directory
    }

    fn stat(&self) -> SysResult<Stat> {
        let threads = self.tids()?.len() as u64;
        Ok(node::dir_stat(&PROC, self.ino(), 0o555, 2 + threads))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(node::statfs(&PROC))
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        match name {
            b"." => Ok(Arc::new(TaskDir { pid: self.pid })),
            b".." => self.parent(),
            _ => {
                let tid = node::parse_number(name).ok_or(Errno::ENOENT)?;
                if !self.tids()?.contains(&tid) {
                    return Err(Errno::ENOENT);
                }
                Ok(Arc::new(PidDir {
                    pid: self.pid,
                    tid: Some(tid),
                    in_task_dir: true,
                }))
            }
        }
    }

    fn parent(&self) -> SysResult<InodeRef> {
        Ok(PidDir::process(self.pid))
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        let entries = self.tids()?.into_iter().map(|tid| Listed {
            key: 2 + u64::from(tid),
            name: Name::Number(u64::from(tid)),
            ino: pid_ino(self.pid, tid, 0),
            kind: FileKind::Directory,
        });
        node::list(offset, self.ino(), pid_ino(self.pid, 0, 0), entries, sink)
    }
}
