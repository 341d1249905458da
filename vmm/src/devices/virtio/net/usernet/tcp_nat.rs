//! Outbound TCP: the guest's connection to 10.0.2.2:PORT becomes a host connection to
//! 127.0.0.1:PORT (or wherever the config's `host_connect` says).
//!
//! The guest's SYN is held back while the host connection is made (non-blocking, watched by the
//! user network's epoll): once it is up, a smoltcp socket starts listening on PORT and the SYN is
//! fed to the interface, so the guest's handshake completes only if the host's did; if the host
//! refuses (or takes longer than the config's `connect_timeout`), the guest gets a RST, just as if
//! it had connected to the host port directly. Retransmitted SYNs meanwhile are dropped.

use super::proxy::ConnKey;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

/// A host connect in progress for a guest SYN.
pub struct Connecting {
    pub key: ConnKey,
    /// The guest's SYN frame, fed to the interface once the host connection is up.
    pub syn: Vec<u8>,
    deadline: Instant,
}

/// The outbound connects in progress.
#[derive(Default)]
pub struct TcpNat {
    connecting: HashMap<u64, (Connecting, OwnedFd)>,
    next_id: u64,
}

/// How [`TcpNat::start`] went.
pub enum Started {
    /// Connected at once (usual on loopback): go ahead with the SYN.
    Connected(TcpStream),
    /// Watched by the epoll; [`TcpNat::ready`] finishes it.
    Pending,
    Refused(io::Error),
}

/// Epoll data of an outbound connect.
pub fn connecting_token(id: u64) -> u64 {
    super::TOKEN_CONNECTING | id
}

impl TcpNat {
    /// Connects in progress.
    pub fn count(&self) -> usize {
        self.connecting.len()
    }

    pub fn is_connecting(&self, key: ConnKey) -> bool {
        self.connecting.values().any(|(c, _)| c.key == key)
    }

    /// Starts connecting to `addr` on the host for the guest's `syn`; a connect still under way
    /// at `deadline` is given up.
    pub fn start(
        &mut self,
        key: ConnKey,
        syn: &[u8],
        addr: SocketAddrV4,
        deadline: Instant,
        epoll: &Epoll,
    ) -> Started {
        let socket = match connect_nonblocking(addr) {
            Ok(Connect::Done(socket)) => return Started::Connected(TcpStream::from(socket)),
            Ok(Connect::InProgress(socket)) => socket,
            Err(e) => return Started::Refused(e),
        };
        let id = self.next_id;
        self.next_id += 1;
        let event = EpollEvent::new(EventSet::OUT, connecting_token(id));
        if let Err(e) = epoll.ctl(ControlOperation::Add, socket.as_raw_fd(), event) {
            return Started::Refused(e);
        }
        self.connecting.insert(
            id,
            (
                Connecting {
                    key,
                    syn: syn.to_vec(),
                    deadline,
                },
                socket,
            ),
        );
        Started::Pending
    }

    /// The connect `id` finished (its socket became writable or failed).
    pub fn ready(&mut self, id: u64, epoll: &Epoll) -> Option<(Connecting, io::Result<TcpStream>)> {
        let (connecting, socket) = self.connecting.remove(&id)?;
        let _ = epoll.ctl(
            ControlOperation::Delete,
            socket.as_raw_fd(),
            EpollEvent::default(),
        );
        let result = match socket_error(&socket) {
            Ok(0) => Ok(TcpStream::from(socket)),
            Ok(errno) => Err(io::Error::from_raw_os_error(errno)),
            Err(e) => Err(e),
        };
        Some((connecting, result))
    }

    /// Connects that took too long (their sockets are closed).
    pub fn expire(&mut self, now: Instant, epoll: &Epoll) -> Vec<Connecting> {
        let expired: Vec<u64> = self
            .connecting
            .iter()
            .filter(|(_, (c, _))| c.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        let mut connects = Vec::new();
        for id in expired {
            if let Some((connecting, socket)) = self.connecting.remove(&id) {
                let _ = epoll.ctl(
                    ControlOperation::Delete,
                    socket.as_raw_fd(),
                    EpollEvent::default(),
                );
                connects.push(connecting);
            }
        }
        connects
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.connecting.values().map(|(c, _)| c.deadline).min()
    }

    /// Abandons every connect (a device reset).
    pub fn clear(&mut self, epoll: &Epoll) {
        for (_, (_, socket)) in self.connecting.drain() {
            let _ = epoll.ctl(
                ControlOperation::Delete,
                socket.as_raw_fd(),
                EpollEvent::default(),
            );
        }
    }
}

enum Connect {
    Done(OwnedFd),
    InProgress(OwnedFd),
}

/// A TCP connect that does not wait (std has none).
fn connect_nonblocking(addr: SocketAddrV4) -> io::Result<Connect> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let sockaddr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sockaddr` is a valid sockaddr_in of the length given.
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&raw const sockaddr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(Connect::Done(socket));
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(Connect::InProgress(socket))
    } else {
        Err(error)
    }
}

/// SO_ERROR: 0 once a non-blocking connect has succeeded, else its errno.
fn socket_error(socket: &OwnedFd) -> io::Result<i32> {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `error`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut error).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(error)
    }
}
