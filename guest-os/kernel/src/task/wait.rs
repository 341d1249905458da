//! Wait queues: how a thread sleeps until something it waits for has happened.
//!
//! The condition is re-checked after the thread has registered itself, so a wake-up between the
//! check and the sleep is never lost (see `sched::block`). A signal for the thread interrupts the
//! wait with EINTR.

use super::sched;
use super::thread::Thread;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use spin::Mutex;

#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<Vec<Weak<Thread>>>,
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue {
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Sleeps until `cond` gives a value; EINTR if a signal arrives first.
    pub fn wait_until<T>(&self, cond: impl FnMut() -> Option<T>) -> SysResult<T> {
        match self.wait_until_deadline(cond, None)? {
            Some(value) => Ok(value),
            None => Err(Errno::EINTR),
        }
    }

    /// Sleeps until `cond` gives a value or the clock passes `deadline_ns` (then `Ok(None)`);
    /// EINTR if a signal arrives first.
    pub fn wait_until_deadline<T>(
        &self,
        mut cond: impl FnMut() -> Option<T>,
        deadline_ns: Option<u64>,
    ) -> SysResult<Option<T>> {
        let me = sched::current();
        loop {
            if let Some(value) = cond() {
                return Ok(Some(value));
            }
            if me.has_deliverable_signal() {
                return Err(Errno::EINTR);
            }
            if deadline_ns.is_some_and(|d| hal_pv::time::now_ns() >= d) {
                return Ok(None);
            }
            me.prepare_to_sleep();
            self.waiters.lock().push(Arc::downgrade(&me));
            if let Some(deadline) = deadline_ns {
                super::timer::wake_at(deadline, &me);
            }
            if let Some(value) = cond() {
                self.remove(&me);
                sched::abort_sleep(&me);
                return Ok(Some(value));
            }
            sched::block();
            self.remove(&me);
        }
    }

    fn remove(&self, thread: &Arc<Thread>) {
        self.waiters
            .lock()
            .retain(|w| w.strong_count() > 0 && !core::ptr::eq(w.as_ptr(), Arc::as_ptr(thread)));
    }

    /// Wakes every waiter (each re-checks its condition).
    pub fn wake_all(&self) {
        let waiters = core::mem::take(&mut *self.waiters.lock());
        for thread in waiters.iter().filter_map(Weak::upgrade) {
            sched::wake(&thread);
        }
    }
}
