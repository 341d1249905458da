//! [`Process`]: what a process's threads share, and the process life cycle — creation of init,
//! exit (zombie, reparenting, SIGCHLD), and the wait status a parent reaps.

use super::thread::Thread;
use super::wait::WaitQueue;
use crate::fs::FsContext;
use crate::fs::fd::FdTable;
use crate::mm::Mm;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use noa_linux_abi::signal::SIGCHLD;

/// `si_code` values of SIGCHLD.
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
use spin::Mutex;

/// A signal action as `rt_sigaction` sets it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// Resource limits: (soft, hard) per RLIMIT_* resource.
pub const RLIMIT_COUNT: usize = 16;
pub const RLIM_INFINITY: u64 = u64::MAX;
/// RLIMIT_CPU's index.
pub const RLIMIT_CPU: usize = 0;

pub struct Process {
    pub pid: u32,
    pub parent: Mutex<Weak<Process>>,
    pub pgid: AtomicU32,
    pub sid: AtomicU32,
    pub mm: Mutex<Arc<Mm>>,
    pub files: Arc<Mutex<FdTable>>,
    pub fs: Mutex<FsContext>,
    pub actions: Mutex<[SigAction; 64]>,
    /// Signals sent to the process as a whole.
    pub pending: AtomicU64,
    pub children: Mutex<Vec<Arc<Process>>>,
    /// The live threads (strong: a sleeping thread is owned here until it exits).
    pub threads: Mutex<Vec<Arc<Thread>>>,
    /// Wait status once the process is a zombie.
    pub exit_status: Mutex<Option<i32>>,
    /// Set when the whole process is going away (exit_group, a fatal signal, exec).
    exiting: AtomicBool,
    pub group_exit_status: AtomicU32,
    /// Where this process's parent waits for children to change state.
    pub child_events: WaitQueue,
    /// A vfork parent waits here until the child execs or exits.
    pub vfork_done: AtomicBool,
    pub vfork_wait: WaitQueue,
    pub rlimits: Mutex<[(u64, u64); RLIMIT_COUNT]>,
    /// RLIMIT_CPU is finite (checked on every trap without taking the lock).
    pub cpu_limited: AtomicBool,
    /// CPU seconds at which SIGXCPU was last sent (once a second past the soft limit).
    pub xcpu_sent_at: AtomicU64,
    /// The path of the running executable (for /proc/self/exe and AT_EXECFN).
    pub exe: Mutex<Vec<u8>>,
    /// User time of threads that have exited, and of reaped children (times(), getrusage).
    pub dead_user_ns: AtomicU64,
    pub children_user_ns: AtomicU64,
    /// When it was created, in ns since boot (`starttime` of /proc/<pid>/stat).
    pub start_ns: u64,
}

static PROCESSES: Mutex<BTreeMap<u32, Weak<Process>>> = Mutex::new(BTreeMap::new());

pub fn default_rlimits() -> [(u64, u64); RLIMIT_COUNT] {
    let mut limits = [(RLIM_INFINITY, RLIM_INFINITY); RLIMIT_COUNT];
    limits[3] = (8 << 20, RLIM_INFINITY); // RLIMIT_STACK
    limits[7] = (1024, 4096); // RLIMIT_NOFILE
    limits
}

impl Process {
    pub fn new(
        pid: u32,
        parent: Weak<Process>,
        mm: Arc<Mm>,
        files: Arc<Mutex<FdTable>>,
        fs: FsContext,
    ) -> Arc<Process> {
        let process = Arc::new(Process {
            pid,
            parent: Mutex::new(parent),
            pgid: AtomicU32::new(pid),
            sid: AtomicU32::new(pid),
            mm: Mutex::new(mm),
            files,
            fs: Mutex::new(fs),
            actions: Mutex::new([SigAction::default(); 64]),
            pending: AtomicU64::new(0),
            children: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            exit_status: Mutex::new(None),
            exiting: AtomicBool::new(false),
            group_exit_status: AtomicU32::new(0),
            child_events: WaitQueue::new(),
            vfork_done: AtomicBool::new(false),
            vfork_wait: WaitQueue::new(),
            rlimits: Mutex::new(default_rlimits()),
            cpu_limited: AtomicBool::new(false),
            xcpu_sent_at: AtomicU64::new(0),
            exe: Mutex::new(Vec::new()),
            dead_user_ns: AtomicU64::new(0),
            children_user_ns: AtomicU64::new(0),
            start_ns: hal_pv::time::now_ns(),
        });
        PROCESSES.lock().insert(pid, Arc::downgrade(&process));
        process
    }

    pub fn ppid(&self) -> u32 {
        self.parent.lock().upgrade().map_or(0, |p| p.pid)
    }

    pub fn mm(&self) -> Arc<Mm> {
        self.mm.lock().clone()
    }

    /// Takes the address space away from a process whose last thread is leaving, leaving an
    /// empty one shared by all such processes (a zombie has no memory, as /proc shows in Linux).
    /// The caller drops what it gets once nothing needs it (see `user_loop::exit_thread`).
    pub fn release_mm(&self) -> Arc<Mm> {
        static EMPTY: spin::Once<Option<Arc<Mm>>> = spin::Once::new();
        match EMPTY.call_once(|| Mm::new().ok()) {
            Some(empty) => core::mem::replace(&mut *self.mm.lock(), empty.clone()),
            // No memory even for an empty one: the process keeps its own until it is reaped.
            None => self.mm(),
        }
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Acquire)
    }

    /// Live threads of the process.
    pub fn live_threads(&self) -> Vec<Arc<Thread>> {
        self.threads.lock().clone()
    }

    /// Starts the exit of the whole process with `status` (a wait status); every thread leaves at
    /// its next trap or wake-up. Only the first call sets the status.
    pub fn begin_group_exit(&self, status: i32) {
        if !self.exiting.swap(true, Ordering::AcqRel) {
            self.group_exit_status
                .store(status as u32, Ordering::Release);
        }
        for thread in self.live_threads() {
            thread.set_exiting();
            super::sched::kick(&thread);
        }
    }

    /// Sets resource limit `which` (keeps the RLIMIT_CPU fast flag in step).
    pub fn set_rlimit(&self, which: usize, limit: (u64, u64)) {
        if let Some(slot) = self.rlimits.lock().get_mut(which) {
            *slot = limit;
        }
        if which == RLIMIT_CPU {
            self.cpu_limited
                .store(limit != (RLIM_INFINITY, RLIM_INFINITY), Ordering::Release);
            for thread in self.live_threads() {
                thread.call_attention();
            }
        }
    }

    /// User CPU time of the whole process, in ns.
    pub fn cpu_ns(&self) -> u64 {
        self.dead_user_ns.load(Ordering::Relaxed)
            + self.threads.lock().iter().map(|t| t.user_ns()).sum::<u64>()
    }

    /// The limit (soft) for resource `which`.
    pub fn rlimit(&self, which: usize) -> u64 {
        self.rlimits
            .lock()
            .get(which)
            .map_or(RLIM_INFINITY, |l| l.0)
    }
}

/// The process with ID `pid`, if it exists (zombies included).
pub fn find(pid: u32) -> Option<Arc<Process>> {
    PROCESSES.lock().get(&pid).and_then(Weak::upgrade)
}

/// The IDs of all processes (zombies included), in increasing order (for listing /proc).
pub fn pids() -> Vec<u32> {
    PROCESSES.lock().keys().copied().collect()
}

/// All processes (for kill of a group or of everything).
pub fn all() -> Vec<Arc<Process>> {
    PROCESSES
        .lock()
        .values()
        .filter_map(Weak::upgrade)
        .collect()
}

/// The last thread of `process` has gone: release what it held, become a zombie, hand the
/// children to init, and tell the parent. init's end is the machine's power-off.
pub fn finish(process: &Arc<Process>) {
    let status = process.group_exit_status.load(Ordering::Acquire) as i32;
    process.files.lock().close_all();
    if process.pid == 1 {
        let code = if status & 0x7f == 0 {
            ((status >> 8) & 0xff) as u8
        } else {
            128 + (status & 0x7f) as u8
        };
        crate::shutdown::power_off(code);
    }
    // Hand the children to init.
    let children = core::mem::take(&mut *process.children.lock());
    if !children.is_empty()
        && let Some(init) = find(1)
    {
        for child in &children {
            *child.parent.lock() = Arc::downgrade(&init);
        }
        init.children.lock().extend(children);
        init.child_events.wake_all();
    }
    *process.exit_status.lock() = Some(status);
    process.vfork_done.store(true, Ordering::Release);
    process.vfork_wait.wake_all();
    if let Some(parent) = process.parent.lock().upgrade() {
        let (code, child_status) = if status & 0x7f == 0 {
            (CLD_EXITED, (status >> 8) & 0xff)
        } else {
            (CLD_KILLED, status & 0x7f)
        };
        let info = super::thread::SigInfo::chld(code, process.pid as i32, 0, child_status, 0, 0);
        super::signal::send_to_process(&parent, SIGCHLD, info);
        parent.child_events.wake_all();
    }
}

/// Removes a reaped zombie from the process table.
pub fn forget(pid: u32) {
    PROCESSES.lock().remove(&pid);
}
