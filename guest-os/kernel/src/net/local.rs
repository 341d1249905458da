//! The machine's own Internet endpoints: addresses (every one kept as IPv6, IPv4 ones mapped
//! into `::ffff:0:0/96`, which is how a dual-stack AF_INET6 socket sees them anyway), the port
//! tables of TCP and UDP (bind, EADDRINUSE, ephemeral ports, and which socket a local packet
//! reaches), and the listening queue of local connections.
//!
//! Traffic to a local address (127.0.0.0/8, ::1, the interface's own address) never reaches
//! smoltcp: a TCP connect finds the listener here and hands it one end of a
//! [`super::stream`] pair; a UDP datagram goes straight into the bound socket's queue.
//!
//! Owns: the port tables and [`Listener`].

use super::socket::{BindFlags, Socket};
use crate::fs::Pollee;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::socket::{InetAddr, SockAddr};
use spin::Mutex;

/// An address as IPv6 bytes (IPv4 mapped).
pub type Ip = [u8; 16];
/// An address and port.
pub type Endpoint = (Ip, u16);

pub const V6_ANY: Ip = [0; 16];
pub const V4_ANY: Ip = mapped([0, 0, 0, 0]);
pub const V4_LOOPBACK: Ip = mapped([127, 0, 0, 1]);
pub const V6_LOOPBACK: Ip = {
    let mut ip = [0u8; 16];
    ip[15] = 1;
    ip
};

pub const fn mapped(v4: [u8; 4]) -> Ip {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

pub fn is_v4(ip: &Ip) -> bool {
    ip[..12] == V4_ANY[..12]
}

pub fn v4_of(ip: &Ip) -> Option<[u8; 4]> {
    is_v4(ip).then(|| [ip[12], ip[13], ip[14], ip[15]])
}

pub fn is_any(ip: &Ip) -> bool {
    *ip == V6_ANY || *ip == V4_ANY
}

pub fn is_loopback(ip: &Ip) -> bool {
    *ip == V6_LOOPBACK || v4_of(ip).is_some_and(|v4| v4[0] == 127)
}

/// The interface's own address, mapped.
pub fn own_address() -> Option<Ip> {
    super::iface::address().map(|a| mapped(a.octets()))
}

/// Whether packets to `ip` stay on this machine.
pub fn is_local(ip: &Ip) -> bool {
    is_any(ip) || is_loopback(ip) || own_address() == Some(*ip)
}

/// Whether a socket may be bound to `ip` (EADDRNOTAVAIL otherwise).
pub fn is_bindable(ip: &Ip) -> bool {
    is_local(ip)
}

/// An Internet socket address as an endpoint (None for another family); `v6` says whether the
/// socket is AF_INET6 (which then refuses AF_INET addresses, as Linux does).
pub fn endpoint_of(addr: &SockAddr, v6: bool) -> SysResult<Endpoint> {
    match addr {
        SockAddr::Inet(InetAddr::V4 { ip, port }) if !v6 => Ok((mapped(*ip), *port)),
        SockAddr::Inet(InetAddr::V6 { ip, port, .. }) if v6 => Ok((*ip, *port)),
        _ => Err(if v6 {
            Errno::EINVAL
        } else {
            Errno::EAFNOSUPPORT
        }),
    }
}

/// An endpoint as the address a socket of family v4/v6 reports.
pub fn sockaddr_of(endpoint: Endpoint, v6: bool) -> SockAddr {
    let (ip, port) = endpoint;
    if v6 {
        SockAddr::Inet(InetAddr::V6 {
            ip,
            port,
            flowinfo: 0,
            scope_id: 0,
        })
    } else {
        let v4 = v4_of(&ip).unwrap_or([0; 4]);
        SockAddr::Inet(InetAddr::V4 { ip: v4, port })
    }
}

/// The source address for a packet from a socket bound to `bound` towards `to`.
pub fn source_for(bound: &Ip, to: &Ip) -> Ip {
    if !is_any(bound) {
        return *bound;
    }
    if *to == V6_LOOPBACK {
        V6_LOOPBACK
    } else if is_loopback(to) || is_any(to) {
        V4_LOOPBACK
    } else {
        own_address().unwrap_or(V4_ANY)
    }
}

/// Whether a socket bound to `bound` (v6only as given) takes packets for `to`.
fn covers(bound: &Ip, v6only: bool, to: &Ip) -> bool {
    if bound == to {
        return true;
    }
    if *bound == V4_ANY {
        return is_v4(to);
    }
    if *bound == V6_ANY {
        return !is_v4(to) || !v6only;
    }
    false
}

/// Whether two bindings of one port overlap.
fn overlaps(a: &Entry, b: &Entry) -> bool {
    covers(&a.ip, a.flags.v6only, &b.ip) || covers(&b.ip, b.flags.v6only, &a.ip)
}

/// Where local packets for a binding go.
#[derive(Clone)]
pub enum Target {
    /// Not reachable yet (bound, not listening).
    None,
    Listener(Weak<Listener>),
    Udp(Weak<dyn UdpTarget>),
}

/// A UDP socket's receiving side, as the port table knows it.
pub trait UdpTarget: Send + Sync {
    /// Queues one datagram from `from`; false if there is no room (it is dropped).
    fn deliver(&self, data: Vec<u8>, from: Endpoint) -> bool;
}

struct Entry {
    id: u64,
    ip: Ip,
    flags: BindFlags,
    target: Target,
}

/// A protocol's port table.
pub struct Ports {
    entries: Mutex<BTreeMap<u16, Vec<Entry>>>,
    next_ephemeral: AtomicU16,
}

pub static TCP_PORTS: Ports = Ports::new();
pub static UDP_PORTS: Ports = Ports::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The ephemeral range (Linux's `ip_local_port_range`).
const EPHEMERAL: core::ops::RangeInclusive<u16> = 32768..=60999;

/// A binding held by a socket; dropping it frees the port.
pub struct PortGuard {
    ports: &'static Ports,
    pub id: u64,
    pub ip: Ip,
    pub port: u16,
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        let mut entries = self.ports.entries.lock();
        if let Some(list) = entries.get_mut(&self.port) {
            list.retain(|e| e.id != self.id);
            if list.is_empty() {
                entries.remove(&self.port);
            }
        }
    }
}

impl PortGuard {
    pub fn endpoint(&self) -> Endpoint {
        (self.ip, self.port)
    }

    /// Makes the binding reachable: local traffic to it goes to `target`. With `listening`,
    /// another overlapping listener (allowed at bind by SO_REUSEADDR) makes it EADDRINUSE.
    pub fn set_target(&self, target: Target, listening: bool) -> SysResult<()> {
        let mut entries = self.ports.entries.lock();
        let list = entries.get_mut(&self.port).ok_or(Errno::EINVAL)?;
        let me = list
            .iter()
            .position(|e| e.id == self.id)
            .ok_or(Errno::EINVAL)?;
        if listening {
            let clash = list.iter().any(|e| {
                e.id != self.id
                    && matches!(e.target, Target::Listener(_))
                    && overlaps(e, &list[me])
                    && !(e.flags.reuse_port && list[me].flags.reuse_port)
            });
            if clash {
                return Err(Errno::EADDRINUSE);
            }
        }
        list[me].target = target;
        Ok(())
    }
}

impl Ports {
    const fn new() -> Ports {
        Ports {
            entries: Mutex::new(BTreeMap::new()),
            next_ephemeral: AtomicU16::new(*EPHEMERAL.start()),
        }
    }

    /// Binds `ip:port` (port 0: an ephemeral one); EADDRINUSE if it overlaps a binding that
    /// SO_REUSEADDR/SO_REUSEPORT do not allow to share with.
    pub fn bind(&'static self, ip: Ip, port: u16, flags: BindFlags) -> SysResult<PortGuard> {
        let mut entries = self.entries.lock();
        let entry = Entry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ip,
            flags,
            target: Target::None,
        };
        let port = if port == 0 {
            self.free_ephemeral(&entries)?
        } else {
            if let Some(list) = entries.get(&port) {
                let clash = list.iter().any(|e| {
                    overlaps(e, &entry)
                        && !(e.flags.reuse_port && flags.reuse_port)
                        && !(e.flags.reuse_addr
                            && flags.reuse_addr
                            && !matches!(e.target, Target::Listener(_)))
                });
                if clash {
                    return Err(Errno::EADDRINUSE);
                }
            }
            port
        };
        let id = entry.id;
        entries.entry(port).or_default().push(entry);
        Ok(PortGuard {
            ports: self,
            id,
            ip,
            port,
        })
    }

    fn free_ephemeral(&self, entries: &BTreeMap<u16, Vec<Entry>>) -> SysResult<u16> {
        let span = (EPHEMERAL.end() - EPHEMERAL.start()) as u32 + 1;
        for _ in 0..span {
            let port = self.next_ephemeral.fetch_add(1, Ordering::Relaxed);
            let port = if EPHEMERAL.contains(&port) {
                port
            } else {
                self.next_ephemeral
                    .store(EPHEMERAL.start() + 1, Ordering::Relaxed);
                *EPHEMERAL.start()
            };
            if !entries.contains_key(&port) {
                return Ok(port);
            }
        }
        Err(Errno::EADDRINUSE)
    }

    /// Where local traffic to `to` goes: the most specific binding that takes it.
    pub fn find(&self, to: Endpoint) -> Target {
        let entries = self.entries.lock();
        let Some(list) = entries.get(&to.1) else {
            return Target::None;
        };
        let reachable = |e: &&Entry| !matches!(e.target, Target::None);
        list.iter()
            .filter(reachable)
            .find(|e| e.ip == to.0)
            .or_else(|| {
                list.iter()
                    .filter(reachable)
                    .find(|e| covers(&e.ip, e.flags.v6only, &to.0))
            })
            .map_or(Target::None, |e| e.target.clone())
    }
}

/// A connection waiting to be accepted: the server's socket and its peer's address.
pub type Incoming = (Box<dyn Socket>, SockAddr);

/// The queue of local connections of one listening socket (TCP or AF_UNIX stream).
pub struct Listener {
    queue: Mutex<VecDeque<Incoming>>,
    backlog: core::sync::atomic::AtomicUsize,
    /// The listening socket's pollee (readable when a connection waits).
    pub pollee: Arc<Pollee>,
    /// Whether the listening socket is AF_INET6 (the address family connections report).
    pub v6: bool,
}

impl Listener {
    pub fn new(pollee: Arc<Pollee>, backlog: usize, v6: bool) -> Arc<Listener> {
        Arc::new(Listener {
            queue: Mutex::new(VecDeque::new()),
            backlog: core::sync::atomic::AtomicUsize::new(backlog.max(1)),
            pollee,
            v6,
        })
    }

    pub fn set_backlog(&self, backlog: usize) {
        self.backlog.store(backlog.max(1), Ordering::Relaxed);
    }

    /// Queues a connection; EAGAIN-style refusal (false) when the backlog is full.
    pub fn offer(&self, incoming: Incoming) -> bool {
        {
            let mut queue = self.queue.lock();
            if queue.len() >= self.backlog.load(Ordering::Relaxed) {
                return false;
            }
            queue.push_back(incoming);
        }
        self.pollee.notify();
        true
    }

    pub fn take(&self) -> Option<Incoming> {
        self.queue.lock().pop_front()
    }

    pub fn has_waiting(&self) -> bool {
        !self.queue.lock().is_empty()
    }
}
