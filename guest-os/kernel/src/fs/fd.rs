//! [`FdTable`]: a process's file descriptors — which open file each number refers to, and its
//! close-on-exec flag. Shared by the threads of a process (and by CLONE_FILES children) behind
//! the core's `Arc<Mutex<FdTable>>`; fork clones it.
//!
//! New descriptors take the lowest free number, as POSIX requires; a hint remembers where the
//! lowest free slot may be, so the common case does not scan from 0 (every emulated instruction
//! counts in ring 0 here).
//!
//! Closing returns the open file to the caller, who drops it after releasing the table's lock:
//! the last reference to a pipe end wakes its peers.
//!
//! Owns: descriptor numbers. Knows nothing of what the files are.

use super::FileRef;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};

/// The default RLIMIT_NOFILE soft limit, and the most descriptors a table ever holds.
pub const NOFILE_DEFAULT: usize = 1024;
/// The hard ceiling whatever the limit says (Linux's `nr_open` default is 1M; ours is smaller).
pub const NOFILE_MAX: usize = 65536;

#[derive(Clone)]
struct Slot {
    file: FileRef,
    cloexec: bool,
}

#[derive(Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<Slot>>,
    /// No slot below this is free.
    lowest_free: usize,
}

impl FdTable {
    pub fn new() -> FdTable {
        FdTable::default()
    }

    /// The open file behind `fd`; EBADF if none.
    pub fn get(&self, fd: i32) -> SysResult<FileRef> {
        self.slot(fd).map(|s| s.file.clone())
    }

    fn slot(&self, fd: i32) -> SysResult<&Slot> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }

    /// Installs `file` at the lowest free descriptor (below [`NOFILE_DEFAULT`]).
    #[allow(dead_code)] // the core's API; the syscalls use `insert_from` with RLIMIT_NOFILE
    pub fn insert(&mut self, file: FileRef, cloexec: bool) -> SysResult<i32> {
        self.insert_from(0, file, cloexec, NOFILE_DEFAULT)
    }

    /// Installs `file` at the lowest free descriptor ≥ `min` and below `limit` (RLIMIT_NOFILE);
    /// EMFILE if there is none (EINVAL for `min` at or past the limit, as F_DUPFD says).
    pub fn insert_from(
        &mut self,
        min: usize,
        file: FileRef,
        cloexec: bool,
        limit: usize,
    ) -> SysResult<i32> {
        let limit = limit.min(NOFILE_MAX);
        if min >= limit {
            return Err(if min == 0 {
                Errno::EMFILE
            } else {
                Errno::EINVAL
            });
        }
        let start = min.max(self.lowest_free);
        let free = (start..self.slots.len()).find(|&i| self.slots[i].is_none());
        let fd = free.unwrap_or(self.slots.len().max(start));
        if fd >= limit {
            return Err(Errno::EMFILE);
        }
        self.put(fd, Slot { file, cloexec });
        if min <= self.lowest_free {
            self.lowest_free = fd + 1;
        }
        Ok(fd as i32)
    }

    fn put(&mut self, fd: usize, slot: Slot) -> Option<FileRef> {
        if fd >= self.slots.len() {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd].replace(slot).map(|s| s.file)
    }

    /// Installs `file` at `fd` exactly (dup2, dup3), returning what was there, for the caller to
    /// drop outside the lock. EBADF for a negative fd or one at or past `NOFILE_MAX`.
    pub fn insert_at(
        &mut self,
        fd: i32,
        file: FileRef,
        cloexec: bool,
    ) -> SysResult<Option<FileRef>> {
        let index = usize::try_from(fd)
            .ok()
            .filter(|&i| i < NOFILE_MAX)
            .ok_or(Errno::EBADF)?;
        Ok(self.put(index, Slot { file, cloexec }))
    }

    /// Closes `fd`; returns its open file (drop it after releasing the table).
    pub fn remove(&mut self, fd: i32) -> SysResult<FileRef> {
        let index = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let slot = self
            .slots
            .get_mut(index)
            .and_then(Option::take)
            .ok_or(Errno::EBADF)?;
        self.lowest_free = self.lowest_free.min(index);
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        Ok(slot.file)
    }

    pub fn cloexec(&self, fd: i32) -> SysResult<bool> {
        self.slot(fd).map(|s| s.cloexec)
    }

    pub fn set_cloexec(&mut self, fd: i32, cloexec: bool) -> SysResult<()> {
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)?;
        slot.cloexec = cloexec;
        Ok(())
    }

    /// At exec: closes every close-on-exec descriptor; returns the files for the caller to drop
    /// outside the lock.
    pub fn close_on_exec(&mut self) -> Vec<FileRef> {
        let mut closed = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| s.cloexec) {
                closed.extend(slot.take().map(|s| s.file));
                self.lowest_free = self.lowest_free.min(i);
            }
        }
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        closed
    }

    /// Closes everything (exit); returns the files for the caller to drop outside the lock.
    pub fn close_all(&mut self) -> Vec<FileRef> {
        self.lowest_free = 0;
        core::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .map(|s| s.file)
            .collect()
    }

    /// close_range(first, last): closes (or marks close-on-exec) every open fd in the range;
    /// returns the closed files.
    pub fn close_range(&mut self, first: u32, last: u32, cloexec_only: bool) -> Vec<FileRef> {
        let mut closed = Vec::new();
        let end = (last as usize).saturating_add(1).min(self.slots.len());
        for i in (first as usize)..end {
            if cloexec_only {
                if let Some(slot) = self.slots[i].as_mut() {
                    slot.cloexec = true;
                }
            } else if let Some(slot) = self.slots[i].take() {
                closed.push(slot.file);
                self.lowest_free = self.lowest_free.min(i);
            }
        }
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        closed
    }

    /// The open descriptors, in order (for /proc/self/fd).
    #[allow(dead_code)] // for procfs
    pub fn fds(&self) -> impl Iterator<Item = (i32, &FileRef)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as i32, &s.file)))
    }

    /// How many descriptors are open.
    #[allow(dead_code)] // for procfs
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}
