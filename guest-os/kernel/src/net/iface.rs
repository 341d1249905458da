//! The interface programs' sockets use: one smoltcp [`Interface`] over the virtio-net card,
//! shared by every socket that leaves the machine (loopback traffic never comes here: see
//! [`super::local`]).
//!
//! The stack runs when something happens, never on a tick:
//! - the card's interrupt (its hook runs the stack if nobody holds it, or leaves a note for the
//!   holder, who runs it again before letting go — so no frame waits for a later event);
//! - a socket call that queued data or changed a connection (it polls before returning);
//! - smoltcp's own next deadline (retransmits, delayed ACKs, TIME-WAIT), armed as a kernel
//!   timer callback ([`crate::task::timer::call_at`]).
//!
//! After each run, every watched socket whose readiness changed has its pollee notified, which
//! wakes the threads blocked on it and its poll/epoll observers.
//!
//! Listening TCP sockets are a set of smoltcp sockets in LISTEN on one port (smoltcp's socket
//! takes one connection): frames are taken one at a time, and after each one a listener that
//! lost a socket to a new connection gets a fresh one, so a burst of SYNs finds each its socket
//! up to the backlog.
//!
//! Owns: the interface, its card, the smoltcp socket set and the readiness watch list.

use super::config::IpConfig;
use super::phy::VirtioPhy;
use crate::fs::Pollee;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use hal_pv::virtio::net::Net;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpListenEndpoint, Ipv4Address};
use spin::Mutex;

/// Each TCP connection's buffers, each way (the receive window).
pub const TCP_BUFFER: usize = 64 * 1024;
/// Most egress passes per run (each sends up to one segment per socket).
const EGRESS_PASSES: usize = 64;
/// Each UDP socket's buffers: datagrams and payload bytes.
const UDP_PACKETS: usize = 32;
const UDP_BUFFER: usize = 64 * 1024;

/// A listening port: its sockets in LISTEN and the connections they became.
struct Listener {
    endpoint: IpListenEndpoint,
    listening: Vec<SocketHandle>,
    /// Connections past LISTEN, in arrival order, for accept.
    queue: VecDeque<SocketHandle>,
    backlog: usize,
    pollee: Weak<Pollee>,
}

pub struct NetIface {
    phy: VirtioPhy,
    iface: Interface,
    pub sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    /// Sockets whose pollee hears about readiness changes, with the readiness last seen.
    watched: BTreeMap<SocketHandle, Watch>,
    listeners: BTreeMap<u64, Listener>,
    next_listener: u64,
}

/// A watched socket: who hears of it, whether it is TCP (else UDP), its readiness last seen.
struct Watch {
    pollee: Weak<Pollee>,
    tcp: bool,
    last: u32,
}

static IFACE: Mutex<Option<NetIface>> = Mutex::new(None);
/// Set by the interrupt hook when it found the interface taken: the holder runs it again.
static PENDING: AtomicBool = AtomicBool::new(false);
/// Whether an interface exists (read without the lock).
static UP: AtomicBool = AtomicBool::new(false);
/// The deadline of the timer callback already armed (u64::MAX: none).
static ARMED: AtomicU64 = AtomicU64::new(u64::MAX);
/// Our IPv4 address (0: none yet), readable without the lock.
static ADDRESS: AtomicU64 = AtomicU64::new(0);

fn now() -> Instant {
    super::now()
}

/// Brings the card up (frames of `mtu` payload bytes; TCP/UDP checksums computed unless the
/// peer said it needs none) with the address configuration the command line asks for.
pub fn init(card: Net, mtu: usize, tx_checksums: bool, config: IpConfig) {
    let mac = EthernetAddress(card.mac());
    let mut phy = VirtioPhy::new(card, mtu);
    phy.set_tx_checksums(tx_checksums);
    let mut iface = Interface::new(Config::new(HardwareAddress::Ethernet(mac)), &mut phy, now());
    let mut sockets = SocketSet::new(vec![]);
    let mut dhcp = None;
    match config {
        IpConfig::Static { address, gateway } => {
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(IpCidr::Ipv4(address));
            });
            if let Some(gateway) = gateway {
                let _ = iface.routes_mut().add_default_ipv4_route(gateway);
            }
            ADDRESS.store(u32::from(address.address()) as u64, Ordering::Release);
            crate::klog!("net: {address} via {gateway:?}");
        }
        IpConfig::Dhcp => dhcp = Some(sockets.add(dhcpv4::Socket::new())),
        IpConfig::Off => crate::klog!("net: ip=off, the card stays unconfigured"),
    }
    phy.card().set_interrupt_hook(on_interrupt);
    *IFACE.lock() = Some(NetIface {
        phy,
        iface,
        sockets,
        dhcp,
        watched: BTreeMap::new(),
        listeners: BTreeMap::new(),
        next_listener: 1,
    });
    UP.store(true, Ordering::Release);
    with(|_| ());
}

/// Whether programs have a network card.
pub fn is_up() -> bool {
    UP.load(Ordering::Acquire)
}

/// The interface's IPv4 address, once it has one.
pub fn address() -> Option<Ipv4Address> {
    match ADDRESS.load(Ordering::Acquire) {
        0 => None,
        bits => Some(Ipv4Address::from_bits(bits as u32)),
    }
}

/// Runs `f` on the interface (None: no card), then sends what it queued before the caller
/// returns. Received frames are the interrupt's business (or the holder's, when the interrupt
/// found the interface taken). ENETUNREACH-style answers are the caller's.
pub fn with<R>(f: impl FnOnce(&mut NetIface) -> R) -> Option<R> {
    if !is_up() {
        return None;
    }
    let result = {
        let mut guard = IFACE.lock();
        let net = guard.as_mut()?;
        let result = f(net);
        net.flush();
        result
    };
    catch_up();
    Some(result)
}

/// Runs `f` on the interface without running the stack (None: no card): for looking at a
/// socket inside a wait condition, where a run's notifications must not happen.
pub fn with_quiet<R>(f: impl FnOnce(&mut NetIface) -> R) -> Option<R> {
    if !is_up() {
        return None;
    }
    let result = IFACE.lock().as_mut().map(f);
    catch_up();
    result
}

/// The interrupt hook: acknowledges the card and runs the stack, or leaves it to the holder.
fn on_interrupt() {
    PENDING.store(true, Ordering::Release);
    catch_up();
}

/// Runs the stack while a run was asked for and nobody holds the interface.
fn catch_up() {
    while PENDING.load(Ordering::Acquire) {
        let Some(mut guard) = IFACE.try_lock() else {
            // The holder runs it before letting go, and looks again after.
            return;
        };
        PENDING.store(false, Ordering::Release);
        if let Some(net) = guard.as_mut() {
            net.run();
        }
    }
}

/// The timer callback: smoltcp's deadline came.
fn on_timer() {
    ARMED.store(u64::MAX, Ordering::Release);
    PENDING.store(true, Ordering::Release);
    catch_up();
}

impl NetIface {
    /// One run of the stack: every received frame in, every queued segment out, readiness
    /// changes announced, the next deadline armed.
    fn run(&mut self) {
        self.phy.card().ack_interrupt();
        let timestamp = now();
        self.iface.poll_maintenance(timestamp);
        while self
            .iface
            .poll_ingress_single(timestamp, &mut self.phy, &mut self.sockets)
            != PollIngressSingleResult::None
        {
            self.refill_listeners();
        }
        self.egress(timestamp);
        self.refill_listeners();
        self.reap();
        self.dhcp_events();
        self.announce();
        self.arm_timer(timestamp);
    }

    /// After a socket call: what the sockets queued goes out (egress only; the frames received
    /// meanwhile are the interrupt path's, which `catch_up` runs).
    fn flush(&mut self) {
        let timestamp = now();
        self.egress(timestamp);
        self.announce();
        self.arm_timer(timestamp);
    }

    /// Sends what the sockets have queued: smoltcp emits at most one segment per socket per
    /// pass, so a window's worth takes a pass per segment (at most [`EGRESS_PASSES`]; the rest
    /// goes at the next run, which the ACKs coming back cause).
    fn egress(&mut self, timestamp: Instant) {
        for _ in 0..EGRESS_PASSES {
            if self
                .iface
                .poll_egress(timestamp, &mut self.phy, &mut self.sockets)
                == smoltcp::iface::PollResult::None
            {
                break;
            }
        }
    }

    fn arm_timer(&mut self, timestamp: Instant) {
        let Some(delay) = self.iface.poll_delay(timestamp, &self.sockets) else {
            return;
        };
        let deadline = hal_pv::time::now_ns().saturating_add(delay.total_micros() * 1000);
        if ARMED.fetch_min(deadline, Ordering::AcqRel) > deadline {
            crate::task::timer::call_at(deadline, on_timer);
        }
    }

    fn dhcp_events(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let event = self.sockets.get_mut::<dhcpv4::Socket>(handle).poll();
        match event {
            Some(dhcpv4::Event::Configured(config)) => {
                self.iface.update_ip_addrs(|addrs| {
                    addrs.clear();
                    let _ = addrs.push(IpCidr::Ipv4(config.address));
                });
                if let Some(router) = config.router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                }
                ADDRESS.store(
                    u32::from(config.address.address()) as u64,
                    Ordering::Release,
                );
                crate::klog!("net: DHCP gave {} via {:?}", config.address, config.router);
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                ADDRESS.store(0, Ordering::Release);
            }
            None => {}
        }
    }

    /// Notifies the pollee of every watched socket whose readiness changed.
    fn announce(&mut self) {
        let mut gone = Vec::new();
        let mut changed = Vec::new();
        for (handle, watch) in self.watched.iter_mut() {
            if watch.pollee.strong_count() == 0 {
                gone.push(*handle);
                continue;
            }
            let now = readiness(&mut self.sockets, *handle, watch.tcp);
            if now != watch.last {
                watch.last = now;
                changed.push(watch.pollee.clone());
            }
        }
        for handle in gone {
            self.watched.remove(&handle);
        }
        for listener in self.listeners.values() {
            if !listener.queue.is_empty() {
                changed.push(listener.pollee.clone());
            }
        }
        for pollee in changed.iter().filter_map(Weak::upgrade) {
            pollee.notify();
        }
    }

    /// Moves listeners' sockets that left LISTEN to their queues and tops the LISTEN set up.
    fn refill_listeners(&mut self) {
        for listener in self.listeners.values_mut() {
            let mut i = 0;
            while i < listener.listening.len() {
                let handle = listener.listening[i];
                if self.sockets.get::<tcp::Socket>(handle).state() == tcp::State::Listen {
                    i += 1;
                } else {
                    listener.listening.swap_remove(i);
                    listener.queue.push_back(handle);
                }
            }
            while listener.listening.len() < 2 && listener.queue.len() < listener.backlog {
                let mut socket = new_tcp_socket();
                if socket.listen(listener.endpoint).is_err() {
                    break;
                }
                listener.listening.push(self.sockets.add(socket));
            }
        }
    }

    /// Watches `handle` (TCP if `tcp`, else UDP): its readiness changes notify `pollee`.
    fn watch(&mut self, handle: SocketHandle, tcp: bool, pollee: &Arc<Pollee>) {
        let last = readiness(&mut self.sockets, handle, tcp);
        self.watched.insert(
            handle,
            Watch {
                pollee: Arc::downgrade(pollee),
                tcp,
                last,
            },
        );
    }

    /// A new TCP socket, watched by `pollee`.
    pub fn add_tcp(&mut self, pollee: &Arc<Pollee>) -> SocketHandle {
        let handle = self.sockets.add(new_tcp_socket());
        self.watch(handle, true, pollee);
        handle
    }

    /// A new UDP socket bound to `endpoint`, watched by `pollee`.
    pub fn add_udp(
        &mut self,
        endpoint: IpListenEndpoint,
        pollee: &Arc<Pollee>,
    ) -> Result<SocketHandle, udp::BindError> {
        let rx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_BUFFER],
        );
        let tx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_BUFFER],
        );
        let mut socket = udp::Socket::new(rx, tx);
        socket.bind(endpoint)?;
        let handle = self.sockets.add(socket);
        self.watch(handle, false, pollee);
        Ok(handle)
    }

    /// Removes a socket (a TCP one should be closed or aborted first; see [`Self::release`]).
    pub fn remove(&mut self, handle: SocketHandle) {
        self.watched.remove(&handle);
        self.sockets.remove(handle);
    }

    /// A TCP socket whose owner is gone: closed gracefully, and removed once smoltcp is done
    /// with it (kept in the set until then, unwatched).
    pub fn release_tcp(&mut self, handle: SocketHandle) {
        self.watched.remove(&handle);
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        socket.close();
        RELEASED.lock().push(handle);
        self.reap();
    }

    /// Removes released TCP sockets that reached CLOSED or TIME-WAIT.
    fn reap(&mut self) {
        let mut released = RELEASED.lock();
        if released.is_empty() {
            return;
        }
        released.retain(|&handle| {
            let state = self.sockets.get::<tcp::Socket>(handle).state();
            let done = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if done {
                self.sockets.remove(handle);
            }
            !done
        });
    }

    pub fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    pub fn udp(&mut self, handle: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut::<udp::Socket>(handle)
    }

    /// Connects TCP socket `handle` from local port `port` to `remote`.
    pub fn connect(
        &mut self,
        handle: SocketHandle,
        remote: smoltcp::wire::IpEndpoint,
        port: u16,
    ) -> Result<(), tcp::ConnectError> {
        let context = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(context, remote, port)
    }

    /// Starts listening on `endpoint` with room for `backlog` connections; returns the
    /// listener's id.
    pub fn listen(
        &mut self,
        endpoint: IpListenEndpoint,
        backlog: usize,
        pollee: &Arc<Pollee>,
    ) -> u64 {
        let id = self.next_listener;
        self.next_listener += 1;
        self.listeners.insert(
            id,
            Listener {
                endpoint,
                listening: Vec::new(),
                queue: VecDeque::new(),
                backlog: backlog.clamp(1, 1024),
                pollee: Arc::downgrade(pollee),
            },
        );
        self.refill_listeners();
        id
    }

    /// Changes a listener's backlog (listen called again).
    pub fn set_backlog(&mut self, id: u64, backlog: usize) {
        if let Some(listener) = self.listeners.get_mut(&id) {
            listener.backlog = backlog.clamp(1, 1024);
        }
    }

    /// Whether listener `id` has a connection ready to accept (established, or closed by the
    /// peer after sending data).
    pub fn acceptable(&mut self, id: u64) -> bool {
        self.drop_failed(id);
        let Some(listener) = self.listeners.get(&id) else {
            return false;
        };
        listener
            .queue
            .iter()
            .any(|&h| is_acceptable(self.sockets.get::<tcp::Socket>(h).state()))
    }

    /// Takes the first acceptable connection of listener `id`, now watched by `pollee`.
    pub fn accept(&mut self, id: u64, pollee: &Arc<Pollee>) -> Option<SocketHandle> {
        self.drop_failed(id);
        let listener = self.listeners.get_mut(&id)?;
        let sockets = &self.sockets;
        let at = listener
            .queue
            .iter()
            .position(|&h| is_acceptable(sockets.get::<tcp::Socket>(h).state()))?;
        let handle = listener.queue.remove(at)?;
        self.refill_listeners();
        self.watch(handle, true, pollee);
        Some(handle)
    }

    /// Forgets queued connections that were reset before being accepted.
    fn drop_failed(&mut self, id: u64) {
        let Some(listener) = self.listeners.get_mut(&id) else {
            return;
        };
        let sockets = &mut self.sockets;
        listener.queue.retain(|&h| {
            let closed = sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed;
            if closed {
                sockets.remove(h);
            }
            !closed
        });
    }

    /// Stops listener `id`: its LISTEN sockets go, its unaccepted connections are reset.
    pub fn unlisten(&mut self, id: u64) {
        let Some(listener) = self.listeners.remove(&id) else {
            return;
        };
        for handle in listener.listening {
            self.sockets.remove(handle);
        }
        for handle in listener.queue {
            self.sockets.get_mut::<tcp::Socket>(handle).abort();
            RELEASED.lock().push(handle);
        }
    }
}

/// Released TCP sockets still finishing their close.
static RELEASED: Mutex<Vec<SocketHandle>> = Mutex::new(Vec::new());

fn is_acceptable(state: tcp::State) -> bool {
    !matches!(
        state,
        tcp::State::Listen | tcp::State::SynReceived | tcp::State::Closed
    )
}

fn new_tcp_socket() -> tcp::Socket<'static> {
    let rx = tcp::SocketBuffer::new(vec![0; TCP_BUFFER]);
    let tx = tcp::SocketBuffer::new(vec![0; TCP_BUFFER]);
    let mut socket = tcp::Socket::new(rx, tx);
    // The peers we meet (our VMM, QEMU's slirp, a tap on this host) are a memory copy away;
    // Nagle would only add latency to request/response traffic.
    socket.set_nagle_enabled(false);
    // Delayed ACKs save packets on a wire; here a packet costs less than the wait, and with a
    // peer that waits for our ACK before sending more, each delay is a stall.
    socket.set_ack_delay(None);
    socket
}

/// A socket's readiness as poll bits (what the watch list compares).
fn readiness(sockets: &mut SocketSet<'static>, handle: SocketHandle, tcp: bool) -> u32 {
    if tcp {
        super::tcp::smol_readiness(sockets.get::<tcp::Socket>(handle))
    } else {
        super::udp::smol_readiness(sockets.get::<udp::Socket>(handle))
    }
}
