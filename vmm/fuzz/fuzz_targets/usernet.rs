//! The user network (`--net user`) itself, from the guest's side of the wire: fuzzer-built
//! Ethernet frames — ARP, DHCP, DNS, other UDP, ICMP, TCP with any flags, sequence numbers and
//! options, other IP protocols, IP options and fragments, cut, lengthened or bit-flipped, or
//! plain garbage — go into `UserNet::guest_sent`, between host events, timer wake-ups, clock
//! jumps (the router's clock: retransmissions, keep-alives, TIME-WAIT and its own time-outs),
//! host-side actions on its connections, and device resets.
//!
//! No side effects beyond loopback sockets of the harness's own: the router's `host_connect`
//! hook sends guest port 80 to a listener of the harness, port 81 to a bound socket that does
//! not listen (the host refuses), and refuses every other port itself; one `--publish` forward
//! listens on an ephemeral 127.0.0.1 port; the DNS resolver answers without asking the host.
//! TCP segments can be built against the router's own sequence numbers (tracked from what it
//! sends), so handshakes and closes get through.
//!
//! Besides "no crash": every frame the router sends towards the guest is at most `MAX_FRAME`
//! bytes and parses (Ethernet, then ARP or IPv4 with valid checksums, then TCP, UDP or ICMP).

#![no_main]

use arbitrary::Arbitrary;
use event_manager::EventSet;
use libfuzzer_sys::fuzz_target;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr, IpAddress,
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use vmm::devices::virtio::net::frame::MAX_FRAME;
use vmm::devices::virtio::net::usernet::{Config, UserNet};
use vmm::devices::virtio::net::{NetBackend, Publish};
use vmm_fuzz::frames::{self, *};

/// Most steps per input, host streams held, frames repeated in a flood.
const MAX_STEPS: usize = 64;
const MAX_STREAMS: usize = 16;
const MAX_REPEAT: usize = 300;
/// Guest-visible host ports: to the harness's listener, and to a port the host refuses.
const LISTENER_PORT: u16 = 80;
const CLOSED_PORT: u16 = 81;
const PUBLISHED_GUEST_PORT: u16 = 8080;

/// The harness's host side, made once per process.
struct Host {
    listener: TcpListener,
    /// Bound, never listening: connects to its port are refused, and no one else can take it.
    _closed: OwnedFd,
    closed_port: u16,
}

static HOST: OnceLock<Host> = OnceLock::new();

fn host() -> &'static Host {
    HOST.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let (closed, closed_port) = bound_not_listening();
        Host {
            listener,
            _closed: closed,
            closed_port,
        }
    })
}

/// A TCP socket bound to an ephemeral 127.0.0.1 port that does not listen.
fn bound_not_listening() -> (OwnedFd, u16) {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket");
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_in of the length given.
    let rc = unsafe { libc::bind(socket.as_raw_fd(), (&raw const addr).cast(), len) };
    assert_eq!(rc, 0, "bind");
    // SAFETY: getsockname writes at most `len` bytes into `addr`.
    let rc = unsafe { libc::getsockname(socket.as_raw_fd(), (&raw mut addr).cast(), &mut len) };
    assert_eq!(rc, 0, "getsockname");
    (socket, u16::from_be(addr.sin_port))
}

fn config() -> Config {
    let host = host();
    let listener_port = host.listener.local_addr().expect("its address").port();
    let closed_port = host.closed_port;
    Config {
        host_connect: Arc::new(move |port| {
            let to = match port {
                LISTENER_PORT => listener_port,
                CLOSED_PORT => closed_port,
                _ => return None,
            };
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, to))
        }),
        // Answers by itself: a name of even length has an address, others fail.
        resolver: Arc::new(|name| match name.len() % 2 {
            0 => Ok(vec![
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(127, 0, 0, 2),
            ]),
            _ => Err(std::io::Error::other("no such name")),
        }),
        random_seed: Some(0x5eed),
        ..Config::default()
    }
}

/// A guest port: a few shared ones (so connections collide) or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum GuestPort {
    Few(u8),
    Any(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum HostPort {
    Listener,
    Closed,
    /// The router's end of a published connection (49152 and up).
    Published(u8),
    Any(u16),
}

/// Which connection a TCP segment belongs to.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Endpoint {
    /// One the harness has seen (from the router's segments or the guest's), by index.
    Tracked(u8),
    New(GuestPort, HostPort),
}

/// A sequence or acknowledgement number: near what the router expects, or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Seq {
    Expected(i16),
    Abs(u32),
}

#[derive(Arbitrary, Debug, Clone)]
enum Payload {
    Bytes(Vec<u8>),
    Fill(u16, u8),
}

/// TCP flags: the usual combinations, or any byte.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    FinAck,
    Rst,
    RstAck,
    Any(u8),
}

impl Flags {
    fn bits(self) -> u8 {
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const PSH: u8 = 0x08;
        const ACK: u8 = 0x10;
        match self {
            Flags::Syn => SYN,
            Flags::SynAck => SYN | ACK,
            Flags::Ack => ACK,
            Flags::PshAck => PSH | ACK,
            Flags::FinAck => FIN | ACK,
            Flags::Rst => RST,
            Flags::RstAck => RST | ACK,
            Flags::Any(bits) => bits,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Tcp {
    dst: Option<Addr>,
    endpoint: Endpoint,
    flags: Flags,
    seq: Seq,
    ack: Seq,
    window: u16,
    urgent: u16,
    options: Vec<TcpOpt>,
    data_offset: Option<u8>,
    payload: Payload,
}

#[derive(Arbitrary, Debug, Clone)]
enum Frame {
    Arp {
        op: u16,
        sender: Addr,
        target: Addr,
        other_mac: Option<[u8; 6]>,
    },
    Dhcp {
        kind: DhcpKind,
        xid: u32,
        client_ip: Addr,
        requested: Option<Addr>,
        server: Option<Addr>,
        broadcast: bool,
        to: Addr,
    },
    Dns {
        to: Addr,
        src_port: u16,
        id: u16,
        flags: u16,
        qdcount: u16,
        name: DnsName,
        qtype: u16,
        qclass: u16,
        trailing: Vec<u8>,
    },
    Udp {
        to: Addr,
        ports: (u16, u16),
        payload: Vec<u8>,
        checksum: bool,
    },
    Icmp {
        to: Addr,
        kind: u8,
        code: u8,
        rest: u32,
        data: Vec<u8>,
    },
    Tcp(Tcp),
    Ip {
        to: Addr,
        protocol: u8,
        payload: Vec<u8>,
    },
    /// Any bytes after the Ethernet header.
    Ethernet {
        ethertype: u16,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug, Clone)]
enum HostAction {
    Write(u16, u8),
    Read,
    ShutdownWrite,
    ShutdownRead,
    Close,
    Reset,
}

#[derive(Arbitrary, Debug, Clone)]
enum Step {
    Frame {
        frame: Frame,
        dst_mac: EthDst,
        ip: Option<IpHeader>,
        mangle: Mangle,
    },
    /// Bytes as they are, as a whole frame.
    Raw(Vec<u8>),
    /// A well-behaved guest's connect: SYN, then the ACK of the router's SYN-ACK.
    Open(GuestPort, HostPort),
    /// A well-behaved guest's answer on tracked connection N: the SYN-ACK of the router's SYN,
    /// or an ACK of everything (with `data`, and a FIN if `fin`).
    Answer {
        conn: u8,
        data: Vec<u8>,
        fin: bool,
    },
    /// The last frame again, this many times.
    Repeat(u16),
    Poll,
    Timer,
    HostEvents,
    /// The router's clock jumps ahead (milliseconds, or seconds).
    Millis(u16),
    Seconds(u8),
    /// A host client connects to the published port.
    Connect,
    Host(u8, HostAction),
    /// Whether the guest takes the router's frames after each step (else they pile up).
    GuestReads(bool),
    /// Whether the guest answers the router's ARP requests for its address by itself.
    GuestArp(bool),
    Reset,
}

#[derive(Arbitrary, Debug)]
struct Input {
    steps: Vec<Step>,
}

/// A connection as the harness follows it.
#[derive(Debug, Clone, Copy)]
struct Track {
    guest_port: u16,
    host_port: u16,
    /// The router's next sequence number, and what it last acknowledged.
    router_next: u32,
    router_ack: Option<u32>,
    /// The guest's next sequence number as the harness sent it.
    guest_next: u32,
}

struct Harness {
    net: UserNet,
    epoll: RawFd,
    timer: RawFd,
    published: SocketAddr,
    streams: Vec<TcpStream>,
    tracks: Vec<Track>,
    last_frame: Vec<u8>,
    guest_reads: bool,
    guest_arp: bool,
}

impl Harness {
    fn new() -> Harness {
        let host = host();
        // Connections of earlier inputs the harness never took.
        while let Ok((stream, _)) = host.listener.accept() {
            reset_and_drop(stream);
        }
        let publish = Publish {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: 0,
            guest_port: PUBLISHED_GUEST_PORT,
        };
        let net = UserNet::with_config(&[publish], config()).expect("the user network starts");
        let published = net.published()[0].1;
        let sources = net.host_sources();
        Harness {
            epoll: sources[0].0,
            timer: sources[1].0,
            net,
            published,
            streams: Vec::new(),
            tracks: Vec::new(),
            last_frame: Vec::new(),
            guest_reads: true,
            guest_arp: true,
        }
    }

    fn accept(&mut self) {
        while self.streams.len() < MAX_STREAMS {
            let Ok((stream, _)) = host().listener.accept() else {
                break;
            };
            let _ = stream.set_nonblocking(true);
            self.streams.push(stream);
        }
    }

    fn send(&mut self, frame: Vec<u8>) {
        let frame = &frame[..frame.len().min(MAX_FRAME)];
        self.net.guest_sent(frame);
        self.net.poll();
        self.last_frame = frame.to_vec();
    }

    fn track(&mut self, guest_port: u16, host_port: u16) -> usize {
        if let Some(i) = self
            .tracks
            .iter()
            .position(|t| (t.guest_port, t.host_port) == (guest_port, host_port))
        {
            return i;
        }
        if self.tracks.len() >= 16 {
            self.tracks.remove(0);
        }
        self.tracks.push(Track {
            guest_port,
            host_port,
            router_next: 0,
            router_ack: None,
            guest_next: 0x1000,
        });
        self.tracks.len() - 1
    }

    /// The (guest, host) ports of `endpoint`.
    fn ports(&self, endpoint: Endpoint) -> (u16, u16) {
        match endpoint {
            Endpoint::Tracked(i) if !self.tracks.is_empty() => {
                let t = self.tracks[usize::from(i) % self.tracks.len()];
                (t.guest_port, t.host_port)
            }
            Endpoint::Tracked(_) => (40000, LISTENER_PORT),
            Endpoint::New(guest, host) => (
                match guest {
                    GuestPort::Few(n) => 40000 + u16::from(n % 4),
                    GuestPort::Any(p) => p,
                },
                match host {
                    HostPort::Listener => LISTENER_PORT,
                    HostPort::Closed => CLOSED_PORT,
                    HostPort::Published(n) => 49152 + u16::from(n % 4),
                    HostPort::Any(p) => p,
                },
            ),
        }
    }

    fn tcp_frame(&mut self, tcp: &Tcp, ip: &IpHeader) -> (Ipv4Addr, Vec<u8>) {
        let (guest_port, host_port) = self.ports(tcp.endpoint);
        let index = self.track(guest_port, host_port);
        let t = self.tracks[index];
        let seq = match tcp.seq {
            Seq::Expected(off) => t
                .router_ack
                .unwrap_or(t.guest_next)
                .wrapping_add_signed(off.into()),
            Seq::Abs(n) => n,
        };
        let ack = match tcp.ack {
            Seq::Expected(off) => t.router_next.wrapping_add_signed(off.into()),
            Seq::Abs(n) => n,
        };
        let payload = match &tcp.payload {
            Payload::Bytes(bytes) => bytes.clone(),
            Payload::Fill(len, byte) => vec![*byte; usize::from(*len) % 1461],
        };
        let flags = tcp.flags.bits();
        let len = payload.len() as u32 + u32::from(flags & 0x3 != 0);
        self.tracks[index].guest_next = seq.wrapping_add(len);
        let segment = TcpSegment {
            src_port: guest_port,
            dst_port: host_port,
            seq,
            ack,
            flags,
            window: tcp.window,
            urgent: tcp.urgent,
            options: tcp.options.clone(),
            data_offset: tcp.data_offset,
            payload,
        };
        let dst = tcp.dst.map_or(GATEWAY, Addr::ip);
        let src = ip.src.map_or(GUEST, Addr::ip);
        (dst, frames::tcp(&segment, src, dst))
    }

    /// The Ethernet frame for `frame`.
    fn build(&mut self, frame: &Frame, dst_mac: EthDst, ip: Option<&IpHeader>) -> (u16, Vec<u8>) {
        let plain = plain_header();
        let ip = ip.unwrap_or(&plain);
        let src = ip.src.map_or(GUEST, Addr::ip);
        let (dst, protocol, body) = match frame {
            Frame::Arp {
                op,
                sender,
                target,
                other_mac,
            } => {
                let mac = other_mac.unwrap_or(GUEST_MAC);
                return (ETHERTYPE_ARP, arp(*op % 4, mac, sender.ip(), target.ip()));
            }
            Frame::Dhcp {
                kind,
                xid,
                client_ip,
                requested,
                server,
                broadcast,
                to,
            } => {
                let message = dhcp(
                    *kind,
                    *xid,
                    client_ip.ip(),
                    requested.map(Addr::ip),
                    server.map(Addr::ip),
                    *broadcast,
                );
                let to = to.ip();
                (to, PROTO_UDP, udp(src, to, (68, 67), &message, true))
            }
            Frame::Dns {
                to,
                src_port,
                id,
                flags,
                qdcount,
                name,
                qtype,
                qclass,
                trailing,
            } => {
                let mut message = dns_query(*id, *flags, *qdcount, name, *qtype, *qclass);
                message.extend_from_slice(trailing);
                let to = to.ip();
                (to, PROTO_UDP, udp(src, to, (*src_port, 53), &message, true))
            }
            Frame::Udp {
                to,
                ports,
                payload,
                checksum,
            } => {
                let to = to.ip();
                (to, PROTO_UDP, udp(src, to, *ports, payload, *checksum))
            }
            Frame::Icmp {
                to,
                kind,
                code,
                rest,
                data,
            } => (to.ip(), PROTO_ICMP, icmp(*kind, *code, *rest, data)),
            Frame::Tcp(tcp) => {
                let (dst, segment) = self.tcp_frame(tcp, ip);
                (dst, PROTO_TCP, segment)
            }
            Frame::Ip {
                to,
                protocol,
                payload,
            } => (to.ip(), *protocol, payload.clone()),
            Frame::Ethernet { ethertype, payload } => {
                return (
                    *ethertype,
                    ethernet(dst_mac, GUEST_MAC, *ethertype, payload),
                );
            }
        };
        let packet = ipv4(ip, dst, protocol, &body);
        (
            ETHERTYPE_IPV4,
            ethernet(dst_mac, GUEST_MAC, ETHERTYPE_IPV4, &packet),
        )
    }

    fn segment(&mut self, endpoint: Endpoint, flags: Flags, payload: Vec<u8>) {
        let tcp = Tcp {
            dst: None,
            endpoint,
            flags,
            seq: Seq::Expected(0),
            ack: Seq::Expected(0),
            window: 0xffff,
            urgent: 0,
            options: Vec::new(),
            data_offset: None,
            payload: Payload::Bytes(payload),
        };
        let (_, segment) = self.tcp_frame(&tcp, &plain_header());
        let packet = ipv4(&plain_header(), GATEWAY, PROTO_TCP, &segment);
        self.send(ethernet(EthDst::Router, GUEST_MAC, ETHERTYPE_IPV4, &packet));
        self.deliver();
    }

    fn open(&mut self, guest: GuestPort, host: HostPort) {
        let endpoint = Endpoint::New(guest, host);
        let (guest_port, host_port) = self.ports(endpoint);
        self.segment(endpoint, Flags::Syn, Vec::new());
        let index = self.track(guest_port, host_port);
        self.segment(Endpoint::Tracked(index as u8), Flags::Ack, Vec::new());
    }

    fn answer(&mut self, conn: u8, data: &[u8], fin: bool) {
        if self.tracks.is_empty() {
            return;
        }
        let index = usize::from(conn) % self.tracks.len();
        let track = self.tracks[index];
        let flags = if track.router_ack.is_none() {
            Flags::SynAck // the router's SYN of a published connection
        } else if fin {
            Flags::FinAck
        } else {
            Flags::PshAck
        };
        let data = data[..data.len().min(1460)].to_vec();
        self.segment(Endpoint::Tracked(index as u8), flags, data);
    }

    fn host_action(&mut self, index: u8, action: &HostAction) {
        self.accept();
        if self.streams.is_empty() {
            return;
        }
        let index = usize::from(index) % self.streams.len();
        let stream = &mut self.streams[index];
        match action {
            HostAction::Write(len, byte) => {
                let _ = stream.write(&vec![*byte; usize::from(*len)]);
            }
            HostAction::Read => {
                let mut buffer = [0; 16 * 1024];
                while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
            }
            HostAction::ShutdownWrite => {
                let _ = stream.shutdown(Shutdown::Write);
            }
            HostAction::ShutdownRead => {
                let _ = stream.shutdown(Shutdown::Read);
            }
            HostAction::Close => drop(self.streams.swap_remove(index)),
            HostAction::Reset => reset_and_drop(self.streams.swap_remove(index)),
        }
        self.net.host_ready(self.epoll, EventSet::IN);
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Frame {
                frame,
                dst_mac,
                ip,
                mangle,
            } => {
                let (ethertype, mut bytes) = self.build(frame, *dst_mac, ip.as_ref());
                frames::mangle(&mut bytes, mangle, ethertype);
                self.send(bytes);
            }
            Step::Raw(bytes) => self.send(bytes.clone()),
            Step::Open(guest, host) => self.open(*guest, *host),
            Step::Answer { conn, data, fin } => self.answer(*conn, data, *fin),
            Step::Repeat(count) => {
                for _ in 0..usize::from(*count) % MAX_REPEAT {
                    self.net.guest_sent(&self.last_frame);
                }
                self.net.poll();
            }
            Step::Poll => self.net.poll(),
            Step::Timer => self.net.host_ready(self.timer, EventSet::IN),
            Step::HostEvents => {
                self.net.host_ready(self.epoll, EventSet::IN);
                self.accept();
            }
            Step::Millis(ms) => {
                self.net
                    .advance_clock(Duration::from_millis(u64::from(*ms)));
                self.net.poll();
            }
            Step::Seconds(s) => {
                self.net.advance_clock(Duration::from_secs(u64::from(*s)));
                self.net.poll();
            }
            Step::Connect => {
                if self.streams.len() < MAX_STREAMS
                    && let Ok(stream) = TcpStream::connect(self.published)
                {
                    let _ = stream.set_nonblocking(true);
                    self.streams.push(stream);
                    self.net.host_ready(self.epoll, EventSet::IN);
                }
            }
            Step::Host(index, action) => self.host_action(*index, action),
            Step::GuestReads(reads) => self.guest_reads = *reads,
            Step::GuestArp(answers) => self.guest_arp = *answers,
            Step::Reset => {
                self.net.reset();
                self.tracks.clear();
            }
        }
        if self.guest_reads {
            self.deliver();
        }
    }

    /// Takes the frames the router queued for the guest, checking each one.
    fn deliver(&mut self) {
        for _ in 0..3 {
            let mut asked = false;
            while let Some(frame) = self.net.to_guest().pop() {
                check_frame(&frame);
                self.learn(&frame);
                asked |= asks_for_the_guest(&frame);
            }
            if !(asked && self.guest_arp) {
                break;
            }
            // As a real guest would: its answer lets the router send what waited for it.
            self.net.guest_sent(&arp(2, GUEST_MAC, GUEST, GATEWAY));
            self.net.poll();
        }
    }

    /// Follows the router's TCP sequence numbers.
    fn learn(&mut self, frame: &[u8]) {
        let Some(segment) = router_tcp(frame) else {
            return;
        };
        let index = self.track(segment.dst_port, segment.src_port);
        let track = &mut self.tracks[index];
        track.router_next = segment
            .seq_number
            .0
            .wrapping_add(segment.segment_len() as i32) as u32;
        track.router_ack = segment.ack_number.map(|a| a.0 as u32);
    }
}

/// Whether `frame` is the router's ARP request for the guest's address.
fn asks_for_the_guest(frame: &[u8]) -> bool {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let Ok(packet) = ArpPacket::new_checked(ethernet.payload()) else {
        return false;
    };
    matches!(
        ArpRepr::parse(&packet),
        Ok(ArpRepr::EthernetIpv4 {
            operation: smoltcp::wire::ArpOperation::Request,
            target_protocol_addr,
            ..
        }) if target_protocol_addr == GUEST
    )
}

/// The router's TCP segment in `frame`, if it is one.
fn router_tcp(frame: &[u8]) -> Option<TcpRepr<'_>> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    let packet = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
    if packet.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(packet.payload()).ok()?;
    let (src, dst) = (
        IpAddress::Ipv4(packet.src_addr()),
        IpAddress::Ipv4(packet.dst_addr()),
    );
    TcpRepr::parse(&tcp, &src, &dst, &ChecksumCapabilities::default()).ok()
}

/// A frame from the router must be a well-formed one.
fn check_frame(frame: &[u8]) {
    assert!(frame.len() <= MAX_FRAME, "a {}-byte frame", frame.len());
    let ethernet = EthernetFrame::new_checked(frame).expect("an Ethernet frame");
    let checksums = ChecksumCapabilities::default();
    match ethernet.ethertype() {
        EthernetProtocol::Arp => {
            let packet = ArpPacket::new_checked(ethernet.payload()).expect("an ARP packet");
            ArpRepr::parse(&packet).expect("ARP that parses");
        }
        EthernetProtocol::Ipv4 => {
            let packet = Ipv4Packet::new_checked(ethernet.payload()).expect("an IPv4 packet");
            let ip = Ipv4Repr::parse(&packet, &checksums).expect("an IPv4 header that parses");
            let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
            let payload = packet.payload();
            match ip.next_header {
                IpProtocol::Tcp => {
                    let tcp = TcpPacket::new_checked(payload).expect("a TCP segment");
                    TcpRepr::parse(&tcp, &src, &dst, &checksums).expect("TCP that parses");
                }
                IpProtocol::Udp => {
                    let udp = UdpPacket::new_checked(payload).expect("a UDP datagram");
                    UdpRepr::parse(&udp, &src, &dst, &checksums).expect("UDP that parses");
                }
                IpProtocol::Icmp => {
                    let icmp = Icmpv4Packet::new_checked(payload).expect("an ICMP message");
                    Icmpv4Repr::parse(&icmp, &checksums).expect("ICMP that parses");
                }
                other => panic!("the router sent IP protocol {other}"),
            }
        }
        other => panic!("the router sent ethertype {other}"),
    }
}

fn reset_and_drop(stream: TcpStream) {
    vmm::devices::virtio::net::usernet::proxy::set_linger_zero(&stream);
}

fuzz_target!(|input: Input| {
    let mut harness = Harness::new();
    for step in input.steps.iter().take(MAX_STEPS) {
        harness.step(step);
    }
    harness.deliver();
    // A device reset drops every connection (its host sockets with a RST, so nothing lingers
    // in TIME-WAIT), then the streams of the harness go the same way.
    harness.net.reset();
    for stream in harness.streams.drain(..) {
        reset_and_drop(stream);
    }
});
