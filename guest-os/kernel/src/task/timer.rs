//! Sleep deadlines: threads waiting until a time (nanosleep, timeouts). One ordered list for the
//! whole machine; every CPU arms its one-shot APIC timer for the earliest deadline (and its own
//! time slice) before it enters user mode or idles, and expires due entries on the way back.
//! Nothing ticks: with no deadline pending, no timer interrupt fires at all.

use super::thread::Thread;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// What happens at a deadline.
enum Due {
    Wake(Weak<Thread>),
    /// A kernel callback (the network stack's timers); runs with interrupts off, from whichever
    /// CPU expires it, and must not sleep.
    Call(fn()),
}

static DEADLINES: Mutex<BTreeMap<(u64, u64), Due>> = Mutex::new(BTreeMap::new());
static SEQUENCE: AtomicU64 = AtomicU64::new(0);
/// The earliest deadline in the list (u64::MAX: none), readable without the lock.
static EARLIEST: AtomicU64 = AtomicU64::new(u64::MAX);

/// Wakes `thread` at `deadline_ns` (if it still sleeps then; a stale wake-up is harmless).
pub fn wake_at(deadline_ns: u64, thread: &Arc<Thread>) {
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut list = DEADLINES.lock();
    list.insert((deadline_ns, seq), Due::Wake(Arc::downgrade(thread)));
    EARLIEST.fetch_min(deadline_ns, Ordering::AcqRel);
}

/// Calls `f` at `deadline_ns` (or soon after), once.
pub fn call_at(deadline_ns: u64, f: fn()) {
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut list = DEADLINES.lock();
    list.insert((deadline_ns, seq), Due::Call(f));
    EARLIEST.fetch_min(deadline_ns, Ordering::AcqRel);
}

/// Wakes the threads whose deadlines have passed.
pub fn expire() {
    let earliest = EARLIEST.load(Ordering::Acquire);
    if earliest == u64::MAX {
        return;
    }
    let now = hal_pv::time::now_ns();
    if earliest > now {
        return;
    }
    let mut due = alloc::vec::Vec::new();
    {
        let mut list = DEADLINES.lock();
        while let Some(entry) = list.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        EARLIEST.store(
            list.keys().next().map_or(u64::MAX, |k| k.0),
            Ordering::Release,
        );
    }
    for entry in due {
        match entry {
            Due::Wake(thread) => {
                if let Some(thread) = thread.upgrade() {
                    super::sched::wake(&thread);
                }
            }
            Due::Call(f) => f(),
        }
    }
}

/// The earliest pending deadline, if any.
pub fn earliest() -> Option<u64> {
    let earliest = EARLIEST.load(Ordering::Acquire);
    (earliest != u64::MAX).then_some(earliest)
}
