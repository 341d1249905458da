//! Readiness: [`Pollee`] (what a pollable object — pipe, tty, eventfd, epoll — embeds), the
//! [`Observer`]s it tells when its state changes, and [`poll_files`], the wait behind poll,
//! ppoll, select and pselect6.
//!
//! An object's readiness is computed on demand ([`super::Inode::poll`]); the pollee only says
//! "something changed": it wakes the threads blocked on the object itself (its queue), then
//! every observer (a poll call's private queue, an epoll instance). A poll call subscribes a
//! queue of its own to each file, waits on it, and unsubscribes — so a change wakes only the
//! threads that wait for that object. Each notification also bumps a generation counter, which
//! epoll uses to approximate edge triggering.
//!
//! Interrupt handlers may call [`Pollee::notify`] (the tty does): it takes only spin locks that
//! are never held across a sleep, and allocates nothing.
//!
//! Owns: the pollee/observer plumbing. Knows nothing of particular file types.

use super::FileRef;
use crate::task::wait::WaitQueue;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use noa_linux_abi::errno::SysResult;
use noa_linux_abi::io::{POLLERR, POLLHUP, POLLNVAL};
use spin::Mutex;

/// Something to tell when a pollee changes.
pub trait Observer: Send + Sync {
    fn notify(&self);
}

impl Observer for WaitQueue {
    fn notify(&self) {
        self.wake_all();
    }
}

/// The readiness plumbing of one pollable object.
pub struct Pollee {
    queue: WaitQueue,
    observers: Mutex<Vec<Weak<dyn Observer>>>,
    generation: AtomicU64,
}

impl Default for Pollee {
    fn default() -> Self {
        Self::new()
    }
}

impl Pollee {
    pub const fn new() -> Pollee {
        Pollee {
            queue: WaitQueue::new(),
            observers: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Where threads blocked on this object itself (a read waiting for data) sleep.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// The object's state changed: wake its blocked threads and its observers. Never call it
    /// from inside a `wait_until` condition on the same queue.
    pub fn notify(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_all();
        let observers = self.observers.lock();
        for observer in observers.iter() {
            if let Some(observer) = observer.upgrade() {
                observer.notify();
            }
        }
    }

    /// How many times [`Self::notify`] has run.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn subscribe(&self, observer: Weak<dyn Observer>) {
        let mut observers = self.observers.lock();
        observers.retain(|o| o.strong_count() > 0);
        observers.push(observer);
    }

    pub fn unsubscribe(&self, observer: &Weak<dyn Observer>) {
        let target = observer.as_ptr() as *const ();
        self.observers
            .lock()
            .retain(|o| o.strong_count() > 0 && o.as_ptr() as *const () != target);
    }
}

/// One entry of a poll call: the file (None: a negative fd, ignored; or a closed one, POLLNVAL)
/// and the events asked for; `revents` is the answer.
pub struct PollEntry {
    pub file: Option<FileRef>,
    /// True for an fd that was not open (answered POLLNVAL).
    pub bad: bool,
    pub events: u32,
    pub revents: u32,
}

/// Fills every entry's `revents`; returns how many entries have any.
fn scan(entries: &mut [PollEntry]) -> usize {
    let mut ready = 0;
    for entry in entries.iter_mut() {
        entry.revents = if entry.bad {
            u32::from(POLLNVAL)
        } else if let Some(file) = &entry.file {
            // POLLERR and POLLHUP are reported whether asked for or not.
            file.inode().poll() & (entry.events | u32::from(POLLERR | POLLHUP))
        } else {
            0
        };
        if entry.revents != 0 {
            ready += 1;
        }
    }
    ready
}

/// Waits until some entry is ready or the clock passes `deadline_ns` (None: no limit;
/// `Some(0)`: don't wait). Returns how many entries are ready (0 on timeout); EINTR if a signal
/// arrives first.
pub fn poll_files(entries: &mut [PollEntry], deadline_ns: Option<u64>) -> SysResult<usize> {
    let ready = scan(entries);
    if ready > 0 || deadline_ns == Some(0) {
        return Ok(ready);
    }
    let queue = Arc::new(WaitQueue::new());
    let observer: Weak<dyn Observer> = Arc::downgrade(&queue) as Weak<dyn Observer>;
    for entry in entries.iter() {
        if let Some(pollee) = entry.file.as_ref().and_then(|f| f.inode().pollee()) {
            pollee.subscribe(observer.clone());
        }
    }
    let result = queue.wait_until_deadline(
        || {
            let ready = scan(entries);
            (ready > 0).then_some(ready)
        },
        deadline_ns,
    );
    for entry in entries.iter() {
        if let Some(pollee) = entry.file.as_ref().and_then(|f| f.inode().pollee()) {
            pollee.unsubscribe(&observer);
        }
    }
    Ok(result?.unwrap_or(0))
}
