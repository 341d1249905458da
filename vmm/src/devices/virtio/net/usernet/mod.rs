//! The user-mode network (`--net user`): a NAT'ing router inside the VMM process, with QEMU
//! slirp's conventions — network 10.0.2.0/24, guest 10.0.2.15, gateway 10.0.2.2 (which stands for
//! the host's loopback), DNS server 10.0.2.3. These addresses exist only in here: no packet of the
//! guest ever reaches a host interface. What the guest's traffic becomes on the host is ordinary
//! socket calls to 127.0.0.1, made by the VMM.
//!
//! What the router does with a guest frame:
//! - ARP: the smoltcp interface answers for 10.0.2.2 and 10.0.2.3; [`wire::proxy_arp_reply`]
//!   for the rest of the subnet (so connections there are refused, not left to time out).
//! - DHCP (UDP to port 67): [`dhcp`] hands out 10.0.2.15.
//! - DNS (UDP to 10.0.2.3:53): [`dns`].
//! - ICMP echo to 10.0.2.2 or 10.0.2.3: answered.
//! - TCP to 10.0.2.2:PORT: proxied to the host's 127.0.0.1:PORT ([`tcp_nat`], [`proxy`]).
//! - Everything else is dropped, and TCP to any other address is refused with a RST.
//!
//! **Policy: no outside network.** The guest reaches the host's loopback and nothing else: no
//! other host address, no other machine, no UDP beyond DHCP and DNS. That is deliberate (for now):
//! a guest running untrusted code gets exactly the host services the user exposes on 127.0.0.1,
//! and host services reach the guest only through `--publish` ([`forward`]).
//!
//! The router's TCP endpoints are a smoltcp [`Interface`] with one TCP socket per proxied
//! connection. All host sockets are watched through one epoll fd of its own (so the set can change
//! while the device's I/O thread watches a fixed set: that epoll fd and a timerfd that wakes
//! smoltcp's timers).
//!
//! Time-outs and the hooks into the host (where TCP to the gateway goes, how names are looked up)
//! come from a [`Config`]; the router's clock can be moved forward ([`UserNet::advance_clock`])
//! so that tests and the fuzzer reach its timers without waiting.

pub mod config;
pub mod dhcp;
pub mod dns;
pub mod forward;
pub mod link;
pub mod proxy;
pub mod table;
pub mod tcp_nat;
pub mod wire;

use super::backend::NetBackend;
use super::frame::FrameQueue;
use super::publish::Publish;
pub use config::Config;
use dns::Dns;
use event_manager::EventSet;
use forward::Forwards;
use link::Link;
use proxy::{ConnKey, MAX_CONNECTIONS, Redial};
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, IpProtocol, TcpControl,
    TcpRepr,
};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};
use table::Connections;
use tcp_nat::{Started, TcpNat};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent};
use vmm_sys_util::timerfd::TimerFd;
use wire::{GuestFrame, Ipv4Frame, Peer};

/// The user network, 10.0.2.0/24.
pub const NETWORK: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 0);
pub const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
const PREFIX_LEN: u8 = 24;
/// The router, and the host's loopback as the guest sees it.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The DNS server.
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The address the DHCP server gives the guest, and where published ports lead.
pub const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The router's MAC address (QEMU's "52:55" + the gateway's address).
pub const ROUTER_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];

const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const DNS_PORT: u16 = 53;

// Epoll data of the host fds: the kind in the top byte, an index or id below.
const TOKEN_KIND: u64 = 0xff << 56;
const TOKEN_LISTENER: u64 = 1 << 56;
const TOKEN_CONNECTING: u64 = 2 << 56;
const TOKEN_CONN: u64 = 3 << 56;
const TOKEN_DNS: u64 = 4 << 56;

/// Host events handled per wake-up (more are reported again at the next: level-triggered).
const EVENTS_PER_WAKE: usize = 64;
/// Shortest timer: a smoltcp "poll now" must not turn into a busy loop.
const MIN_TIMER: Duration = Duration::from_millis(1);
/// Timer while the guest's backlog is full: its receive-queue notification is what we wait for.
const BACKLOG_FULL_TIMER: Duration = Duration::from_millis(20);

/// Why the user network could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// A `--publish` port could not be bound (busy, or not an address of this host).
    Publish(Publish, io::Error),
    Host(io::Error),
}

pub struct UserNet {
    config: Config,
    /// smoltcp's clock starts here (monotonic, unlike its own `Instant::now`).
    start: Instant,
    /// How far [`advance_clock`](Self::advance_clock) moved the router's clock ahead.
    skew: Duration,
    iface: Interface,
    sockets: SocketSet<'static>,
    link: Link,
    epoll: Epoll,
    timer: TimerFd,
    conns: Connections,
    nat: TcpNat,
    forwards: Forwards,
    dns: Dns,
}

impl UserNet {
    /// The router, with its `--publish` listeners bound (the error names the one that failed).
    pub fn new(publish: &[Publish]) -> Result<UserNet, SetupError> {
        Self::with_config(publish, Config::default())
    }

    /// The router with the time-outs and host hooks of `config`.
    pub fn with_config(publish: &[Publish], config: Config) -> Result<UserNet, SetupError> {
        let forwards = Forwards::bind(publish).map_err(|(p, e)| SetupError::Publish(p, e))?;
        let epoll = Epoll::new().map_err(SetupError::Host)?;
        let timer = TimerFd::new().map_err(|e| SetupError::Host(e.into()))?;
        set_nonblocking(timer.as_raw_fd()).map_err(SetupError::Host)?;
        let dns = Dns::with_resolver(GATEWAY, config.resolver.clone(), config.lookup_timeout)
            .map_err(SetupError::Host)?;
        forwards.watch(&epoll).map_err(SetupError::Host)?;
        let event = EpollEvent::new(EventSet::IN, TOKEN_DNS);
        epoll
            .ctl(ControlOperation::Add, dns.wake_fd().as_raw_fd(), event)
            .map_err(SetupError::Host)?;

        let start = Instant::now();
        let mut link = Link::new();
        let mut iface_config =
            smoltcp::iface::Config::new(HardwareAddress::Ethernet(EthernetAddress(ROUTER_MAC)));
        iface_config.random_seed = config.random_seed.unwrap_or_else(random_seed);
        let mut iface = Interface::new(iface_config, &mut link, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            for address in [GATEWAY, DNS] {
                addrs
                    .push(IpCidr::new(IpAddress::Ipv4(address), PREFIX_LEN))
                    .expect("smoltcp's IFACE_MAX_ADDR_COUNT is 2: room for both");
            }
        });
        Ok(UserNet {
            conns: Connections::new(&config),
            config,
            start,
            skew: Duration::ZERO,
            iface,
            sockets: SocketSet::new(Vec::new()),
            link,
            epoll,
            timer,
            nat: TcpNat::default(),
            forwards,
            dns,
        })
    }

    /// Each `--publish` with the host address it listens on.
    pub fn published(&self) -> Vec<(Publish, SocketAddr)> {
        self.forwards.published()
    }

    /// Moves the router's clock `by` ahead: smoltcp's timers (retransmissions, keep-alives,
    /// TIME-WAIT), and every time-out of the router's own, expire as if that much time had
    /// passed. For tests and fuzzing; the next [`poll`](NetBackend::poll) acts on it.
    pub fn advance_clock(&mut self, by: Duration) {
        self.skew = self.skew.saturating_add(by);
    }

    /// The router's clock, as smoltcp counts it.
    fn now(&self) -> smoltcp::time::Instant {
        let elapsed = self.start.elapsed().saturating_add(self.skew);
        smoltcp::time::Instant::from_micros(i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
    }

    /// The router's clock, as the host counts it.
    fn host_now(&self) -> Instant {
        Instant::now() + self.skew
    }

    fn poll_iface(&mut self) {
        let now = self.now();
        self.iface.poll(now, &mut self.link, &mut self.sockets);
    }

    /// Hands a guest frame to the interface (polling it first if its inbound queue is full).
    fn feed(&mut self, frame: &[u8]) {
        if !self.link.feed(frame) {
            self.poll_iface();
            self.link.feed(frame);
        }
    }

    fn send(&mut self, frame: Option<Vec<u8>>) {
        if let Some(frame) = frame {
            self.link.to_guest.push(frame);
        }
    }

    fn send_dns_answer(&mut self, to: Peer, answer: &[u8]) {
        self.send(wire::udp_frame(DNS, DNS_PORT, to, answer));
    }

    fn guest_ipv4(&mut self, frame: &[u8], packet: &Ipv4Frame<'_>) {
        let dst = packet.ip.dst_addr;
        match packet.ip.next_header {
            IpProtocol::Udp => {
                let Some((udp, payload)) = wire::parse_udp(packet) else {
                    return;
                };
                if udp.dst_port == DHCP_SERVER_PORT {
                    let Some(reply) = dhcp::reply(payload) else {
                        return;
                    };
                    let to = Peer {
                        mac: reply.dst_mac,
                        ip: reply.dst_ip,
                        port: DHCP_CLIENT_PORT,
                    };
                    self.send(wire::udp_frame(
                        GATEWAY,
                        DHCP_SERVER_PORT,
                        to,
                        &reply.message,
                    ));
                } else if dst == DNS && udp.dst_port == DNS_PORT && udp.src_port != 0 {
                    // (Source port 0 means "no reply port" (RFC 768): nothing to answer to.)
                    let from = Peer {
                        mac: packet.src_mac,
                        ip: packet.ip.src_addr,
                        port: udp.src_port,
                    };
                    let now = self.host_now();
                    if let Some(answer) = self.dns.query(payload, from, now) {
                        self.send_dns_answer(from, &answer);
                    }
                }
                // Any other UDP would leave the VMM: dropped (no outside network).
            }
            IpProtocol::Icmp if dst == GATEWAY || dst == DNS => {
                self.send(wire::icmp_echo_reply(packet))
            }
            IpProtocol::Tcp => {
                if let Some(segment) = wire::parse_tcp(packet) {
                    self.guest_tcp(frame, packet, &segment);
                }
            }
            _ => {}
        }
    }

    fn guest_tcp(&mut self, frame: &[u8], packet: &Ipv4Frame<'_>, segment: &TcpRepr<'_>) {
        let dst = packet.ip.dst_addr;
        if dst == DNS {
            self.feed(frame); // no TCP service there: the interface answers with a RST
            return;
        }
        if dst != GATEWAY {
            // No outside network: the guest may only reach the host's loopback.
            self.send(wire::tcp_reset(packet, segment));
            return;
        }
        // The guest is alive for whichever connection this is (outbound, or a published one
        // whose router end is the destination port).
        let now = self.now();
        let outbound = ConnKey::Outbound {
            guest_port: segment.src_port,
            host_port: segment.dst_port,
        };
        self.conns.heard(outbound, now);
        let published = ConnKey::Published {
            local_port: segment.dst_port,
        };
        self.conns.heard(published, now);
        if segment.control != TcpControl::Syn || segment.ack_number.is_some() {
            self.feed(frame);
            return;
        }
        let key = outbound;
        if self.nat.is_connecting(key) {
            return; // a retransmitted SYN: its host connect is still under way
        }
        if let Some((id, handle)) = self.conns.find(key) {
            let state = self.sockets.get::<tcp::Socket>(handle).state();
            if !matches!(
                state,
                tcp::State::Closed | tcp::State::TimeWait | tcp::State::Listen
            ) {
                self.feed(frame); // a retransmission for a live connection
                return;
            }
            // The port is being reused after the old connection ended: start afresh.
            self.conns.remove(id, &mut self.sockets, &self.epoll);
        }
        if self.open_connections() >= MAX_CONNECTIONS {
            tracing::debug!("usernet: {MAX_CONNECTIONS} connections open; refusing another");
            self.send(wire::tcp_reset(packet, segment));
            return;
        }
        let Some(host_addr) = (self.config.host_connect)(segment.dst_port) else {
            tracing::debug!(
                "usernet: guest → host port {}: not allowed",
                segment.dst_port
            );
            self.send(wire::tcp_reset(packet, segment));
            return;
        };
        let deadline = self.host_now() + self.config.connect_timeout;
        match self.nat.start(key, frame, host_addr, deadline, &self.epoll) {
            Started::Connected(stream) => self.open_outbound(key, frame, stream),
            Started::Pending => {}
            Started::Refused(e) => {
                tracing::debug!("usernet: guest → host port {}: {e}", segment.dst_port);
                self.send(wire::tcp_reset(packet, segment));
            }
        }
    }

    /// The host connection for the guest's `syn` is up: let smoltcp accept the SYN.
    fn open_outbound(&mut self, key: ConnKey, syn: &[u8], stream: TcpStream) {
        let ConnKey::Outbound { host_port, .. } = key else {
            return;
        };
        // Frames queued before this SYN go first, and connections they finished go, so that no
        // other socket is listening on the port when the SYN arrives (it would take the
        // connection).
        self.poll_iface();
        let now = self.now();
        self.conns.reap(&mut self.sockets, &self.epoll, now);
        let mut socket = proxy::new_socket(&self.config);
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(GATEWAY)),
            port: host_port,
        };
        if socket.listen(endpoint).is_err() {
            return self.refuse(syn);
        }
        let handle = self.sockets.add(socket);
        self.feed(syn);
        self.poll_iface();
        if self.sockets.get::<tcp::Socket>(handle).state() == tcp::State::Listen {
            // smoltcp did not take the SYN after all: never leave a listener behind.
            self.sockets.remove(handle);
            return self.refuse(syn);
        }
        let now = self.now();
        self.conns.add(key, handle, stream, &self.epoll, now);
    }

    /// Answers the guest's SYN frame `syn` with a RST.
    fn refuse(&mut self, syn: &[u8]) {
        if let GuestFrame::Ipv4(packet) = wire::classify(syn)
            && let Some(segment) = wire::parse_tcp(&packet)
        {
            self.send(wire::tcp_reset(&packet, &segment));
        }
    }

    /// Connections waiting on published listener `index` become connections to the guest.
    fn accept_published(&mut self, index: usize) {
        for (guest_port, stream) in self.forwards.accept(index) {
            if self.open_connections() >= MAX_CONNECTIONS {
                tracing::debug!(
                    "usernet: {MAX_CONNECTIONS} connections open; refusing a published one"
                );
                proxy::set_linger_zero(&stream);
                continue;
            }
            let conns = &self.conns;
            let in_use = |port| {
                conns
                    .find(ConnKey::Published { local_port: port })
                    .is_some()
                    || conns
                        .find(ConnKey::Outbound {
                            guest_port,
                            host_port: port,
                        })
                        .is_some()
            };
            let Some(local_port) = self.forwards.local_port(in_use) else {
                proxy::set_linger_zero(&stream);
                continue;
            };
            let mut socket = proxy::new_socket(&self.config);
            let remote = (IpAddress::Ipv4(GUEST), guest_port);
            let local = IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(GATEWAY)),
                port: local_port,
            };
            if let Err(e) = socket.connect(self.iface.context(), remote, local) {
                tracing::debug!("usernet: cannot connect to guest port {guest_port}: {e:?}");
                proxy::set_linger_zero(&stream);
                continue;
            }
            let handle = self.sockets.add(socket);
            let now = self.now();
            let key = ConnKey::Published { local_port };
            self.conns.add(key, handle, stream, &self.epoll, now);
            let window = proxy::duration(self.config.published_redial);
            self.conns
                .set_redial(key, Redial::new(remote.into(), local, now, window));
        }
    }

    /// Dials again the refused published connections whose pause is over.
    fn redial_published(&mut self, now: smoltcp::time::Instant) {
        let due = self.conns.due_redials(now);
        for (handle, redial) in &due {
            let socket = self.sockets.get_mut::<tcp::Socket>(*handle);
            if let Err(e) = socket.connect(self.iface.context(), redial.remote, redial.local) {
                tracing::debug!("usernet: cannot dial {} again: {e:?}", redial.remote);
            }
        }
        if !due.is_empty() {
            self.poll_iface();
        }
    }

    /// Handles what the user network's epoll reports.
    fn host_events(&mut self) {
        let mut events = [EpollEvent::default(); EVENTS_PER_WAKE];
        let count = match self.epoll.wait(0, &mut events) {
            Ok(count) => count,
            Err(e) => {
                tracing::debug!("usernet: epoll_wait: {e}");
                return;
            }
        };
        for event in &events[..count] {
            let (token, set) = (event.data(), event.event_set());
            let id = token & !TOKEN_KIND;
            match token & TOKEN_KIND {
                TOKEN_LISTENER => self.accept_published(id as usize),
                TOKEN_CONNECTING => {
                    if let Some((connecting, result)) = self.nat.ready(id, &self.epoll) {
                        match result {
                            Ok(stream) => {
                                self.open_outbound(connecting.key, &connecting.syn, stream)
                            }
                            Err(e) => {
                                tracing::debug!("usernet: {:?}: {e}", connecting.key);
                                self.refuse(&connecting.syn);
                            }
                        }
                    }
                }
                TOKEN_CONN => self.conns.host_event(id, set, &self.epoll),
                TOKEN_DNS => {
                    for (client, answer) in self.dns.finished() {
                        self.send_dns_answer(client, &answer);
                    }
                }
                _ => {}
            }
        }
    }

    /// Lets smoltcp and the proxies do everything that is possible now, then sets the timer for
    /// the next thing that will be.
    fn process(&mut self) {
        self.poll_iface();
        let now = self.now();
        self.conns.pump(&mut self.sockets, now);
        self.poll_iface();
        let now = self.now();
        self.conns.reap(&mut self.sockets, &self.epoll, now);
        self.redial_published(now);
        let now = self.host_now();
        for connecting in self.nat.expire(now, &self.epoll) {
            tracing::debug!("usernet: {:?}: host connect timed out", connecting.key);
            self.refuse(&connecting.syn);
        }
        for (client, answer) in self.dns.expire(now) {
            self.send_dns_answer(client, &answer);
        }
        self.arm_timer();
    }

    fn arm_timer(&mut self) {
        let now = self.now();
        let mut delay = self
            .iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()));
        if let Some(deadline) = self.conns.next_deadline(&self.sockets) {
            let until = if deadline > now {
                Duration::from_micros((deadline - now).total_micros())
            } else {
                Duration::ZERO
            };
            delay = Some(delay.map_or(until, |d| d.min(until)));
        }
        let host_now = self.host_now();
        for deadline in [self.nat.next_deadline(), self.dns.next_deadline()]
            .into_iter()
            .flatten()
        {
            let until = deadline.saturating_duration_since(host_now);
            delay = Some(delay.map_or(until, |d| d.min(until)));
        }
        let floor = if self.link.to_guest.is_full() {
            BACKLOG_FULL_TIMER
        } else {
            MIN_TIMER
        };
        let armed = match delay {
            Some(delay) => self.timer.reset(delay.max(floor), None),
            None => self.timer.clear(),
        };
        if let Err(e) = armed {
            tracing::warn!("usernet: cannot set the timer: {e}");
        }
    }
}

impl NetBackend for UserNet {
    fn host_sources(&self) -> Vec<(RawFd, EventSet)> {
        vec![
            (self.epoll.as_raw_fd(), EventSet::IN),
            (self.timer.as_raw_fd(), EventSet::IN),
        ]
    }

    fn guest_sent(&mut self, frame: &[u8]) {
        match wire::classify(frame) {
            GuestFrame::Arp(arp) => {
                let reply = wire::proxy_arp_reply(&arp, GUEST);
                self.send(reply);
                self.feed(frame); // the interface answers for its own addresses, and learns
            }
            GuestFrame::Ipv4(packet) => self.guest_ipv4(frame, &packet),
            GuestFrame::Other => {}
        }
    }

    fn poll(&mut self) {
        self.process();
    }

    fn host_ready(&mut self, fd: RawFd, _events: EventSet) {
        if fd == self.timer.as_raw_fd() {
            // Non-blocking: the timer may have been re-armed since the event was reported.
            let _ = self.timer.wait();
        } else if fd == self.epoll.as_raw_fd() {
            self.host_events();
        }
        self.process();
    }

    fn to_guest(&mut self) -> &mut FrameQueue {
        &mut self.link.to_guest
    }

    fn open_connections(&self) -> usize {
        self.conns.count() + self.nat.count()
    }

    fn reset(&mut self) {
        // The guest's driver starts over: its connections are gone with it.
        self.link.clear();
        self.conns.clear(&mut self.sockets, &self.epoll);
        self.nat.clear(&self.epoll);
        let _ = self.timer.clear();
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Seeds smoltcp's initial sequence numbers and ports.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}
