//! Tasks: processes and threads, the scheduler that runs them on every CPU, and what they block
//! on (wait queues, timers, futexes) and are told with (signals).
//!
//! A [`Thread`] is a kernel context (its own kernel stack, `hal_pv::task::Context`) whose body is
//! the user loop (`user_loop.rs`): run the user registers until they trap, handle the trap,
//! repeat. A [`Process`] is what threads share: the memory map, the file table, the signal
//! actions, the children. Process IDs and thread IDs come from one counter, as in Linux, so a
//! process's ID is its first thread's ID.

pub mod futex;
pub mod process;
pub mod sched;
pub mod signal;
pub mod thread;
pub mod timer;
pub mod user_loop;
pub mod wait;

pub use process::Process;
pub use sched::current;
pub use thread::Thread;

use core::sync::atomic::{AtomicU32, Ordering};

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A new process/thread ID (1 is init's).
pub fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// How many process/thread IDs have been handed out (`processes` of /proc/stat: forks since
/// boot, threads included).
pub fn ids_issued() -> u32 {
    NEXT_ID.load(Ordering::Relaxed).saturating_sub(1)
}

/// Creates process 1 running `/sbin/init` and makes it runnable.
pub fn spawn_init(
    argv: alloc::vec::Vec<alloc::vec::Vec<u8>>,
    envp: alloc::vec::Vec<alloc::vec::Vec<u8>>,
) -> noa_linux_abi::errno::SysResult<()> {
    let image = crate::exec::load(b"/sbin/init", argv, envp)?;
    let mut files = crate::fs::FdTable::new();
    for (fd, file) in crate::fs::stdio().into_iter().enumerate() {
        files.insert_at(fd as i32, file, false)?;
    }
    let pid = next_id();
    let process = Process::new(
        pid,
        alloc::sync::Weak::new(),
        image.mm.clone(),
        alloc::sync::Arc::new(spin::Mutex::new(files)),
        crate::fs::FsContext::root(),
    );
    *process.exe.lock() = image.exe;
    let area = image.mm.alloc_vector_area()?;
    let thread = Thread::new(pid, process.clone(), image.context, area);
    process.threads.lock().push(thread.clone());
    sched::start(thread);
    Ok(())
}
