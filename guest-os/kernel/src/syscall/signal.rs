//! Signal system calls: rt_sigaction, rt_sigprocmask, sigaltstack, rt_sigpending,
//! rt_sigsuspend, pause. Delivery itself lives in `task::signal`.

use super::Caller;
use crate::mm::uaccess::{copy_from_user, copy_to_user, read_u64, write_u64};
use crate::task::process::SigAction;
use crate::task::signal::UNBLOCKABLE;
use crate::task::wait::WaitQueue;
use core::sync::atomic::Ordering;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::signal::{self as abi, SIGKILL, SIGSTOP, StackT};
use noa_linux_abi::syscalls as nr;

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_RT_SIGACTION, rt_sigaction),
    (nr::SYS_RT_SIGPROCMASK, rt_sigprocmask),
    (nr::SYS_SIGALTSTACK, sigaltstack),
    (nr::SYS_RT_SIGPENDING, rt_sigpending),
    (nr::SYS_RT_SIGSUSPEND, rt_sigsuspend),
    (nr::SYS_PAUSE, pause),
];

fn rt_sigaction(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let sig = a[0] as u32;
    if !(1..=64).contains(&sig) || a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if a[1] != 0 {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mut b = [0u8; abi::SigAction::SIZE];
        copy_from_user(a[1], &mut b)?;
        let action = abi::SigAction::decode(&b).ok_or(Errno::EFAULT)?;
        Some(SigAction {
            handler: action.handler,
            flags: action.flags,
            restorer: action.restorer,
            mask: action.mask & !UNBLOCKABLE,
        })
    } else {
        None
    };
    let process = crate::task::current().process.clone();
    let old = {
        let mut actions = process.actions.lock();
        let old = actions[(sig - 1) as usize];
        if let Some(new) = new {
            actions[(sig - 1) as usize] = new;
        }
        old
    };
    if a[2] != 0 {
        let record = abi::SigAction {
            handler: old.handler,
            flags: old.flags,
            restorer: old.restorer,
            mask: old.mask,
        };
        copy_to_user(a[2], &record.encode())?;
    }
    Ok(0)
}

fn rt_sigprocmask(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let me = crate::task::current();
    let old = me.sigmask.load(Ordering::Acquire);
    if a[1] != 0 {
        let set = read_u64(a[1])? & !UNBLOCKABLE;
        let new = match a[0] as u32 {
            abi::SIG_BLOCK => old | set,
            abi::SIG_UNBLOCK => old & !set,
            abi::SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        };
        me.sigmask.store(new, Ordering::Release);
    }
    if a[2] != 0 {
        write_u64(a[2], old)?;
    }
    Ok(0)
}

fn sigaltstack(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let me = crate::task::current();
    let old = *me.alt_stack.lock();
    if a[1] != 0 {
        let mut b = [0u8; StackT::SIZE];
        let on = old.size != 0
            && abi::on_sig_stack(
                0,
                &StackT {
                    sp: old.sp,
                    flags: old.flags as i32,
                    size: old.size,
                },
            );
        let _ = on;
        let record = StackT {
            sp: old.sp,
            flags: if old.size == 0 {
                abi::SS_DISABLE
            } else {
                old.flags as i32
            },
            size: old.size,
        };
        b.copy_from_slice(&record.encode());
        copy_to_user(a[1], &b)?;
    }
    if a[0] != 0 {
        let mut b = [0u8; StackT::SIZE];
        copy_from_user(a[0], &mut b)?;
        let new = StackT::decode(&b).ok_or(Errno::EFAULT)?;
        let mut stack = me.alt_stack.lock();
        if new.flags & abi::SS_DISABLE != 0 {
            *stack = Default::default();
        } else {
            if new.flags & !abi::SS_AUTODISARM != 0 {
                return Err(Errno::EINVAL);
            }
            if new.size < 2048 {
                return Err(Errno::ENOMEM);
            }
            stack.sp = new.sp;
            stack.size = new.size;
            stack.flags = 0;
        }
    }
    Ok(0)
}

fn rt_sigpending(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let me = crate::task::current();
    write_u64(
        a[0],
        me.pending_signals() & me.sigmask.load(Ordering::Acquire),
    )?;
    Ok(0)
}

/// Nobody wakes this queue: the sleepers wait for signals only.
static NEVER: WaitQueue = WaitQueue::new();

fn rt_sigsuspend(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let me = crate::task::current();
    let mask = read_u64(a[0])? & !UNBLOCKABLE;
    let old = me.sigmask.swap(mask, Ordering::AcqRel);
    // The signal is delivered under the suspend mask; the old mask goes into the handler's frame
    // (and comes back at its sigreturn) or is restored by the user loop if no handler runs.
    me.restore_sigmask_later(old);
    let _ = NEVER.wait_until(|| None::<()>);
    Err(Errno::EINTR)
}

fn pause(_: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    let _ = NEVER.wait_until(|| None::<()>);
    Err(Errno::EINTR)
}
