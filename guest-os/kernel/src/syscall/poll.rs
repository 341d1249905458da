//! Readiness system calls: poll, ppoll, select, pselect6, epoll_create, epoll_create1,
//! epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2, eventfd, eventfd2. The waiting itself is
//! `fs::poll` and `fs::epoll`'s.
//!
//! Timeouts are deadlines on the monotonic clock. A signal mask given to ppoll, pselect6 or
//! epoll_pwait applies during the wait; when the wait ends with EINTR the old mask is left for
//! the user loop to restore after the handler runs (as rt_sigsuspend does), so the signal that
//! ended the wait is delivered under the call's mask.
//!
//! Partial: ppoll and pselect6 do not write back the time left (select does, as Linux's does).

use super::Caller;
use super::file::{current_file, file, files, install, nofile_limit};
use crate::fs::epoll::Epoll;
use crate::fs::eventfd::EventFd;
use crate::fs::poll::{PollEntry, poll_files};
use crate::fs::{OpenFile, downcast};
use crate::mm::uaccess;
use crate::task::signal::UNBLOCKABLE;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::fcntl::{O_CLOEXEC, O_NONBLOCK, O_RDWR};
use noa_linux_abi::io::{
    EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EPOLL_CLOEXEC, EPOLL_CTL_DEL, EpollEvent, FD_SETSIZE,
    POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDBAND, POLLRDNORM, POLLWRBAND, POLLWRNORM,
    Pollfd, decode_pollfds, fd_isset, fd_set, fd_set_bytes,
};
use noa_linux_abi::syscalls as nr;
use noa_linux_abi::time::{Timespec, Timeval};

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_POLL, poll),
    (nr::SYS_PPOLL, ppoll),
    (nr::SYS_SELECT, select),
    (nr::SYS_PSELECT6, pselect6),
    (nr::SYS_EPOLL_CREATE, epoll_create),
    (nr::SYS_EPOLL_CREATE1, epoll_create1),
    (nr::SYS_EPOLL_CTL, epoll_ctl),
    (nr::SYS_EPOLL_WAIT, epoll_wait),
    (nr::SYS_EPOLL_PWAIT, epoll_pwait),
    (nr::SYS_EPOLL_PWAIT2, epoll_pwait2),
    (nr::SYS_EVENTFD, eventfd),
    (nr::SYS_EVENTFD2, eventfd2),
];

/// Most epoll events one wait returns (Linux: INT_MAX / sizeof(epoll_event)).
const EP_MAX_EVENTS: i64 = (i32::MAX / EpollEvent::SIZE as i32) as i64;

/// A deadline `ns` from now (saturating).
fn deadline_after(ns: u64) -> u64 {
    hal_pv::time::now_ns().saturating_add(ns)
}

/// poll's timeout in milliseconds: negative waits forever, 0 not at all.
fn deadline_ms(ms: i32) -> Option<u64> {
    match ms {
        ..0 => None,
        0 => Some(0),
        ms => Some(deadline_after(ms as u64 * 1_000_000)),
    }
}

/// A `struct timespec` timeout pointer: NULL waits forever.
fn deadline_timespec(addr: u64) -> SysResult<Option<u64>> {
    if addr == 0 {
        return Ok(None);
    }
    let mut raw = [0u8; Timespec::SIZE];
    uaccess::copy_from_user(addr, &mut raw)?;
    let ts = Timespec::decode(&raw).ok_or(Errno::EFAULT)?;
    ts.validate()?;
    let ns = ts.to_nanos().unwrap_or(u64::MAX);
    Ok(Some(if ns == 0 { 0 } else { deadline_after(ns) }))
}

/// Runs `wait` with the signal mask at `mask_addr` (if any) in force.
fn with_sigmask<T>(mask_addr: u64, size: u64, wait: impl FnOnce() -> SysResult<T>) -> SysResult<T> {
    if mask_addr == 0 {
        return wait();
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = uaccess::read_u64(mask_addr)? & !UNBLOCKABLE;
    let me = crate::task::current();
    let old = me.sigmask.swap(mask, Ordering::AcqRel);
    let result = wait();
    if result.as_ref().err() == Some(&Errno::EINTR) {
        // Delivered under `mask`; the user loop restores `old` afterwards.
        me.restore_sigmask_later(old);
    } else {
        me.sigmask.store(old, Ordering::Release);
    }
    result
}

/// The poll entries for `nfds` pollfds at `addr`.
fn poll_entries(addr: u64, nfds: u64) -> SysResult<(Vec<Pollfd>, Vec<PollEntry>)> {
    let nfds = usize::try_from(nfds).map_err(|_| Errno::EINVAL)?;
    if nfds > nofile_limit() {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds * Pollfd::SIZE];
    uaccess::copy_from_user(addr, &mut raw)?;
    let pollfds = decode_pollfds(&raw, nfds).ok_or(Errno::EFAULT)?;
    let table = files();
    let table = table.lock();
    let entries = pollfds
        .iter()
        .map(|p| {
            let file = if p.fd < 0 { None } else { table.get(p.fd).ok() };
            PollEntry {
                bad: p.fd >= 0 && file.is_none(),
                file,
                events: u32::from(p.events),
                revents: 0,
            }
        })
        .collect();
    Ok((pollfds, entries))
}

fn do_poll(
    addr: u64,
    nfds: u64,
    deadline: Option<u64>,
    mask: u64,
    mask_size: u64,
) -> SysResult<u64> {
    let (pollfds, mut entries) = poll_entries(addr, nfds)?;
    let ready = with_sigmask(mask, mask_size, || poll_files(&mut entries, deadline))?;
    let mut raw = vec![0u8; pollfds.len() * Pollfd::SIZE];
    for (i, (pollfd, entry)) in pollfds.iter().zip(&entries).enumerate() {
        let out = Pollfd {
            revents: entry.revents as u16,
            ..*pollfd
        };
        raw[i * Pollfd::SIZE..(i + 1) * Pollfd::SIZE].copy_from_slice(&out.encode());
    }
    uaccess::copy_to_user(addr, &raw)?;
    Ok(ready as u64)
}

fn poll(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_poll(a[0], a[1], deadline_ms(a[2] as i32), 0, 0)
}

fn ppoll(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let deadline = deadline_timespec(a[2])?;
    do_poll(a[0], a[1], deadline, a[3], a[4])
}

/// Linux's select sets, as poll bits.
const SELECT_IN: u32 = (POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR) as u32;
const SELECT_OUT: u32 = (POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR) as u32;
const SELECT_EX: u32 = POLLPRI as u32;

fn read_set(addr: u64, bytes: usize) -> SysResult<Option<Vec<u8>>> {
    if addr == 0 {
        return Ok(None);
    }
    let mut set = vec![0u8; bytes];
    uaccess::copy_from_user(addr, &mut set)?;
    Ok(Some(set))
}

fn do_select(a: &[u64; 6], deadline: Option<u64>, mask: u64, mask_size: u64) -> SysResult<u64> {
    let nfds = a[0] as i32;
    if nfds < 0 {
        return Err(Errno::EINVAL);
    }
    let nfds = (nfds as usize).min(FD_SETSIZE.max(nofile_limit()));
    let bytes = fd_set_bytes(nfds);
    let sets = [
        read_set(a[1], bytes)?,
        read_set(a[2], bytes)?,
        read_set(a[3], bytes)?,
    ];
    let mut fds = Vec::new();
    let mut entries = Vec::new();
    {
        let table = files();
        let table = table.lock();
        for fd in 0..nfds {
            let wanted = |i: usize| sets[i].as_ref().is_some_and(|s| fd_isset(s, fd));
            let mut events = 0;
            if wanted(0) {
                events |= SELECT_IN;
            }
            if wanted(1) {
                events |= SELECT_OUT;
            }
            if wanted(2) {
                events |= SELECT_EX;
            }
            if events == 0 {
                continue;
            }
            let file = table.get(fd as i32)?;
            fds.push(fd);
            entries.push(PollEntry {
                file: Some(file),
                bad: false,
                events,
                revents: 0,
            });
        }
    }
    with_sigmask(mask, mask_size, || poll_files(&mut entries, deadline))?;
    let mut out = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let mut count = 0;
    for (fd, entry) in fds.iter().zip(&entries) {
        for (i, bits) in [SELECT_IN, SELECT_OUT, SELECT_EX].into_iter().enumerate() {
            let asked = sets[i].as_ref().is_some_and(|s| fd_isset(s, *fd));
            if asked && entry.revents & bits != 0 {
                fd_set(&mut out[i], *fd, true);
                count += 1;
            }
        }
    }
    for (i, addr) in [a[1], a[2], a[3]].into_iter().enumerate() {
        if addr != 0 {
            uaccess::copy_to_user(addr, &out[i])?;
        }
    }
    Ok(count)
}

fn select(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let deadline = if a[4] == 0 {
        None
    } else {
        let mut raw = [0u8; Timeval::SIZE];
        uaccess::copy_from_user(a[4], &mut raw)?;
        let tv = Timeval::decode(&raw).ok_or(Errno::EFAULT)?;
        tv.validate()?;
        let ns = tv.to_nanos().unwrap_or(u64::MAX);
        Some(if ns == 0 { 0 } else { deadline_after(ns) })
    };
    let result = do_select(a, deadline, 0, 0);
    if let Some(deadline) = deadline.filter(|&d| d != 0) {
        let left = deadline.saturating_sub(hal_pv::time::now_ns());
        let _ = uaccess::copy_to_user(a[4], &Timeval::from_nanos(left).encode());
    }
    result
}

fn pselect6(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let deadline = deadline_timespec(a[4])?;
    let (mask, mask_size) = if a[5] != 0 {
        (uaccess::read_u64(a[5])?, uaccess::read_u64(a[5] + 8)?)
    } else {
        (0, 0)
    };
    do_select(a, deadline, mask, mask_size)
}

fn new_epoll(flags: u32) -> SysResult<u64> {
    if flags & !EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let epoll = Epoll::new();
    let file = OpenFile::new(epoll, O_RDWR, Vec::new());
    install(file, flags & EPOLL_CLOEXEC != 0)
}

fn epoll_create(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if (a[0] as i32) <= 0 {
        return Err(Errno::EINVAL);
    }
    new_epoll(0)
}

fn epoll_create1(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    new_epoll(a[0] as u32)
}

fn epoll_of(fd: u64) -> SysResult<Arc<Epoll>> {
    let file = current_file(fd)?;
    downcast::<Epoll>(file.inode()).ok_or(Errno::EINVAL)
}

fn epoll_ctl(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let epoll = epoll_of(a[0])?;
    let op = a[1] as u32;
    let fd = a[2] as i32;
    if a[0] as i32 == fd {
        return Err(Errno::EINVAL);
    }
    let target = file(me, a[2])?;
    let event = if op == EPOLL_CTL_DEL {
        EpollEvent::default()
    } else {
        let mut raw = [0u8; EpollEvent::SIZE];
        uaccess::copy_from_user(a[3], &mut raw)?;
        EpollEvent::decode(&raw).ok_or(Errno::EFAULT)?
    };
    epoll.ctl(op, fd, &target, event)?;
    Ok(0)
}

fn do_epoll_wait(
    epfd: u64,
    events_addr: u64,
    max: u64,
    deadline: Option<u64>,
    mask: u64,
    mask_size: u64,
) -> SysResult<u64> {
    let max = max as i32 as i64;
    if max <= 0 || max > EP_MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    let epoll = epoll_of(epfd)?;
    // At most as many events as there are descriptors: no allocation sized by the caller alone.
    let max = (max as usize).min(nofile_limit().max(1));
    let ready = with_sigmask(mask, mask_size, || epoll.wait(max, deadline))?;
    let mut raw = vec![0u8; ready.len() * EpollEvent::SIZE];
    for (i, event) in ready.iter().enumerate() {
        raw[i * EpollEvent::SIZE..(i + 1) * EpollEvent::SIZE].copy_from_slice(&event.encode());
    }
    uaccess::copy_to_user(events_addr, &raw)?;
    Ok(ready.len() as u64)
}

fn epoll_wait(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_epoll_wait(a[0], a[1], a[2], deadline_ms(a[3] as i32), 0, 0)
}

fn epoll_pwait(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_epoll_wait(a[0], a[1], a[2], deadline_ms(a[3] as i32), a[4], a[5])
}

fn epoll_pwait2(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let deadline = deadline_timespec(a[3])?;
    do_epoll_wait(a[0], a[1], a[2], deadline, a[4], a[5])
}

fn new_eventfd(initial: u64, flags: u32) -> SysResult<u64> {
    if flags & !(EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let eventfd = Arc::new(EventFd::new(initial as u32, flags & EFD_SEMAPHORE != 0));
    let file = OpenFile::new(eventfd, O_RDWR | (flags & O_NONBLOCK), Vec::new());
    install(file, flags & O_CLOEXEC != 0)
}

fn eventfd(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    new_eventfd(a[0], 0)
}

fn eventfd2(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    new_eventfd(a[0], a[1] as u32)
}
