//! The futex system call (the operations live in `task::futex`).

use super::Caller;
use crate::task::futex;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::syscalls as nr;
use noa_linux_abi::time::Timespec;

pub const TABLE: &[(usize, super::Handler)] = &[(nr::SYS_FUTEX, sys_futex)];

const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
const FUTEX_REQUEUE: u32 = 3;
const FUTEX_CMP_REQUEUE: u32 = 4;
const FUTEX_WAKE_OP: u32 = 5;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAKE_BITSET: u32 = 10;
const FUTEX_PRIVATE_FLAG: u32 = 128;
const FUTEX_CLOCK_REALTIME: u32 = 256;

fn sys_futex(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (addr, op, val, timeout, addr2, val3) =
        (a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32);
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let deadline = if timeout == 0 {
                None
            } else {
                let mut b = [0u8; Timespec::SIZE];
                crate::mm::uaccess::copy_from_user(timeout, &mut b)?;
                let ts = Timespec::decode(&b).ok_or(Errno::EFAULT)?;
                ts.validate()?;
                let ns = ts.to_nanos().ok_or(Errno::EINVAL)?;
                let now = hal_pv::time::now_ns();
                // FUTEX_WAIT: relative; FUTEX_WAIT_BITSET: absolute, on the monotonic clock or
                // (FUTEX_CLOCK_REALTIME) the realtime one, converted to monotonic here.
                Some(if cmd == FUTEX_WAIT {
                    now.saturating_add(ns)
                } else if op & FUTEX_CLOCK_REALTIME != 0 {
                    let offset = hal_pv::time::realtime_ns().saturating_sub(now);
                    ns.saturating_sub(offset)
                } else {
                    ns
                })
            };
            let bitset = if cmd == FUTEX_WAIT {
                futex::BITSET_MATCH_ANY
            } else {
                val3
            };
            futex::wait(addr, val, deadline, bitset, private)
        }
        FUTEX_WAKE => futex::wake(addr, val, futex::BITSET_MATCH_ANY, private),
        FUTEX_WAKE_BITSET => futex::wake(addr, val, val3, private),
        FUTEX_REQUEUE => futex::requeue(addr, addr2, val, timeout as u32, None, private),
        FUTEX_CMP_REQUEUE => futex::requeue(addr, addr2, val, timeout as u32, Some(val3), private),
        FUTEX_WAKE_OP => Err(Errno::ENOSYS),
        _ => Err(Errno::ENOSYS),
    }
}
