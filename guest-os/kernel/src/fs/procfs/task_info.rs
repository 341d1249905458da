//! What /proc/<pid>/{status,stat,statm} tell about a process, gathered from the task and memory
//! cores: the command name, the thread a view shows, its state and signal sets, and memory
//! sizes summed from the VMAs.
//!
//! Sizes are approximations where the kernel does not count: resident pages are not tracked,
//! so "resident" is the size of the accessible mappings (an upper bound), and the main stack is
//! its whole reservation.

use crate::mm::{Backing, STACK_TOP};
use crate::task::{Process, Thread};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use noa_linux_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use noa_linux_abi::signal::SIG_IGN;

/// The command name (`comm`): the executable's file name as exec was given it, at most 15
/// bytes (what PR_GET_NAME answers).
pub fn comm(process: &Process) -> Vec<u8> {
    let exe = process.exe.lock();
    let base = exe.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
    base[..base.len().min(15)].to_vec()
}

/// The thread a view shows: `tid` for /proc/<pid>/task/<tid>, else the process's first thread
/// (or, once it has exited, any live one). None when no thread lives (a zombie).
pub fn view_thread(process: &Process, tid: Option<u32>) -> Option<Arc<Thread>> {
    let threads = process.threads.lock();
    let wanted = tid.unwrap_or(process.pid);
    threads
        .iter()
        .find(|t| t.tid == wanted)
        .or_else(|| if tid.is_none() { threads.first() } else { None })
        .cloned()
}

/// The state letter and word Linux shows: running, sleeping, or zombie.
pub fn state(process: &Process, thread: Option<&Thread>) -> (char, &'static str) {
    match thread {
        _ if process.exit_status.lock().is_some() => ('Z', "zombie"),
        None => ('Z', "zombie"),
        Some(thread) if thread.is_asleep() => ('S', "sleeping"),
        Some(_) => ('R', "running"),
    }
}

/// Signal sets of a view (bit n-1 for signal n).
pub struct Signals {
    /// Pending for the thread alone, and for the whole process.
    pub thread_pending: u64,
    pub shared_pending: u64,
    pub blocked: u64,
    pub ignored: u64,
    pub caught: u64,
}

pub fn signals(process: &Process, thread: Option<&Thread>) -> Signals {
    let (mut ignored, mut caught) = (0u64, 0u64);
    for (i, action) in process.actions.lock().iter().enumerate() {
        match action.handler {
            0 => {}
            SIG_IGN => ignored |= 1 << i,
            _ => caught |= 1 << i,
        }
    }
    Signals {
        thread_pending: thread.map_or(0, |t| t.pending.load(Ordering::Acquire)),
        shared_pending: process.pending.load(Ordering::Acquire),
        blocked: thread.map_or(0, |t| t.sigmask.load(Ordering::Acquire)),
        ignored,
        caught,
    }
}

/// Memory sizes of a process, in bytes, and the program's ranges.
#[derive(Default)]
pub struct MemSizes {
    /// All mappings (VmSize).
    pub size: u64,
    /// Accessible mappings (VmRSS: an upper bound, see the module comment).
    pub resident: u64,
    /// Accessible mappings by kind: private anonymous (RssAnon), file-backed (RssFile), shared
    /// anonymous (RssShmem).
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
    /// The main stack (VmStk).
    pub stack: u64,
    /// The executable's code (VmExe) and other files' code (VmLib).
    pub exe: u64,
    pub lib: u64,
    /// Private writable mappings but the stack (VmData).
    pub data: u64,
    /// The executable's code and data ranges (start_code … of /proc/<pid>/stat).
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
}

pub fn mem_sizes(process: &Process) -> MemSizes {
    let mm = process.mm();
    let exe_id = mm.exec_info().exe.map(|f| f.inode().id());
    let mut sizes = MemSizes::default();
    for vma in mm.vmas() {
        let len = vma.end - vma.start;
        sizes.size += len;
        let accessible = vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0;
        if accessible {
            sizes.resident += len;
        }
        let from_exe = match &vma.backing {
            Backing::File { file, .. } => {
                if accessible {
                    sizes.file += len;
                }
                Some(file.inode().id()) == exe_id
            }
            Backing::Anon => {
                if accessible && vma.shared {
                    sizes.shmem += len;
                } else if accessible {
                    sizes.anon += len;
                }
                false
            }
        };
        if vma.end == STACK_TOP && matches!(vma.backing, Backing::Anon) {
            sizes.stack += len;
        } else if vma.prot & PROT_WRITE != 0 && !vma.shared {
            sizes.data += len;
        }
        if vma.prot & PROT_EXEC != 0 {
            if from_exe {
                sizes.exe += len;
            } else if matches!(vma.backing, Backing::File { .. }) {
                sizes.lib += len;
            }
        }
        if from_exe {
            if vma.prot & PROT_EXEC != 0 {
                if sizes.start_code == 0 {
                    sizes.start_code = vma.start;
                }
                sizes.end_code = vma.end;
            } else if vma.prot & PROT_WRITE != 0 {
                if sizes.start_data == 0 {
                    sizes.start_data = vma.start;
                }
                sizes.end_data = vma.end;
            }
        }
    }
    sizes
}

/// The CPUs a process may run on: all online ones (sched_getaffinity's answer).
pub fn cpu_count() -> u32 {
    hal_pv::smp::online_cpus().max(1)
}

/// `0-N` (or `0`): the first `count` CPUs as a Linux CPU list.
pub fn cpu_list(out: &mut super::text::TextBuf, count: u32) {
    out.byte(b'0');
    if count > 1 {
        out.byte(b'-').num(u64::from(count - 1));
    }
}
