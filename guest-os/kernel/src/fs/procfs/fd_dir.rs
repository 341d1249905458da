//! `/proc/<pid>/fd/`: a symlink per open descriptor, named by its number, pointing at what the
//! open file is — the path it was opened by, or `pipe:[N]`, `anon_inode:[eventfd]`, … for files
//! without one ([`crate::fs::OpenFile::path`]). The link's permission bits say how it is open
//! (r-x for reading, -wx for writing), as in Linux.
//!
//! Following such a link resolves its target path (opening `fd/N` of a pipe fails with ENOENT:
//! Linux's magic links that reopen the open file itself are not done).

use super::node::{self, Link, Listed, Name};
use super::{PROC, pid_ino, process};
use crate::fs::{DirEntry, FileKind, Inode, InodeId, InodeRef};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{Stat, Statfs};

/// The slot of the fd directory itself and of its links in [`pid_ino`].
const DIR_SLOT: u8 = 0x80;
const LINK_SLOT: u8 = 0x81;

pub struct FdDir {
    pid: u32,
    /// The tid of the thread directory it is in (0: the process's).
    extra: u32,
    parent_ino: u64,
}

impl FdDir {
    pub fn inode(pid: u32, extra: u32, parent_ino: u64) -> InodeRef {
        Arc::new(FdDir {
            pid,
            extra,
            parent_ino,
        })
    }

    fn ino(&self) -> u64 {
        pid_ino(self.pid, self.extra, DIR_SLOT)
    }

    fn fds(&self) -> SysResult<Vec<i32>> {
        let process = process(self.pid).map_err(|_| Errno::ENOENT)?;
        let table = process.files.lock();
        Ok(table.fds().map(|(fd, _)| fd).collect())
    }
}

impl Inode for FdDir {
    fn id(&self) -> InodeId {
        (PROC.dev, self.ino())
    }

    fn kind(&self) -> FileKind {
        FileKind::Directory
    }

    fn stat(&self) -> SysResult<Stat> {
        process(self.pid).map_err(|_| Errno::ENOENT)?;
        Ok(node::dir_stat(&PROC, self.ino(), 0o500, 2))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(node::statfs(&PROC))
    }

    fn lookup(&self, name: &[u8]) -> SysResult<InodeRef> {
        match name {
            b"." => return Ok(FdDir::inode(self.pid, self.extra, self.parent_ino)),
            b".." => return self.parent(),
            _ => {}
        }
        let fd = node::parse_number(name).ok_or(Errno::ENOENT)? as i32;
        let file = process(self.pid)
            .map_err(|_| Errno::ENOENT)?
            .files
            .lock()
            .get(fd)
            .map_err(|_| Errno::ENOENT)?;
        let mut perm = 0;
        if file.readable() {
            perm |= 0o500;
        }
        if file.writable() {
            perm |= 0o300;
        }
        drop(file);
        let pid = self.pid;
        Ok(Link::inode(
            &PROC,
            pid_ino(pid, fd as u32, LINK_SLOT),
            perm,
            Box::new(move || {
                let file = process(pid)?
                    .files
                    .lock()
                    .get(fd)
                    .map_err(|_| Errno::ENOENT)?;
                Ok(file.path())
            }),
        ))
    }

    fn parent(&self) -> SysResult<InodeRef> {
        let dir = if self.extra == 0 {
            super::pid_dir::PidDir::process(self.pid)
        } else {
            super::pid_dir::PidDir::thread(self.pid, self.extra)
        };
        Ok(dir)
    }

    fn readdir(&self, offset: u64, sink: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> SysResult<u64> {
        let entries = self.fds()?.into_iter().map(|fd| Listed {
            key: 2 + fd as u64,
            name: Name::Number(fd as u64),
            ino: pid_ino(self.pid, fd as u32, LINK_SLOT),
            kind: FileKind::Symlink,
        });
        node::list(offset, self.ino(), self.parent_ino, entries, sink)
    }
}
