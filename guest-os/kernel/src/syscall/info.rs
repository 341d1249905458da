//! System information: uname, sysinfo, getrandom.

use super::Caller;
use crate::mm::uaccess::copy_to_user;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::process::{Sysinfo, Utsname};
use noa_linux_abi::syscalls as nr;

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_UNAME, uname),
    (nr::SYS_SYSINFO, sysinfo),
    (nr::SYS_GETRANDOM, getrandom),
];

fn uname(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let name = Utsname {
        sysname: b"Linux",
        nodename: b"noa",
        // Programs compare kernel versions; we offer the Linux ABI of this release.
        release: b"6.1.0-noa",
        version: b"#1 SMP NOA ARK OS",
        machine: b"x86_64",
        domainname: b"(none)",
    };
    copy_to_user(a[0], &name.encode())?;
    Ok(0)
}

fn sysinfo(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let info = Sysinfo {
        uptime: (hal_pv::time::now_ns() / 1_000_000_000) as i64,
        totalram: hal_pv::mm::frames::usable_ram_bytes(),
        freeram: hal_pv::mm::frames::free_bytes(),
        procs: crate::task::process::all().len().min(u16::MAX as usize) as u16,
        mem_unit: 1,
        ..Sysinfo::default()
    };
    copy_to_user(a[0], &info.encode())?;
    Ok(0)
}

const GRND_NONBLOCK: u64 = 1;
const GRND_RANDOM: u64 = 2;
const GRND_INSECURE: u64 = 4;

fn getrandom(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if a[2] & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0 {
        return Err(Errno::EINVAL);
    }
    let len = (a[1] as usize).min(1 << 20);
    let mut buf = alloc::vec![0u8; len];
    crate::random::fill(&mut buf);
    copy_to_user(a[0], &buf)?;
    Ok(len as u64)
}
