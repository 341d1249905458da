//! Proxied TCP connections: each pairs a smoltcp TCP socket (the router's end of the guest's
//! connection) with a host `TcpStream`, and copies bytes between them in both directions — the
//! outbound NAT and the published ports both end up here.
//!
//! Backpressure instead of buffers: bytes move straight from the host socket into smoltcp's
//! send buffer and from its receive buffer into the host socket, only as far as the other side
//! takes them, so a connection never holds more than its two smoltcp buffers
//! ([`SOCKET_BUFFER`] each) and the table never more than [`MAX_CONNECTIONS`] connections.
//!
//! Host sockets are watched through the user network's epoll with an interest computed after
//! every pass: readable only while smoltcp has room to send, writable only while data from the
//! guest waits. Closes pass through both ways (a FIN becomes `shutdown(Write)` and EOF becomes a
//! FIN); a reset or error on one side aborts the other.

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

/// Connections (outbound and published together) at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Each direction of each connection buffers this much inside smoltcp.
pub const SOCKET_BUFFER: usize = 64 * 1024;
/// A connection whose guest stops acknowledging for this long is aborted.
pub const GUEST_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(120);

/// A new smoltcp TCP socket with the router's usual settings.
pub fn new_socket() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
    );
    // The host side already coalesces; Nagle here would only add latency to small writes.
    socket.set_nagle_enabled(false);
    socket.set_timeout(Some(GUEST_TIMEOUT));
    socket
}

/// Which connection a smoltcp socket belongs to, so guest segments and host events find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnKey {
    /// The guest connected from `guest_port` to the gateway's `host_port`.
    Outbound { guest_port: u16, host_port: u16 },
    /// A published port: the router connected from `local_port` to the guest.
    Published { local_port: u16 },
}

pub struct Conn {
    pub key: ConnKey,
    pub handle: SocketHandle,
    /// Its epoll data ([`conn_token`] of its id).
    token: u64,
    stream: TcpStream,
    /// The host sent EOF (we closed our sending half towards the guest).
    host_eof: bool,
    /// We passed the guest's FIN on to the host.
    host_write_shut: bool,
    /// The host socket failed; the guest side was aborted.
    host_dead: bool,
    /// The host socket hung up or errored: it is no longer in the epoll set (it would report that
    /// forever); what is left in it is read by the passes that guest traffic triggers.
    unwatched: bool,
    /// The interest registered with the epoll (None: not registered).
    watching: Option<EventSet>,
    /// The guest side got past the handshake at some point.
    established: bool,
}

impl Conn {
    fn pump(&mut self, socket: &mut tcp::Socket<'_>) {
        use tcp::State::*;
        self.established |= matches!(
            socket.state(),
            Established | FinWait1 | FinWait2 | CloseWait | Closing | LastAck | TimeWait
        );
        if self.host_dead {
            return;
        }
        // Host → guest, as far as smoltcp's send buffer takes it.
        while !self.host_eof && socket.can_send() {
            let read = socket.send(|buffer| match self.stream.read(buffer) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match read {
                Ok(Ok(0)) => {
                    self.host_eof = true;
                    socket.close(); // FIN after whatever is still queued
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                Ok(Err(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Ok(Err(e)) => return self.host_failed(socket, &e),
                Err(_) => break,
            }
        }
        // Guest → host, as far as the host socket takes it.
        while socket.can_recv() {
            let written = socket.recv(|buffer| match self.stream.write(buffer) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match written {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                Ok(Err(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Ok(Err(e)) => return self.host_failed(socket, &e),
                Err(_) => break,
            }
        }
        // The guest finished sending and the host has it all: pass the FIN on.
        if self.established
            && !self.host_write_shut
            && !socket.may_recv()
            && socket.recv_queue() == 0
        {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.host_write_shut = true;
        }
    }

    fn host_failed(&mut self, socket: &mut tcp::Socket<'_>, error: &std::io::Error) {
        tracing::debug!(
            "usernet: {:?}: host side failed: {error}; resetting the guest side",
            self.key
        );
        self.host_dead = true;
        socket.abort(); // the next poll sends the RST
    }

    /// Done: the guest side is closed (and its RST, if any, sent) or in TIME-WAIT with
    /// everything passed on.
    fn finished(&self, socket: &tcp::Socket<'_>) -> bool {
        match socket.state() {
            tcp::State::Closed => socket.remote_endpoint().is_none(),
            tcp::State::TimeWait => self.host_dead || socket.recv_queue() == 0,
            _ => false,
        }
    }

    fn discard(self, sockets: &mut SocketSet<'_>, epoll: &Epoll) {
        if self.watching.is_some() {
            let _ = epoll.ctl(
                ControlOperation::Delete,
                self.stream.as_raw_fd(),
                EpollEvent::default(),
            );
        }
        set_linger_zero(&self.stream);
        sockets.remove(self.handle);
    }

    fn interest(&self, socket: &tcp::Socket<'_>) -> EventSet {
        let mut interest = EventSet::empty();
        if self.host_dead {
            return interest;
        }
        if !self.host_eof && socket.can_send() {
            interest |= EventSet::IN;
        }
        if socket.recv_queue() > 0 {
            interest |= EventSet::OUT;
        }
        interest
    }
}

/// Epoll data of a connection's host socket.
pub fn conn_token(id: u64) -> u64 {
    super::TOKEN_CONN | id
}

/// The connections of one user network.
#[derive(Default)]
pub struct Connections {
    conns: HashMap<u64, Conn>,
    next_id: u64,
}

impl Connections {
    /// Connections open.
    pub fn count(&self) -> usize {
        self.conns.len()
    }

    /// The id and smoltcp socket of the connection `key`.
    pub fn find(&self, key: ConnKey) -> Option<(u64, SocketHandle)> {
        self.conns
            .iter()
            .find(|(_, conn)| conn.key == key)
            .map(|(&id, conn)| (id, conn.handle))
    }

    /// Adds a connection whose smoltcp socket is `handle`.
    pub fn add(&mut self, key: ConnKey, handle: SocketHandle, stream: TcpStream, epoll: &Epoll) {
        let id = self.next_id;
        self.next_id += 1;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            key,
            handle,
            token: conn_token(id),
            stream,
            host_eof: false,
            host_write_shut: false,
            host_dead: false,
            unwatched: false,
            watching: None,
            established: false,
        };
        let event = EpollEvent::new(EventSet::empty(), conn.token);
        match epoll.ctl(ControlOperation::Add, conn.stream.as_raw_fd(), event) {
            Ok(()) => conn.watching = Some(EventSet::empty()),
            Err(e) => tracing::warn!("usernet: cannot watch a host socket: {e}"),
        }
        self.conns.insert(id, conn);
    }

    /// The host socket of `id` reported `events`: a hang-up or error takes it out of the epoll
    /// set for good (it would be reported at every wait).
    pub fn host_event(&mut self, id: u64, events: EventSet, epoll: &Epoll) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if events.intersects(EventSet::HANG_UP | EventSet::ERROR) && !conn.unwatched {
            let _ = epoll.ctl(
                ControlOperation::Delete,
                conn.stream.as_raw_fd(),
                EpollEvent::default(),
            );
            conn.unwatched = true;
            conn.watching = None;
        }
    }

    /// Moves data both ways for every connection.
    pub fn pump(&mut self, sockets: &mut SocketSet<'_>) {
        for conn in self.conns.values_mut() {
            conn.pump(sockets.get_mut::<tcp::Socket>(conn.handle));
        }
    }

    /// Removes finished connections and updates what the epoll watches for the others. Call it
    /// after the interface has been polled (so resets of aborted sockets have gone out).
    pub fn reap(&mut self, sockets: &mut SocketSet<'_>, epoll: &Epoll) {
        self.conns.retain(|_, conn| {
            let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
            if conn.finished(socket) {
                if conn.watching.is_some() {
                    let _ = epoll.ctl(
                        ControlOperation::Delete,
                        conn.stream.as_raw_fd(),
                        EpollEvent::default(),
                    );
                }
                if !conn.host_write_shut {
                    // The guest reset the connection: reset the host side too, not a clean EOF.
                    set_linger_zero(&conn.stream);
                }
                sockets.remove(conn.handle);
                return false;
            }
            let interest = conn.interest(socket);
            if !conn.unwatched && conn.watching != Some(interest) {
                let event = EpollEvent::new(interest, conn.token);
                if epoll
                    .ctl(ControlOperation::Modify, conn.stream.as_raw_fd(), event)
                    .is_ok()
                {
                    conn.watching = Some(interest);
                }
            }
            true
        });
    }

    /// Drops connection `id` now: its host socket is reset, its smoltcp socket goes.
    pub fn remove(&mut self, id: u64, sockets: &mut SocketSet<'_>, epoll: &Epoll) {
        if let Some(conn) = self.conns.remove(&id) {
            conn.discard(sockets, epoll);
        }
    }

    /// Drops every connection (a reset of the device).
    pub fn clear(&mut self, sockets: &mut SocketSet<'_>, epoll: &Epoll) {
        for (_, conn) in self.conns.drain() {
            conn.discard(sockets, epoll);
        }
    }
}

/// Closing `stream` sends RST instead of FIN.
pub fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from a valid `linger`.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
