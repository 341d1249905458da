//! The user network spoken to in raw TCP segments, without a device or a guest stack: for the
//! sequences a well-behaved stack does not send on request (a reset in the middle of the
//! handshake), and for checking exactly what the router answers. Host sockets are real, on
//! 127.0.0.1.

use super::guest::STEP_TIMEOUT;
use crate::devices::virtio::net::DEFAULT_MAC;
use crate::devices::virtio::net::NetBackend;
use crate::devices::virtio::net::usernet::{Config, GATEWAY, GUEST, ROUTER_MAC, UserNet};
use event_manager::EventSet;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};
use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// A TCP segment between the guest and the gateway, as the tests see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    guest_port: u16,
    host_port: u16,
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
}

struct Raw {
    net: UserNet,
    epoll: RawFd,
}

impl Raw {
    fn new(config: Config) -> Raw {
        let net = UserNet::with_config(&[], config).expect("the user network starts");
        let epoll = net.host_sources()[0].0;
        Raw { net, epoll }
    }

    /// Sends the guest's `segment` to 10.0.2.2.
    fn send(&mut self, segment: Segment) {
        let tcp = TcpRepr {
            src_port: segment.guest_port,
            dst_port: segment.host_port,
            control: segment.control,
            seq_number: TcpSeqNumber(segment.seq as i32),
            ack_number: segment.ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: 8192,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: GUEST,
            dst_addr: GATEWAY,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = vec![0; 14 + ip.buffer_len() + tcp.buffer_len()];
        let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr {
            src_addr: EthernetAddress(DEFAULT_MAC),
            dst_addr: EthernetAddress(ROUTER_MAC),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut ethernet);
        let checksums = ChecksumCapabilities::default();
        let mut packet = Ipv4Packet::new_unchecked(ethernet.payload_mut());
        ip.emit(&mut packet, &checksums);
        tcp.emit(
            &mut TcpPacket::new_unchecked(packet.payload_mut()),
            &IpAddress::Ipv4(GUEST),
            &IpAddress::Ipv4(GATEWAY),
            &checksums,
        );
        self.net.guest_sent(&frame);
        self.net.poll();
    }

    /// One pass of the router (host events, then its timers); the TCP segments it sent.
    fn pass(&mut self) -> Vec<Segment> {
        self.net.host_ready(self.epoll, EventSet::IN);
        self.net.poll();
        let mut segments = Vec::new();
        let mut arp_replies = Vec::new();
        while let Some(frame) = self.net.to_guest().pop() {
            let Ok(ethernet) = EthernetFrame::new_checked(&frame[..]) else {
                continue;
            };
            if let Some(reply) = arp_reply(&ethernet) {
                arp_replies.push(reply);
                continue;
            }
            let Ok(packet) = Ipv4Packet::new_checked(ethernet.payload()) else {
                continue;
            };
            let Ok(tcp) = TcpPacket::new_checked(packet.payload()) else {
                continue;
            };
            let (src, dst) = (packet.src_addr().into(), packet.dst_addr().into());
            let repr = TcpRepr::parse(&tcp, &src, &dst, &ChecksumCapabilities::default())
                .expect("the router's segments parse");
            segments.push(Segment {
                guest_port: repr.dst_port,
                host_port: repr.src_port,
                control: repr.control,
                seq: repr.seq_number.0 as u32,
                ack: repr.ack_number.map(|a| a.0 as u32),
            });
        }
        for reply in arp_replies {
            self.net.guest_sent(&reply);
            self.net.poll();
        }
        segments
    }

    /// Passes until `check` finds what it wants among the segments of a pass.
    fn until<T>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&mut Raw, &[Segment]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let segments = self.pass();
            if let Some(found) = check(self, &segments) {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The guest's answer if `ethernet` asks for its address.
fn arp_reply(ethernet: &EthernetFrame<&[u8]>) -> Option<Vec<u8>> {
    if ethernet.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let packet = ArpPacket::new_checked(ethernet.payload()).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&packet).ok()?
    else {
        return None;
    };
    if target_protocol_addr != GUEST {
        return None;
    }
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(DEFAULT_MAC),
        source_protocol_addr: GUEST,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut frame = vec![0; 14 + reply.buffer_len()];
    let mut out = EthernetFrame::new_unchecked(&mut frame[..]);
    EthernetRepr {
        src_addr: EthernetAddress(DEFAULT_MAC),
        dst_addr: source_hardware_addr,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut out);
    reply.emit(&mut ArpPacket::new_unchecked(out.payload_mut()));
    Some(frame)
}

fn syn(guest_port: u16, host_port: u16, seq: u32) -> Segment {
    Segment {
        guest_port,
        host_port,
        control: TcpControl::Syn,
        seq,
        ack: None,
    }
}

/// The router's SYN-ACK to `syn`, if `segments` has it.
fn syn_ack_to(syn: Segment, segments: &[Segment]) -> Option<Segment> {
    segments.iter().copied().find(|s| {
        (s.guest_port, s.host_port, s.control, s.ack)
            == (
                syn.guest_port,
                syn.host_port,
                TcpControl::Syn,
                Some(syn.seq + 1),
            )
    })
}

#[test]
fn net_user_guest_reset_during_the_handshake_leaves_nothing_behind() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut raw = Raw::new(Config::default());

    let first = syn(40000, port, 1000);
    raw.send(first);
    raw.until("the SYN-ACK", |_, segments| syn_ack_to(first, segments));
    assert_eq!(raw.net.open_connections(), 1);
    // The guest gives up in the middle of the handshake.
    raw.send(Segment {
        control: TcpControl::Rst,
        seq: 1001,
        ..first
    });
    raw.until("the router to drop the connection", |r, _| {
        (r.net.open_connections() == 0).then_some(())
    });
    let (mut host_side, _) = listener.accept().unwrap();
    let mut byte = [0];
    let error = host_side.read(&mut byte).expect_err("a reset, not EOF");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);

    // The same host port from another guest port: a fresh connection of its own, not the old
    // one's socket listening again.
    let second = syn(40001, port, 5000);
    raw.send(second);
    raw.until("the second SYN-ACK", |_, segments| {
        syn_ack_to(second, segments)
    });
    assert_eq!(raw.net.open_connections(), 1);
    let deadline = Instant::now() + STEP_TIMEOUT;
    while listener.accept().is_err() {
        assert!(Instant::now() < deadline, "no second host connection");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn net_user_a_refused_host_port_gets_a_reset() {
    // A port the router may not connect to, and one where nothing listens: either way the
    // guest's SYN is answered RST+ACK at once (ECONNREFUSED), and nothing is left open.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config {
        host_connect: std::sync::Arc::new(move |port| {
            (port != 9).then(|| std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, closed))
        }),
        ..Config::default()
    };
    let mut raw = Raw::new(config);
    for (guest_port, host_port) in [(40000, 9), (40001, 80)] {
        let segment = syn(guest_port, host_port, 7000);
        raw.send(segment);
        let reset = raw.until("the RST", |_, segments| {
            segments
                .iter()
                .copied()
                .find(|s| s.guest_port == guest_port)
        });
        assert_eq!(reset.control, TcpControl::Rst);
        assert_eq!(reset.ack, Some(7001), "RST+ACK of the SYN: ECONNREFUSED");
        assert_eq!(raw.net.open_connections(), 0);
    }
}

/// A UDP datagram from the guest's `src_port` to `dst`.
fn guest_udp(src_port: u16, dst: (std::net::Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    use smoltcp::wire::{UdpPacket, UdpRepr};
    let udp = UdpRepr {
        src_port,
        dst_port: dst.1,
    };
    let ip = Ipv4Repr {
        src_addr: GUEST,
        dst_addr: dst.0,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut frame = vec![0; 14 + ip.buffer_len() + ip.payload_len];
    let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
    EthernetRepr {
        src_addr: EthernetAddress(DEFAULT_MAC),
        dst_addr: EthernetAddress(ROUTER_MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut ethernet);
    let checksums = ChecksumCapabilities::default();
    let mut packet = Ipv4Packet::new_unchecked(ethernet.payload_mut());
    ip.emit(&mut packet, &checksums);
    udp.emit(
        &mut UdpPacket::new_unchecked(packet.payload_mut()),
        &IpAddress::Ipv4(GUEST),
        &IpAddress::Ipv4(dst.0),
        payload.len(),
        |buffer| buffer.copy_from_slice(payload),
        &checksums,
    );
    frame
}

#[test]
fn net_user_dns_query_from_port_zero_gets_no_answer() {
    // Found by the usernet fuzz target: the answer went to port 0, a datagram that no stack
    // accepts (source port 0 means there is no reply port).
    use crate::devices::virtio::net::usernet::DNS;
    use crate::devices::virtio::net::usernet::dns::tests::query_message;
    let mut raw = Raw::new(Config::default());
    let query = query_message(1, "host.internal", 1);
    raw.net.guest_sent(&guest_udp(0, (DNS, 53), &query));
    raw.net.poll();
    assert!(raw.net.to_guest().pop().is_none(), "an answer to port 0");
    raw.net.guest_sent(&guest_udp(5353, (DNS, 53), &query));
    raw.net.poll();
    let answer = raw.net.to_guest().pop().expect("an answer to port 5353");
    let ethernet = EthernetFrame::new_checked(&answer[..]).unwrap();
    let packet = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
    let udp = smoltcp::wire::UdpPacket::new_checked(packet.payload()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (53, 5353));
}
