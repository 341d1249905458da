//! [`Thread`]: one schedulable user thread — its kernel context, its signal state, and the
//! scheduler's view of it (asleep or not).

use super::process::Process;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use hal_pv::task::Context;
use hal_pv::user::UserContext;
use spin::Mutex;

/// `saved_sigmask` holds no mask.
pub const NO_SAVED_MASK: u64 = u64::MAX;

/// Kernel stack of each thread: deep enough for the syscall paths and the file systems.
pub const KERNEL_STACK_BYTES: usize = 64 * 1024;

pub use noa_linux_abi::signal::SigInfo;

/// The alternate signal stack (sigaltstack).
#[derive(Clone, Copy, Debug, Default)]
pub struct AltStack {
    pub sp: u64,
    pub size: u64,
    pub flags: u32,
}

pub struct Thread {
    pub tid: u32,
    pub process: Arc<Process>,
    pub context: Arc<Context>,
    /// Set while the thread is going to sleep or asleep; cleared by whoever wakes it.
    sleeping: AtomicBool,
    /// Blocked signals (bit n-1 for signal n).
    pub sigmask: AtomicU64,
    /// Signals sent to this thread alone.
    pub pending: AtomicU64,
    pub pending_info: Mutex<VecDeque<SigInfo>>,
    pub alt_stack: Mutex<AltStack>,
    /// The mask to restore after a handler runs, set by rt_sigsuspend (Linux's saved_sigmask);
    /// [`NO_SAVED_MASK`] when none (no real mask has every bit: SIGKILL and SIGSTOP never are).
    pub saved_sigmask: AtomicU64,
    /// set_tid_address / CLONE_CHILD_CLEARTID: zeroed and futex-woken at exit.
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    /// Where this thread's vector registers are saved, in its process's memory.
    pub vector_area: AtomicU64,
    /// The CPU (index + 1) whose registers hold this thread's vector state; 0: only memory does.
    pub vector_live_on: AtomicU32,
    /// The registers the thread starts with; taken by the user loop.
    pub start: Mutex<Option<UserContext>>,
    /// Time spent in user mode, in TSC ticks (converted when read: the trap path stays short).
    pub user_tsc: AtomicU64,
    pub exiting: AtomicBool,
    /// Something may need doing before the thread next enters user mode: a pending signal, an
    /// exit, a mask to restore, a CPU-time limit to check. The user loop tests this one flag
    /// per entry and looks at each of those only while it is set (Linux's TIF_* work bits).
    /// Whoever makes one of them true calls [`Thread::call_attention`] after doing so.
    attention: AtomicBool,
    /// Woken (or yielded) while still on its CPU: queue it once that CPU has switched away.
    pub requeue_when_off: AtomicBool,
}

impl Thread {
    pub fn new(
        tid: u32,
        process: Arc<Process>,
        start: UserContext,
        vector_area: u64,
    ) -> Arc<Thread> {
        Arc::new(Thread {
            tid,
            process,
            context: Context::new(KERNEL_STACK_BYTES, super::user_loop::thread_entry, 0),
            sleeping: AtomicBool::new(false),
            sigmask: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            pending_info: Mutex::new(VecDeque::new()),
            alt_stack: Mutex::new(AltStack::default()),
            saved_sigmask: AtomicU64::new(NO_SAVED_MASK),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            vector_area: AtomicU64::new(vector_area),
            vector_live_on: AtomicU32::new(0),
            start: Mutex::new(Some(start)),
            user_tsc: AtomicU64::new(0),
            exiting: AtomicBool::new(false),
            // A new thread looks at everything once (its process may be CPU-limited).
            attention: AtomicBool::new(true),
            requeue_when_off: AtomicBool::new(false),
        })
    }

    /// Makes the thread look at its pending work before it next enters user mode. Call it after
    /// the change it is for (a signal made pending, `exiting` set, …) and before any kick.
    pub fn call_attention(&self) {
        self.attention.store(true, Ordering::Release);
    }

    /// Whether the user loop must look at the thread's pending work (one load per entry).
    #[inline]
    pub fn needs_attention(&self) -> bool {
        self.attention.load(Ordering::Acquire)
    }

    /// Clears the attention flag before its work is looked at: a full barrier (`swap`), so a
    /// change made after the look is flagged again and not lost.
    pub fn take_attention(&self) {
        self.attention.swap(false, Ordering::AcqRel);
    }

    /// Keeps `old` as the mask to restore once the signal that ends a masked wait (sigsuspend,
    /// ppoll, pselect) is delivered: by the handler's frame, or by the user loop.
    pub fn restore_sigmask_later(&self, old: u64) {
        self.saved_sigmask.store(old, Ordering::Release);
        self.call_attention();
    }

    /// Marks the thread to leave at its next trap or wake-up (the caller kicks it).
    pub fn set_exiting(&self) {
        self.exiting.store(true, Ordering::Release);
        self.call_attention();
    }

    pub(super) fn prepare_to_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// Clears the sleeping mark; true if the thread was asleep (so the caller must queue it).
    pub(super) fn take_sleep(&self) -> bool {
        self.sleeping.swap(false, Ordering::SeqCst)
    }

    /// Whether the thread is asleep (or about to be): `S` rather than `R` in /proc.
    pub fn is_asleep(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }

    /// Time spent in user mode, in ns.
    pub fn user_ns(&self) -> u64 {
        hal_pv::time::tsc_delta_to_ns(self.user_tsc.load(Ordering::Relaxed))
    }

    /// Signals pending for this thread: its own and its process's, blocked or not.
    pub fn pending_signals(&self) -> u64 {
        self.pending.load(Ordering::Acquire) | self.process.pending.load(Ordering::Acquire)
    }

    /// Signals pending for this thread (its own and its process's) that it does not block.
    pub fn deliverable_signals(&self) -> u64 {
        self.pending_signals() & !self.sigmask.load(Ordering::Acquire)
    }

    /// Something should interrupt a sleep: a deliverable signal, or the thread must exit.
    pub fn has_deliverable_signal(&self) -> bool {
        self.deliverable_signals() != 0
            || self.exiting.load(Ordering::Acquire)
            || self.process.is_exiting()
    }
}
