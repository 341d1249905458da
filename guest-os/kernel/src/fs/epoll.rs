//! epoll: an interest list of files, and a wait for any of them to become ready.
//!
//! Level-triggered by default. EPOLLET is approximated: an edge-triggered entry is reported
//! when it is ready *and* its object has announced a change since the entry was last reported
//! (the [`Pollee`] generation). That never misses an edge, and it keeps an always-writable
//! file from being reported on every wait (Go's netpoller registers sockets EPOLLIN|EPOLLOUT|
//! EPOLLET and would otherwise spin); it may report an entry again after a change that did not
//! add data (a partial read), which edge-triggered users tolerate (they read to EAGAIN).
//! Files without a pollee (regular files) are reported once per registration under EPOLLET.
//! EPOLLONESHOT disables an entry after one report until EPOLL_CTL_MOD. EPOLLEXCLUSIVE is
//! accepted and has no effect (every waiter wakes).
//!
//! Entries are keyed by fd and hold the open file weakly: closing the last descriptor of a file
//! drops it from every interest list, as in Linux. An epoll instance may watch another one, one
//! level deep (ELOOP beyond, EINVAL for itself).
//!
//! Owns: epoll instances.

use super::poll::{Observer, Pollee};
use super::{FileKind, FileRef, Inode, InodeId, OpenFile, READY_IN, downcast};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::io::{
    EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP,
    EPOLLONESHOT, EpollEvent,
};
use noa_linux_abi::stat::{ANON_INODE_FS_MAGIC, Stat, Statfs};
use spin::Mutex;

static NEXT_INO: AtomicU64 = AtomicU64::new(1 << 32);

struct Interest {
    file: Weak<OpenFile>,
    events: u32,
    data: u64,
    /// Pollee generation at the last report (edge-triggered entries).
    reported: Option<u64>,
    /// EPOLLONESHOT fired.
    disabled: bool,
}

pub struct Epoll {
    me: Weak<Epoll>,
    interests: Mutex<BTreeMap<i32, Interest>>,
    pollee: Pollee,
    ino: u64,
    /// Epoll instances this one is registered in, and epoll instances registered in it.
    watched_by: AtomicUsize,
    watching: AtomicUsize,
    /// Where the next scan starts (round robin when maxevents is small).
    cursor: Mutex<i32>,
}

impl Observer for Epoll {
    fn notify(&self) {
        self.pollee.notify();
    }
}

impl Epoll {
    pub fn new() -> Arc<Epoll> {
        Arc::new_cyclic(|me| Epoll {
            me: me.clone(),
            interests: Mutex::new(BTreeMap::new()),
            pollee: Pollee::new(),
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            watched_by: AtomicUsize::new(0),
            watching: AtomicUsize::new(0),
            cursor: Mutex::new(0),
        })
    }

    fn observer(&self) -> Weak<dyn Observer> {
        self.me.clone()
    }

    /// epoll_ctl. `file` is what `fd` refers to now.
    pub fn ctl(&self, op: u32, fd: i32, file: &FileRef, event: EpollEvent) -> SysResult<()> {
        let nested = downcast::<Epoll>(file.inode());
        if let Some(inner) = &nested
            && core::ptr::eq(Arc::as_ptr(inner), self)
        {
            return Err(Errno::EINVAL);
        }
        // Files that are always ready (regular files, directories) cannot be watched.
        if file.inode().pollee().is_none() {
            return Err(Errno::EPERM);
        }
        let mut interests = self.interests.lock();
        match op {
            EPOLL_CTL_ADD => {
                if interests
                    .get(&fd)
                    .is_some_and(|i| i.file.strong_count() > 0)
                {
                    return Err(Errno::EEXIST);
                }
                if let Some(inner) = &nested {
                    if inner.watching.load(Ordering::Acquire) > 0
                        || self.watched_by.load(Ordering::Acquire) > 0
                    {
                        return Err(Errno::ELOOP);
                    }
                    inner.watched_by.fetch_add(1, Ordering::AcqRel);
                    self.watching.fetch_add(1, Ordering::AcqRel);
                }
                if let Some(pollee) = file.inode().pollee() {
                    pollee.subscribe(self.observer());
                }
                interests.insert(
                    fd,
                    Interest {
                        file: Arc::downgrade(file),
                        events: event.events,
                        data: event.data,
                        reported: None,
                        disabled: false,
                    },
                );
            }
            EPOLL_CTL_MOD => {
                if event.events & EPOLLEXCLUSIVE != 0 {
                    return Err(Errno::EINVAL);
                }
                let interest = interests
                    .get_mut(&fd)
                    .filter(|i| core::ptr::eq(i.file.as_ptr(), Arc::as_ptr(file)))
                    .ok_or(Errno::ENOENT)?;
                interest.events = event.events;
                interest.data = event.data;
                interest.reported = None;
                interest.disabled = false;
            }
            EPOLL_CTL_DEL => {
                let same = interests
                    .get(&fd)
                    .is_some_and(|i| core::ptr::eq(i.file.as_ptr(), Arc::as_ptr(file)));
                if !same {
                    return Err(Errno::ENOENT);
                }
                interests.remove(&fd);
                if let Some(pollee) = file.inode().pollee() {
                    pollee.unsubscribe(&self.observer());
                }
                if let Some(inner) = &nested {
                    inner.watched_by.fetch_sub(1, Ordering::AcqRel);
                    self.watching.fetch_sub(1, Ordering::AcqRel);
                }
            }
            _ => return Err(Errno::EINVAL),
        }
        drop(interests);
        // A file that is ready already must wake a waiter blocked now.
        self.pollee.notify();
        Ok(())
    }

    /// The ready entries, at most `max`, updating edge and one-shot state.
    fn collect(&self, max: usize) -> Vec<EpollEvent> {
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut interests = self.interests.lock();
        let start = *self.cursor.lock();
        let mut last = None;
        let mut visit = |fd: i32, interest: &mut Interest, out: &mut Vec<EpollEvent>| {
            if interest.disabled {
                return;
            }
            let Some(file) = interest.file.upgrade() else {
                dead.push(fd);
                return;
            };
            let inode = file.inode();
            let ready = inode.poll() & (interest.events | EPOLLERR | EPOLLHUP);
            if ready == 0 {
                return;
            }
            if interest.events & EPOLLET != 0 {
                let generation = inode.pollee().map_or(0, Pollee::generation);
                if interest.reported == Some(generation) {
                    return;
                }
                interest.reported = Some(generation);
            }
            if interest.events & EPOLLONESHOT != 0 {
                interest.disabled = true;
            }
            out.push(EpollEvent {
                events: ready,
                data: interest.data,
            });
            last = Some(fd);
        };
        for (&fd, interest) in interests.range_mut(start..) {
            if out.len() >= max {
                break;
            }
            visit(fd, interest, &mut out);
        }
        if out.len() < max {
            for (&fd, interest) in interests.range_mut(..start) {
                if out.len() >= max {
                    break;
                }
                visit(fd, interest, &mut out);
            }
        }
        for fd in dead {
            interests.remove(&fd);
        }
        drop(interests);
        if let Some(fd) = last {
            *self.cursor.lock() = fd.saturating_add(1);
        }
        out
    }

    /// epoll_wait: up to `max` ready events, waiting until the clock passes `deadline_ns`
    /// (None: forever; Some(0): not at all). Empty on timeout; EINTR on a signal.
    pub fn wait(&self, max: usize, deadline_ns: Option<u64>) -> SysResult<Vec<EpollEvent>> {
        let ready = self.collect(max);
        if !ready.is_empty() || deadline_ns == Some(0) {
            return Ok(ready);
        }
        let found = self.pollee.queue().wait_until_deadline(
            || {
                let ready = self.collect(max);
                (!ready.is_empty()).then_some(ready)
            },
            deadline_ns,
        )?;
        Ok(found.unwrap_or_default())
    }
}

impl Inode for Epoll {
    fn id(&self) -> InodeId {
        (super::eventfd::ANON_DEV, self.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::Regular
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: super::eventfd::ANON_DEV,
            ino: self.ino,
            nlink: 1,
            mode: 0o600,
            blksize: 4096,
            ..Stat::default()
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(Statfs {
            f_type: ANON_INODE_FS_MAGIC,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Statfs::default()
        })
    }

    fn seekable(&self) -> bool {
        false
    }

    /// Readable when some entry is ready (without consuming edge or one-shot state).
    fn poll(&self) -> u32 {
        let interests = self.interests.lock();
        let any = interests.values().any(|interest| {
            !interest.disabled
                && interest.file.upgrade().is_some_and(|file| {
                    file.inode().poll() & (interest.events | EPOLLERR | EPOLLHUP) != 0
                })
        });
        if any { READY_IN } else { 0 }
    }

    fn pollee(&self) -> Option<&Pollee> {
        Some(&self.pollee)
    }

    fn anon_name(&self) -> Option<String> {
        Some("anon_inode:[eventpoll]".into())
    }
}
