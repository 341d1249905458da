//! Reading the guest's frames and writing the router's own replies — the ones the user network
//! answers itself instead of through its smoltcp interface: DHCP and DNS (UDP), ICMP echo, proxy
//! ARP for the rest of the subnet, and TCP resets for connections it refuses.
//!
//! Every parse verifies lengths and the IPv4 header checksum (smoltcp's wire module does); TCP
//! and UDP checksums from the guest are not verified ([`guest_checksums`]). A frame that does not
//! parse is simply not ours to answer.

use super::{GATEWAY, NETWORK, ROUTER_MAC};
use crate::devices::virtio::net::frame::MAX_FRAME;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};
use std::net::Ipv4Addr;

const ETHERNET_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// Where a guest's datagram came from, so that an answer can go back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// An IPv4 packet from the guest.
pub struct Ipv4Frame<'a> {
    pub src_mac: EthernetAddress,
    pub ip: Ipv4Repr,
    pub payload: &'a [u8],
}

/// A guest frame, sorted by what the router does with it.
pub enum GuestFrame<'a> {
    Arp(ArpRepr),
    Ipv4(Ipv4Frame<'a>),
    /// IPv6 and everything else: not routed.
    Other,
}

pub fn classify(frame: &[u8]) -> GuestFrame<'_> {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return GuestFrame::Other;
    };
    match ethernet.ethertype() {
        EthernetProtocol::Arp => ArpPacket::new_checked(ethernet.payload())
            .and_then(|packet| ArpRepr::parse(&packet))
            .map_or(GuestFrame::Other, GuestFrame::Arp),
        EthernetProtocol::Ipv4 => {
            let src_mac = ethernet.src_addr();
            let Ok(packet) = Ipv4Packet::new_checked(ethernet.payload()) else {
                return GuestFrame::Other;
            };
            // We reassemble nothing; a fragment is dropped (the guest's path MTU is ours).
            if packet.more_frags() || packet.frag_offset() != 0 {
                return GuestFrame::Other;
            }
            match Ipv4Repr::parse(&packet, &ChecksumCapabilities::default()) {
                Ok(ip) => GuestFrame::Ipv4(Ipv4Frame {
                    src_mac,
                    ip,
                    payload: packet.payload(),
                }),
                Err(_) => GuestFrame::Other,
            }
        }
        _ => GuestFrame::Other,
    }
}

/// How guest frames' checksums are treated: the IPv4 header's verified, TCP's and UDP's not —
/// the guest is told it need not compute them (`frame::user_network_words`): there is no wire
/// between it and us, and on PVM hosts the checksum is most of its cost per byte. Ours are
/// always computed.
pub fn guest_checksums() -> ChecksumCapabilities {
    let mut caps = ChecksumCapabilities::default();
    caps.tcp = smoltcp::phy::Checksum::Tx;
    caps.udp = smoltcp::phy::Checksum::Tx;
    caps
}

/// The UDP header and payload of `packet` (its checksum not verified: [`guest_checksums`]).
pub fn parse_udp<'a>(packet: &Ipv4Frame<'a>) -> Option<(UdpRepr, &'a [u8])> {
    let udp = UdpPacket::new_checked(packet.payload).ok()?;
    let src = IpAddress::Ipv4(packet.ip.src_addr);
    let dst = IpAddress::Ipv4(packet.ip.dst_addr);
    let repr = UdpRepr::parse(&udp, &src, &dst, &guest_checksums()).ok()?;
    Some((repr, udp.payload()))
}

/// The TCP segment of `packet` (its checksum not verified: [`guest_checksums`]).
pub fn parse_tcp<'a>(packet: &Ipv4Frame<'a>) -> Option<TcpRepr<'a>> {
    let tcp = TcpPacket::new_checked(packet.payload).ok()?;
    let src = IpAddress::Ipv4(packet.ip.src_addr);
    let dst = IpAddress::Ipv4(packet.ip.dst_addr);
    TcpRepr::parse(&tcp, &src, &dst, &guest_checksums()).ok()
}

/// An Ethernet + IPv4 frame from the router to `dst_mac`; `fill` writes the IP payload of
/// `payload_len` bytes. None if it would not fit one frame.
fn ipv4_frame(
    dst_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Option<Vec<u8>> {
    let len = ETHERNET_HEADER + IPV4_HEADER + payload_len;
    if len > MAX_FRAME {
        return None;
    }
    let mut buffer = vec![0; len];
    let mut ethernet = EthernetFrame::new_unchecked(&mut buffer[..]);
    EthernetRepr {
        src_addr: EthernetAddress(ROUTER_MAC),
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut ethernet);
    let mut ip = Ipv4Packet::new_unchecked(ethernet.payload_mut());
    let repr = Ipv4Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header: protocol,
        payload_len,
        hop_limit: 64,
    };
    repr.emit(&mut ip, &ChecksumCapabilities::default());
    fill(ip.payload_mut());
    Some(buffer)
}

/// A UDP datagram from the router's `src_ip:src_port` to `to`.
pub fn udp_frame(src_ip: Ipv4Addr, src_port: u16, to: Peer, payload: &[u8]) -> Option<Vec<u8>> {
    let repr = UdpRepr {
        src_port,
        dst_port: to.port,
    };
    let dst_ip = to.ip;
    ipv4_frame(
        to.mac,
        src_ip,
        dst_ip,
        IpProtocol::Udp,
        UDP_HEADER + payload.len(),
        |buffer| {
            let mut udp = UdpPacket::new_unchecked(buffer);
            repr.emit(
                &mut udp,
                &IpAddress::Ipv4(src_ip),
                &IpAddress::Ipv4(dst_ip),
                payload.len(),
                |data| data.copy_from_slice(payload),
                &ChecksumCapabilities::default(),
            );
        },
    )
}

/// The RST that refuses `segment` (RFC 9293 §3.10.7.1), as if from its destination. None for a
/// segment that is itself a reset (never answer one).
pub fn tcp_reset(packet: &Ipv4Frame<'_>, segment: &TcpRepr<'_>) -> Option<Vec<u8>> {
    if segment.control == TcpControl::Rst {
        return None;
    }
    let (seq_number, ack_number) = match segment.ack_number {
        Some(ack) => (ack, None),
        None => (
            TcpSeqNumber(0),
            Some(segment.seq_number + segment.segment_len()),
        ),
    };
    let reply = TcpRepr {
        src_port: segment.dst_port,
        dst_port: segment.src_port,
        control: TcpControl::Rst,
        seq_number,
        ack_number,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let (src, dst) = (packet.ip.dst_addr, packet.ip.src_addr);
    ipv4_frame(
        packet.src_mac,
        src,
        dst,
        IpProtocol::Tcp,
        reply.buffer_len(),
        |buffer| {
            let mut tcp = TcpPacket::new_unchecked(buffer);
            reply.emit(
                &mut tcp,
                &IpAddress::Ipv4(src),
                &IpAddress::Ipv4(dst),
                &ChecksumCapabilities::default(),
            );
        },
    )
}

/// The echo reply to `packet` if it is an ICMP echo request.
pub fn icmp_echo_reply(packet: &Ipv4Frame<'_>) -> Option<Vec<u8>> {
    let icmp = Icmpv4Packet::new_checked(packet.payload).ok()?;
    let Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    } = Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).ok()?
    else {
        return None;
    };
    let reply = Icmpv4Repr::EchoReply {
        ident,
        seq_no,
        data,
    };
    let (src, dst) = (packet.ip.dst_addr, packet.ip.src_addr);
    ipv4_frame(
        packet.src_mac,
        src,
        dst,
        IpProtocol::Icmp,
        reply.buffer_len(),
        |buffer| {
            let mut icmp = Icmpv4Packet::new_unchecked(buffer);
            reply.emit(&mut icmp, &ChecksumCapabilities::default());
        },
    )
}

/// Proxy ARP: the router answers for every address of the subnet except the guest's own (and the
/// network and broadcast addresses), so that the guest's connections to, say, 10.0.2.99 reach the
/// router and are refused there instead of timing out on ARP. The gateway's and the DNS server's
/// own addresses are left to the smoltcp interface, which answers for them. Address probes
/// (sender 0.0.0.0) get no answer, so a guest that checks an address before using it finds it free.
pub fn proxy_arp_reply(arp: &ArpRepr, guest_ip: Ipv4Addr) -> Option<Vec<u8>> {
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = *arp
    else {
        return None;
    };
    let target = target_protocol_addr;
    let network = u32::from(NETWORK) & 0xffff_ff00;
    let host = u32::from(target) & 0xff;
    if operation != ArpOperation::Request
        || u32::from(target) & 0xffff_ff00 != network
        || host == 0
        || host == 0xff
        || target == guest_ip
        || target == source_protocol_addr
        || source_protocol_addr.is_unspecified() // a probe for a free address (RFC 5227)
        || target == GATEWAY
        || target == super::DNS
    {
        return None;
    }
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(ROUTER_MAC),
        source_protocol_addr: target,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut buffer = vec![0; ETHERNET_HEADER + reply.buffer_len()];
    let mut ethernet = EthernetFrame::new_unchecked(&mut buffer[..]);
    EthernetRepr {
        src_addr: EthernetAddress(ROUTER_MAC),
        dst_addr: source_hardware_addr,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut ethernet);
    reply.emit(&mut ArpPacket::new_unchecked(ethernet.payload_mut()));
    Some(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest UDP payload that fits one frame.
    const MAX_UDP_PAYLOAD: usize = MAX_FRAME - ETHERNET_HEADER - IPV4_HEADER - UDP_HEADER;
    use crate::devices::virtio::net::usernet::GUEST;

    const GUEST_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn ipv4_of(frame: &[u8]) -> Ipv4Frame<'_> {
        match classify(frame) {
            GuestFrame::Ipv4(packet) => packet,
            _ => panic!("not an IPv4 frame"),
        }
    }

    #[test]
    fn net_udp_frames_parse_back() {
        let to = Peer {
            mac: GUEST_MAC,
            ip: GUEST,
            port: 4444,
        };
        let frame = udp_frame(GATEWAY, 53, to, b"hello").unwrap();
        let packet = ipv4_of(&frame);
        assert_eq!((packet.ip.src_addr, packet.ip.dst_addr), (GATEWAY, GUEST));
        let (udp, payload) = parse_udp(&packet).unwrap();
        assert_eq!(
            (udp.src_port, udp.dst_port, payload),
            (53, 4444, &b"hello"[..])
        );
        assert!(udp_frame(GATEWAY, 53, to, &[0; MAX_UDP_PAYLOAD + 1]).is_none());
        assert!(udp_frame(GATEWAY, 53, to, &[0; MAX_UDP_PAYLOAD]).is_some());
    }

    #[test]
    fn net_reset_answers_a_syn_and_never_a_reset() {
        let to = Peer {
            mac: GUEST_MAC,
            ip: GUEST,
            port: 0,
        };
        // A SYN from the guest, built as a router frame with the addresses swapped back.
        let syn = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(1000),
            ack_number: None,
            window_len: 1024,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let dst = Ipv4Addr::new(10, 0, 2, 99);
        let frame = ipv4_frame(to.mac, GUEST, dst, IpProtocol::Tcp, syn.buffer_len(), |b| {
            syn.emit(
                &mut TcpPacket::new_unchecked(b),
                &GUEST.into(),
                &dst.into(),
                &ChecksumCapabilities::default(),
            )
        })
        .unwrap();
        let packet = ipv4_of(&frame);
        let segment = parse_tcp(&packet).unwrap();
        let rst = tcp_reset(&packet, &segment).unwrap();
        let rst_packet = ipv4_of(&rst);
        assert_eq!(
            (rst_packet.ip.src_addr, rst_packet.ip.dst_addr),
            (dst, GUEST)
        );
        let rst_segment = parse_tcp(&rst_packet).unwrap();
        assert_eq!(rst_segment.control, TcpControl::Rst);
        assert_eq!(rst_segment.ack_number, Some(TcpSeqNumber(1001)));
        assert_eq!((rst_segment.src_port, rst_segment.dst_port), (80, 40000));
        assert!(tcp_reset(&rst_packet, &rst_segment).is_none());
    }

    #[test]
    fn net_proxy_arp_answers_the_subnet_but_not_the_guest() {
        let ask = |target: [u8; 4]| ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: GUEST_MAC,
            source_protocol_addr: GUEST,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::from(target),
        };
        let reply = proxy_arp_reply(&ask([10, 0, 2, 99]), GUEST).unwrap();
        let GuestFrame::Arp(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            ..
        }) = classify(&reply)
        else {
            panic!("not ARP");
        };
        assert_eq!(operation, ArpOperation::Reply);
        assert_eq!(source_hardware_addr, EthernetAddress(ROUTER_MAC));
        assert_eq!(source_protocol_addr, Ipv4Addr::new(10, 0, 2, 99));
        for target in [
            [10, 0, 2, 15],
            [10, 0, 2, 2],
            [10, 0, 2, 3],
            [10, 0, 2, 255],
            [10, 0, 3, 1],
            [8, 8, 8, 8],
        ] {
            assert!(proxy_arp_reply(&ask(target), GUEST).is_none(), "{target:?}");
        }
    }
}
