//! Signals: sending (kill, tgkill, faults), and delivery on the way back to user mode — the
//! default actions, or a handler frame (`rt_sigframe`) on the user stack that `rt_sigreturn`
//! takes back.
//!
//! Job control stops (SIGSTOP, SIGTSTP, …) are not implemented: their default action is ignored,
//! as are SIGCONT's. A handler's vector state is saved into the frame from ring 3 (the
//! trampoline), so ring 0 never touches vector registers.

use super::process::Process;
use super::thread::{SigInfo, Thread};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use hal_pv::user::UserContext;
use noa_linux_abi::signal::{
    self as abi, DefaultAction, RtSigframe, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART,
    SIG_DFL, SIG_IGN, SIGKILL, SIGSTOP, SigContext, StackT, UContext,
};

/// Signals that can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);

pub const fn bit(sig: u32) -> u64 {
    1u64 << (sig - 1)
}

/// Sends `sig` to `process`: to a thread that does not block it (or the first), waking it.
/// SIGKILL ends the process at once.
pub fn send_to_process(process: &Arc<Process>, sig: u32, info: SigInfo) {
    if !(1..=64).contains(&sig) || process.exit_status.lock().is_some() {
        return;
    }
    if sig == SIGKILL {
        process.begin_group_exit(SIGKILL as i32);
        return;
    }
    if is_ignored(process, sig) {
        return;
    }
    let threads = process.live_threads();
    let target = threads
        .iter()
        .find(|t| t.sigmask.load(Ordering::Acquire) & bit(sig) == 0)
        .or(threads.first());
    if let Some(thread) = target {
        send_to_thread(thread, sig, info);
    }
}

/// Sends `sig` to one thread.
pub fn send_to_thread(thread: &Arc<Thread>, sig: u32, info: SigInfo) {
    if !(1..=64).contains(&sig) {
        return;
    }
    if sig == SIGKILL {
        thread.process.begin_group_exit(SIGKILL as i32);
        return;
    }
    if is_ignored(&thread.process, sig) {
        return;
    }
    let previous = thread.pending.fetch_or(bit(sig), Ordering::AcqRel);
    if previous & bit(sig) == 0 || sig >= abi::SIGRTMIN {
        thread.pending_info.lock().push_back(info);
    }
    thread.call_attention();
    super::sched::kick(thread);
}

/// Raises `sig` in the current thread (SIGPIPE from a write, faults).
pub fn raise_current(sig: u32) {
    let me = super::current();
    send_to_thread(&me, sig, SigInfo::kernel(sig));
}

/// Whether `sig` would be discarded on arrival (ignored, explicitly or by default).
fn is_ignored(process: &Process, sig: u32) -> bool {
    let action = process.actions.lock()[(sig - 1) as usize];
    action.handler == SIG_IGN
        || (action.handler == SIG_DFL
            && matches!(
                abi::default_action(sig).unwrap_or(DefaultAction::Terminate),
                DefaultAction::Ignore | DefaultAction::Stop | DefaultAction::Continue
            ))
}

/// Delivers the first deliverable signal before `context` re-enters user mode. `syscall_result`
/// is the result the interrupted system call is returning (Some(-EINTR) lets SA_RESTART restart
/// it). Returns false if the process must die (the caller exits the thread).
pub fn deliver(me: &Arc<Thread>, context: &mut UserContext, restart: Option<u64>) -> bool {
    let deliverable = me.deliverable_signals();
    if deliverable == 0 {
        return true;
    }
    let sig = deliverable.trailing_zeros() + 1;
    let info = take_pending(me, sig);
    let process = &me.process;
    let action = {
        let mut actions = process.actions.lock();
        let action = actions[(sig - 1) as usize];
        if action.handler > SIG_IGN && action.flags & SA_RESETHAND != 0 {
            actions[(sig - 1) as usize].handler = SIG_DFL;
        }
        action
    };
    match action.handler {
        SIG_IGN => return true,
        SIG_DFL => {
            return match abi::default_action(sig).unwrap_or(DefaultAction::Terminate) {
                DefaultAction::Terminate => {
                    process.begin_group_exit(sig as i32);
                    false
                }
                DefaultAction::Core => {
                    // No core file is ever written, so the status carries no core flag.
                    process.begin_group_exit(sig as i32);
                    false
                }
                _ => true,
            };
        }
        _ => {}
    }
    if let Some(nr) = restart
        && action.flags & SA_RESTART != 0
    {
        // Restart the interrupted call when the handler returns: back over the 2-byte `syscall`.
        context.set_return(nr);
        context.set_rip(context.rip().wrapping_sub(2));
    }
    if let Err(why) = push_frame(me, context, sig, &info, &action) {
        crate::klog!("pid {}: cannot deliver signal {sig}: {why}", process.pid);
        process.begin_group_exit(abi::SIGSEGV as i32);
        return false;
    }
    let mut mask = action.mask;
    if action.flags & SA_NODEFER == 0 {
        mask |= bit(sig);
    }
    me.sigmask.fetch_or(mask & !UNBLOCKABLE, Ordering::AcqRel);
    true
}

fn take_pending(me: &Thread, sig: u32) -> SigInfo {
    let mut queue = me.pending_info.lock();
    let info = queue
        .iter()
        .position(|i| i.signo as u32 == sig)
        .and_then(|at| queue.remove(at));
    if !queue.iter().any(|i| i.signo as u32 == sig) {
        me.pending.fetch_and(!bit(sig), Ordering::AcqRel);
        me.process.pending.fetch_and(!bit(sig), Ordering::AcqRel);
    }
    info.unwrap_or_else(|| SigInfo::kernel(sig))
}

fn push_frame(
    me: &Thread,
    context: &mut UserContext,
    sig: u32,
    info: &SigInfo,
    action: &super::process::SigAction,
) -> Result<(), &'static str> {
    let alt = *me.alt_stack.lock();
    let alt_abi = StackT {
        sp: alt.sp,
        flags: alt.flags as i32,
        size: alt.size,
    };
    let on_alt = abi::on_sig_stack(context.rsp(), &alt_abi);
    let top = if action.flags & SA_ONSTACK != 0 && alt.flags == 0 && alt.size != 0 && !on_alt {
        alt.sp + alt.size
    } else {
        context.rsp().wrapping_sub(128)
    };
    let fp_bytes = hal_pv::user::vector::area_bytes() as u64;
    let (frame, fpstate) = abi::place_rt_sigframe(top, fp_bytes).ok_or("no room for the frame")?;
    // The vector registers go straight from ring 3 into the frame.
    if super::sched::vector_state_live(me) {
        // `xsave` leaves the header's reserved bytes alone, and `xrstor` at sigreturn faults
        // unless they are zero: clear the whole area first (stack memory holds old data).
        crate::mm::uaccess::copy_to_user(fpstate, &alloc::vec![0u8; fp_bytes as usize])
            .map_err(|_| "frame not writable")?;
        hal_pv::user::vector::save(fpstate).map_err(|_| "vector state save into the frame")?;
    } else {
        let mut area = alloc::vec![0u8; fp_bytes as usize];
        crate::mm::uaccess::copy_from_user(me.vector_area.load(Ordering::Acquire), &mut area)
            .map_err(|_| "save area unreadable")?;
        crate::mm::uaccess::copy_to_user(fpstate, &area).map_err(|_| "frame not writable")?;
    }
    let saved = me
        .saved_sigmask
        .swap(super::thread::NO_SAVED_MASK, Ordering::AcqRel);
    let frame_mask = if saved != super::thread::NO_SAVED_MASK {
        saved
    } else {
        me.sigmask.load(Ordering::Acquire)
    };
    me.sigmask.store(frame_mask, Ordering::Release);
    let r = context.general();
    let mcontext = SigContext {
        r8: r[0],
        r9: r[1],
        r10: r[2],
        r11: r[3],
        r12: r[4],
        r13: r[5],
        r14: r[6],
        r15: r[7],
        rdi: r[8],
        rsi: r[9],
        rbp: r[10],
        rbx: r[11],
        rdx: r[12],
        rax: r[13],
        rcx: r[14],
        rsp: r[15],
        rip: r[16],
        eflags: context.rflags(),
        cs: hal_pv::cpu::gdt::USER_CODE,
        ss: hal_pv::cpu::gdt::USER_DATA,
        fpstate,
        ..SigContext::default()
    };
    let record = RtSigframe {
        pretcode: action.restorer,
        uc: UContext {
            flags: 0,
            link: 0,
            stack: StackT {
                sp: alt.sp,
                flags: if on_alt {
                    abi::SS_ONSTACK
                } else {
                    alt.flags as i32
                },
                size: alt.size,
            },
            mcontext,
            sigmask: frame_mask,
        },
        info: *info,
    };
    crate::mm::uaccess::copy_to_user(frame, &record.encode()).map_err(|_| "frame not writable")?;
    context.set_rsp(frame);
    context.set_rip(action.handler);
    context.set_args(
        u64::from(sig),
        frame + RtSigframe::INFO_OFFSET as u64,
        frame + RtSigframe::UC_OFFSET as u64,
    );
    context.set_return(0);
    // The handler starts with DF and TF clear.
    context.set_rflags(context.rflags() & !((1 << 10) | (1 << 8)));
    Ok(())
}

/// `rt_sigreturn`: takes back the frame the handler returned through. Returns false if the
/// frame is unreadable (the caller kills the process with SIGSEGV).
pub fn sigreturn(me: &Thread, context: &mut UserContext) -> bool {
    let frame = context.rsp().wrapping_sub(8);
    let mut bytes = [0u8; RtSigframe::SIZE];
    if crate::mm::uaccess::copy_from_user(frame, &mut bytes).is_err() {
        return false;
    }
    let Some(record) = RtSigframe::decode(&bytes) else {
        return false;
    };
    let m = record.uc.mcontext;
    context.set_general([
        m.r8, m.r9, m.r10, m.r11, m.r12, m.r13, m.r14, m.r15, m.rdi, m.rsi, m.rbp, m.rbx, m.rdx,
        m.rax, m.rcx, m.rsp, m.rip,
    ]);
    context.set_rflags(m.eflags);
    me.sigmask
        .store(record.uc.sigmask & !UNBLOCKABLE, Ordering::Release);
    if m.fpstate != 0 {
        if hal_pv::user::vector::restore(m.fpstate).is_err() {
            return false;
        }
        super::sched::set_vector_state_live(me);
    }
    true
}
