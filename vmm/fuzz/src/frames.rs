//! Ethernet frames from a fuzzer-built description, for the user network's target: mostly
//! well-formed (so the router's parsers let them through to the code behind them), with every
//! field a real stack would keep fixed left to the fuzzer — TCP flags, sequence numbers and
//! options, IP options and fragments, lengths — and a [`Mangle`] applied last (a cut, bytes added,
//! a flipped bit, with the checksums made right again or not).

use arbitrary::Arbitrary;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, IpAddress, Ipv4Packet, TcpPacket,
    UdpPacket,
};
use std::net::Ipv4Addr;

pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub const ROUTER_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
pub const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// An IPv4 address, mostly the ones the router cares about.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Addr {
    Gateway,
    Dns,
    Guest,
    /// 10.0.2.N.
    Subnet(u8),
    Broadcast,
    Unspecified,
    Any([u8; 4]),
}

impl Addr {
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Addr::Gateway => GATEWAY,
            Addr::Dns => DNS,
            Addr::Guest => GUEST,
            Addr::Subnet(n) => Ipv4Addr::new(10, 0, 2, n),
            Addr::Broadcast => Ipv4Addr::BROADCAST,
            Addr::Unspecified => Ipv4Addr::UNSPECIFIED,
            Addr::Any(octets) => Ipv4Addr::from(octets),
        }
    }
}

/// Where the frame is addressed.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum EthDst {
    Router,
    Broadcast,
    Any([u8; 6]),
}

/// The IPv4 header's fields a guest stack normally fills in by itself.
#[derive(Arbitrary, Debug, Clone)]
pub struct IpHeader {
    pub src: Option<Addr>,
    /// Up to 40 bytes, padded to a multiple of 4.
    pub options: Vec<u8>,
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    pub frag_offset: u16,
    pub ttl: u8,
    /// Replaces the total length (else it is right).
    pub total_len: Option<u16>,
}

/// What happens to the finished frame.
#[derive(Arbitrary, Debug, Clone)]
pub enum Mangle {
    None,
    Truncate(u16),
    Append(Vec<u8>),
    /// XOR a byte; with `fix`, the IP and transport checksums are recomputed afterwards.
    Flip {
        at: u16,
        xor: u8,
        fix: bool,
    },
}

/// The DHCP message types, and others.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum DhcpKind {
    Discover,
    Request,
    Release,
    Decline,
    Inform,
    Other(u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum DnsName {
    HostInternal,
    Localhost,
    Labels(Vec<Vec<u8>>),
    /// The question section's bytes as they are.
    Raw(Vec<u8>),
}

/// A TCP option as it goes on the wire, or not quite.
#[derive(Arbitrary, Debug, Clone)]
pub enum TcpOpt {
    End,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    Sack(Vec<(u32, u32)>),
    Timestamp(u32, u32),
    Raw(Vec<u8>),
}

/// A TCP segment's fields, the ports and sequence numbers already chosen by the harness.
#[derive(Debug, Clone)]
pub struct TcpSegment {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// FIN, SYN, RST, PSH, ACK, URG, ECE, CWR from bit 0.
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    pub options: Vec<TcpOpt>,
    /// Replaces the data offset (in 32-bit words).
    pub data_offset: Option<u8>,
    pub payload: Vec<u8>,
}

/// A complete Ethernet frame around `payload`.
pub fn ethernet(dst: EthDst, src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let dst = match dst {
        EthDst::Router => ROUTER_MAC,
        EthDst::Broadcast => [0xff; 6],
        EthDst::Any(mac) => mac,
    };
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An ARP packet (Ethernet/IPv4) of any operation.
pub fn arp(op: u16, sender_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut packet = vec![0, 1, 0x08, 0, 6, 4];
    packet.extend_from_slice(&op.to_be_bytes());
    packet.extend_from_slice(&sender_mac);
    packet.extend_from_slice(&sender.octets());
    packet.extend_from_slice(&[0; 6]);
    packet.extend_from_slice(&target.octets());
    ethernet(EthDst::Broadcast, sender_mac, ETHERTYPE_ARP, &packet)
}

/// An IPv4 packet of `protocol` from `header`'s source (the guest by default) to `dst`.
pub fn ipv4(header: &IpHeader, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut options: Vec<u8> = header.options.iter().copied().take(40).collect();
    options.resize(options.len().div_ceil(4) * 4, 0);
    let header_len = 20 + options.len();
    let total_len = header
        .total_len
        .unwrap_or((header_len + payload.len()).min(0xffff) as u16);
    let src = header.src.map_or(GUEST, Addr::ip);
    let mut frag = header.frag_offset & 0x1fff;
    if header.dont_frag {
        frag |= 0x4000;
    }
    if header.more_frags {
        frag |= 0x2000;
    }
    let mut packet = Vec::with_capacity(header_len + payload.len());
    packet.push(0x40 | (header_len / 4) as u8);
    packet.push(header.tos);
    packet.extend_from_slice(&total_len.to_be_bytes());
    packet.extend_from_slice(&header.ident.to_be_bytes());
    packet.extend_from_slice(&frag.to_be_bytes());
    packet.push(header.ttl);
    packet.push(protocol);
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(&options);
    packet.extend_from_slice(payload);
    fix_checksums(&mut packet);
    packet
}

/// A plain IPv4 header from the guest.
pub fn plain_header() -> IpHeader {
    IpHeader {
        src: None,
        options: Vec::new(),
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl: 64,
        total_len: None,
    }
}

/// Recomputes the IPv4 header's checksum and, where the packet is long enough for it, the
/// TCP, UDP or ICMP checksum over whatever follows the header.
pub fn fix_checksums(packet: &mut [u8]) {
    if packet.len() < 20 {
        return;
    }
    let header_len = usize::from(packet[0] & 0xf) * 4;
    if header_len < 20 || header_len > packet.len() {
        return;
    }
    let src = IpAddress::Ipv4(Ipv4Addr::new(
        packet[12], packet[13], packet[14], packet[15],
    ));
    let dst = IpAddress::Ipv4(Ipv4Addr::new(
        packet[16], packet[17], packet[18], packet[19],
    ));
    let protocol = packet[9];
    {
        let body = &mut packet[header_len..];
        match protocol {
            PROTO_TCP if body.len() >= 20 => {
                TcpPacket::new_unchecked(body).fill_checksum(&src, &dst)
            }
            PROTO_UDP if body.len() >= 8 => {
                // Its own length field decides what the checksum covers; keep it honest.
                let len = body.len().min(0xffff) as u16;
                body[4..6].copy_from_slice(&len.to_be_bytes());
                UdpPacket::new_unchecked(body).fill_checksum(&src, &dst)
            }
            PROTO_ICMP if body.len() >= 8 => {
                body[2..4].fill(0);
                let sum = internet_checksum(body);
                body[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            _ => {}
        }
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..header_len]);
    ip.fill_checksum();
}

fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP segment (header, options, payload) with its checksum for `src` → `dst`.
pub fn tcp(segment: &TcpSegment, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut options = Vec::new();
    for option in &segment.options {
        match option {
            TcpOpt::End => options.push(0),
            TcpOpt::Nop => options.push(1),
            TcpOpt::Mss(mss) => {
                options.extend_from_slice(&[2, 4]);
                options.extend_from_slice(&mss.to_be_bytes());
            }
            TcpOpt::WindowScale(shift) => options.extend_from_slice(&[3, 3, *shift]),
            TcpOpt::SackPermitted => options.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                let blocks = &blocks[..blocks.len().min(4)];
                options.extend_from_slice(&[5, 2 + 8 * blocks.len() as u8]);
                for (left, right) in blocks {
                    options.extend_from_slice(&left.to_be_bytes());
                    options.extend_from_slice(&right.to_be_bytes());
                }
            }
            TcpOpt::Timestamp(value, echo) => {
                options.extend_from_slice(&[8, 10]);
                options.extend_from_slice(&value.to_be_bytes());
                options.extend_from_slice(&echo.to_be_bytes());
            }
            TcpOpt::Raw(bytes) => options.extend_from_slice(bytes),
        }
    }
    options.truncate(40);
    options.resize(options.len().div_ceil(4) * 4, 0);
    let offset = segment
        .data_offset
        .map_or((20 + options.len()) / 4, |o| usize::from(o & 0xf));
    let mut bytes = Vec::with_capacity(20 + options.len() + segment.payload.len());
    bytes.extend_from_slice(&segment.src_port.to_be_bytes());
    bytes.extend_from_slice(&segment.dst_port.to_be_bytes());
    bytes.extend_from_slice(&segment.seq.to_be_bytes());
    bytes.extend_from_slice(&segment.ack.to_be_bytes());
    bytes.push((offset as u8) << 4);
    bytes.push(segment.flags);
    bytes.extend_from_slice(&segment.window.to_be_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&segment.urgent.to_be_bytes());
    bytes.extend_from_slice(&options);
    bytes.extend_from_slice(&segment.payload);
    TcpPacket::new_unchecked(&mut bytes[..]).fill_checksum(&src.into(), &dst.into());
    bytes
}

/// A UDP datagram with its checksum (or none: 0 is allowed over IPv4).
pub fn udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let len = (8 + payload.len()).min(0xffff) as u16;
    let mut bytes = Vec::with_capacity(8 + payload.len());
    bytes.extend_from_slice(&ports.0.to_be_bytes());
    bytes.extend_from_slice(&ports.1.to_be_bytes());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(payload);
    if checksum {
        UdpPacket::new_unchecked(&mut bytes[..]).fill_checksum(&src.into(), &dst.into());
    }
    bytes
}

/// An ICMP message with its checksum.
pub fn icmp(kind: u8, code: u8, rest: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![kind, code, 0, 0];
    bytes.extend_from_slice(&rest.to_be_bytes());
    bytes.extend_from_slice(data);
    let sum = internet_checksum(&bytes);
    bytes[2..4].copy_from_slice(&sum.to_be_bytes());
    bytes
}

/// A DHCP message from the guest, built by smoltcp (so it parses).
pub fn dhcp(
    kind: DhcpKind,
    transaction_id: u32,
    client_ip: Ipv4Addr,
    requested_ip: Option<Ipv4Addr>,
    server_identifier: Option<Ipv4Addr>,
    broadcast: bool,
) -> Vec<u8> {
    let message_type = match kind {
        DhcpKind::Discover => DhcpMessageType::Discover,
        DhcpKind::Request => DhcpMessageType::Request,
        DhcpKind::Release => DhcpMessageType::Release,
        DhcpKind::Decline => DhcpMessageType::Decline,
        DhcpKind::Inform => DhcpMessageType::Inform,
        DhcpKind::Other(n) => DhcpMessageType::from(n),
    };
    let repr = DhcpRepr {
        message_type,
        transaction_id,
        secs: 0,
        client_hardware_address: EthernetAddress(GUEST_MAC),
        client_ip,
        your_ip: Ipv4Addr::UNSPECIFIED,
        server_ip: Ipv4Addr::UNSPECIFIED,
        router: None,
        subnet_mask: None,
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast,
        requested_ip,
        client_identifier: Some(EthernetAddress(GUEST_MAC)),
        server_identifier,
        parameter_request_list: Some(&[1, 3, 6]),
        dns_servers: None,
        max_size: Some(1500),
        lease_duration: None,
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let mut bytes = vec![0; repr.buffer_len()];
    match repr.emit(&mut DhcpPacket::new_unchecked(&mut bytes[..])) {
        Ok(()) => bytes,
        Err(_) => Vec::new(),
    }
}

/// A DNS query message.
pub fn dns_query(
    id: u16,
    flags: u16,
    qdcount: u16,
    name: &DnsName,
    qtype: u16,
    qclass: u16,
) -> Vec<u8> {
    let mut message = Vec::new();
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&flags.to_be_bytes());
    message.extend_from_slice(&qdcount.to_be_bytes());
    message.extend_from_slice(&[0; 6]);
    let labels = |message: &mut Vec<u8>, labels: &[&[u8]]| {
        for label in labels {
            message.push(label.len().min(255) as u8);
            message.extend_from_slice(&label[..label.len().min(255)]);
        }
        message.push(0);
    };
    match name {
        DnsName::HostInternal => labels(&mut message, &[b"host", b"internal"]),
        DnsName::Localhost => labels(&mut message, &[b"localhost"]),
        DnsName::Labels(parts) => {
            let parts: Vec<&[u8]> = parts.iter().take(16).map(Vec::as_slice).collect();
            labels(&mut message, &parts)
        }
        DnsName::Raw(bytes) => message.extend_from_slice(bytes),
    }
    message.extend_from_slice(&qtype.to_be_bytes());
    message.extend_from_slice(&qclass.to_be_bytes());
    message
}

/// Applies `mangle` to an Ethernet frame.
pub fn mangle(frame: &mut Vec<u8>, mangle: &Mangle, ethertype: u16) {
    match mangle {
        Mangle::None => {}
        Mangle::Truncate(len) => frame.truncate(usize::from(*len)),
        Mangle::Append(bytes) => frame.extend_from_slice(bytes),
        Mangle::Flip { at, xor, fix } => {
            if frame.is_empty() {
                return;
            }
            let at = usize::from(*at) % frame.len();
            frame[at] ^= xor;
            if *fix && ethertype == ETHERTYPE_IPV4 && frame.len() > 14 {
                fix_checksums(&mut frame[14..]);
            }
        }
    }
}
