//! I/O multiplexing and vectors: `struct iovec` lists, `struct pollfd`, the packed
//! `struct epoll_event`, `fd_set` bitmaps for `select`, and the poll/epoll/eventfd constants
//! (`include/uapi/linux/{uio,eventpoll,eventfd}.h`, `asm-generic/poll.h`).

use alloc::vec::Vec;

use crate::bytes::*;
use crate::errno::Errno;

/// Most iovecs per call (`UIO_MAXIOV`); more is `EINVAL`.
pub const IOV_MAX: usize = 1024;

/// `struct iovec` (16 bytes: `iov_base`, `iov_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Iovec {
    pub base: u64,
    pub len: u64,
}

impl Iovec {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u64(&mut b, 0, self.base);
        put_u64(&mut b, 8, self.len);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Iovec {
            base: u64_at(b, 0),
            len: u64_at(b, 8),
        })
    }
}

/// Decodes `iovcnt` iovecs from `b` (the `iovcnt * 16` bytes read from user memory) with
/// Linux's checks: `iovcnt > IOV_MAX` is `EINVAL`; a length with the sign bit set, or a total
/// over `isize::MAX`, is `EINVAL` (Linux then clamps the transfer to `MAX_RW_COUNT`, which the
/// caller does). `b` too short is `EFAULT`.
pub fn decode_iovecs(b: &[u8], iovcnt: usize) -> Result<Vec<Iovec>, Errno> {
    if iovcnt > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    if b.len() < iovcnt * Iovec::SIZE {
        return Err(Errno::EFAULT);
    }
    let mut v = Vec::with_capacity(iovcnt);
    let mut total: u64 = 0;
    for i in 0..iovcnt {
        let io = Iovec {
            base: u64_at(b, i * 16),
            len: u64_at(b, i * 16 + 8),
        };
        if io.len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        total = total
            .checked_add(io.len)
            .filter(|&t| t <= isize::MAX as u64)
            .ok_or(Errno::EINVAL)?;
        v.push(io);
    }
    Ok(v)
}

/// Largest byte count one read/write transfers (`MAX_RW_COUNT`, `INT_MAX` rounded down to
/// a page).
pub const MAX_RW_COUNT: u64 = 0x7fff_f000;

pub const POLLIN: u16 = 0x0001;
pub const POLLPRI: u16 = 0x0002;
pub const POLLOUT: u16 = 0x0004;
pub const POLLERR: u16 = 0x0008;
pub const POLLHUP: u16 = 0x0010;
pub const POLLNVAL: u16 = 0x0020;
pub const POLLRDNORM: u16 = 0x0040;
pub const POLLRDBAND: u16 = 0x0080;
pub const POLLWRNORM: u16 = 0x0100;
pub const POLLWRBAND: u16 = 0x0200;
pub const POLLMSG: u16 = 0x0400;
pub const POLLREMOVE: u16 = 0x1000;
pub const POLLRDHUP: u16 = 0x2000;

/// `struct pollfd` (8 bytes: `fd` i32, `events` i16, `revents` i16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pollfd {
    pub fd: i32,
    pub events: u16,
    pub revents: u16,
}

impl Pollfd {
    pub const SIZE: usize = 8;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i32(&mut b, 0, self.fd);
        put_u16(&mut b, 4, self.events);
        put_u16(&mut b, 6, self.revents);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Pollfd {
            fd: i32_at(b, 0),
            events: u16_at(b, 4),
            revents: u16_at(b, 6),
        })
    }
    /// Writes `revents` of entry `i` into a user `pollfd` array image (poll writes back only
    /// that field).
    pub fn put_revents(array: &mut [u8], i: usize, revents: u16) -> Option<()> {
        let o = i.checked_mul(Self::SIZE)? + 6;
        array.get(o..o + 2)?;
        put_u16(array, o, revents);
        Some(())
    }
}

/// Decodes `nfds` pollfds (`nfds` above `RLIMIT_NOFILE` is the caller's `EINVAL`).
pub fn decode_pollfds(b: &[u8], nfds: usize) -> Option<Vec<Pollfd>> {
    if b.len() < nfds.checked_mul(Pollfd::SIZE)? {
        return None;
    }
    Some(
        (0..nfds)
            .map(|i| Pollfd::decode(&b[i * 8..]).unwrap_or_default())
            .collect(),
    )
}

pub const EPOLLIN: u32 = 0x0000_0001;
pub const EPOLLPRI: u32 = 0x0000_0002;
pub const EPOLLOUT: u32 = 0x0000_0004;
pub const EPOLLERR: u32 = 0x0000_0008;
pub const EPOLLHUP: u32 = 0x0000_0010;
pub const EPOLLNVAL: u32 = 0x0000_0020;
pub const EPOLLRDNORM: u32 = 0x0000_0040;
pub const EPOLLRDBAND: u32 = 0x0000_0080;
pub const EPOLLWRNORM: u32 = 0x0000_0100;
pub const EPOLLWRBAND: u32 = 0x0000_0200;
pub const EPOLLMSG: u32 = 0x0000_0400;
pub const EPOLLRDHUP: u32 = 0x0000_2000;
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
pub const EPOLLWAKEUP: u32 = 1 << 29;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;
pub const EPOLL_CTL_ADD: u32 = 1;
pub const EPOLL_CTL_DEL: u32 = 2;
pub const EPOLL_CTL_MOD: u32 = 3;
pub const EPOLL_CLOEXEC: u32 = crate::fcntl::O_CLOEXEC;

/// `struct epoll_event`: packed on x86-64, 12 bytes (`events` u32, `data` u64 at offset 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

impl EpollEvent {
    pub const SIZE: usize = 12;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u32(&mut b, 0, self.events);
        put_u64(&mut b, 4, self.data);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(EpollEvent {
            events: u32_at(b, 0),
            data: u64_at(b, 4),
        })
    }
}

/// Writes ready events back-to-back (what `epoll_wait` copies out); returns bytes written.
pub fn encode_epoll_events(out: &mut [u8], events: &[EpollEvent]) -> usize {
    let n = events.len().min(out.len() / EpollEvent::SIZE);
    for (i, e) in events[..n].iter().enumerate() {
        out[i * 12..i * 12 + 12].copy_from_slice(&e.encode());
    }
    n * EpollEvent::SIZE
}

pub const EFD_SEMAPHORE: u32 = 1;
pub const EFD_CLOEXEC: u32 = crate::fcntl::O_CLOEXEC;
pub const EFD_NONBLOCK: u32 = crate::fcntl::O_NONBLOCK;

/// `select` supports fds below this.
pub const FD_SETSIZE: usize = 1024;

/// Bytes of an `fd_set` the kernel reads/writes for `nfds`: whole `unsigned long` words.
pub const fn fd_set_bytes(nfds: usize) -> usize {
    nfds.div_ceil(64) * 8
}
/// Whether `fd` is set in an `fd_set` image.
pub fn fd_isset(set: &[u8], fd: usize) -> bool {
    set.get(fd / 8).is_some_and(|&b| b & (1 << (fd % 8)) != 0)
}
/// Sets or clears `fd` in an `fd_set` image (ignored past its end).
pub fn fd_set(set: &mut [u8], fd: usize, on: bool) {
    if let Some(b) = set.get_mut(fd / 8) {
        if on {
            *b |= 1 << (fd % 8);
        } else {
            *b &= !(1 << (fd % 8));
        }
    }
}

/// pselect6's sixth argument: `{ const sigset_t *ss; size_t ss_len; }` (16 bytes).
pub fn decode_pselect_sigmask(b: &[u8]) -> Option<(u64, u64)> {
    Some((get_u64(b, 0)?, get_u64(b, 8)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn iovecs() {
        let mut b = vec![];
        b.extend_from_slice(
            &Iovec {
                base: 0x1000,
                len: 5,
            }
            .encode(),
        );
        b.extend_from_slice(
            &Iovec {
                base: 0x2000,
                len: 0,
            }
            .encode(),
        );
        let v = decode_iovecs(&b, 2).unwrap();
        assert_eq!(
            v[0],
            Iovec {
                base: 0x1000,
                len: 5
            }
        );
        assert_eq!(v[1].base, 0x2000);
        assert_eq!(decode_iovecs(&b, 3), Err(Errno::EFAULT));
        assert_eq!(decode_iovecs(&b, 1025), Err(Errno::EINVAL));
        let mut neg = Iovec {
            base: 0,
            len: u64::MAX,
        }
        .encode()
        .to_vec();
        assert_eq!(decode_iovecs(&neg, 1), Err(Errno::EINVAL));
        neg = vec![];
        for _ in 0..3 {
            neg.extend_from_slice(
                &Iovec {
                    base: 0,
                    len: 1 << 62,
                }
                .encode(),
            );
        }
        assert_eq!(decode_iovecs(&neg, 3), Err(Errno::EINVAL));
        assert_eq!(decode_iovecs(&[], 0), Ok(vec![]));
    }

    #[test]
    fn poll_and_epoll() {
        let p = Pollfd {
            fd: -1,
            events: POLLIN | POLLOUT,
            revents: 0,
        };
        let mut b = p.encode();
        assert_eq!(&b[..4], &(-1i32).to_le_bytes());
        assert_eq!(u16_at(&b, 4), 5);
        Pollfd::put_revents(&mut b, 0, POLLNVAL).unwrap();
        assert_eq!(Pollfd::decode(&b).unwrap().revents, POLLNVAL);
        assert_eq!(Pollfd::put_revents(&mut b, 1, 1), None);
        assert_eq!(decode_pollfds(&b, 1).unwrap()[0].fd, -1);
        assert_eq!(decode_pollfds(&b, 2), None);
        let e = EpollEvent {
            events: EPOLLIN | EPOLLET,
            data: 0x1122_3344_5566_7788,
        };
        let eb = e.encode();
        assert_eq!(eb.len(), 12);
        assert_eq!(&eb[4..12], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(EpollEvent::decode(&eb), Some(e));
        let mut out = [0u8; 30];
        assert_eq!(encode_epoll_events(&mut out, &[e, e, e]), 24);
        assert_eq!(EpollEvent::decode(&out[12..]), Some(e));
    }

    #[test]
    fn fdsets() {
        assert_eq!(fd_set_bytes(0), 0);
        assert_eq!(fd_set_bytes(1), 8);
        assert_eq!(fd_set_bytes(65), 16);
        let mut s = [0u8; 16];
        fd_set(&mut s, 0, true);
        fd_set(&mut s, 70, true);
        fd_set(&mut s, 500, true);
        assert!(fd_isset(&s, 0) && fd_isset(&s, 70) && !fd_isset(&s, 1) && !fd_isset(&s, 500));
        assert_eq!(s[8], 0x40);
        fd_set(&mut s, 70, false);
        assert!(!fd_isset(&s, 70));
        assert_eq!(
            decode_pselect_sigmask(&[1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]),
            Some((1, 8))
        );
    }
}
