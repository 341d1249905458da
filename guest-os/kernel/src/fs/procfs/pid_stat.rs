//! `/proc/<pid>/stat` and `statm`: one line of numbers each, in Linux's field order (proc(5)).
//!
//! stat: `pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
//! utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss rsslim
//! startcode endcode startstack kstkesp kstkeip signal blocked sigignore sigcatch wchan nswap
//! cnswap exit_signal processor rt_priority policy delayacct_blkio_ticks guest_time cguest_time
//! start_data end_data start_brk arg_start arg_end env_start env_end exit_code` — times in clock
//! ticks (USER_HZ 100). System time, faults and context switches are not counted here: 0.

use super::process;
use super::task_info;
use super::text::TextBuf;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use noa_linux_abi::errno::SysResult;

/// Clock ticks per second (USER_HZ).
const TICKS_PER_SECOND: u64 = 100;
/// What Linux shows in `flags` for a user process (PF_RANDOMIZE).
const PF_RANDOMIZE: u32 = 0x0040_0000;
const PAGE: u64 = 4096;

fn ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / TICKS_PER_SECOND)
}

pub fn stat(pid: u32, tid: Option<u32>) -> SysResult<Vec<u8>> {
    let process = process(pid)?;
    let thread = task_info::view_thread(&process, tid);
    let (state, _) = task_info::state(&process, thread.as_deref());
    let signals = task_info::signals(&process, thread.as_deref());
    let mem = task_info::mem_sizes(&process);
    let mm = process.mm();
    let exec = mm.exec_info();
    let (brk_start, _) = mm.brk_range();
    let threads = process.threads.lock().len();
    let utime = match (tid, &thread) {
        (Some(_), Some(thread)) => thread.user_ns(),
        _ => process.cpu_ns(),
    };
    let exit_code = process.exit_status.lock().unwrap_or(0);
    // A thread that is not the first has no exit signal (-1), as in Linux.
    let exit_signal: i32 = if tid.is_some_and(|t| t != pid) {
        -1
    } else {
        17
    };
    let low = |set: u64| set & 0x7fff_ffff;

    let mut out = TextBuf::with_capacity(400);
    out.num(u64::from(tid.unwrap_or(pid))).str(" (");
    out.bytes(&task_info::comm(&process))
        .str(") ")
        .byte(state as u8)
        .byte(b' ');
    out.num(u64::from(process.ppid())).byte(b' ');
    out.num(u64::from(process.pgid.load(Ordering::Relaxed)))
        .byte(b' ');
    out.num(u64::from(process.sid.load(Ordering::Relaxed)));
    // tty_nr tpgid flags minflt cminflt majflt cmajflt
    out.str(" 0 -1 ")
        .num(u64::from(PF_RANDOMIZE))
        .str(" 0 0 0 0 ");
    // utime stime cutime cstime priority nice num_threads itrealvalue
    out.num(ticks(utime)).str(" 0 ");
    out.num(ticks(process.children_user_ns.load(Ordering::Relaxed)));
    out.str(" 0 20 0 ").num(threads as u64).str(" 0 ");
    // starttime vsize rss rsslim startcode endcode startstack kstkesp kstkeip
    let numbers = [
        ticks(process.start_ns),
        mem.size,
        mem.resident / PAGE,
        u64::MAX,
        mem.start_code,
        mem.end_code,
        exec.start_stack,
        0,
        0,
        // signal blocked sigignore sigcatch wchan nswap cnswap
        low(signals.thread_pending | signals.shared_pending),
        low(signals.blocked),
        low(signals.ignored),
        low(signals.caught),
        0,
        0,
        0,
    ];
    for n in numbers {
        out.num(n).byte(b' ');
    }
    // exit_signal, then processor rt_priority policy delayacct_blkio_ticks guest_time
    // cguest_time
    out.signed(exit_signal.into()).str(" 0 0 0 0 0 0");
    let tail = [
        mem.start_data,
        mem.end_data,
        brk_start,
        exec.arg_start,
        exec.arg_end,
        exec.env_start,
        exec.env_end,
    ];
    for n in tail {
        out.byte(b' ').num(n);
    }
    out.byte(b' ').signed(exit_code.into()).byte(b'\n');
    Ok(out.into_bytes())
}

/// `size resident shared text lib data dt`, in pages (lib and dt are always 0, as in Linux).
pub fn statm(pid: u32) -> SysResult<Vec<u8>> {
    let mem = task_info::mem_sizes(&*process(pid)?);
    let mut out = TextBuf::with_capacity(64);
    out.num(mem.size / PAGE)
        .byte(b' ')
        .num(mem.resident / PAGE)
        .byte(b' ');
    out.num(mem.file / PAGE)
        .byte(b' ')
        .num(mem.exe / PAGE)
        .str(" 0 ");
    out.num((mem.data + mem.stack) / PAGE).str(" 0\n");
    Ok(out.into_bytes())
}
