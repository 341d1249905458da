//! TCP sockets (AF_INET and AF_INET6, dual-stack unless IPV6_V6ONLY).
//!
//! A connection is one of two kinds, fixed when it is made:
//! - **local** (to 127.0.0.0/8, ::1 or our own address): a [`super::stream`] pair handed to
//!   the listener found in the port table — no segments at all;
//! - **remote**: a smoltcp socket on the interface ([`super::iface`]).
//!
//! A listening socket takes both: local connections through its [`Listener`], and — when it is
//! bound to a wildcard or our own address and a card exists — remote ones through a smoltcp
//! listener on the same port.
//!
//! Owns: the TCP socket state machine as programs see it (connect, accept, send, recv,
//! shutdown, readiness, errors).

use super::iface;
use super::local::{self, Endpoint, Ip, Listener, PortGuard, TCP_PORTS, Target};
use super::socket::{BindFlags, Received, Socket};
use super::stream::{self, StreamEnd};
use crate::fs::{FileRef, Io, Pollee, READY_IN, READY_OUT, ReadBuf, WriteBuf};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::io::{POLLERR, POLLHUP, POLLRDHUP};
use noa_linux_abi::socket::*;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};
use spin::Mutex;

/// How long a remote connect waits for an answer before ETIMEDOUT.
const CONNECT_TIMEOUT_S: u64 = 60;

enum State {
    Unbound,
    Bound(PortGuard),
    Listening {
        port: PortGuard,
        local: Arc<Listener>,
        /// The smoltcp listener's id, for remote connections.
        remote: Option<u64>,
    },
    Local {
        /// Shared so a read or write can run without the state lock held.
        end: Arc<StreamEnd>,
        local: Endpoint,
        peer: Endpoint,
        _port: Option<PortGuard>,
    },
    Remote {
        handle: SocketHandle,
        local: Endpoint,
        peer: Endpoint,
        _port: Option<PortGuard>,
        /// When the connect started (ns), to tell a refusal from a time-out.
        started: u64,
        /// Whether it ever reached ESTABLISHED.
        established: bool,
    },
}

pub struct TcpSocket {
    v6: bool,
    pollee: Arc<Pollee>,
    state: Mutex<State>,
    /// SO_ERROR.
    error: AtomicU32,
}

impl TcpSocket {
    pub fn new(v6: bool) -> TcpSocket {
        TcpSocket::with_state(v6, Arc::new(Pollee::new()), State::Unbound)
    }

    fn with_state(v6: bool, pollee: Arc<Pollee>, state: State) -> TcpSocket {
        TcpSocket {
            v6,
            pollee,
            state: Mutex::new(state),
            error: AtomicU32::new(0),
        }
    }

    fn addr(&self, endpoint: Endpoint) -> SockAddr {
        local::sockaddr_of(endpoint, self.v6)
    }

    /// Connects to a local listener (ECONNREFUSED if none takes it).
    fn connect_local(&self, to: Endpoint, flags: BindFlags) -> SysResult<State> {
        let Target::Listener(listener) = TCP_PORTS.find(to) else {
            return Err(Errno::ECONNREFUSED);
        };
        let listener = listener.upgrade().ok_or(Errno::ECONNREFUSED)?;
        let port = match core::mem::replace(&mut *self.state.lock(), State::Unbound) {
            State::Bound(port) => port,
            _ => TCP_PORTS.bind(local::source_for(&local::V6_ANY, &to.0), 0, flags)?,
        };
        let local = (local::source_for(&port.ip, &to.0), port.port);
        let server_pollee = Arc::new(Pollee::new());
        let (client_end, server_end) = stream::pair(self.pollee.clone(), server_pollee.clone());
        let server = TcpSocket::with_state(
            listener.v6,
            server_pollee,
            State::Local {
                end: Arc::new(server_end),
                local: to,
                peer: local,
                _port: None,
            },
        );
        let peer_addr = local::sockaddr_of(local, listener.v6);
        if !listener.offer((Box::new(server), peer_addr)) {
            *self.state.lock() = State::Bound(port);
            return Err(Errno::ECONNREFUSED);
        }
        Ok(State::Local {
            end: Arc::new(client_end),
            local,
            peer: to,
            _port: Some(port),
        })
    }

    /// Starts a remote connect; the state to wait on.
    fn connect_remote(&self, to: Endpoint, flags: BindFlags) -> SysResult<State> {
        let Some(v4) = local::v4_of(&to.0) else {
            return Err(Errno::ENETUNREACH);
        };
        let Some(own) = iface::address() else {
            return Err(Errno::ENETUNREACH);
        };
        let own = local::mapped(own.octets());
        let port = match core::mem::replace(&mut *self.state.lock(), State::Unbound) {
            State::Bound(port) => port,
            _ => TCP_PORTS.bind(own, 0, flags)?,
        };
        let remote = IpEndpoint::new(IpAddress::Ipv4(v4.into()), to.1);
        let local_port = port.port;
        let result = iface::with(|net| {
            let handle = net.add_tcp(&self.pollee);
            net.tcp(handle)
                .set_timeout(Some(smoltcp::time::Duration::from_secs(CONNECT_TIMEOUT_S)));
            match net.connect(handle, remote, local_port) {
                Ok(()) => Ok(handle),
                Err(_) => {
                    net.remove(handle);
                    Err(Errno::EADDRNOTAVAIL)
                }
            }
        });
        let handle = match result {
            Some(Ok(handle)) => handle,
            Some(Err(e)) => {
                *self.state.lock() = State::Bound(port);
                return Err(e);
            }
            None => {
                *self.state.lock() = State::Bound(port);
                return Err(Errno::ENETUNREACH);
            }
        };
        Ok(State::Remote {
            handle,
            local: (own, local_port),
            peer: to,
            _port: Some(port),
            started: hal_pv::time::now_ns(),
            established: false,
        })
    }

    /// Where a remote connect stands: Ok(true) connected, Ok(false) still trying, or why it
    /// failed.
    fn remote_connect_status(&self) -> SysResult<bool> {
        let mut state = self.state.lock();
        let State::Remote {
            handle,
            started,
            established,
            ..
        } = &mut *state
        else {
            return Ok(true);
        };
        if *established {
            return Ok(true);
        }
        let handle = *handle;
        let socket_state = iface::with_quiet(|net| net.tcp(handle).state());
        match socket_state {
            Some(tcp::State::SynSent | tcp::State::SynReceived) => Ok(false),
            Some(tcp::State::Closed) | None => {
                let waited = hal_pv::time::now_ns().saturating_sub(*started);
                Err(if waited >= CONNECT_TIMEOUT_S * 1_000_000_000 {
                    Errno::ETIMEDOUT
                } else {
                    Errno::ECONNREFUSED
                })
            }
            Some(_) => {
                *established = true;
                iface::with_quiet(|net| net.tcp(handle).set_timeout(None));
                Ok(true)
            }
        }
    }

    /// After a failed remote connect: back to unbound, the error recorded.
    fn fail_connect(&self, errno: Errno) {
        let old = core::mem::replace(&mut *self.state.lock(), State::Unbound);
        if let State::Remote { handle, .. } = old {
            iface::with(|net| net.remove(handle));
        }
        self.error.store(errno.0 as u32, Ordering::Release);
    }

    fn remote_handle(&self) -> Option<SocketHandle> {
        match &*self.state.lock() {
            State::Remote { handle, .. } => Some(*handle),
            _ => None,
        }
    }

    fn send_remote(&self, handle: SocketHandle, buf: &WriteBuf<'_>, io: Io) -> SysResult<usize> {
        let total = buf.len();
        let mut sent = 0;
        loop {
            let step = iface::with(|net| {
                let socket = net.tcp(handle);
                if !socket.may_send() {
                    return Err(if socket.state() == tcp::State::Closed {
                        Errno::ECONNRESET
                    } else {
                        Errno::EPIPE
                    });
                }
                if !socket.can_send() {
                    return Ok(0);
                }
                let mut failed = None;
                let n = socket
                    .send(|space| {
                        let n = space.len().min(total - sent);
                        if let Err(e) = buf.get(sent, &mut space[..n]) {
                            failed = Some(e);
                            return (0, 0);
                        }
                        (n, n)
                    })
                    .unwrap_or(0);
                match failed {
                    Some(e) => Err(e),
                    None => Ok(n),
                }
            })
            .unwrap_or(Err(Errno::ENETDOWN));
            match step {
                Ok(0) => {}
                Ok(n) => {
                    sent += n;
                    if sent == total {
                        return Ok(sent);
                    }
                    continue;
                }
                Err(e) => return if sent > 0 { Ok(sent) } else { Err(e) },
            }
            if io.nonblock {
                return if sent > 0 {
                    Ok(sent)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
            let room = self.pollee.queue().wait_until(|| {
                iface::with_quiet(|net| {
                    let socket = net.tcp(handle);
                    (socket.can_send() || !socket.may_send()).then_some(())
                })
                .unwrap_or(Some(()))
            });
            if let Err(e) = room {
                return if sent > 0 { Ok(sent) } else { Err(e) };
            }
        }
    }

    fn recv_remote(
        &self,
        handle: SocketHandle,
        buf: &mut ReadBuf<'_>,
        flags: u32,
        io: Io,
    ) -> SysResult<usize> {
        let peek = flags & MSG_PEEK != 0;
        let want = buf.len();
        let mut got = 0;
        loop {
            let step = iface::with(|net| {
                let socket = net.tcp(handle);
                if socket.can_recv() {
                    let mut failed = None;
                    let n = if peek {
                        match socket.peek(want - got) {
                            Ok(data) => {
                                let n = data.len();
                                if let Err(e) = buf.put(got, data) {
                                    failed = Some(e);
                                }
                                n
                            }
                            Err(_) => 0,
                        }
                    } else {
                        socket
                            .recv(|data| {
                                let n = data.len().min(want - got);
                                if let Err(e) = buf.put(got, &data[..n]) {
                                    failed = Some(e);
                                    return (0, 0);
                                }
                                (n, n)
                            })
                            .unwrap_or(0)
                    };
                    return match failed {
                        Some(e) => Err(e),
                        None => Ok(Some(n)),
                    };
                }
                if !socket.may_recv() {
                    // EOF (FIN received), or the connection is gone.
                    return Ok(Some(0));
                }
                Ok(None)
            })
            .unwrap_or(Ok(Some(0)));
            match step {
                Ok(Some(0)) if got == 0 => return Ok(0),
                Ok(Some(0)) => return Ok(got),
                Ok(Some(n)) => {
                    got += n;
                    if got == want || flags & MSG_WAITALL == 0 || peek {
                        return Ok(got);
                    }
                }
                Ok(None) => {}
                Err(e) => return if got > 0 { Ok(got) } else { Err(e) },
            }
            if io.nonblock || got > 0 && flags & MSG_WAITALL == 0 {
                return if got > 0 { Ok(got) } else { Err(Errno::EAGAIN) };
            }
            let ready = self.pollee.queue().wait_until(|| {
                iface::with_quiet(|net| {
                    let socket = net.tcp(handle);
                    (socket.can_recv() || !socket.may_recv()).then_some(())
                })
                .unwrap_or(Some(()))
            });
            if let Err(e) = ready {
                return if got > 0 { Ok(got) } else { Err(e) };
            }
        }
    }
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        match core::mem::replace(self.state.get_mut(), State::Unbound) {
            State::Remote { handle, .. } => {
                iface::with(|net| {
                    if net.tcp(handle).recv_queue() > 0 {
                        // Closing with unread data resets the connection (RFC 2525, as Linux).
                        net.tcp(handle).abort();
                    }
                    net.release_tcp(handle);
                });
            }
            State::Listening {
                remote: Some(id), ..
            } => {
                iface::with(|net| net.unlisten(id));
            }
            _ => {}
        }
    }
}

/// A smoltcp TCP socket's readiness as poll bits.
pub fn smol_readiness(socket: &tcp::Socket<'_>) -> u32 {
    use tcp::State as S;
    match socket.state() {
        S::Listen | S::SynSent | S::SynReceived => 0,
        S::Closed => READY_IN | READY_OUT | u32::from(POLLHUP | POLLERR),
        _ => {
            let mut ready = 0;
            if socket.can_recv() || !socket.may_recv() {
                ready |= READY_IN;
            }
            if !socket.may_recv() {
                ready |= u32::from(POLLRDHUP);
            }
            if socket.can_send() || !socket.may_send() {
                ready |= READY_OUT;
            }
            if !socket.may_recv() && !socket.may_send() {
                ready |= u32::from(POLLHUP);
            }
            ready
        }
    }
}

fn listen_endpoint(ip: &Ip, port: u16) -> Option<IpListenEndpoint> {
    if local::is_any(ip) {
        return Some(IpListenEndpoint { addr: None, port });
    }
    let own = local::own_address()?;
    (own == *ip).then(|| IpListenEndpoint {
        addr: local::v4_of(ip).map(|v4| IpAddress::Ipv4(v4.into())),
        port,
    })
}

impl Socket for TcpSocket {
    fn family(&self) -> u16 {
        if self.v6 { AF_INET6 } else { AF_INET }
    }

    fn sock_type(&self) -> u32 {
        SOCK_STREAM
    }

    fn protocol(&self) -> u32 {
        IPPROTO_TCP
    }

    fn pollee(&self) -> &Arc<Pollee> {
        &self.pollee
    }

    fn bind(&self, addr: SockAddr, flags: BindFlags) -> SysResult<()> {
        let (ip, port) = local::endpoint_of(&addr, self.v6)?;
        if !local::is_bindable(&ip) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let mut state = self.state.lock();
        if !matches!(*state, State::Unbound) {
            return Err(Errno::EINVAL);
        }
        // `::` bound by an AF_INET6 socket with IPV6_V6ONLY unset takes IPv4 too.
        *state = State::Bound(TCP_PORTS.bind(ip, port, flags)?);
        Ok(())
    }

    fn listen(&self, backlog: usize, flags: BindFlags) -> SysResult<()> {
        let mut state = self.state.lock();
        match &*state {
            State::Listening { local, remote, .. } => {
                local.set_backlog(backlog);
                if let Some(id) = *remote {
                    iface::with(|net| net.set_backlog(id, backlog));
                }
                return Ok(());
            }
            State::Unbound | State::Bound(_) => {}
            _ => return Err(Errno::EINVAL),
        }
        let port = match core::mem::replace(&mut *state, State::Unbound) {
            State::Bound(port) => port,
            _ => {
                let any = if self.v6 {
                    local::V6_ANY
                } else {
                    local::V4_ANY
                };
                match TCP_PORTS.bind(any, 0, flags) {
                    Ok(port) => port,
                    Err(e) => return Err(e),
                }
            }
        };
        let listener = Listener::new(self.pollee.clone(), backlog, self.v6);
        if let Err(e) = port.set_target(Target::Listener(Arc::downgrade(&listener)), true) {
            *state = State::Bound(port);
            return Err(e);
        }
        let remote = listen_endpoint(&port.ip, port.port)
            .and_then(|endpoint| iface::with(|net| net.listen(endpoint, backlog, &self.pollee)));
        *state = State::Listening {
            port,
            local: listener,
            remote,
        };
        Ok(())
    }

    fn accept(&self, io: Io) -> SysResult<(Box<dyn Socket>, SockAddr)> {
        let (local, remote, local_ip, local_port) = match &*self.state.lock() {
            State::Listening {
                local,
                remote,
                port,
            } => (local.clone(), *remote, port.ip, port.port),
            _ => return Err(Errno::EINVAL),
        };
        let try_accept = || -> Option<(Box<dyn Socket>, SockAddr)> {
            if let Some(incoming) = local.take() {
                return Some(incoming);
            }
            let id = remote?;
            let pollee = Arc::new(Pollee::new());
            let handle = iface::with(|net| net.accept(id, &pollee)).flatten()?;
            let peer = iface::with_quiet(|net| net.tcp(handle).remote_endpoint())
                .flatten()
                .map(|e| match e.addr {
                    IpAddress::Ipv4(v4) => (local::mapped(v4.octets()), e.port),
                })
                .unwrap_or((local::V4_ANY, 0));
            let own = if local::is_any(&local_ip) {
                local::own_address().unwrap_or(local_ip)
            } else {
                local_ip
            };
            let socket = TcpSocket::with_state(
                self.v6,
                pollee,
                State::Remote {
                    handle,
                    local: (own, local_port),
                    peer,
                    _port: None,
                    started: hal_pv::time::now_ns(),
                    established: true,
                },
            );
            Some((Box::new(socket), local::sockaddr_of(peer, self.v6)))
        };
        loop {
            if let Some(found) = try_accept() {
                return Ok(found);
            }
            if io.nonblock {
                return Err(Errno::EAGAIN);
            }
            // Another accept may take the connection first: then wait again.
            self.pollee.queue().wait_until(|| {
                let ready = local.has_waiting()
                    || remote
                        .is_some_and(|id| iface::with_quiet(|n| n.acceptable(id)) == Some(true));
                ready.then_some(())
            })?;
        }
    }

    fn connect(&self, addr: SockAddr, io: Io, flags: BindFlags) -> SysResult<()> {
        if matches!(addr, SockAddr::Unspec) {
            return Err(Errno::EAFNOSUPPORT);
        }
        let to = local::endpoint_of(&addr, self.v6)?;
        {
            let state = self.state.lock();
            match &*state {
                State::Unbound | State::Bound(_) => {}
                State::Remote { established, .. } if !*established => {
                    drop(state);
                    return match self.remote_connect_status() {
                        Ok(true) => Err(Errno::EISCONN),
                        Ok(false) => Err(Errno::EALREADY),
                        Err(e) => {
                            self.fail_connect(e);
                            self.error.store(0, Ordering::Release);
                            Err(e)
                        }
                    };
                }
                State::Listening { .. } => return Err(Errno::EISCONN),
                _ => return Err(Errno::EISCONN),
            }
        }
        if to.1 == 0 {
            return Err(Errno::ECONNREFUSED);
        }
        if local::is_local(&to.0) {
            let state = self.connect_local(to, flags)?;
            *self.state.lock() = state;
            self.pollee.notify();
            return Ok(());
        }
        let state = self.connect_remote(to, flags)?;
        *self.state.lock() = state;
        if io.nonblock {
            return Err(Errno::EINPROGRESS);
        }
        let outcome = self
            .pollee
            .queue()
            .wait_until(|| match self.remote_connect_status() {
                Ok(false) => None,
                other => Some(other),
            });
        match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.fail_connect(e);
                self.error.store(0, Ordering::Release);
                Err(e)
            }
            // Interrupted: the connect goes on (Linux gives EINTR and keeps connecting).
            Err(e) => Err(e),
        }
    }

    fn send(
        &self,
        buf: &WriteBuf<'_>,
        _to: Option<SockAddr>,
        flags: u32,
        io: Io,
        _rights: Vec<FileRef>,
    ) -> SysResult<usize> {
        let io = super::socket::call_io(io, flags);
        let result = {
            let state = self.state.lock();
            match &*state {
                State::Local { .. } => None,
                State::Remote { handle, .. } => Some(*handle),
                _ => return Err(Errno::ENOTCONN),
            }
        };
        let result = match result {
            Some(handle) => {
                match self.remote_connect_status() {
                    Ok(true) => {}
                    Ok(false) => return Err(Errno::EAGAIN),
                    Err(_) => return Err(Errno::EPIPE),
                }
                self.send_remote(handle, buf, io)
            }
            None => self.with_local_end(|end| end.write(buf, io, Vec::new())),
        };
        if result == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
            crate::task::signal::raise_current(noa_linux_abi::signal::SIGPIPE);
        }
        result
    }

    fn recv(&self, buf: &mut ReadBuf<'_>, flags: u32, io: Io) -> SysResult<Received> {
        let io = super::socket::call_io(io, flags);
        let remote = {
            let state = self.state.lock();
            match &*state {
                State::Local { .. } => None,
                State::Remote { handle, .. } => Some(*handle),
                _ => return Err(Errno::ENOTCONN),
            }
        };
        let bytes = match remote {
            Some(handle) => {
                if !io.nonblock {
                    // A blocking read on a connecting socket waits for the connection first.
                    let _ = self
                        .pollee
                        .queue()
                        .wait_until(|| match self.remote_connect_status() {
                            Ok(false) => None,
                            _ => Some(()),
                        });
                }
                match self.remote_connect_status() {
                    Ok(true) => self.recv_remote(handle, buf, flags, io)?,
                    Ok(false) => return Err(Errno::EAGAIN),
                    Err(_) => return Err(Errno::ENOTCONN),
                }
            }
            None => {
                let peek = flags & MSG_PEEK != 0;
                let wait_all = flags & MSG_WAITALL != 0;
                self.with_local_end(|end| end.read(buf, io, peek, wait_all))?
                    .bytes
            }
        };
        Ok(Received {
            bytes,
            full: bytes,
            ..Received::default()
        })
    }

    fn shutdown(&self, how: u32) -> SysResult<()> {
        let (read, write) = super::socket::shutdown_halves(how)?;
        let state = self.state.lock();
        match &*state {
            State::Local { end, .. } => {
                end.shutdown(read, write);
                Ok(())
            }
            State::Remote { handle, .. } => {
                let handle = *handle;
                drop(state);
                if write {
                    iface::with(|net| net.tcp(handle).close());
                }
                self.pollee.notify();
                Ok(())
            }
            State::Listening { .. } => Ok(()),
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn local_addr(&self) -> SysResult<SockAddr> {
        let endpoint = match &*self.state.lock() {
            State::Unbound => (
                if self.v6 {
                    local::V6_ANY
                } else {
                    local::V4_ANY
                },
                0,
            ),
            State::Bound(port) | State::Listening { port, .. } => port.endpoint(),
            State::Local { local, .. } | State::Remote { local, .. } => *local,
        };
        Ok(self.addr(endpoint))
    }

    fn peer_addr(&self) -> SysResult<SockAddr> {
        match &*self.state.lock() {
            State::Local { peer, .. } => Ok(self.addr(*peer)),
            State::Remote {
                peer, established, ..
            } if *established => Ok(self.addr(*peer)),
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn poll(&self) -> u32 {
        let state = self.state.lock();
        match &*state {
            State::Unbound | State::Bound(_) => u32::from(POLLHUP) | READY_OUT,
            State::Listening { local, remote, .. } => {
                let (local, remote) = (local.clone(), *remote);
                drop(state);
                let ready = local.has_waiting()
                    || remote
                        .is_some_and(|id| iface::with_quiet(|n| n.acceptable(id)) == Some(true));
                if ready { READY_IN } else { 0 }
            }
            State::Local { end, .. } => end.poll(),
            State::Remote { handle, .. } => {
                let handle = *handle;
                drop(state);
                iface::with_quiet(|net| smol_readiness(net.tcp(handle)))
                    .unwrap_or(u32::from(POLLERR | POLLHUP))
            }
        }
    }

    fn take_error(&self) -> u32 {
        if self.remote_handle().is_some()
            && let Err(e) = self.remote_connect_status()
        {
            self.fail_connect(e);
        }
        self.error.swap(0, Ordering::AcqRel)
    }

    fn is_listening(&self) -> bool {
        matches!(*self.state.lock(), State::Listening { .. })
    }

    fn pending_bytes(&self) -> usize {
        match &*self.state.lock() {
            State::Local { end, .. } => end.pending(),
            State::Remote { handle, .. } => {
                let handle = *handle;
                iface::with_quiet(|net| net.tcp(handle).recv_queue()).unwrap_or(0)
            }
            _ => 0,
        }
    }
}

impl TcpSocket {
    /// Runs `f` on the local connection's end without holding the state lock (a read or write
    /// may sleep).
    fn with_local_end<R>(&self, f: impl FnOnce(&StreamEnd) -> SysResult<R>) -> SysResult<R> {
        let end = match &*self.state.lock() {
            State::Local { end, .. } => end.clone(),
            _ => return Err(Errno::ENOTCONN),
        };
        f(&end)
    }
}
