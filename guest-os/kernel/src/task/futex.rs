//! Futexes: WAIT/WAKE (with bitsets), REQUEUE/CMP_REQUEUE, private and shared, with timeouts.
//!
//! Waiters are keyed by (memory map, address) for private futexes — what Linux does, and immune to
//! copy-on-write moving the page — and by physical address for shared ones. The value check and
//! the enqueue happen under the table lock that wakers take too, so no wake-up is lost.

use super::sched;
use super::thread::Thread;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use spin::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Private { mm: usize, addr: u64 },
    Shared { phys: u64 },
}

struct Waiter {
    thread: Weak<Thread>,
    bitset: u32,
    woken: Arc<AtomicBool>,
}

static TABLE: Mutex<BTreeMap<Key, Vec<Waiter>>> = Mutex::new(BTreeMap::new());

pub const BITSET_MATCH_ANY: u32 = u32::MAX;

fn key(addr: u64, private: bool) -> SysResult<Key> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let me = super::current();
    let mm = me.process.mm();
    if private {
        return Ok(Key::Private {
            mm: Arc::as_ptr(&mm) as usize,
            addr,
        });
    }
    let phys = crate::mm::uaccess::physical_address(addr)?;
    Ok(Key::Shared { phys })
}

/// FUTEX_WAIT(_BITSET): sleeps if `*addr == expected` until woken, the deadline, or a signal.
pub fn wait(
    addr: u64,
    expected: u32,
    deadline_ns: Option<u64>,
    bitset: u32,
    private: bool,
) -> SysResult<u64> {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let key = key(addr, private)?;
    let me = super::current();
    let woken = Arc::new(AtomicBool::new(false));
    {
        let mut table = TABLE.lock();
        let value = crate::mm::uaccess::read_u32(addr)?;
        if value != expected {
            return Err(Errno::EAGAIN);
        }
        table.entry(key).or_default().push(Waiter {
            thread: Arc::downgrade(&me),
            bitset,
            woken: woken.clone(),
        });
        me.prepare_to_sleep();
    }
    loop {
        if woken.load(Ordering::Acquire) {
            sched::abort_sleep(&me);
            return Ok(0);
        }
        let timed_out = deadline_ns.is_some_and(|d| hal_pv::time::now_ns() >= d);
        if timed_out || me.has_deliverable_signal() {
            sched::abort_sleep(&me);
            let mut table = TABLE.lock();
            if woken.load(Ordering::Acquire) {
                return Ok(0);
            }
            for waiters in table.values_mut() {
                waiters.retain(|w| !Arc::ptr_eq(&w.woken, &woken));
            }
            table.retain(|_, w| !w.is_empty());
            return Err(if timed_out {
                Errno::ETIMEDOUT
            } else {
                Errno::EINTR
            });
        }
        if let Some(deadline) = deadline_ns {
            super::timer::wake_at(deadline, &me);
        }
        sched::block();
        me.prepare_to_sleep();
    }
}

/// FUTEX_WAKE(_BITSET): wakes up to `count` waiters; returns how many.
pub fn wake(addr: u64, count: u32, bitset: u32, private: bool) -> SysResult<u64> {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let key = key(addr, private)?;
    let woken = {
        let mut table = TABLE.lock();
        let Some(waiters) = table.get_mut(&key) else {
            return Ok(0);
        };
        let mut woken = Vec::new();
        waiters.retain(|w| {
            if woken.len() < count as usize && w.bitset & bitset != 0 {
                w.woken.store(true, Ordering::Release);
                woken.push(w.thread.clone());
                false
            } else {
                true
            }
        });
        if waiters.is_empty() {
            table.remove(&key);
        }
        woken
    };
    let n = woken.len() as u64;
    for thread in woken.iter().filter_map(Weak::upgrade) {
        sched::wake(&thread);
    }
    Ok(n)
}

/// FUTEX_(CMP_)REQUEUE: wakes up to `wake_count` waiters on `addr`, moves up to `requeue_count`
/// others to `addr2`. With `expected`, fails with EAGAIN unless `*addr == expected`.
pub fn requeue(
    addr: u64,
    addr2: u64,
    wake_count: u32,
    requeue_count: u32,
    expected: Option<u32>,
    private: bool,
) -> SysResult<u64> {
    let from = key(addr, private)?;
    let to = key(addr2, private)?;
    let mut woken = Vec::new();
    let moved;
    {
        let mut table = TABLE.lock();
        if let Some(expected) = expected
            && crate::mm::uaccess::read_u32(addr)? != expected
        {
            return Err(Errno::EAGAIN);
        }
        let mut waiters = table.remove(&from).unwrap_or_default();
        let wake_n = (wake_count as usize).min(waiters.len());
        for w in waiters.drain(..wake_n) {
            w.woken.store(true, Ordering::Release);
            woken.push(w.thread);
        }
        let move_n = (requeue_count as usize).min(waiters.len());
        let rest = waiters.split_off(move_n);
        moved = waiters.len();
        if !waiters.is_empty() {
            table.entry(to).or_default().extend(waiters);
        }
        if !rest.is_empty() {
            table.insert(from, rest);
        }
    }
    let n = woken.len() + moved;
    for thread in woken.iter().filter_map(Weak::upgrade) {
        sched::wake(&thread);
    }
    Ok(n as u64)
}
