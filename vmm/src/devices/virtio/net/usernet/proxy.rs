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
//!
//! A published connection that the guest refuses before it ever got through (nothing listens
//! there yet: the guest is still booting) is not reset at once: the router dials again after a
//! pause that doubles from [`REDIAL_FIRST`] to [`REDIAL_MAX`], for the [`Config`]'s
//! `published_redial`, and the host client just waits. A client polling a port while the guest
//! boots then costs the guest one refused SYN per pause, not one per attempt: every refusal is
//! an interrupt and a trip through the guest's network stack, which on PVM hosts (ring 0
//! emulated) costs milliseconds, and a client retrying at once could keep the guest from ever
//! getting to its `listen`.
//!
//! Clean-up: a connection is [finished](Conn::finished) once its guest side is closed (a RST
//! either way, or the close handshake done), and its host socket is closed with it (with a RST
//! unless the guest closed cleanly). What would otherwise stay forever is timed out
//! ([`Conn::expire`], with the [`Config`]'s time-outs): a connection closed in one direction that
//! moves no data, and a guest that stopped answering — smoltcp's own time-out catches that only
//! while it can transmit, which it cannot when the guest's receive queue is full or the guest no
//! longer answers ARP; the router's own deadline does not depend on it.

use super::config::Config;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

/// Connections (outbound and published together) at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Each direction of each connection buffers this much inside smoltcp.
pub const SOCKET_BUFFER: usize = 64 * 1024;
/// The first pause before a refused published connection is dialled again.
pub const REDIAL_FIRST: Duration = Duration::from_millis(5);
/// The longest pause between two dials of a refused published connection.
pub const REDIAL_MAX: Duration = Duration::from_millis(200);

/// `std` to smoltcp durations.
pub fn duration(d: std::time::Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A new smoltcp TCP socket with the router's usual settings.
pub fn new_socket(config: &Config) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
    );
    // The host side already coalesces; Nagle here would only add latency to small writes.
    socket.set_nagle_enabled(false);
    // smoltcp aborts a connection whose guest has sent nothing for this long, idle or not; the
    // keep-alive probes make a live guest answer, so only a gone one is cut off.
    socket.set_timeout(Some(duration(config.guest_timeout)));
    socket.set_keep_alive(Some(duration(config.keep_alive)));
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

/// The router's own time-outs for a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Closed in one direction and no data moving.
    pub half_closed: Duration,
    /// Not a segment from the guest: smoltcp's time-out plus a keep-alive interval, so that
    /// smoltcp, which also resets the guest side, normally gets there first.
    pub guest_silent: Duration,
}

impl Timeouts {
    pub fn new(config: &Config) -> Self {
        Timeouts {
            half_closed: duration(config.half_closed_timeout),
            guest_silent: duration(config.guest_timeout) + duration(config.keep_alive),
        }
    }
}

/// A published connection's dial into the guest, repeated while the guest refuses it (see the
/// module doc).
#[derive(Debug, Clone, Copy)]
pub struct Redial {
    pub remote: IpEndpoint,
    pub local: IpListenEndpoint,
    /// When to dial again; None while a dial is in flight.
    due: Option<Instant>,
    pause: Duration,
    give_up: Instant,
}

impl Redial {
    /// A dial from `local` to `remote` made at `now`, repeated until `now + window`.
    pub fn new(
        remote: IpEndpoint,
        local: IpListenEndpoint,
        now: Instant,
        window: Duration,
    ) -> Self {
        Redial {
            remote,
            local,
            due: None,
            pause: REDIAL_FIRST,
            give_up: now + window,
        }
    }
}

/// What [`Conn::expire`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Live,
    /// Reset both ways; it finishes once smoltcp has sent the guest its RST.
    Reset,
    /// Gone for good: drop it now, RST or not.
    Drop,
}

pub struct Conn {
    pub key: ConnKey,
    pub handle: SocketHandle,
    /// Its epoll data.
    token: u64,
    stream: TcpStream,
    /// The host sent EOF (we closed our sending half towards the guest).
    host_eof: bool,
    /// We passed the guest's FIN on to the host.
    host_write_shut: bool,
    /// The host socket failed, or the connection was reset; the guest side was aborted.
    host_dead: bool,
    /// The host socket hung up or errored: it is no longer in the epoll set (it would report that
    /// forever); what is left in it is read by the passes that guest traffic triggers.
    unwatched: bool,
    /// The interest registered with the epoll (None: not registered).
    watching: Option<EventSet>,
    /// The guest side got past the handshake at some point.
    established: bool,
    /// The guest sent its FIN (its side reached a state that only a FIN leads to).
    guest_fin: bool,
    /// When data last moved either way, or the guest side changed state (the half-closed
    /// time-out counts from here).
    last_progress: Instant,
    /// The guest side's state at the last pass.
    last_state: tcp::State,
    /// When the guest last sent a segment for this connection (or it was opened).
    last_heard: Instant,
    /// A published connection's dial, repeated while the guest refuses it.
    redial: Option<Redial>,
}

impl Conn {
    /// A new connection at `now`, its host socket registered with `epoll` under `token`.
    pub fn new(
        key: ConnKey,
        handle: SocketHandle,
        stream: TcpStream,
        token: u64,
        epoll: &Epoll,
        now: Instant,
    ) -> Conn {
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            key,
            handle,
            token,
            stream,
            host_eof: false,
            host_write_shut: false,
            host_dead: false,
            unwatched: false,
            watching: None,
            established: false,
            guest_fin: false,
            last_progress: now,
            last_state: tcp::State::Closed,
            last_heard: now,
            redial: None,
        };
        let event = EpollEvent::new(EventSet::empty(), token);
        match epoll.ctl(ControlOperation::Add, conn.stream.as_raw_fd(), event) {
            Ok(()) => conn.watching = Some(EventSet::empty()),
            Err(e) => tracing::warn!("usernet: cannot watch a host socket: {e}"),
        }
        conn
    }

    /// Dials `redial`'s way again while the guest refuses (a published connection).
    pub fn set_redial(&mut self, redial: Redial) {
        self.redial = Some(redial);
    }

    /// A finished connection that is to be dialled again rather than closed: the guest refused
    /// a published connection that never got through, its host client is still there, and the
    /// window is open. Schedules the next dial (if none is) and says yes.
    pub fn keep_for_redial(&mut self, socket: &tcp::Socket<'_>, now: Instant) -> bool {
        let Some(redial) = &mut self.redial else {
            return false;
        };
        if self.established
            || self.host_dead
            || self.unwatched
            || self.host_eof
            || socket.state() != tcp::State::Closed
        {
            return false;
        }
        if redial.due.is_some() {
            return true;
        }
        if now >= redial.give_up {
            return false;
        }
        // The last dial is at the end of the window.
        redial.due = Some((now + redial.pause).min(redial.give_up));
        redial.pause = (redial.pause * 2).min(REDIAL_MAX);
        true
    }

    /// The dial to make now, if one is due: it is then in flight.
    pub fn due_redial(&mut self, now: Instant) -> Option<Redial> {
        let redial = self.redial.as_mut()?;
        if redial.due.is_some_and(|due| due <= now) {
            redial.due = None;
            return Some(*redial);
        }
        None
    }

    /// The guest sent a segment for this connection.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    pub fn pump(&mut self, socket: &mut tcp::Socket<'_>, now: Instant) {
        use tcp::State::*;
        let state = socket.state();
        self.established |= matches!(
            state,
            Established | FinWait1 | FinWait2 | CloseWait | Closing | LastAck | TimeWait
        );
        self.guest_fin |= matches!(state, CloseWait | Closing | LastAck | TimeWait);
        if state != self.last_state {
            self.last_state = state;
            self.last_progress = now;
        }
        if self.host_dead {
            return;
        }
        let mut moved = 0;
        // Host → guest, as far as smoltcp's send buffer takes it.
        while !self.host_eof && socket.can_send() {
            let read = socket.send(|buffer| match self.stream.read(buffer) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match read {
                Ok(Ok(0)) => {
                    self.host_eof = true;
                    self.last_progress = now;
                    socket.close(); // FIN after whatever is still queued
                }
                Ok(Ok(n)) => moved += n,
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
                Ok(Ok(n)) => moved += n,
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                Ok(Err(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Ok(Err(e)) => return self.host_failed(socket, &e),
                Err(_) => break,
            }
        }
        // The guest finished sending and the host has it all: pass the FIN on. (A guest that
        // reset the connection did not finish: its host side gets a RST when it goes, never a
        // FIN that would make a cut-off stream look complete.)
        if self.guest_fin && !self.host_write_shut && socket.recv_queue() == 0 {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.host_write_shut = true;
        }
        if moved > 0 {
            self.last_progress = now;
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

    /// Half-closed: one side has sent its FIN, the connection is not done, nothing failed.
    fn half_closed(&self, socket: &tcp::Socket<'_>) -> bool {
        use tcp::State::*;
        !self.host_dead
            && self.established
            && (self.host_eof
                || self.host_write_shut
                || matches!(
                    socket.state(),
                    FinWait1 | FinWait2 | CloseWait | Closing | LastAck
                ))
    }

    /// When [`expire`](Self::expire) has something to do next.
    pub fn deadline(&self, socket: &tcp::Socket<'_>, timeouts: Timeouts) -> Instant {
        let silent = self.last_heard + timeouts.guest_silent;
        let deadline = if self.half_closed(socket) {
            silent.min(self.last_progress + timeouts.half_closed)
        } else {
            silent
        };
        match self.redial.and_then(|r| r.due) {
            Some(due) => deadline.min(due),
            None => deadline,
        }
    }

    /// Applies the time-outs at `now`: a connection half-closed without progress for too long
    /// is reset both ways; one whose guest has been silent for too long is dropped.
    pub fn expire(
        &mut self,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
        timeouts: Timeouts,
    ) -> Expiry {
        if now >= self.last_heard + timeouts.guest_silent {
            tracing::debug!(
                "usernet: {:?}: the guest has been silent too long ({:?}); dropped",
                self.key,
                socket.state()
            );
            return Expiry::Drop;
        }
        if self.half_closed(socket) && now >= self.last_progress + timeouts.half_closed {
            tracing::debug!(
                "usernet: {:?}: half-closed ({:?}) and idle too long; resetting both sides",
                self.key,
                socket.state()
            );
            self.host_dead = true;
            set_linger_zero(&self.stream);
            socket.abort(); // the next poll sends the RST
            return Expiry::Reset;
        }
        Expiry::Live
    }

    /// Done: the guest side is closed (and its RST, if any, sent) or in TIME-WAIT with
    /// everything passed on — or back in LISTEN: smoltcp returns a socket there when the guest
    /// resets the handshake (RFC 9293's rule for a passive open), and a connection's socket must
    /// never listen again (it would take the next SYN for that port, from any guest port, onto
    /// this connection's host socket).
    pub fn finished(&self, socket: &tcp::Socket<'_>) -> bool {
        match socket.state() {
            tcp::State::Closed => socket.remote_endpoint().is_none(),
            tcp::State::TimeWait => self.host_dead || socket.recv_queue() == 0,
            tcp::State::Listen => true,
            _ => false,
        }
    }

    /// Closes the host socket (with a RST unless the guest closed its side cleanly, or
    /// `reset`) and removes the smoltcp socket.
    pub fn close(mut self, sockets: &mut SocketSet<'_>, epoll: &Epoll, reset: bool) {
        self.unwatch(epoll);
        if reset || !self.host_write_shut {
            set_linger_zero(&self.stream);
        }
        sockets.remove(self.handle);
    }

    /// The host socket hung up or errored: out of the epoll set for good.
    pub fn hung_up(&mut self, epoll: &Epoll) {
        self.unwatch(epoll);
        self.unwatched = true;
    }

    fn unwatch(&mut self, epoll: &Epoll) {
        if self.watching.take().is_some() {
            let _ = epoll.ctl(
                ControlOperation::Delete,
                self.stream.as_raw_fd(),
                EpollEvent::default(),
            );
        }
    }

    /// Watches the host socket for what the connection can use now.
    pub fn update_interest(&mut self, socket: &tcp::Socket<'_>, epoll: &Epoll) {
        let mut interest = EventSet::empty();
        if !self.host_dead {
            if !self.host_eof && socket.can_send() {
                interest |= EventSet::IN;
            }
            if socket.recv_queue() > 0 {
                interest |= EventSet::OUT;
            }
        }
        if self.unwatched || self.watching == Some(interest) {
            return;
        }
        let event = EpollEvent::new(interest, self.token);
        if epoll
            .ctl(ControlOperation::Modify, self.stream.as_raw_fd(), event)
            .is_ok()
        {
            self.watching = Some(interest);
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
