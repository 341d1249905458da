//! Socket system calls: socket, socketpair, bind, listen, accept, accept4, connect, shutdown,
//! sendto, recvfrom, sendmsg, recvmsg, sendmmsg, recvmmsg, getsockname, getpeername,
//! setsockopt, getsockopt. The sockets are `crate::net`'s.
//!
//! Every argument is hostile: descriptors must be sockets (ENOTSOCK), address lengths are
//! bounded by `sockaddr_storage` (EINVAL), iovec and control buffers are checked and bounded,
//! and every user pointer goes through `mm::uaccess` (EFAULT).
//!
//! Partial: AF_INET6 speaks IPv6 only to ::1 (other IPv6 destinations are ENETUNREACH; IPv4
//! through v4-mapped addresses works both ways); SOCK_SEQPACKET (but for socketpair) and
//! SOCK_RAW are ESOCKTNOSUPPORT, AF_NETLINK and AF_PACKET are EAFNOSUPPORT (glibc then assumes both address
//! families are configured); SCM_CREDENTIALS is ignored when sent and never received.

use super::Caller;
use super::file::{current_file, files, iovecs, nofile_limit};
use crate::fs::{FileRef, ReadBuf, WriteBuf};
use crate::mm::uaccess;
use crate::net::socket::{self, Socket, SocketFile};
use crate::net::{tcp::TcpSocket, udp::UdpSocket, unix};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::socket::*;
use noa_linux_abi::syscalls as nr;

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_SOCKET, socket),
    (nr::SYS_SOCKETPAIR, socketpair),
    (nr::SYS_BIND, bind),
    (nr::SYS_LISTEN, listen),
    (nr::SYS_ACCEPT, accept),
    (nr::SYS_ACCEPT4, accept4),
    (nr::SYS_CONNECT, connect),
    (nr::SYS_SHUTDOWN, shutdown),
    (nr::SYS_SENDTO, sendto),
    (nr::SYS_RECVFROM, recvfrom),
    (nr::SYS_SENDMSG, sendmsg),
    (nr::SYS_RECVMSG, recvmsg),
    (nr::SYS_SENDMMSG, sendmmsg),
    (nr::SYS_RECVMMSG, recvmmsg),
    (nr::SYS_GETSOCKNAME, getsockname),
    (nr::SYS_GETPEERNAME, getpeername),
    (nr::SYS_SETSOCKOPT, setsockopt),
    (nr::SYS_GETSOCKOPT, getsockopt),
];

/// Most file descriptors one SCM_RIGHTS message carries (Linux's `SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
/// Most control bytes a sendmsg may pass.
const MAX_CONTROL: usize = 64 * 1024;

/// A new protocol socket for (family, type, protocol).
fn new_socket(family: u32, kind: u32, protocol: u32) -> SysResult<Box<dyn Socket>> {
    let family = u16::try_from(family).map_err(|_| Errno::EAFNOSUPPORT)?;
    match (family, kind) {
        (AF_INET | AF_INET6, SOCK_STREAM) => {
            if !matches!(protocol, 0 | IPPROTO_TCP) {
                return Err(Errno::EPROTONOSUPPORT);
            }
            Ok(Box::new(TcpSocket::new(family == AF_INET6)))
        }
        (AF_INET | AF_INET6, SOCK_DGRAM) => {
            if !matches!(protocol, 0 | IPPROTO_UDP) {
                return Err(Errno::EPROTONOSUPPORT);
            }
            Ok(Box::new(UdpSocket::new(family == AF_INET6)))
        }
        (AF_INET | AF_INET6, _) => Err(Errno::ESOCKTNOSUPPORT),
        (AF_UNIX, SOCK_STREAM | SOCK_DGRAM) if protocol != 0 => Err(Errno::EPROTONOSUPPORT),
        (AF_UNIX, SOCK_STREAM) => Ok(Box::new(unix::UnixStream::new())),
        (AF_UNIX, SOCK_DGRAM) => Ok(Box::new(unix::UnixDgram::new())),
        (AF_UNIX, _) => Err(Errno::ESOCKTNOSUPPORT),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// Splits a `type` argument into the type and its SOCK_NONBLOCK/SOCK_CLOEXEC flags.
fn split_type(value: u64) -> SysResult<(u32, bool, bool)> {
    let value = value as u32;
    if value & !(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok((
        value & SOCK_TYPE_MASK,
        value & SOCK_NONBLOCK != 0,
        value & SOCK_CLOEXEC != 0,
    ))
}

fn install(file: FileRef, cloexec: bool) -> SysResult<u64> {
    let limit = nofile_limit();
    let fd = files().lock().insert_from(0, file, cloexec, limit)?;
    Ok(fd as u64)
}

fn socket(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (kind, nonblock, cloexec) = split_type(a[1])?;
    let socket = new_socket(a[0] as u32, kind, a[2] as u32)?;
    install(SocketFile::open(socket, nonblock), cloexec)
}

fn socketpair(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (kind, nonblock, cloexec) = split_type(a[1])?;
    let family = a[0] as u32;
    if family != AF_UNIX as u32 {
        return Err(if matches!(family as u16, AF_INET | AF_INET6) {
            Errno::EOPNOTSUPP
        } else {
            Errno::EAFNOSUPPORT
        });
    }
    if a[2] != 0 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let (first, second): (Box<dyn Socket>, Box<dyn Socket>) = match kind {
        SOCK_STREAM => {
            let (x, y) = unix::UnixStream::pair();
            (Box::new(x), Box::new(y))
        }
        SOCK_DGRAM => {
            let (x, y) = unix::UnixDgram::pair();
            (Box::new(x), Box::new(y))
        }
        SOCK_SEQPACKET => {
            let (x, y) = unix::UnixDgram::seqpacket_pair();
            (Box::new(x), Box::new(y))
        }
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    // Check the result array before creating descriptors.
    uaccess::copy_to_user(a[3], &[0u8; 8])?;
    let x = install(SocketFile::open(first, nonblock), cloexec)?;
    let y = match install(SocketFile::open(second, nonblock), cloexec) {
        Ok(y) => y,
        Err(e) => {
            let _ = files().lock().remove(x as i32);
            return Err(e);
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(x as u32).to_le_bytes());
    out[4..].copy_from_slice(&(y as u32).to_le_bytes());
    uaccess::copy_to_user(a[3], &out)?;
    Ok(0)
}

/// The socket behind `fd` and its open file.
fn sock(fd: u64) -> SysResult<(FileRef, alloc::sync::Arc<SocketFile>)> {
    let file = current_file(fd)?;
    let socket = socket::of(&file)?;
    Ok((file, socket))
}

/// Reads a socket address of `len` bytes from `addr`.
fn read_addr(addr: u64, len: u64) -> SysResult<SockAddr> {
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    if len > SOCKADDR_STORAGE_SIZE || len < 2 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; len];
    uaccess::copy_from_user(addr, &mut raw)?;
    SockAddr::decode(&raw)
}

/// Stores `addr` at `addr_ptr` (truncated to the caller's length) and its full length at
/// `len_ptr`, as accept/getsockname/recvfrom do; nothing when `addr_ptr` is null.
fn write_addr(addr: &SockAddr, addr_ptr: u64, len_ptr: u64) -> SysResult<()> {
    if addr_ptr == 0 || len_ptr == 0 {
        return Ok(());
    }
    let room = uaccess::read_u32(len_ptr)? as i32;
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let bytes = addr.encode();
    let n = bytes.len().min(room as usize);
    uaccess::copy_to_user(addr_ptr, &bytes[..n])?;
    uaccess::write_u32(len_ptr, bytes.len() as u32)
}

fn bind(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (_, socket) = sock(a[0])?;
    let addr = read_addr(a[1], a[2])?;
    check_family(&socket, &addr)?;
    socket.socket.bind(addr, socket.bind_flags())?;
    Ok(0)
}

/// EAFNOSUPPORT/EINVAL for an address of another family than the socket's.
fn check_family(socket: &SocketFile, addr: &SockAddr) -> SysResult<()> {
    let family = socket.socket.family();
    let ok = match addr {
        SockAddr::Unspec => true,
        SockAddr::Inet(InetAddr::V4 { .. }) => family == AF_INET,
        SockAddr::Inet(InetAddr::V6 { .. }) => family == AF_INET6,
        SockAddr::Unix(_) => family == AF_UNIX,
    };
    if ok {
        Ok(())
    } else if family == AF_INET6 || family == AF_UNIX {
        Err(Errno::EINVAL)
    } else {
        Err(Errno::EAFNOSUPPORT)
    }
}

fn listen(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (_, socket) = sock(a[0])?;
    let backlog = (a[1] as i32).clamp(1, SOMAXCONN as i32) as usize;
    socket.socket.listen(backlog, socket.bind_flags())?;
    Ok(0)
}

fn do_accept(fd: u64, addr_ptr: u64, len_ptr: u64, flags: u32) -> SysResult<u64> {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (file, socket) = sock(fd)?;
    if addr_ptr != 0 && len_ptr != 0 {
        // Linux checks the length before waiting.
        if (uaccess::read_u32(len_ptr)? as i32) < 0 {
            return Err(Errno::EINVAL);
        }
    }
    let (accepted, peer) = socket.socket.accept(file.io())?;
    write_addr(&peer, addr_ptr, len_ptr)?;
    let new = SocketFile::open(accepted, flags & SOCK_NONBLOCK != 0);
    install(new, flags & SOCK_CLOEXEC != 0)
}

fn accept(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_accept(a[0], a[1], a[2], 0)
}

fn accept4(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_accept(a[0], a[1], a[2], a[3] as u32)
}

fn connect(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (file, socket) = sock(a[0])?;
    let addr = read_addr(a[1], a[2])?;
    check_family(&socket, &addr)?;
    socket
        .socket
        .connect(addr, file.io(), socket.bind_flags())?;
    Ok(0)
}

fn shutdown(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (_, socket) = sock(a[0])?;
    socket.socket.shutdown(a[1] as u32)?;
    Ok(0)
}

fn sendto(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (file, socket) = sock(a[0])?;
    let flags = a[3] as u32;
    let to = if a[4] != 0 {
        let addr = read_addr(a[4], a[5])?;
        check_family(&socket, &addr)?;
        Some(addr)
    } else {
        None
    };
    let len = (a[2] as usize).min(noa_linux_abi::io::MAX_RW_COUNT as usize);
    let n = socket
        .socket
        .send(&WriteBuf::user(a[1], len), to, flags, file.io(), Vec::new())?;
    Ok(n as u64)
}

fn recvfrom(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (file, socket) = sock(a[0])?;
    let flags = a[3] as u32;
    let len = (a[2] as usize).min(noa_linux_abi::io::MAX_RW_COUNT as usize);
    let got = socket
        .socket
        .recv(&mut ReadBuf::user(a[1], len), flags, file.io())?;
    if let Some(from) = &got.from {
        write_addr(from, a[4], a[5])?;
    } else if a[4] != 0 && a[5] != 0 {
        uaccess::write_u32(a[5], 0)?;
    }
    Ok(if flags & MSG_TRUNC != 0 {
        got.full
    } else {
        got.bytes
    } as u64)
}

/// The files an SCM_RIGHTS control buffer names.
fn rights_of(control: u64, len: u64) -> SysResult<Vec<FileRef>> {
    if control == 0 || len == 0 {
        return Ok(Vec::new());
    }
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    if len > MAX_CONTROL {
        return Err(Errno::ENOBUFS);
    }
    let mut raw = vec![0u8; len];
    uaccess::copy_from_user(control, &mut raw)?;
    let mut rights = Vec::new();
    for cmsg in decode_cmsgs(&raw)? {
        match (cmsg.level, cmsg.kind) {
            (SOL_SOCKET, SCM_RIGHTS) => {
                for fd in cmsg.data.chunks_exact(4) {
                    if rights.len() >= SCM_MAX_FD {
                        return Err(Errno::EINVAL);
                    }
                    let fd = i32::from_le_bytes([fd[0], fd[1], fd[2], fd[3]]);
                    rights.push(files().lock().get(fd)?);
                }
            }
            (SOL_SOCKET, SCM_CREDENTIALS) => {}
            _ => return Err(Errno::EINVAL),
        }
    }
    Ok(rights)
}

/// One sendmsg: the message header at `msg`.
fn send_one(file: &FileRef, socket: &SocketFile, msg: u64, flags: u32) -> SysResult<usize> {
    let mut raw = [0u8; MsgHdr::SIZE];
    uaccess::copy_from_user(msg, &mut raw)?;
    let header = MsgHdr::decode(&raw).ok_or(Errno::EFAULT)?;
    let to = if header.name != 0 && header.namelen != 0 {
        let addr = read_addr(header.name, header.namelen as u64)?;
        check_family(socket, &addr)?;
        Some(addr)
    } else {
        None
    };
    let iov = iovecs(header.iov, header.iovlen)?;
    let rights = rights_of(header.control, header.controllen)?;
    if !rights.is_empty() && socket.socket.family() != AF_UNIX {
        return Err(Errno::EINVAL);
    }
    socket
        .socket
        .send(&WriteBuf::user_vec(&iov), to, flags, file.io(), rights)
}

/// One recvmsg into the header at `msg`; stores the name, control and flags back.
fn recv_one(file: &FileRef, socket: &SocketFile, msg: u64, flags: u32) -> SysResult<usize> {
    let mut raw = [0u8; MsgHdr::SIZE];
    uaccess::copy_from_user(msg, &mut raw)?;
    let header = MsgHdr::decode(&raw).ok_or(Errno::EFAULT)?;
    let iov = iovecs(header.iov, header.iovlen)?;
    let got = socket
        .socket
        .recv(&mut ReadBuf::user_vec(&iov), flags, file.io())?;
    let mut out_flags = 0;
    if got.full > got.bytes {
        out_flags |= MSG_TRUNC;
    }
    // The sender's address.
    if header.name != 0 {
        let written = match &got.from {
            Some(from) => {
                let bytes = from.encode();
                let n = bytes.len().min(header.namelen as usize);
                uaccess::copy_to_user(header.name, &bytes[..n])?;
                bytes.len() as u32
            }
            None => 0,
        };
        uaccess::write_u32(msg + MsgHdr::NAMELEN_OFFSET, written)?;
    }
    // Passed files become descriptors, as far as the control buffer has room.
    let mut control_used = 0usize;
    if !got.rights.is_empty() {
        let room = header.controllen as usize;
        let fit = room.saturating_sub(CMSG_HDR_SIZE) / 4;
        if fit < got.rights.len() {
            out_flags |= MSG_CTRUNC;
        }
        let cloexec = flags & MSG_CMSG_CLOEXEC != 0;
        let mut fds = Vec::new();
        for right in got.rights.into_iter().take(fit) {
            fds.push(install(right, cloexec)? as u32);
        }
        if !fds.is_empty() {
            let data: Vec<u8> = fds.iter().flat_map(|fd| fd.to_le_bytes()).collect();
            let cmsg = encode_cmsg(SOL_SOCKET, SCM_RIGHTS, &data);
            let n = cmsg.len().min(room);
            uaccess::copy_to_user(header.control, &cmsg[..n])?;
            control_used = n;
        }
    }
    if header.control != 0 || header.controllen != 0 {
        uaccess::write_u64(msg + MsgHdr::CONTROLLEN_OFFSET, control_used as u64)?;
    }
    uaccess::write_u32(msg + MsgHdr::FLAGS_OFFSET, out_flags)?;
    Ok(if flags & MSG_TRUNC != 0 {
        got.full
    } else {
        got.bytes
    })
}

fn sendmsg(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (file, socket) = sock(a[0])?;
    Ok(send_one(&file, &socket, a[1], a[2] as u32)? as u64)
}

fn recvmsg(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (file, socket) = sock(a[0])?;
    Ok(recv_one(&file, &socket, a[1], a[2] as u32)? as u64)
}

/// Most messages one sendmmsg/recvmmsg handles (`UIO_MAXIOV`).
const MMSG_MAX: u64 = 1024;

fn sendmmsg(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (file, socket) = sock(a[0])?;
    let count = a[2].min(MMSG_MAX);
    let flags = a[3] as u32;
    let mut done = 0;
    while done < count {
        let msg = a[1] + done * MMSGHDR_SIZE as u64;
        match send_one(&file, &socket, msg, flags) {
            Ok(n) => uaccess::write_u32(msg + MsgHdr::SIZE as u64, n as u32)?,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        done += 1;
    }
    Ok(done)
}

fn recvmmsg(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (file, socket) = sock(a[0])?;
    let count = a[2].min(MMSG_MAX);
    let flags = a[3] as u32;
    let mut done = 0;
    while done < count {
        let msg = a[1] + done * MMSGHDR_SIZE as u64;
        // After the first message, take only what is already there (MSG_WAITFORONE-like: the
        // timeout argument is not waited on).
        let flags = if done > 0 {
            flags | MSG_DONTWAIT
        } else {
            flags
        };
        match recv_one(&file, &socket, msg, flags) {
            Ok(n) => uaccess::write_u32(msg + MsgHdr::SIZE as u64, n as u32)?,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        done += 1;
    }
    Ok(done)
}

fn getsockname(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (_, socket) = sock(a[0])?;
    let addr = socket.socket.local_addr()?;
    write_addr(&addr, a[1], a[2])?;
    Ok(0)
}

fn getpeername(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (_, socket) = sock(a[0])?;
    let addr = socket.socket.peer_addr()?;
    write_addr(&addr, a[1], a[2])?;
    Ok(0)
}

fn setsockopt(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (_, socket) = sock(a[0])?;
    let len = a[4] as u32 as usize;
    if len > 4096 {
        return Err(Errno::EINVAL);
    }
    let mut value = vec![0u8; len];
    if len > 0 {
        uaccess::copy_from_user(a[3], &mut value)?;
    }
    socket.set_option(a[1] as u32, a[2] as u32, &value)?;
    Ok(0)
}

fn getsockopt(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (_, socket) = sock(a[0])?;
    let len_ptr = a[4];
    let room = uaccess::read_u32(len_ptr)? as i32;
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let value = socket.get_option(a[1] as u32, a[2] as u32)?;
    let n = value.len().min(room as usize);
    uaccess::copy_to_user(a[3], &value[..n])?;
    uaccess::write_u32(len_ptr, n as u32)?;
    Ok(0)
}
