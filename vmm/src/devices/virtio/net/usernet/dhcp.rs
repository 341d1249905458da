//! The user network's DHCP server (RFC 2131), just enough for one guest: DISCOVER gets an OFFER
//! and REQUEST an ACK of the one address there is (10.0.2.15), with the gateway as router and
//! server identifier, the DNS server, a /24 mask and a day's lease. A REQUEST for any other
//! address gets a NAK; everything else (RELEASE, DECLINE, INFORM, other servers' business) is
//! ignored. smoltcp only has a DHCP client, so the replies are built here with its wire module.

use super::{DNS, GATEWAY, GUEST, NETMASK};
use smoltcp::wire::{DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress};
use std::net::Ipv4Addr;

/// Lease time offered, in seconds: a day, renewed by the guest at half of it.
pub const LEASE_SECS: u32 = 24 * 60 * 60;

/// DHCP option 6, the DNS servers (smoltcp's own field for it wants a `heapless::Vec`).
const OPT_DNS_SERVERS: u8 = 6;
/// BOOTP messages are at least 300 bytes (RFC 1542 §2.1); some clients drop shorter ones.
const MIN_MESSAGE_LEN: usize = 300;

/// A reply and where it goes.
#[derive(Debug)]
pub struct DhcpReply {
    /// The UDP payload.
    pub message: Vec<u8>,
    pub dst_mac: EthernetAddress,
    pub dst_ip: Ipv4Addr,
}

/// The server's answer to the DHCP message `request` (a UDP payload sent to port 67), if any.
pub fn reply(request: &[u8]) -> Option<DhcpReply> {
    let packet = DhcpPacket::new_checked(request).ok()?;
    let request = DhcpRepr::parse(&packet).ok()?;
    let message_type = match request.message_type {
        DhcpMessageType::Discover => DhcpMessageType::Offer,
        DhcpMessageType::Request => {
            if request
                .server_identifier
                .is_some_and(|server| server != GATEWAY)
            {
                return None; // the client chose another server's offer
            }
            // SELECTING/INIT-REBOOT name the address in option 50; RENEWING in ciaddr.
            let wanted = request.requested_ip.unwrap_or(request.client_ip);
            if wanted == GUEST {
                DhcpMessageType::Ack
            } else {
                DhcpMessageType::Nak
            }
        }
        _ => return None,
    };
    let nak = message_type == DhcpMessageType::Nak;
    let dns = DNS.octets();
    let dns_option = [DhcpOption {
        kind: OPT_DNS_SERVERS,
        data: &dns,
    }];
    let repr = DhcpRepr {
        message_type,
        transaction_id: request.transaction_id,
        secs: 0,
        client_hardware_address: request.client_hardware_address,
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: if nak { Ipv4Addr::UNSPECIFIED } else { GUEST },
        server_ip: GATEWAY,
        router: (!nak).then_some(GATEWAY),
        subnet_mask: (!nak).then_some(NETMASK),
        relay_agent_ip: request.relay_agent_ip,
        broadcast: request.broadcast,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(GATEWAY),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: (!nak).then_some(LEASE_SECS),
        renew_duration: None,
        rebind_duration: None,
        additional_options: if nak { &[] } else { &dns_option },
    };
    let mut message = vec![0; repr.buffer_len().max(MIN_MESSAGE_LEN)];
    repr.emit(&mut DhcpPacket::new_unchecked(&mut message))
        .ok()?;
    // RFC 2131 §4.1: a renewing client (ciaddr set) gets a unicast; a NAK, or a client that asked
    // for it, a broadcast; anyone else a unicast to its hardware address and the offered address.
    let broadcast_mac = EthernetAddress::BROADCAST;
    let (dst_mac, dst_ip) = if nak || (request.broadcast && request.client_ip.is_unspecified()) {
        (broadcast_mac, Ipv4Addr::BROADCAST)
    } else if !request.client_ip.is_unspecified() {
        (request.client_hardware_address, request.client_ip)
    } else {
        (request.client_hardware_address, GUEST)
    };
    Some(DhcpReply {
        message,
        dst_mac,
        dst_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn request(
        message_type: DhcpMessageType,
        requested_ip: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
    ) -> Vec<u8> {
        let repr = DhcpRepr {
            message_type,
            transaction_id: 0x1234_5678,
            secs: 3,
            client_hardware_address: CLIENT_MAC,
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
            requested_ip,
            client_identifier: Some(CLIENT_MAC),
            server_identifier: server,
            parameter_request_list: Some(&[1, 3, 6]),
            dns_servers: None,
            max_size: Some(1432),
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut buffer = vec![0; repr.buffer_len()];
        repr.emit(&mut DhcpPacket::new_unchecked(&mut buffer))
            .unwrap();
        buffer
    }

    /// Parses a reply with smoltcp's own parser (the one its DHCP client uses).
    fn parsed<T>(reply: &DhcpReply, check: impl FnOnce(DhcpRepr<'_>) -> T) -> T {
        let packet = DhcpPacket::new_checked(&reply.message[..]).unwrap();
        check(DhcpRepr::parse(&packet).unwrap())
    }

    #[test]
    fn net_dhcp_discover_gets_an_offer_of_the_guest_address() {
        let answer = reply(&request(DhcpMessageType::Discover, None, None)).unwrap();
        assert!(answer.message.len() >= MIN_MESSAGE_LEN);
        assert_eq!((answer.dst_mac, answer.dst_ip), (CLIENT_MAC, GUEST));
        parsed(&answer, |offer| {
            assert_eq!(offer.message_type, DhcpMessageType::Offer);
            assert_eq!(offer.transaction_id, 0x1234_5678);
            assert_eq!(offer.client_hardware_address, CLIENT_MAC);
            assert_eq!(offer.your_ip, GUEST);
            assert_eq!(offer.router, Some(GATEWAY));
            assert_eq!(offer.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
            assert_eq!(offer.server_identifier, Some(GATEWAY));
            assert_eq!(offer.lease_duration, Some(LEASE_SECS));
            let dns: Vec<Ipv4Addr> = offer.dns_servers.unwrap().iter().copied().collect();
            assert_eq!(dns, [DNS]);
        });
    }

    #[test]
    fn net_dhcp_request_gets_an_ack_or_a_nak() {
        let answer = reply(&request(
            DhcpMessageType::Request,
            Some(GUEST),
            Some(GATEWAY),
        ))
        .unwrap();
        let (message_type, your_ip) = parsed(&answer, |ack| (ack.message_type, ack.your_ip));
        assert_eq!((message_type, your_ip), (DhcpMessageType::Ack, GUEST));

        let wrong = Ipv4Addr::new(10, 0, 2, 50);
        let answer = reply(&request(
            DhcpMessageType::Request,
            Some(wrong),
            Some(GATEWAY),
        ))
        .unwrap();
        assert_eq!(
            (answer.dst_mac, answer.dst_ip),
            (EthernetAddress::BROADCAST, Ipv4Addr::BROADCAST)
        );
        let (message_type, your_ip) = parsed(&answer, |nak| (nak.message_type, nak.your_ip));
        assert_eq!(
            (message_type, your_ip),
            (DhcpMessageType::Nak, Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn net_dhcp_ignores_other_servers_and_other_messages() {
        let other = Some(Ipv4Addr::new(192, 168, 1, 1));
        assert!(reply(&request(DhcpMessageType::Request, Some(GUEST), other)).is_none());
        assert!(reply(&request(DhcpMessageType::Release, None, Some(GATEWAY))).is_none());
        assert!(reply(&request(DhcpMessageType::Offer, None, None)).is_none());
        assert!(reply(b"not dhcp").is_none());
        assert!(reply(&[0; 600]).is_none());
    }
}
