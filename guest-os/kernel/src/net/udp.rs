//! UDP sockets (AF_INET and AF_INET6, dual-stack unless IPV6_V6ONLY).
//!
//! Datagrams between local addresses go straight into the receiving socket's queue (found in
//! the port table); datagrams to other hosts go through a smoltcp UDP socket bound to the same
//! port, made when the socket first needs it (bound to a wildcard or our own address, or
//! sending out). A receive takes from the local queue first, then from smoltcp.
//!
//! Owns: UDP socket state (binding, default peer, the local queue).

use super::iface;
use super::local::{self, Endpoint, PortGuard, Target, UDP_PORTS, UdpTarget};
use super::socket::{BindFlags, Received, Socket};
use crate::fs::{FileRef, Io, Pollee, READY_IN, READY_OUT, ReadBuf, WriteBuf};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::socket::*;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};
use spin::Mutex;

/// Bytes of datagrams a socket's local queue holds before dropping (Linux's default
/// `rmem_default` is about this).
const QUEUE_BYTES: usize = 212_992;
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

struct Queue {
    datagrams: VecDeque<(Vec<u8>, Endpoint)>,
    bytes: usize,
}

/// The receiving side the port table points at.
struct Inbox {
    queue: Mutex<Queue>,
    pollee: Arc<Pollee>,
}

impl UdpTarget for Inbox {
    fn deliver(&self, data: Vec<u8>, from: Endpoint) -> bool {
        {
            let mut queue = self.queue.lock();
            if queue.bytes + data.len() > QUEUE_BYTES {
                return false;
            }
            queue.bytes += data.len();
            queue.datagrams.push_back((data, from));
        }
        self.pollee.notify();
        true
    }
}

struct State {
    port: Option<PortGuard>,
    peer: Option<Endpoint>,
    remote: Option<SocketHandle>,
}

pub struct UdpSocket {
    v6: bool,
    inbox: Arc<Inbox>,
    state: Mutex<State>,
}

impl UdpSocket {
    pub fn new(v6: bool) -> UdpSocket {
        UdpSocket {
            v6,
            inbox: Arc::new(Inbox {
                queue: Mutex::new(Queue {
                    datagrams: VecDeque::new(),
                    bytes: 0,
                }),
                pollee: Arc::new(Pollee::new()),
            }),
            state: Mutex::new(State {
                port: None,
                peer: None,
                remote: None,
            }),
        }
    }

    fn any(&self) -> local::Ip {
        if self.v6 {
            local::V6_ANY
        } else {
            local::V4_ANY
        }
    }

    /// Binds `ip:port` in `state` and makes it reachable.
    fn bind_in(
        &self,
        state: &mut State,
        ip: local::Ip,
        port: u16,
        flags: BindFlags,
    ) -> SysResult<()> {
        let guard = UDP_PORTS.bind(ip, port, flags)?;
        let target: alloc::sync::Weak<dyn UdpTarget> =
            Arc::downgrade(&self.inbox) as alloc::sync::Weak<dyn UdpTarget>;
        guard.set_target(Target::Udp(target), false)?;
        // Remote traffic, when the binding can take it.
        if local::is_any(&ip) || local::own_address() == Some(ip) {
            let endpoint = IpListenEndpoint {
                addr: None,
                port: guard.port,
            };
            state.remote =
                iface::with(|net| net.add_udp(endpoint, &self.inbox.pollee).ok()).flatten();
        }
        state.port = Some(guard);
        Ok(())
    }

    fn autobind(&self, state: &mut State) -> SysResult<()> {
        if state.port.is_none() {
            self.bind_in(state, self.any(), 0, BindFlags::default())?;
        }
        Ok(())
    }

    fn send_to(&self, buf: &WriteBuf<'_>, to: Endpoint) -> SysResult<usize> {
        let len = buf.len();
        if len > MAX_DATAGRAM {
            return Err(Errno::EMSGSIZE);
        }
        let mut state = self.state.lock();
        self.autobind(&mut state)?;
        let Some(port) = state.port.as_ref() else {
            return Err(Errno::EINVAL);
        };
        let bound = port.ip;
        let from = (local::source_for(&bound, &to.0), port.port);
        let mut data = vec![0u8; len];
        buf.get(0, &mut data)?;
        if local::is_local(&to.0) {
            drop(state);
            if let Target::Udp(target) = UDP_PORTS.find(to)
                && let Some(target) = target.upgrade()
            {
                // A full queue drops the datagram, as a full socket buffer does on Linux.
                target.deliver(data, from);
            }
            return Ok(len);
        }
        let Some(v4) = local::v4_of(&to.0) else {
            return Err(Errno::ENETUNREACH);
        };
        let Some(handle) = state.remote else {
            return Err(Errno::ENETUNREACH);
        };
        drop(state);
        let remote = IpEndpoint::new(IpAddress::Ipv4(v4.into()), to.1);
        iface::with(|net| {
            net.udp(handle)
                .send_slice(&data, remote)
                .map_err(|_| Errno::EAGAIN)
        })
        .unwrap_or(Err(Errno::ENETUNREACH))?;
        Ok(len)
    }

    /// One datagram, if one waits: bytes copied, its real length, and its sender.
    fn try_recv(
        &self,
        buf: &mut ReadBuf<'_>,
        peek: bool,
    ) -> SysResult<Option<(usize, usize, Endpoint)>> {
        let peer = self.state.lock().peer;
        // A connected socket takes only its peer's datagrams; the others are dropped.
        let from_peer = |from: &Endpoint| peer.is_none_or(|p| p == *from);
        {
            let mut queue = self.inbox.queue.lock();
            while let Some((data, from)) = queue.datagrams.front() {
                if !from_peer(from) {
                    let gone = data.len();
                    queue.datagrams.pop_front();
                    queue.bytes -= gone;
                    continue;
                }
                let n = data.len().min(buf.len());
                buf.put(0, &data[..n])?;
                let result = (n, data.len(), *from);
                if !peek {
                    let gone = queue.datagrams.pop_front().map_or(0, |(d, _)| d.len());
                    queue.bytes -= gone;
                }
                return Ok(Some(result));
            }
        }
        let Some(handle) = self.state.lock().remote else {
            return Ok(None);
        };
        iface::with_quiet(|net| {
            loop {
                let socket = net.udp(handle);
                let taken = if peek {
                    socket.peek().map(|(data, meta)| (data, meta.endpoint))
                } else {
                    socket.recv().map(|(data, meta)| (data, meta.endpoint))
                };
                match taken {
                    Ok((data, endpoint)) => {
                        let IpAddress::Ipv4(v4) = endpoint.addr;
                        let from = (local::mapped(v4.octets()), endpoint.port);
                        if !from_peer(&from) {
                            if peek {
                                let _ = socket.recv();
                            }
                            continue;
                        }
                        let n = data.len().min(buf.len());
                        buf.put(0, &data[..n])?;
                        return Ok(Some((n, data.len(), from)));
                    }
                    Err(_) => return Ok(None),
                }
            }
        })
        .unwrap_or(Ok(None))
    }

    fn readable(&self) -> bool {
        if !self.inbox.queue.lock().datagrams.is_empty() {
            return true;
        }
        let Some(handle) = self.state.lock().remote else {
            return false;
        };
        iface::with_quiet(|net| net.udp(handle).can_recv()).unwrap_or(false)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        if let Some(handle) = self.state.get_mut().remote.take() {
            iface::with(|net| net.remove(handle));
        }
    }
}

/// A smoltcp UDP socket's readiness as poll bits.
pub fn smol_readiness(socket: &udp::Socket<'_>) -> u32 {
    (if socket.can_recv() { READY_IN } else { 0 }) | (if socket.can_send() { READY_OUT } else { 0 })
}

impl Socket for UdpSocket {
    fn family(&self) -> u16 {
        if self.v6 { AF_INET6 } else { AF_INET }
    }

    fn sock_type(&self) -> u32 {
        SOCK_DGRAM
    }

    fn protocol(&self) -> u32 {
        IPPROTO_UDP
    }

    fn pollee(&self) -> &Arc<Pollee> {
        &self.inbox.pollee
    }

    fn bind(&self, addr: SockAddr, flags: BindFlags) -> SysResult<()> {
        let (ip, port) = local::endpoint_of(&addr, self.v6)?;
        if !local::is_bindable(&ip) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let mut state = self.state.lock();
        if state.port.is_some() {
            return Err(Errno::EINVAL);
        }
        self.bind_in(&mut state, ip, port, flags)
    }

    fn connect(&self, addr: SockAddr, _io: Io, _flags: BindFlags) -> SysResult<()> {
        let mut state = self.state.lock();
        if matches!(addr, SockAddr::Unspec) {
            state.peer = None;
            return Ok(());
        }
        let to = local::endpoint_of(&addr, self.v6)?;
        self.autobind(&mut state)?;
        state.peer = Some(to);
        Ok(())
    }

    fn send(
        &self,
        buf: &WriteBuf<'_>,
        to: Option<SockAddr>,
        _flags: u32,
        _io: Io,
        _rights: Vec<FileRef>,
    ) -> SysResult<usize> {
        let to = match to {
            Some(addr) => local::endpoint_of(&addr, self.v6)?,
            None => self.state.lock().peer.ok_or(Errno::EDESTADDRREQ)?,
        };
        self.send_to(buf, to)
    }

    fn recv(&self, buf: &mut ReadBuf<'_>, flags: u32, io: Io) -> SysResult<Received> {
        let peek = flags & MSG_PEEK != 0;
        let nonblock = super::socket::call_io(io, flags).nonblock;
        let got = loop {
            match self.try_recv(buf, peek)? {
                Some(got) => break got,
                None if nonblock => return Err(Errno::EAGAIN),
                // Another reader may take the datagram first: then wait again.
                None => self
                    .inbox
                    .pollee
                    .queue()
                    .wait_until(|| self.readable().then_some(()))?,
            }
        };
        let (bytes, full, from) = got;
        Ok(Received {
            bytes,
            full,
            from: Some(local::sockaddr_of(from, self.v6)),
            rights: Vec::new(),
        })
    }

    fn shutdown(&self, how: u32) -> SysResult<()> {
        if how > SHUT_RDWR {
            return Err(Errno::EINVAL);
        }
        if self.state.lock().peer.is_none() {
            return Err(Errno::ENOTCONN);
        }
        Ok(())
    }

    fn local_addr(&self) -> SysResult<SockAddr> {
        let state = self.state.lock();
        let endpoint = match (&state.port, state.peer) {
            (Some(port), Some(peer)) => (local::source_for(&port.ip, &peer.0), port.port),
            (Some(port), None) => port.endpoint(),
            (None, _) => (self.any(), 0),
        };
        Ok(local::sockaddr_of(endpoint, self.v6))
    }

    fn peer_addr(&self) -> SysResult<SockAddr> {
        let peer = self.state.lock().peer.ok_or(Errno::ENOTCONN)?;
        Ok(local::sockaddr_of(peer, self.v6))
    }

    fn poll(&self) -> u32 {
        READY_OUT | if self.readable() { READY_IN } else { 0 }
    }

    fn pending_bytes(&self) -> usize {
        // FIONREAD on a datagram socket: the size of the next datagram.
        self.inbox
            .queue
            .lock()
            .datagrams
            .front()
            .map_or(0, |(d, _)| d.len())
    }
}
