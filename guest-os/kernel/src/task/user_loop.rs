//! The body of every user thread: run the user registers, handle the trap, repeat — and the
//! thread's end.

use super::sched;
use super::signal;
use super::thread::{SigInfo, Thread};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use hal_pv::user::{Trap, UserContext};
use noa_linux_abi::signal::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};

/// `si_code`s for faults.
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;
const ILL_ILLOPN: i32 = 2;
const FPE_INTDIV: i32 = 1;
const BUS_ADRALN: i32 = 1;
const TRAP_BRKPT: i32 = 1;
const SI_KERNEL: i32 = 0x80;

/// Whether SA_RESTART restarts system call `nr` after a handler (Linux never restarts waits for
/// signals or time: pause, sigsuspend, the sleeps and the poll family return EINTR). Never
/// rt_sigreturn: the EINTR it may leave in RAX is the interrupted call's, restored from the
/// frame, and "restarting" it would run rt_sigreturn again on a frame that is gone.
fn restartable(nr: u64) -> bool {
    use noa_linux_abi::syscalls as n;
    !matches!(
        nr as usize,
        n::SYS_RT_SIGRETURN
            | n::SYS_PAUSE
            | n::SYS_RT_SIGSUSPEND
            | n::SYS_NANOSLEEP
            | n::SYS_CLOCK_NANOSLEEP
            | n::SYS_POLL
            | n::SYS_PPOLL
            | n::SYS_SELECT
            | n::SYS_PSELECT6
            | n::SYS_EPOLL_WAIT
            | n::SYS_EPOLL_PWAIT
            | n::SYS_EPOLL_PWAIT2
            | n::SYS_RT_SIGTIMEDWAIT
    )
}

/// RLIMIT_CPU: SIGKILL past the hard limit; SIGXCPU past the soft one, then once a second (as
/// Linux). A timer deadline at the next threshold brings a thread that never traps back here.
fn check_cpu_limit(me: &Arc<Thread>) {
    const NS: u64 = 1_000_000_000;
    let process = &me.process;
    let (soft, hard) = process.rlimits.lock()[super::process::RLIMIT_CPU];
    let used = process.cpu_ns();
    let seconds = used / NS;
    if hard != u64::MAX && seconds >= hard {
        process.begin_group_exit(noa_linux_abi::signal::SIGKILL as i32);
        return;
    }
    if soft != u64::MAX && seconds >= soft {
        // Stored as seconds + 1, so 0 means "never sent".
        if seconds + 1 > process.xcpu_sent_at.load(Ordering::Relaxed) {
            process.xcpu_sent_at.store(seconds + 1, Ordering::Relaxed);
            signal::send_to_process(
                process,
                noa_linux_abi::signal::SIGXCPU,
                SigInfo::kernel(noa_linux_abi::signal::SIGXCPU),
            );
        }
    }
    // Come back at the next whole CPU second at the latest (at least 10 ms on: user time grows
    // slower than the clock, and ever-shorter steps would never reach the second).
    let to_next = (NS - used % NS).max(10_000_000);
    super::timer::wake_at(hal_pv::time::now_ns() + to_next, me);
}

/// Where a new thread's kernel context starts (see `Thread::new`).
pub fn thread_entry(_: usize) -> ! {
    sched::after_switch();
    let me = sched::current();
    let context = me.start.lock().take();
    match context {
        // Tracing is chosen at boot, before any thread starts: a loop of its own keeps its
        // test off every system call of the untraced one.
        Some(context) if crate::syscall::tracing() => run::<true>(me, context),
        Some(context) => run::<false>(me, context),
        None => exit_thread(me),
    }
}

fn run<const TRACED: bool>(me: Arc<Thread>, mut context: UserContext) -> ! {
    // Result of the last system call, for SA_RESTART: Some(number) if it returned EINTR.
    let mut restart: Option<u64> = None;
    loop {
        // One load per entry; the work behind the flag is rare (see `Thread::call_attention`).
        if me.needs_attention() && !attend(&me, &mut context, restart.take()) {
            exit_thread(me);
        }
        restart = None;
        if let Err(e) = sched::prepare_user_entry(&me) {
            crate::klog!("pid {}: vector state restore failed: {e:?}", me.process.pid);
            // The thread's vector save area is gone (it unmapped it): it cannot run correctly.
            me.process.begin_group_exit(SIGSEGV as i32);
            continue;
        }
        let start = hal_pv::cpu::rdtsc();
        let trap = context.run();
        let spent = hal_pv::cpu::rdtsc().wrapping_sub(start);
        me.user_tsc.fetch_add(spent, Ordering::Relaxed);
        match trap {
            Trap::Syscall => {
                let nr = context.syscall_number();
                crate::syscall::handle::<TRACED>(&me, &mut context);
                if context.return_value() == (-(noa_linux_abi::errno::Errno::EINTR.0 as i64)) as u64
                    && restartable(nr)
                {
                    restart = Some(nr);
                }
            }
            Trap::Exception {
                vector,
                error,
                addr,
            } => exception(&me, &mut context, vector, error, addr),
            Trap::Interrupt => sched::after_user_interrupt(),
            Trap::BadState => {
                crate::klog!(
                    "pid {} tid {}: cannot enter user mode at rip {:#x} rsp {:#x}: SIGSEGV",
                    me.process.pid,
                    me.tid,
                    context.rip(),
                    context.rsp()
                );
                signal::send_to_thread(&me, SIGSEGV, SigInfo::kernel(SIGSEGV));
            }
        }
    }
}

/// The work the attention flag stands for, before entering user mode: the CPU-time limit, an
/// exit, a signal to deliver, a mask to restore. False when the thread must exit instead.
///
/// The flag is cleared first (a full barrier), so whatever is flagged during these checks is
/// seen at the next entry; it is set again while something stays to be looked at every time:
/// a CPU limit, or signals pending (blocked ones become deliverable when the mask changes, and
/// the mask changes without flagging).
#[inline(never)]
fn attend(me: &Arc<Thread>, context: &mut UserContext, restart: Option<u64>) -> bool {
    me.take_attention();
    // After every trap while limited (a system call may just have set the limit).
    let limited = me.process.cpu_limited.load(Ordering::Acquire);
    if limited {
        check_cpu_limit(me);
    }
    if me.exiting.load(Ordering::Acquire) || me.process.is_exiting() {
        return false;
    }
    if me.deliverable_signals() != 0 && !signal::deliver(me, context, restart) {
        return false;
    }
    let saved = me.saved_sigmask.load(Ordering::Relaxed);
    if saved != super::thread::NO_SAVED_MASK {
        me.saved_sigmask
            .store(super::thread::NO_SAVED_MASK, Ordering::Relaxed);
        me.sigmask.store(saved, Ordering::Release);
    }
    if limited || me.pending_signals() != 0 {
        me.call_attention();
    }
    true
}

fn exception(me: &Arc<Thread>, context: &mut UserContext, vector: u8, error: u64, addr: u64) {
    let (sig, code, fault_addr) = match vector {
        14 => {
            let write = error & 2 != 0;
            let exec = error & 0x10 != 0;
            let mm = me.process.mm();
            match mm.handle_fault(addr, write, exec) {
                Ok(()) => return,
                Err(present) => (
                    SIGSEGV,
                    if present { SEGV_ACCERR } else { SEGV_MAPERR },
                    addr,
                ),
            }
        }
        0 => (SIGFPE, FPE_INTDIV, context.rip()),
        16 | 19 => (SIGFPE, 0, context.rip()),
        6 => (SIGILL, ILL_ILLOPN, context.rip()),
        1 | 3 => (SIGTRAP, TRAP_BRKPT, context.rip()),
        17 => (SIGBUS, BUS_ADRALN, addr),
        _ => (SIGSEGV, SI_KERNEL, 0),
    };
    crate::klog!(
        "pid {} tid {}: {} (vector {vector}, error {error:#x}) at {fault_addr:#x}, rip {:#x}",
        me.process.pid,
        me.tid,
        noa_linux_abi::signal::signal_name(sig).unwrap_or("?"),
        context.rip()
    );
    // A fault the thread blocks or ignores cannot be deferred: it would fault again forever.
    let blocked = me.sigmask.load(Ordering::Acquire) & signal::bit(sig) != 0;
    let ignored =
        me.process.actions.lock()[(sig - 1) as usize].handler == noa_linux_abi::signal::SIG_IGN;
    if blocked || ignored {
        // No core file is ever written, so the status carries no core flag.
        me.process.begin_group_exit(sig as i32);
        return;
    }
    signal::send_to_thread(me, sig, SigInfo::fault(sig, code, fault_addr));
}

/// Ends the calling thread: the CLEARTID wake, then the process if it was the last thread.
pub fn exit_thread(me: Arc<Thread>) -> ! {
    let tid_addr = me.clear_child_tid.swap(0, Ordering::AcqRel);
    if tid_addr != 0 && crate::mm::uaccess::write_u32(tid_addr, 0).is_ok() {
        let _ = super::futex::wake(tid_addr, 1, super::futex::BITSET_MATCH_ANY, false);
        let _ = super::futex::wake(tid_addr, 1, super::futex::BITSET_MATCH_ANY, true);
    }
    me.exiting.store(true, Ordering::Release);
    let process = me.process.clone();
    process
        .dead_user_ns
        .fetch_add(me.user_ns(), Ordering::Relaxed);
    let last = {
        let mut threads = process.threads.lock();
        threads.retain(|t| !Arc::ptr_eq(t, &me));
        threads.is_empty()
    };
    if let Some(area) = Some(me.vector_area.load(Ordering::Acquire)) {
        process.mm().free_vector_area(area);
    }
    drop(me);
    if last {
        // The parent hears of the exit before the address space goes: tearing it down, page by
        // page, takes seconds for a large process on PVM hosts, and a waiting parent need not
        // wait for it (at shutdown, init powers off meanwhile). Dirty shared pages need none of
        // it: the page cache writes them back at sync and power-off (`mm::page_cache`).
        let mm = process.release_mm();
        super::process::finish(&process);
        drop(process);
        // Off this process's tables first: a CPU that has them loaded keeps them alive.
        hal_pv::mm::address_space::activate_kernel_space();
        drop(mm);
    } else {
        drop(process);
    }
    sched::exit_current()
}
