//! System calls: the dispatcher. One file per family; each exports `TABLE`, a list of (number,
//! handler), merged at boot into one array indexed by number. The calls that need the caller's
//! registers (clone, fork, execve, rt_sigreturn, arch_prctl, exit) are dispatched here directly.
//!
//! An unknown or unimplemented number returns ENOSYS and is logged once. Handlers take the six
//! raw argument registers; every pointer among them is checked by `mm::uaccess`.

pub mod file;
pub mod futex;
pub mod info;
pub mod memory;
pub mod path;
pub mod poll;
pub mod process;
pub mod signal;
pub mod socket;
pub mod time;

use crate::task::Thread;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use hal_pv::user::UserContext;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::syscalls as nr;

/// The thread making a system call, as every handler receives it (no lookup of the current
/// thread, which would take a lock and a reference count).
pub type Caller = Arc<Thread>;

pub type Handler = fn(&Caller, &[u64; 6]) -> SysResult<u64>;

/// Highest syscall number we dispatch (clone3 is 435; the table covers up to 511).
const TABLE_LEN: usize = 512;

/// Every family's handlers by number, built at compile time (no lookup work per call).
static TABLE: [Option<Handler>; TABLE_LEN] = build_table();
/// Numbers already reported as unimplemented (one bit each).
static LOGGED: [AtomicU64; TABLE_LEN / 64] = [const { AtomicU64::new(0) }; TABLE_LEN / 64];

const fn build_table() -> [Option<Handler>; TABLE_LEN] {
    let families: [&[(usize, Handler)]; 10] = [
        file::TABLE,
        path::TABLE,
        poll::TABLE,
        process::TABLE,
        memory::TABLE,
        signal::TABLE,
        time::TABLE,
        info::TABLE,
        futex::TABLE,
        socket::TABLE,
    ];
    let mut table: [Option<Handler>; TABLE_LEN] = [None; TABLE_LEN];
    let mut f = 0;
    while f < families.len() {
        let family = families[f];
        let mut i = 0;
        while i < family.len() {
            let (number, handler) = family[i];
            assert!(number < TABLE_LEN, "syscall number beyond the table");
            table[number] = Some(handler);
            i += 1;
        }
        f += 1;
    }
    table
}

fn table() -> &'static [Option<Handler>; TABLE_LEN] {
    &TABLE
}

/// `noa.strace=1` on the command line: log every system call and its result (debugging);
/// `noa.strace=2`: all but futex. Set at boot, before the first user thread starts.
pub static TRACE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Whether system calls are traced (user threads pick their loop by it when they start).
pub fn tracing() -> bool {
    TRACE.load(Ordering::Relaxed) != 0
}

/// Handles the system call in `context` (number in RAX) and stores the result in RAX; `TRACED`
/// is [`tracing`], fixed for the thread's loop.
pub fn handle<const TRACED: bool>(me: &Arc<Thread>, context: &mut UserContext) {
    let number = context.syscall_number();
    if TRACED {
        traced(me, context, number);
        return;
    }
    dispatch(me, context, number);
}

/// The `noa.strace` path, out of line so the common path stays short.
#[cold]
#[inline(never)]
fn traced(me: &Arc<Thread>, context: &mut UserContext, number: u64) {
    let args = *context.syscall_arg_regs();
    let trace = TRACE.load(Ordering::Relaxed);
    if trace == 1 || (trace == 2 && number as usize != nr::SYS_FUTEX) {
        let name = nr::name(number as usize).unwrap_or("?");
        crate::klog!(
            "{} us [{}] {name}({:#x}, {:#x}, {:#x}, {:#x}) ...",
            hal_pv::time::now_ns() / 1000,
            me.tid,
            args[0],
            args[1],
            args[2],
            args[3]
        );
        dispatch(me, context, number);
        crate::klog!("[{}] {name} = {:#x}", me.tid, context.return_value());
        return;
    }
    dispatch(me, context, number);
}

fn dispatch(me: &Arc<Thread>, context: &mut UserContext, number: u64) {
    // The table first: it holds every call but those that need the user registers below, and
    // one indexed load is the whole lookup. Its handlers read the arguments in the frame.
    let result = match table().get(number as usize).copied().flatten() {
        Some(handler) => handler(me, context.syscall_arg_regs()),
        None => match with_registers(me, context, number as usize) {
            Some(result) => result,
            None => return, // rt_sigreturn: RAX is the interrupted code's
        },
    };
    context.set_return(match result {
        Ok(value) => value,
        Err(errno) => (-(errno.0 as i64)) as u64,
    });
}

/// The calls that read or replace the user registers (or are not in the table); `None` when RAX
/// must be left as it is.
#[inline(never)]
fn with_registers(
    me: &Arc<Thread>,
    context: &mut UserContext,
    number: usize,
) -> Option<SysResult<u64>> {
    // A copy: these calls may rewrite the registers the arguments came in.
    let args = &{ *context.syscall_arg_regs() };
    Some(match number {
        nr::SYS_RT_SIGRETURN => {
            if !crate::task::signal::sigreturn(me, context) {
                crate::klog!("pid {}: bad signal frame at rt_sigreturn", me.process.pid);
                me.process
                    .begin_group_exit(noa_linux_abi::signal::SIGSEGV as i32);
            }
            // Either RAX is the interrupted code's, restored from the frame, or the process ends.
            return None;
        }
        nr::SYS_CLONE => process::clone(me, context, args),
        nr::SYS_CLONE3 => process::clone3(me, context, args),
        nr::SYS_FORK => process::fork(me, context),
        nr::SYS_VFORK => process::vfork(me, context),
        nr::SYS_EXECVE => process::execve(me, context, args),
        nr::SYS_EXECVEAT => process::execveat(me, context, args),
        nr::SYS_ARCH_PRCTL => process::arch_prctl(context, args),
        nr::SYS_EXIT => process::exit(me, args),
        nr::SYS_EXIT_GROUP => process::exit_group(me, args),
        n => {
            log_unimplemented(n);
            Err(Errno::ENOSYS)
        }
    })
}

fn log_unimplemented(number: usize) {
    let word = number.min(TABLE_LEN - 1) / 64;
    let bit = 1u64 << (number % 64);
    if LOGGED[word].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        let name = nr::name(number).unwrap_or("?");
        crate::klog!("syscall {number} ({name}) not implemented: ENOSYS");
    }
}

/// A user-supplied file descriptor argument.
pub fn fd_arg(value: u64) -> SysResult<i32> {
    i32::try_from(value as i64).map_err(|_| Errno::EBADF)
}
