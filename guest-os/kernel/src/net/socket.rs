//! [`SocketFile`]: what a socket is to the file layer (an inode of kind socket, read and written
//! as a stream, polled, named `socket:[N]`), around a protocol's [`Socket`]: AF_UNIX
//! ([`super::unix`]), TCP ([`super::tcp`]) or UDP ([`super::udp`]).
//!
//! The socket options every protocol shares (SO_REUSEADDR, SO_KEEPALIVE, buffer sizes, timeouts,
//! TCP_NODELAY, …) are kept here and read back as set; the ones that change what a protocol
//! does (SO_ERROR, SO_TYPE, IPV6_V6ONLY, SO_PEERCRED, …) are answered by it or from it.
//!
//! Owns: the socket inode and the option store.

use crate::fs::{FileKind, FileRef, Inode, InodeId, Io, OpenFile, Pollee, ReadBuf, WriteBuf};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::socket::*;
use noa_linux_abi::stat::{SOCKFS_MAGIC, Stat, Statfs, makedev};
use noa_linux_abi::tty::FIONREAD;
use spin::Mutex;

/// `st_dev` of sockets (Linux's sockfs is an anonymous device too).
const DEV: u64 = makedev(0, 8);
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// SOL_SOCKET options that setsockopt stores (and getsockopt reads back, 0 when never set):
/// the ones Linux accepts on an Internet or AF_UNIX socket. Others are ENOPROTOOPT.
const SETTABLE_SOCKET_OPTIONS: &[u32] = &[
    SO_DEBUG,
    SO_REUSEADDR,
    SO_DONTROUTE,
    SO_BROADCAST,
    SO_SNDBUF,
    SO_RCVBUF,
    SO_KEEPALIVE,
    SO_OOBINLINE,
    11, // SO_NO_CHECK
    12, // SO_PRIORITY
    SO_LINGER,
    14, // SO_BSDCOMPAT
    SO_REUSEPORT,
    SO_PASSCRED,
    SO_RCVLOWAT,
    SO_SNDLOWAT,
    SO_RCVTIMEO,
    SO_SNDTIMEO,
    29, // SO_TIMESTAMP
    SO_SNDBUFFORCE,
    SO_RCVBUFFORCE,
    35, // SO_TIMESTAMPNS
    36, // SO_MARK
    40, // SO_RXQ_OVFL
    42, // SO_PEEK_OFF
    46, // SO_BUSY_POLL
    47, // SO_MAX_PACING_RATE
    49, // SO_INCOMING_CPU
    60, // SO_ZEROCOPY
];

/// The file's blocking mode for one call, with MSG_DONTWAIT making it non-blocking.
pub fn call_io(io: Io, flags: u32) -> Io {
    Io {
        nonblock: io.nonblock || flags & MSG_DONTWAIT != 0,
    }
}

/// shutdown's `how` as (stop reading, stop writing); EINVAL for anything else.
pub fn shutdown_halves(how: u32) -> SysResult<(bool, bool)> {
    match how {
        SHUT_RD => Ok((true, false)),
        SHUT_WR => Ok((false, true)),
        SHUT_RDWR => Ok((true, true)),
        _ => Err(Errno::EINVAL),
    }
}

/// What a receive produced.
#[derive(Default)]
pub struct Received {
    /// Bytes stored in the buffer.
    pub bytes: usize,
    /// The message's real length (datagrams cut by a short buffer: MSG_TRUNC).
    pub full: usize,
    /// The sender (datagram sockets; None for streams).
    pub from: Option<SockAddr>,
    /// Files passed with SCM_RIGHTS.
    pub rights: Vec<FileRef>,
}

/// The options a protocol consults when it binds or listens.
#[derive(Clone, Copy, Debug, Default)]
pub struct BindFlags {
    pub reuse_addr: bool,
    pub reuse_port: bool,
    /// IPV6_V6ONLY: an AF_INET6 socket bound to `::` takes no IPv4 traffic.
    pub v6only: bool,
}

/// One protocol's socket. Methods it does not support keep the defaults Linux gives.
pub trait Socket: Send + Sync + 'static {
    fn family(&self) -> u16;
    fn sock_type(&self) -> u32;
    fn protocol(&self) -> u32;
    fn pollee(&self) -> &Arc<Pollee>;

    fn bind(&self, addr: SockAddr, flags: BindFlags) -> SysResult<()>;

    fn listen(&self, _backlog: usize, _flags: BindFlags) -> SysResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// A connection waiting on a listening socket, and its peer's address.
    fn accept(&self, _io: Io) -> SysResult<(Box<dyn Socket>, SockAddr)> {
        Err(Errno::EOPNOTSUPP)
    }

    fn connect(&self, addr: SockAddr, io: Io, flags: BindFlags) -> SysResult<()>;

    /// Sends `buf` (to `to` for unconnected datagram sockets); the bytes taken.
    fn send(
        &self,
        buf: &WriteBuf<'_>,
        to: Option<SockAddr>,
        flags: u32,
        io: Io,
        rights: Vec<FileRef>,
    ) -> SysResult<usize>;

    fn recv(&self, buf: &mut ReadBuf<'_>, flags: u32, io: Io) -> SysResult<Received>;

    fn shutdown(&self, how: u32) -> SysResult<()>;

    fn local_addr(&self) -> SysResult<SockAddr>;

    /// ENOTCONN when not connected.
    fn peer_addr(&self) -> SysResult<SockAddr>;

    /// Readiness (poll bits).
    fn poll(&self) -> u32;

    /// SO_ERROR: the pending error, cleared by reading it.
    fn take_error(&self) -> u32 {
        0
    }

    fn is_listening(&self) -> bool {
        false
    }

    /// Bytes waiting to be read (FIONREAD).
    fn pending_bytes(&self) -> usize {
        0
    }

    /// SO_PEERCRED: (pid, uid, gid) of the peer, for AF_UNIX.
    fn peer_cred(&self) -> Option<(u32, u32, u32)> {
        None
    }
}

/// A socket as an inode.
pub struct SocketFile {
    ino: u64,
    pub socket: Box<dyn Socket>,
    /// Options stored as set: (level, name) → value.
    options: Mutex<BTreeMap<(u32, u32), Vec<u8>>>,
    created: noa_linux_abi::time::Timespec,
}

impl SocketFile {
    pub fn new(socket: Box<dyn Socket>) -> Arc<SocketFile> {
        Arc::new(SocketFile {
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            socket,
            options: Mutex::new(BTreeMap::new()),
            created: crate::fs::now(),
        })
    }

    /// An open file of a new socket (O_RDWR, plus O_NONBLOCK if asked).
    pub fn open(socket: Box<dyn Socket>, nonblock: bool) -> FileRef {
        use noa_linux_abi::fcntl::{O_NONBLOCK, O_RDWR};
        let flags = O_RDWR | if nonblock { O_NONBLOCK } else { 0 };
        OpenFile::new(SocketFile::new(socket), flags, Vec::new())
    }

    fn flag(&self, level: u32, name: u32) -> bool {
        self.options
            .lock()
            .get(&(level, name))
            .is_some_and(|v| v.iter().any(|&b| b != 0))
    }

    pub fn bind_flags(&self) -> BindFlags {
        BindFlags {
            reuse_addr: self.flag(SOL_SOCKET, SO_REUSEADDR),
            reuse_port: self.flag(SOL_SOCKET, SO_REUSEPORT),
            v6only: self.flag(IPPROTO_IPV6, IPV6_V6ONLY),
        }
    }

    /// setsockopt(2): checks the level and name against what this socket speaks, then stores.
    pub fn set_option(&self, level: u32, name: u32, value: &[u8]) -> SysResult<()> {
        let int_option = match (level, name) {
            (SOL_SOCKET, SO_LINGER) => {
                if value.len() < 8 {
                    return Err(Errno::EINVAL);
                }
                false
            }
            (SOL_SOCKET, SO_RCVTIMEO | SO_SNDTIMEO) => {
                if value.len() < 16 {
                    return Err(Errno::EINVAL);
                }
                false
            }
            (SOL_SOCKET, name) if SETTABLE_SOCKET_OPTIONS.contains(&name) => true,
            (SOL_SOCKET, _) => return Err(Errno::ENOPROTOOPT),
            (IPPROTO_TCP, _) if self.socket.protocol() == IPPROTO_TCP => name != TCP_CONGESTION,
            (IPPROTO_IP, _) if self.socket.family() == AF_INET => true,
            (IPPROTO_IPV6, IPV6_V6ONLY) if self.socket.family() == AF_INET6 => true,
            (IPPROTO_IPV6, _) if self.socket.family() == AF_INET6 => true,
            (IPPROTO_IP | IPPROTO_IPV6 | IPPROTO_TCP | IPPROTO_UDP, _) => {
                return Err(Errno::ENOPROTOOPT);
            }
            _ => return Err(Errno::ENOPROTOOPT),
        };
        if int_option && value.len() < 4 {
            return Err(Errno::EINVAL);
        }
        let mut stored = value.to_vec();
        if int_option {
            stored.truncate(4);
        }
        if level == SOL_SOCKET && matches!(name, SO_RCVBUF | SO_SNDBUF) {
            // Linux doubles the request (for its bookkeeping) and reports the doubled value.
            let asked = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
            let doubled = asked.min(i32::MAX as u32 / 2).max(2304) * 2;
            stored = doubled.to_le_bytes().to_vec();
        }
        self.options.lock().insert((level, name), stored);
        Ok(())
    }

    /// getsockopt(2): the value (the caller truncates it to the user's length).
    pub fn get_option(&self, level: u32, name: u32) -> SysResult<Vec<u8>> {
        let int = |v: u32| v.to_le_bytes().to_vec();
        let socket = &self.socket;
        match (level, name) {
            (SOL_SOCKET, SO_TYPE) => return Ok(int(socket.sock_type())),
            (SOL_SOCKET, SO_ERROR) => return Ok(int(socket.take_error())),
            (SOL_SOCKET, SO_DOMAIN) => return Ok(int(socket.family() as u32)),
            (SOL_SOCKET, SO_PROTOCOL) => return Ok(int(socket.protocol())),
            (SOL_SOCKET, SO_ACCEPTCONN) => return Ok(int(socket.is_listening() as u32)),
            (SOL_SOCKET, SO_PEERCRED) => {
                let (pid, uid, gid) = socket.peer_cred().ok_or(Errno::ENOTCONN)?;
                return Ok(encode_ucred(pid, uid, gid).to_vec());
            }
            _ => {}
        }
        if let Some(value) = self.options.lock().get(&(level, name)) {
            return Ok(value.clone());
        }
        let default = match (level, name) {
            (SOL_SOCKET, SO_RCVBUF) => 131_072,
            (SOL_SOCKET, SO_SNDBUF) => 16_384,
            (SOL_SOCKET, SO_RCVLOWAT | SO_SNDLOWAT) => 1,
            (SOL_SOCKET, SO_LINGER) => return Ok(alloc::vec![0; 8]),
            (SOL_SOCKET, SO_RCVTIMEO | SO_SNDTIMEO) => return Ok(alloc::vec![0; 16]),
            (SOL_SOCKET, name) if SETTABLE_SOCKET_OPTIONS.contains(&name) => 0,
            (SOL_SOCKET, _) => return Err(Errno::ENOPROTOOPT),
            (IPPROTO_TCP, TCP_MAXSEG) if socket.protocol() == IPPROTO_TCP => 1448,
            (IPPROTO_TCP, TCP_KEEPIDLE) if socket.protocol() == IPPROTO_TCP => 7200,
            (IPPROTO_TCP, TCP_KEEPINTVL) if socket.protocol() == IPPROTO_TCP => 75,
            (IPPROTO_TCP, TCP_KEEPCNT) if socket.protocol() == IPPROTO_TCP => 9,
            (IPPROTO_TCP, TCP_CONGESTION) if socket.protocol() == IPPROTO_TCP => {
                return Ok(b"cubic\0".to_vec());
            }
            (IPPROTO_TCP, _) if socket.protocol() == IPPROTO_TCP => 0,
            (IPPROTO_IP, IP_TTL) if socket.family() == AF_INET => 64,
            (IPPROTO_IP, _) if socket.family() == AF_INET => 0,
            (IPPROTO_IPV6, _) if socket.family() == AF_INET6 => 0,
            _ => return Err(Errno::ENOPROTOOPT),
        };
        Ok(int(default))
    }
}

impl Inode for SocketFile {
    fn id(&self) -> InodeId {
        (DEV, self.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::Socket
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: DEV,
            ino: self.ino,
            nlink: 1,
            mode: FileKind::Socket.mode_bits() | 0o777,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            blksize: 4096,
            blocks: 0,
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(Statfs {
            f_type: SOCKFS_MAGIC,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Statfs::default()
        })
    }

    fn read_at(&self, _offset: u64, buf: &mut ReadBuf<'_>, io: Io) -> SysResult<usize> {
        Ok(self.socket.recv(buf, 0, io)?.bytes)
    }

    fn write_at(&self, _offset: u64, buf: &WriteBuf<'_>, io: Io) -> SysResult<usize> {
        let result = self.socket.send(buf, None, 0, io, Vec::new());
        if result == Err(Errno::EPIPE) {
            crate::task::signal::raise_current(noa_linux_abi::signal::SIGPIPE);
        }
        result
    }

    fn seekable(&self) -> bool {
        false
    }

    fn poll(&self) -> u32 {
        self.socket.poll()
    }

    fn pollee(&self) -> Option<&Pollee> {
        Some(self.socket.pollee())
    }

    fn ioctl(&self, _file: &OpenFile, cmd: u32, arg: u64) -> SysResult<u64> {
        match cmd {
            FIONREAD => {
                let n = self.socket.pending_bytes().min(i32::MAX as usize) as u32;
                crate::mm::uaccess::write_u32(arg, n)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn anon_name(&self) -> Option<String> {
        Some(format!("socket:[{}]", self.ino))
    }
}

/// The socket behind an open file; ENOTSOCK for any other file.
pub fn of(file: &FileRef) -> SysResult<Arc<SocketFile>> {
    crate::fs::downcast::<SocketFile>(file.inode()).ok_or(Errno::ENOTSOCK)
}
