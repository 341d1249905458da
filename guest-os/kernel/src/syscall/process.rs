//! Process and thread system calls: clone/clone3/fork/vfork, execve, exit, wait4/waitid, the ID
//! family, process groups and sessions, kill/tkill/tgkill, set_tid_address, robust lists,
//! arch_prctl, resource limits, affinity and prctl.

use super::Caller;
use crate::mm::uaccess::{
    copy_from_user, copy_to_user, read_cstring, read_string_array, write_u32,
};
use crate::task::process::{self, Process, RLIMIT_COUNT};
use crate::task::{Thread, next_id, sched, signal};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use hal_pv::user::UserContext;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::process::*;
use noa_linux_abi::signal::{SIGCHLD, SigInfo};
use noa_linux_abi::syscalls as nr;
use spin::Mutex;

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_WAIT4, wait4),
    (nr::SYS_WAITID, waitid),
    (nr::SYS_GETPID, getpid),
    (nr::SYS_GETTID, gettid),
    (nr::SYS_GETPPID, getppid),
    (nr::SYS_GETUID, zero),
    (nr::SYS_GETEUID, zero),
    (nr::SYS_GETGID, zero),
    (nr::SYS_GETEGID, zero),
    (nr::SYS_SETUID, zero),
    (nr::SYS_SETGID, zero),
    (nr::SYS_SETREUID, zero),
    (nr::SYS_SETREGID, zero),
    (nr::SYS_SETRESUID, zero),
    (nr::SYS_SETRESGID, zero),
    (nr::SYS_GETRESUID, getresid),
    (nr::SYS_GETRESGID, getresid),
    (nr::SYS_GETGROUPS, zero),
    (nr::SYS_SETGROUPS, zero),
    (nr::SYS_SETPGID, setpgid),
    (nr::SYS_GETPGID, getpgid),
    (nr::SYS_GETPGRP, getpgrp),
    (nr::SYS_SETSID, setsid),
    (nr::SYS_GETSID, getsid),
    (nr::SYS_KILL, kill),
    (nr::SYS_TKILL, tkill),
    (nr::SYS_TGKILL, tgkill),
    (nr::SYS_SET_TID_ADDRESS, set_tid_address),
    (nr::SYS_SET_ROBUST_LIST, set_robust_list),
    (nr::SYS_GET_ROBUST_LIST, get_robust_list),
    (nr::SYS_PRLIMIT64, prlimit64),
    (nr::SYS_GETRLIMIT, getrlimit),
    (nr::SYS_SETRLIMIT, setrlimit),
    (nr::SYS_SCHED_YIELD, sched_yield),
    (nr::SYS_SCHED_GETAFFINITY, sched_getaffinity),
    (nr::SYS_SCHED_SETAFFINITY, zero),
    (nr::SYS_SCHED_GETSCHEDULER, zero),
    (nr::SYS_SCHED_GETPARAM, sched_getparam),
    (nr::SYS_SCHED_SETSCHEDULER, zero),
    (nr::SYS_SCHED_GET_PRIORITY_MAX, zero),
    (nr::SYS_SCHED_GET_PRIORITY_MIN, zero),
    (nr::SYS_GETPRIORITY, getpriority),
    (nr::SYS_SETPRIORITY, zero),
    (nr::SYS_PRCTL, prctl),
    (nr::SYS_GETCPU, getcpu),
];

fn zero(_: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    Ok(0)
}

fn me() -> Arc<Thread> {
    crate::task::current()
}

// --- creation -------------------------------------------------------------------------------

pub fn fork(me: &Arc<Thread>, context: &mut UserContext) -> SysResult<u64> {
    let args = CloneArgs {
        exit_signal: u64::from(SIGCHLD),
        ..CloneArgs::default()
    };
    do_clone(me, context, &args)
}

pub fn vfork(me: &Arc<Thread>, context: &mut UserContext) -> SysResult<u64> {
    let args = CloneArgs {
        flags: CLONE_VM | CLONE_VFORK,
        exit_signal: u64::from(SIGCHLD),
        ..CloneArgs::default()
    };
    do_clone(me, context, &args)
}

/// clone(flags, newsp, parent_tid, child_tid, tls) — the x86-64 argument order.
pub fn clone(me: &Arc<Thread>, context: &mut UserContext, a: &[u64; 6]) -> SysResult<u64> {
    let args = CloneArgs::from_legacy(a[0], a[1], a[2], a[3], a[4]);
    do_clone(me, context, &args)
}

pub fn clone3(me: &Arc<Thread>, context: &mut UserContext, a: &[u64; 6]) -> SysResult<u64> {
    let size = a[1] as usize;
    if !(CLONE_ARGS_SIZE_VER0..=4096).contains(&size) {
        return Err(if size < CLONE_ARGS_SIZE_VER0 {
            Errno::EINVAL
        } else {
            Errno::E2BIG
        });
    }
    let mut bytes = alloc::vec![0u8; size];
    copy_from_user(a[0], &mut bytes)?;
    let args = CloneArgs::decode(&bytes, size)?;
    do_clone(me, context, &args)
}

fn do_clone(me: &Arc<Thread>, context: &mut UserContext, args: &CloneArgs) -> SysResult<u64> {
    let flags = args.flags;
    validate_clone_flags(flags)?;
    let unsupported = CLONE_NEWNS
        | CLONE_NEWUTS
        | CLONE_NEWIPC
        | CLONE_NEWUSER
        | CLONE_NEWPID
        | CLONE_NEWNET
        | CLONE_NEWCGROUP
        | CLONE_PIDFD
        | CLONE_INTO_CGROUP;
    if flags & unsupported != 0 {
        return Err(Errno::EINVAL);
    }
    let parent = &me.process;
    let tid = next_id();
    let mut child_context = context.clone();
    child_context.set_return(0);
    if let Some(sp) = args.child_sp() {
        child_context.set_rsp(sp);
    }
    if flags & CLONE_SETTLS != 0 {
        if args.tls >= hal_pv::mm::address_space::USER_END {
            return Err(Errno::EPERM);
        }
        child_context.set_fs_base(args.tls);
    }
    let (process, mm, thread) = if flags & CLONE_THREAD != 0 {
        let mm = parent.mm();
        let area = mm.alloc_vector_area()?;
        copy_vector_state(me, area)?;
        let thread = Thread::new(tid, parent.clone(), child_context, area);
        parent.threads.lock().push(thread.clone());
        (parent.clone(), mm, thread)
    } else {
        let (mm, area) = if flags & CLONE_VM != 0 {
            let mm = parent.mm();
            let area = mm.alloc_vector_area()?;
            copy_vector_state(me, area)?;
            (mm, area)
        } else {
            // The child's copy of our save area must hold our current registers.
            let area = me.vector_area.load(Ordering::Acquire);
            if sched::vector_state_live(me) {
                hal_pv::user::vector::save(area).map_err(|_| Errno::EFAULT)?;
            }
            (parent.mm().fork()?, area)
        };
        let files = if flags & CLONE_FILES != 0 {
            parent.files.clone()
        } else {
            Arc::new(Mutex::new(parent.files.lock().clone()))
        };
        let fs = parent.fs.lock().clone();
        let real_parent = if flags & CLONE_PARENT != 0 {
            parent.parent.lock().clone()
        } else {
            Arc::downgrade(parent)
        };
        let child = Process::new(tid, real_parent.clone(), mm.clone(), files, fs);
        child
            .pgid
            .store(parent.pgid.load(Ordering::Relaxed), Ordering::Relaxed);
        child
            .sid
            .store(parent.sid.load(Ordering::Relaxed), Ordering::Relaxed);
        if flags & CLONE_CLEAR_SIGHAND == 0 {
            *child.actions.lock() = *parent.actions.lock();
        }
        let limits = *parent.rlimits.lock();
        for (which, limit) in limits.iter().enumerate() {
            child.set_rlimit(which, *limit);
        }
        *child.exe.lock() = parent.exe.lock().clone();
        if let Some(p) = real_parent.upgrade() {
            p.children.lock().push(child.clone());
        }
        let thread = Thread::new(tid, child.clone(), child_context, area);
        child.threads.lock().push(thread.clone());
        (child, mm, thread)
    };
    thread
        .sigmask
        .store(me.sigmask.load(Ordering::Acquire), Ordering::Release);
    *thread.alt_stack.lock() = *me.alt_stack.lock();
    if flags & CLONE_CHILD_SETTID != 0 {
        crate::mm::uaccess::copy_to_mm(&mm, args.child_tid, &tid.to_le_bytes())?;
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        write_u32(args.parent_tid, tid)?;
    }
    if flags & CLONE_CHILD_CLEARTID != 0 {
        thread
            .clear_child_tid
            .store(args.child_tid, Ordering::Release);
    }
    sched::start(thread);
    if flags & CLONE_VFORK != 0 {
        let _ = process
            .vfork_wait
            .wait_until(|| process.vfork_done.load(Ordering::Acquire).then_some(()));
    }
    Ok(u64::from(tid))
}

/// Saves the caller's live vector registers into a new thread's area (same memory map).
fn copy_vector_state(me: &Thread, area: u64) -> SysResult<()> {
    if sched::vector_state_live(me) {
        hal_pv::user::vector::save(area).map_err(|_| Errno::EFAULT)
    } else {
        let bytes = hal_pv::user::vector::area_bytes();
        let mut buf = alloc::vec![0u8; bytes];
        copy_from_user(me.vector_area.load(Ordering::Acquire), &mut buf)?;
        copy_to_user(area, &buf)
    }
}

// --- exec and exit --------------------------------------------------------------------------

/// Largest argv + envp we accept (Linux's default is 1/4 of the stack limit, 2 MiB).
const MAX_ARG_BYTES: usize = 2 << 20;
const MAX_ARGS: usize = 0x7fff_ffff;
const PATH_MAX: usize = 4096;

pub fn execve(me: &Arc<Thread>, context: &mut UserContext, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_cstring(a[0], PATH_MAX)?;
    let argv = read_string_array(a[1], MAX_ARGS, MAX_ARG_BYTES)?;
    let envp = read_string_array(a[2], MAX_ARGS, MAX_ARG_BYTES)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let image = crate::exec::load(&path, argv, envp)?;
    crate::exec::install(me, image, context)?;
    Ok(0)
}

/// execveat with AT_FDCWD (or an absolute path) only.
pub fn execveat(me: &Arc<Thread>, context: &mut UserContext, a: &[u64; 6]) -> SysResult<u64> {
    let dirfd = a[0] as i32;
    if dirfd != noa_linux_abi::fcntl::AT_FDCWD {
        let path = read_cstring(a[1], PATH_MAX)?;
        if !path.starts_with(b"/") {
            return Err(Errno::ENOSYS);
        }
    }
    execve(me, context, &[a[1], a[2], a[3], 0, 0, 0])
}

/// exit: this thread ends (the user loop sees `exiting`); the last one ends the process.
pub fn exit(me: &Arc<Thread>, a: &[u64; 6]) -> SysResult<u64> {
    let status = ((a[0] & 0xff) << 8) as u32;
    if me.process.live_threads().len() <= 1 {
        me.process
            .group_exit_status
            .store(status, Ordering::Release);
    }
    me.set_exiting();
    Ok(0)
}

pub fn exit_group(me: &Arc<Thread>, a: &[u64; 6]) -> SysResult<u64> {
    me.process.begin_group_exit(((a[0] & 0xff) << 8) as i32);
    Ok(0)
}

// --- wait -----------------------------------------------------------------------------------

const WNOHANG: u64 = 1;
const WEXITED: u64 = 4;
const WNOWAIT: u64 = 0x0100_0000;
const P_ALL: u64 = 0;
const P_PID: u64 = 1;
const P_PGID: u64 = 2;

/// Which children a wait is about.
#[derive(Clone, Copy)]
enum Which {
    Any,
    Pid(u32),
    Group(u32),
}

fn matches(which: Which, child: &Process) -> bool {
    match which {
        Which::Any => true,
        Which::Pid(pid) => child.pid == pid,
        Which::Group(pgid) => child.pgid.load(Ordering::Relaxed) == pgid,
    }
}

/// Waits for a matching child to be a zombie; returns it (reaped unless `keep`), or None with
/// WNOHANG when none is yet.
fn wait_child(which: Which, nohang: bool, keep: bool) -> SysResult<Option<(Arc<Process>, i32)>> {
    let me = me();
    let process = me.process.clone();
    let find = || -> Option<SysResult<(Arc<Process>, i32)>> {
        let mut children = process.children.lock();
        if !children.iter().any(|c| matches(which, c)) {
            return Some(Err(Errno::ECHILD));
        }
        let at = children
            .iter()
            .position(|c| matches(which, c) && c.exit_status.lock().is_some())?;
        let child = if keep {
            children[at].clone()
        } else {
            children.remove(at)
        };
        let status = child.exit_status.lock().unwrap_or(0);
        Some(Ok((child, status)))
    };
    if nohang {
        return match find() {
            Some(result) => result.map(Some),
            None => Ok(None),
        };
    }
    let (child, status) = process.child_events.wait_until(find)??;
    if !keep {
        process.children_user_ns.fetch_add(
            child.dead_user_ns.load(Ordering::Relaxed)
                + child.children_user_ns.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        process::forget(child.pid);
    }
    Ok(Some((child, status)))
}

fn wait4(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let pid = a[0] as i32;
    let options = a[2];
    let which = match pid {
        -1 => Which::Any,
        0 => Which::Group(me.process.pgid.load(Ordering::Relaxed)),
        p if p < -1 => Which::Group(p.unsigned_abs()),
        p => Which::Pid(p as u32),
    };
    match wait_child(which, options & WNOHANG != 0, false)? {
        None => Ok(0),
        Some((child, status)) => {
            if a[1] != 0 {
                write_u32(a[1], status as u32)?;
            }
            if a[3] != 0 {
                copy_to_user(a[3], &Rusage::default().encode())?;
            }
            Ok(u64::from(child.pid))
        }
    }
}

fn waitid(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let options = a[3];
    if options & WEXITED == 0 {
        return Err(Errno::EINVAL);
    }
    let which = match a[0] {
        P_ALL => Which::Any,
        P_PID => Which::Pid(a[1] as u32),
        P_PGID => Which::Group(a[1] as u32),
        _ => return Err(Errno::EINVAL),
    };
    let found = wait_child(which, options & WNOHANG != 0, options & WNOWAIT != 0)?;
    if a[2] != 0 {
        let info = match &found {
            None => [0u8; 128],
            Some((child, status)) => {
                let (code, value) = if status & 0x7f == 0 {
                    (1, (status >> 8) & 0xff)
                } else {
                    (2, status & 0x7f)
                };
                SigInfo::chld(code, child.pid as i32, 0, value, 0, 0).encode()
            }
        };
        copy_to_user(a[2], &info)?;
    }
    Ok(0)
}

// --- identity, groups, sessions -------------------------------------------------------------

fn getpid(me: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    Ok(u64::from(me.process.pid))
}

fn gettid(me: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    Ok(u64::from(me.tid))
}

fn getppid(me: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    Ok(u64::from(me.process.ppid()))
}

fn getresid(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    for &ptr in &a[..3] {
        write_u32(ptr, 0)?;
    }
    Ok(0)
}

fn target(pid: u64) -> SysResult<Arc<Process>> {
    match pid as u32 {
        0 => Ok(me().process.clone()),
        p => process::find(p)
            .filter(|p| p.exit_status.lock().is_none())
            .ok_or(Errno::ESRCH),
    }
}

fn setpgid(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let process = target(a[0])?;
    let pgid = if a[1] == 0 { process.pid } else { a[1] as u32 };
    process.pgid.store(pgid, Ordering::Release);
    Ok(0)
}

fn getpgid(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    Ok(u64::from(target(a[0])?.pgid.load(Ordering::Acquire)))
}

fn getpgrp(me: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    Ok(u64::from(me.process.pgid.load(Ordering::Acquire)))
}

fn setsid(me: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    let process = me.process.clone();
    if process.pgid.load(Ordering::Acquire) == process.pid {
        return Err(Errno::EPERM);
    }
    process.pgid.store(process.pid, Ordering::Release);
    process.sid.store(process.pid, Ordering::Release);
    Ok(u64::from(process.pid))
}

fn getsid(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    Ok(u64::from(target(a[0])?.sid.load(Ordering::Acquire)))
}

// --- signals to others ----------------------------------------------------------------------

fn check_signal(sig: u64) -> SysResult<u32> {
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    Ok(sig as u32)
}

fn kill(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let sig = check_signal(a[1])?;
    let info = SigInfo::kill(sig, me.process.pid as i32, 0);
    let pid = a[0] as i32;
    let targets: alloc::vec::Vec<Arc<Process>> = match pid {
        p if p > 0 => alloc::vec![target(p as u64)?],
        0 | -1 => {
            let group = me.process.pgid.load(Ordering::Acquire);
            process::all()
                .into_iter()
                .filter(|p| {
                    if pid == 0 {
                        p.pgid.load(Ordering::Acquire) == group
                    } else {
                        p.pid != 1 && p.pid != me.process.pid
                    }
                })
                .filter(|p| p.exit_status.lock().is_none())
                .collect()
        }
        p => process::all()
            .into_iter()
            .filter(|q| q.pgid.load(Ordering::Acquire) == p.unsigned_abs())
            .filter(|p| p.exit_status.lock().is_none())
            .collect(),
    };
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        for process in &targets {
            signal::send_to_process(process, sig, info);
        }
    }
    Ok(0)
}

fn find_thread(tgid: Option<u32>, tid: u32) -> SysResult<Arc<Thread>> {
    let candidates = match tgid {
        Some(tgid) => alloc::vec![process::find(tgid).ok_or(Errno::ESRCH)?],
        None => process::find(tid)
            .into_iter()
            .chain(process::all())
            .collect(),
    };
    candidates
        .iter()
        .flat_map(|p| p.live_threads())
        .find(|t| t.tid == tid)
        .ok_or(Errno::ESRCH)
}

fn tkill(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    signal_thread(None, a[0] as u32, a[1])
}

fn tgkill(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if (a[0] as i32) <= 0 || (a[1] as i32) <= 0 {
        return Err(Errno::EINVAL);
    }
    signal_thread(Some(a[0] as u32), a[1] as u32, a[2])
}

/// tkill/tgkill: `sig` (0: only check the thread exists) to thread `tid` (of process `tgid`).
fn signal_thread(tgid: Option<u32>, tid: u32, sig: u64) -> SysResult<u64> {
    let sig = check_signal(sig)?;
    let thread = find_thread(tgid, tid)?;
    if sig != 0 {
        let info = SigInfo::tkill(sig, me().process.pid as i32, 0);
        signal::send_to_thread(&thread, sig, info);
    }
    Ok(0)
}

// --- thread bookkeeping ---------------------------------------------------------------------

fn set_tid_address(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    me.clear_child_tid.store(a[0], Ordering::Release);
    Ok(u64::from(me.tid))
}

/// Size of `struct robust_list_head`.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

fn set_robust_list(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if a[1] != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    me.robust_list.store(a[0], Ordering::Release);
    Ok(0)
}

fn get_robust_list(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let thread = if a[0] == 0 {
        me.clone()
    } else {
        find_thread(None, a[0] as u32)?
    };
    crate::mm::uaccess::write_u64(a[1], thread.robust_list.load(Ordering::Acquire))?;
    crate::mm::uaccess::write_u64(a[2], ROBUST_LIST_HEAD_SIZE)?;
    Ok(0)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

pub fn arch_prctl(context: &mut UserContext, a: &[u64; 6]) -> SysResult<u64> {
    let canonical = |v: u64| v < hal_pv::mm::address_space::USER_END;
    match a[0] {
        ARCH_SET_FS if canonical(a[1]) => context.set_fs_base(a[1]),
        ARCH_SET_GS if canonical(a[1]) => context.set_gs_base(a[1]),
        ARCH_SET_FS | ARCH_SET_GS => return Err(Errno::EPERM),
        ARCH_GET_FS => crate::mm::uaccess::write_u64(a[1], context.fs_base())?,
        ARCH_GET_GS => crate::mm::uaccess::write_u64(a[1], context.gs_base())?,
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

// --- limits, scheduling, prctl --------------------------------------------------------------

fn prlimit64(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let process = target(a[0])?;
    let resource = a[1] as usize;
    if resource >= RLIMIT_COUNT {
        return Err(Errno::EINVAL);
    }
    let new = if a[2] != 0 {
        let mut b = [0u8; 16];
        copy_from_user(a[2], &mut b)?;
        let limit = Rlimit::decode(&b).ok_or(Errno::EFAULT)?;
        if limit.cur > limit.max {
            return Err(Errno::EINVAL);
        }
        Some(limit)
    } else {
        None
    };
    let old = process.rlimits.lock()[resource];
    if a[3] != 0 {
        copy_to_user(
            a[3],
            &Rlimit {
                cur: old.0,
                max: old.1,
            }
            .encode(),
        )?;
    }
    if let Some(limit) = new {
        process.set_rlimit(resource, (limit.cur, limit.max));
    }
    Ok(0)
}

fn getrlimit(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    prlimit64(me, &[0, a[0], 0, a[1], 0, 0])
}

fn setrlimit(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    prlimit64(me, &[0, a[0], a[1], 0, 0, 0])
}

fn sched_yield(_: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    sched::yield_now();
    Ok(0)
}

fn sched_getaffinity(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let cpus = hal_pv::smp::online_cpus() as usize;
    let bytes = cpus.div_ceil(64) * 8;
    let len = a[1] as usize;
    if len < bytes || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut mask = alloc::vec![0u8; bytes];
    for cpu in 0..cpus {
        mask[cpu / 8] |= 1 << (cpu % 8);
    }
    copy_to_user(a[2], &mask)?;
    Ok(bytes as u64)
}

fn sched_getparam(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    write_u32(a[1], 0)?;
    Ok(0)
}

fn getpriority(_: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    // The kernel's form: 20 - nice.
    Ok(20)
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;

fn prctl(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    match a[0] {
        PR_SET_PDEATHSIG | PR_SET_DUMPABLE | PR_SET_NO_NEW_PRIVS => Ok(0),
        PR_GET_PDEATHSIG => write_u32(a[1], 0).map(|_| 0),
        PR_GET_DUMPABLE => Ok(1),
        PR_GET_NO_NEW_PRIVS => Ok(0),
        PR_SET_NAME => {
            let name = read_cstring(a[1], 4096)?;
            let _ = name;
            Ok(0)
        }
        PR_GET_NAME => {
            let exe = me.process.exe.lock().clone();
            let base = exe.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
            let mut name = [0u8; 16];
            let n = base.len().min(15);
            name[..n].copy_from_slice(&base[..n]);
            copy_to_user(a[1], &name).map(|_| 0)
        }
        _ => Err(Errno::EINVAL),
    }
}

fn getcpu(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if a[0] != 0 {
        write_u32(a[0], hal_pv::cpu::cpu_index())?;
    }
    if a[1] != 0 {
        write_u32(a[1], 0)?;
    }
    Ok(0)
}
