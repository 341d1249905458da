//! Time system calls: clock_gettime/getres, gettimeofday, time, nanosleep, clock_nanosleep,
//! times, getrusage.
//!
//! The monotonic clock is kvmclock (or the TSC); CLOCK_REALTIME adds the host's wall-clock time
//! at boot from kvmclock's wall clock (under QEMU TCG, which has no kvmclock, it counts from the
//! epoch: no RTC driver yet).

use super::Caller;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::task::wait::WaitQueue;
use core::sync::atomic::Ordering;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::process::Rusage;
use noa_linux_abi::syscalls as nr;
use noa_linux_abi::time::*;

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_CLOCK_GETTIME, clock_gettime),
    (nr::SYS_CLOCK_GETRES, clock_getres),
    (nr::SYS_GETTIMEOFDAY, gettimeofday),
    (nr::SYS_TIME, time),
    (nr::SYS_NANOSLEEP, nanosleep),
    (nr::SYS_CLOCK_NANOSLEEP, clock_nanosleep),
    (nr::SYS_TIMES, times),
    (nr::SYS_GETRUSAGE, getrusage),
];

/// Wall-clock time when the monotonic clock read zero, in ns since the epoch.
fn boot_wall_ns() -> u64 {
    hal_pv::time::realtime_ns() - hal_pv::time::now_ns()
}

fn process_cpu_ns() -> u64 {
    let me = crate::task::current();
    let process = &me.process;
    process.dead_user_ns.load(Ordering::Relaxed)
        + process
            .live_threads()
            .iter()
            .map(|t| t.user_ns())
            .sum::<u64>()
}

fn clock_ns(clock: u32) -> SysResult<u64> {
    let now = hal_pv::time::now_ns();
    Ok(match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_TAI | CLOCK_REALTIME_ALARM => {
            boot_wall_ns() + now
        }
        CLOCK_MONOTONIC
        | CLOCK_MONOTONIC_RAW
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_BOOTTIME
        | CLOCK_BOOTTIME_ALARM => now,
        CLOCK_PROCESS_CPUTIME_ID => process_cpu_ns(),
        CLOCK_THREAD_CPUTIME_ID => crate::task::current().user_ns(),
        _ => return Err(Errno::EINVAL),
    })
}

fn clock_gettime(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let ns = clock_ns(a[0] as u32)?;
    copy_to_user(a[1], &Timespec::from_nanos(ns).encode())?;
    Ok(0)
}

fn clock_getres(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    clock_ns(a[0] as u32)?;
    if a[1] != 0 {
        copy_to_user(a[1], &Timespec::from_nanos(1).encode())?;
    }
    Ok(0)
}

fn gettimeofday(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let ns = clock_ns(CLOCK_REALTIME)?;
    if a[0] != 0 {
        copy_to_user(a[0], &Timeval::from_nanos(ns).encode())?;
    }
    if a[1] != 0 {
        copy_to_user(a[1], &[0u8; 8])?;
    }
    Ok(0)
}

fn time(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let secs = clock_ns(CLOCK_REALTIME)? / 1_000_000_000;
    if a[0] != 0 {
        crate::mm::uaccess::write_u64(a[0], secs)?;
    }
    Ok(secs)
}

fn read_timespec(addr: u64) -> SysResult<u64> {
    let mut b = [0u8; Timespec::SIZE];
    copy_from_user(addr, &mut b)?;
    let ts = Timespec::decode(&b).ok_or(Errno::EFAULT)?;
    ts.validate()?;
    ts.to_nanos().ok_or(Errno::EINVAL)
}

/// Nothing wakes this queue: sleepers wait for their deadline or a signal.
static SLEEPERS: WaitQueue = WaitQueue::new();

/// Sleeps until `deadline` (monotonic ns); on a signal, EINTR with the time left in `remaining`.
fn sleep_until(deadline: u64, remaining: u64) -> SysResult<u64> {
    match SLEEPERS.wait_until_deadline(|| None::<()>, Some(deadline)) {
        Ok(_) => Ok(0),
        Err(e) => {
            if remaining != 0 {
                let left = deadline.saturating_sub(hal_pv::time::now_ns());
                copy_to_user(remaining, &Timespec::from_nanos(left).encode())?;
            }
            Err(e)
        }
    }
}

fn nanosleep(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let ns = read_timespec(a[0])?;
    sleep_until(hal_pv::time::now_ns().saturating_add(ns), a[1])
}

fn clock_nanosleep(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let clock = a[0] as u32;
    let absolute = a[1] as u32 & TIMER_ABSTIME != 0;
    let ns = read_timespec(a[2])?;
    let now_on_clock = clock_ns(clock)?;
    let now = hal_pv::time::now_ns();
    let deadline = if absolute {
        now.saturating_add(ns.saturating_sub(now_on_clock))
    } else {
        now.saturating_add(ns)
    };
    sleep_until(deadline, if absolute { 0 } else { a[3] })
}

fn times(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let me = crate::task::current();
    let children = me.process.children_user_ns.load(Ordering::Relaxed);
    if a[0] != 0 {
        let tms = Tms {
            utime: nanos_to_clock_t(process_cpu_ns()),
            stime: 0,
            cutime: nanos_to_clock_t(children),
            cstime: 0,
        };
        copy_to_user(a[0], &tms.encode())?;
    }
    Ok(nanos_to_clock_t(hal_pv::time::now_ns()) as u64)
}

const RUSAGE_SELF: i64 = 0;
const RUSAGE_CHILDREN: i64 = -1;
const RUSAGE_THREAD: i64 = 1;

fn getrusage(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let me = crate::task::current();
    let ns = match a[0] as i64 {
        RUSAGE_SELF => process_cpu_ns(),
        RUSAGE_CHILDREN => me.process.children_user_ns.load(Ordering::Relaxed),
        RUSAGE_THREAD => me.user_ns(),
        _ => return Err(Errno::EINVAL),
    };
    let usage = Rusage {
        utime: Timeval::from_nanos(ns),
        ..Rusage::default()
    };
    copy_to_user(a[1], &usage.encode())?;
    Ok(0)
}
