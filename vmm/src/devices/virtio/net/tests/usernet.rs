//! End-to-end tests of the user network: the device is activated on real virtqueues and driven
//! by a smoltcp guest (see [`guest`](super::guest)); host traffic is real sockets on 127.0.0.1.

use super::driver::Driver;
use super::guest::{Guest, tcp_socket, test_data};
use crate::devices::virtio::VirtioDevice;
use crate::devices::virtio::net::frame::{BACKLOG_FRAMES, HEADER_LEN, MAX_FRAME};
use crate::devices::virtio::net::usernet::dns::tests::{parse_answer, query_message};
use crate::devices::virtio::net::usernet::{Config, DNS, GATEWAY, GUEST, ROUTER_MAC};
use crate::devices::virtio::net::{DEFAULT_MAC, Net, NetError, NetMode, Publish};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint, IpProtocol, Ipv4Packet,
    Ipv4Repr,
};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A host echo server on 127.0.0.1: copies each connection back until EOF. Returns its port and
/// a handle that yields the bytes it echoed.
fn echo_server() -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buffer = [0; 8192];
        let mut echoed = 0;
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return echoed, // the guest's FIN
                Ok(n) => {
                    stream.write_all(&buffer[..n]).unwrap();
                    echoed += n;
                }
                Err(e) => panic!("echo server: {e}"),
            }
        }
    });
    (port, server)
}

#[test]
fn net_user_dhcp_then_tcp_to_the_host_loopback() {
    let mut guest = Guest::new(NetMode::User {
        publish: Vec::new(),
    });
    let dhcp = guest.sockets.add(dhcpv4::Socket::new());
    let (address, router, dns_servers) = guest.run_until("a DHCP lease", |g| {
        match g.sockets.get_mut::<dhcpv4::Socket>(dhcp).poll() {
            Some(dhcpv4::Event::Configured(config)) => {
                Some((config.address, config.router, config.dns_servers.to_vec()))
            }
            _ => None,
        }
    });
    assert_eq!(address, smoltcp::wire::Ipv4Cidr::new(GUEST, 24));
    assert_eq!(router, Some(GATEWAY));
    assert_eq!(dns_servers, [DNS]);
    guest.configure(address.address(), address.prefix_len(), router);

    let (port, server) = echo_server();
    let socket = guest.sockets.add(tcp_socket());
    let cx = guest.iface.context();
    guest
        .sockets
        .get_mut::<tcp::Socket>(socket)
        .connect(cx, (GATEWAY, port), 40000)
        .unwrap();

    // 256 KiB each way: many windows' worth, so backpressure and window updates are exercised.
    let data = test_data(256 * 1024);
    let (mut sent, mut received) = (0, Vec::new());
    guest.run_until("the echo", |g| {
        let s = g.tcp(socket);
        assert!(
            s.state() != tcp::State::Closed,
            "the connection closed early"
        );
        if s.can_send() && sent < data.len() {
            sent += s.send_slice(&data[sent..]).unwrap();
        }
        if s.can_recv() {
            s.recv(|buffer| {
                received.extend_from_slice(buffer);
                (buffer.len(), ())
            })
            .unwrap();
        }
        (received.len() == data.len()).then_some(())
    });
    assert!(received == data, "the echo differs");

    // A clean close both ways: our FIN reaches the server as EOF; its close comes back as FIN.
    guest.tcp(socket).close();
    guest.run_until("the connection to close", |g| {
        matches!(
            g.tcp(socket).state(),
            tcp::State::TimeWait | tcp::State::Closed
        )
        .then_some(())
    });
    assert_eq!(server.join().unwrap(), data.len());
    guest.run_until("the router to forget the connection", |g| {
        (open_connections(&g.net) == 0).then_some(())
    });
}

/// Appends what guest socket `s` has received to `into`.
fn take_received(s: &mut tcp::Socket<'static>, into: &mut Vec<u8>) {
    if s.can_recv() {
        s.recv(|b| {
            into.extend_from_slice(b);
            (b.len(), ())
        })
        .unwrap();
    }
}

fn open_connections(net: &Net) -> usize {
    net.backend.lock().unwrap().open_connections()
}

#[test]
fn net_user_publish_forwards_host_connections_to_the_guest() {
    let publish: Publish = "0:8080".parse().unwrap();
    let mut guest = Guest::user(vec![publish]);
    let (_, host_addr) = guest.net.published()[0];
    assert_eq!(host_addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));

    let listener = guest.sockets.add(tcp_socket());
    guest.tcp(listener).listen(8080).unwrap();
    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(host_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(b"ping from the host").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        reply
    });

    // The guest reads until the host's FIN, answers, and closes.
    let mut request = Vec::new();
    guest.run_until("the request", |g| {
        let s = g.tcp(listener);
        take_received(s, &mut request);
        (s.state() == tcp::State::CloseWait && !s.can_recv()).then_some(())
    });
    assert_eq!(request, b"ping from the host");
    let remote = guest.tcp(listener).remote_endpoint().unwrap();
    assert_eq!(
        remote.addr,
        IpAddress::Ipv4(GATEWAY),
        "published connections come from the gateway"
    );
    guest
        .tcp(listener)
        .send_slice(b"pong from the guest")
        .unwrap();
    guest.tcp(listener).close();
    guest.run_until("the host to get the reply", |_| {
        client.is_finished().then_some(())
    });
    assert_eq!(client.join().unwrap(), b"pong from the guest");
    guest.run_until("the router to forget the connection", |g| {
        (open_connections(&g.net) == 0).then_some(())
    });
}

/// A host client that connects to a published port, sends `request`, and reads the reply to
/// the end: the reply, or the error that ended it.
fn published_client(
    host_addr: std::net::SocketAddr,
    request: &'static [u8],
) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(host_addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.write_all(request)?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        Ok(reply)
    })
}

#[test]
fn net_user_publish_dials_again_until_the_guest_listens() {
    let publish: Publish = "0:8080".parse().unwrap();
    let mut guest = Guest::user(vec![publish]);
    let (_, host_addr) = guest.net.published()[0];
    let client = published_client(host_addr, b"early");

    // Nothing listens yet: the guest's stack refuses the router's SYNs for a while.
    let quiet = Instant::now() + Duration::from_millis(300);
    guest.run_until("300 ms without a listener", |_| {
        (Instant::now() > quiet).then_some(())
    });
    assert!(!client.is_finished(), "the host client was cut off");
    assert_eq!(open_connections(&guest.net), 1, "the connection is kept");

    let listener = guest.sockets.add(tcp_socket());
    guest.tcp(listener).listen(8080).unwrap();
    let mut request = Vec::new();
    guest.run_until("the early request", |g| {
        take_received(g.tcp(listener), &mut request);
        (request.len() == 5).then_some(())
    });
    assert_eq!(request, b"early");
    guest.tcp(listener).send_slice(b"served").unwrap();
    guest.tcp(listener).close();
    guest.run_until("the host to get the reply", |_| {
        client.is_finished().then_some(())
    });
    assert_eq!(client.join().unwrap().unwrap(), b"served");
}

#[test]
fn net_user_publish_gives_up_on_a_port_nothing_listens_on() {
    let publish: Publish = "0:8080".parse().unwrap();
    let config = Config {
        published_redial: Duration::from_millis(300),
        ..Config::default()
    };
    let mut guest = Guest::user_with(&[publish], config);
    let (_, host_addr) = guest.net.published()[0];
    let started = Instant::now();
    let client = published_client(host_addr, b"anyone?");
    guest.run_until("the host client to be turned away", |_| {
        client.is_finished().then_some(())
    });
    let waited = started.elapsed();
    match client.join().unwrap() {
        Ok(reply) => assert!(reply.is_empty(), "a reply from nowhere: {reply:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(
        waited >= Duration::from_millis(250),
        "turned away after {waited:?}, before the window closed"
    );
    guest.run_until("the router to forget the connection", |g| {
        (open_connections(&g.net) == 0).then_some(())
    });
}

#[test]
fn net_user_host_reset_resets_the_guest_connection() {
    let mut guest = Guest::user(Vec::new());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        crate::devices::virtio::net::usernet::proxy::set_linger_zero(&stream);
        let mut byte = [0];
        stream.read_exact(&mut byte).unwrap(); // the guest is connected: now reset it
    });
    let states = {
        let socket = guest.sockets.add(tcp_socket());
        let cx = guest.iface.context();
        guest
            .sockets
            .get_mut::<tcp::Socket>(socket)
            .connect(cx, (GATEWAY, port), 40010)
            .unwrap();
        guest.run_until("the connection", |g| g.tcp(socket).may_send().then_some(()));
        guest.tcp(socket).send_slice(b"x").unwrap();
        let mut states = Vec::new();
        guest.run_until("the reset", |g| {
            let state = g.tcp(socket).state();
            if states.last() != Some(&state) {
                states.push(state);
            }
            (state == tcp::State::Closed).then_some(())
        });
        states
    };
    server.join().unwrap();
    assert_eq!(states.last(), Some(&tcp::State::Closed));
    assert!(
        !states.contains(&tcp::State::TimeWait),
        "a reset, not a close: {states:?}"
    );
    guest.run_until("the router to forget the connection", |g| {
        (open_connections(&g.net) == 0).then_some(())
    });
}

#[test]
fn net_user_connections_are_limited() {
    use crate::devices::virtio::net::usernet::proxy::MAX_CONNECTIONS;
    let mut guest = Guest::user(Vec::new());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        while done_rx.try_recv().is_err() {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        // Connections the router made just before the guest saw them all established may still
        // wait in the backlog (the loop above sleeps between polls): take them too.
        while let Ok((stream, _)) = listener.accept() {
            held.push(stream);
        }
        held.len()
    });
    let small = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 2048]),
            tcp::SocketBuffer::new(vec![0; 2048]),
        )
    };
    let sockets: Vec<_> = (0..MAX_CONNECTIONS + 1)
        .map(|i| {
            let socket = guest.sockets.add(small());
            let cx = guest.iface.context();
            guest
                .sockets
                .get_mut::<tcp::Socket>(socket)
                .connect(cx, (GATEWAY, port), 20000 + i as u16)
                .unwrap();
            socket
        })
        .collect();
    let (established, refused) = guest.run_until("every connection to settle", |g| {
        let states: Vec<_> = sockets.iter().map(|&s| g.tcp(s).state()).collect();
        let established = states
            .iter()
            .filter(|&&s| s == tcp::State::Established)
            .count();
        let refused = states.iter().filter(|&&s| s == tcp::State::Closed).count();
        (established + refused == sockets.len()).then_some((established, refused))
    });
    assert_eq!((established, refused), (MAX_CONNECTIONS, 1));
    assert_eq!(open_connections(&guest.net), MAX_CONNECTIONS);
    done_tx.send(()).unwrap();
    assert_eq!(server.join().unwrap(), MAX_CONNECTIONS);
}

#[test]
fn net_user_busy_publish_port_is_an_error() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let publish: Publish = format!("{port}:80").parse().unwrap();
    let Err(error) = Net::new(
        NetMode::User {
            publish: vec![publish],
        },
        DEFAULT_MAC,
    ) else {
        panic!("a busy port was published");
    };
    assert!(matches!(error, NetError::Publish { .. }), "{error:?}");
    let message = format!("{:#}", anyhow::Error::from(error)); // as the VMM prints it
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.to_lowercase().contains("in use"), "{message}");
}

/// Connects the guest to `to` and returns every state the socket went through until it closed.
fn connect_and_watch(guest: &mut Guest, to: (Ipv4Addr, u16), local_port: u16) -> Vec<tcp::State> {
    let socket = guest.sockets.add(tcp_socket());
    let cx = guest.iface.context();
    guest
        .sockets
        .get_mut::<tcp::Socket>(socket)
        .connect(cx, to, local_port)
        .unwrap();
    let mut states = vec![tcp::State::SynSent];
    guest.run_until("the connection to be refused", |g| {
        let state = g.tcp(socket).state();
        if states.last() != Some(&state) {
            states.push(state);
        }
        (state == tcp::State::Closed).then_some(())
    });
    states
}

#[test]
fn net_user_refuses_connections_beyond_the_host_loopback() {
    let mut guest = Guest::user(Vec::new());
    let started = Instant::now();
    // Another address on the subnet (proxy ARP gets the SYN to the router, which refuses it).
    let states = connect_and_watch(&mut guest, (Ipv4Addr::new(10, 0, 2, 99), 80), 40001);
    assert_eq!(states, [tcp::State::SynSent, tcp::State::Closed]);
    // An address beyond the gateway: no outside network.
    let states = connect_and_watch(&mut guest, (Ipv4Addr::new(192, 0, 2, 1), 80), 40002);
    assert_eq!(states, [tcp::State::SynSent, tcp::State::Closed]);
    // A host port nobody listens on: the host refuses, so the guest is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let states = connect_and_watch(&mut guest, (GATEWAY, port), 40003);
    assert_eq!(states, [tcp::State::SynSent, tcp::State::Closed]);
    // Refusals are immediate, not timeouts.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

fn dns_query(guest: &mut Guest, id: u16, name: &str) -> (u16, u8, Vec<Ipv4Addr>) {
    let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 2048]);
    let socket = guest.sockets.add(udp::Socket::new(buffer(), buffer()));
    let s = guest.sockets.get_mut::<udp::Socket>(socket);
    s.bind(30000 + id).unwrap();
    s.send_slice(
        &query_message(id, name, 1),
        IpEndpoint::new(IpAddress::Ipv4(DNS), 53),
    )
    .unwrap();
    let answer = guest.run_until("the DNS answer", |g| {
        let s = g.sockets.get_mut::<udp::Socket>(socket);
        s.recv().ok().map(|(payload, meta)| {
            assert_eq!(meta.endpoint, IpEndpoint::new(IpAddress::Ipv4(DNS), 53));
            payload.to_vec()
        })
    });
    guest.sockets.remove(socket);
    parse_answer(&answer)
}

#[test]
fn net_user_dns_answers_host_internal_and_forwards_the_rest() {
    let mut guest = Guest::user(Vec::new());
    assert_eq!(
        dns_query(&mut guest, 1, "host.internal"),
        (1, 0, vec![GATEWAY])
    );
    // Forwarded to the host's resolver; "localhost" needs no network.
    let (id, rcode, addresses) = dns_query(&mut guest, 2, "localhost");
    assert_eq!((id, rcode), (2, 0));
    assert!(addresses.contains(&Ipv4Addr::LOCALHOST), "{addresses:?}");
}

fn ethernet_frame(
    ethertype: EthernetProtocol,
    dst: EthernetAddress,
    payload_len: usize,
) -> Vec<u8> {
    let mut frame = vec![0; 14 + payload_len];
    EthernetRepr {
        src_addr: EthernetAddress(DEFAULT_MAC),
        dst_addr: dst,
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    frame
}

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(DEFAULT_MAC),
        source_protocol_addr: GUEST,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut frame = ethernet_frame(
        EthernetProtocol::Arp,
        EthernetAddress::BROADCAST,
        repr.buffer_len(),
    );
    repr.emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
    frame
}

/// Who answered an ARP request in `frames`: (MAC, IP) pairs of the replies.
fn arp_replies(frames: &[Vec<u8>]) -> Vec<(EthernetAddress, Ipv4Addr)> {
    frames
        .iter()
        .filter_map(|frame| {
            let ethernet = EthernetFrame::new_checked(&frame[..]).ok()?;
            let packet = ArpPacket::new_checked(ethernet.payload()).ok()?;
            match ArpRepr::parse(&packet).ok()? {
                ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr,
                    source_protocol_addr,
                    ..
                } => Some((source_hardware_addr, source_protocol_addr)),
                _ => None,
            }
        })
        .collect()
}

/// Frames the device delivers within `wait`.
fn collect(driver: &mut Driver, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut frames = Vec::new();
    while Instant::now() < deadline {
        frames.extend(driver.receive());
        driver.wait_interrupt(Duration::from_millis(5));
    }
    frames
}

#[test]
fn net_user_arp_answers_the_router_addresses_and_the_subnet_but_not_the_guest() {
    let mut net = Net::new(
        NetMode::User {
            publish: Vec::new(),
        },
        DEFAULT_MAC,
    )
    .unwrap();
    let mut driver = Driver::activate(&mut net, true);
    let router = EthernetAddress(ROUTER_MAC);
    for (target, answered) in [
        (GATEWAY, true),
        (DNS, true),
        (Ipv4Addr::new(10, 0, 2, 99), true),
        (GUEST, false),
    ] {
        driver.send(&arp_request(target));
        let replies = arp_replies(&collect(&mut driver, Duration::from_millis(200)));
        let expected = if answered {
            vec![(router, target)]
        } else {
            vec![]
        };
        assert_eq!(replies, expected, "ARP for {target}");
    }
}

#[test]
fn net_user_ping_the_gateway() {
    let mut net = Net::new(
        NetMode::User {
            publish: Vec::new(),
        },
        DEFAULT_MAC,
    )
    .unwrap();
    let mut driver = Driver::activate(&mut net, false);
    let echo = Icmpv4Repr::EchoRequest {
        ident: 0x4242,
        seq_no: 7,
        data: b"are you there?",
    };
    let ip = Ipv4Repr {
        src_addr: GUEST,
        dst_addr: GATEWAY,
        next_header: IpProtocol::Icmp,
        payload_len: echo.buffer_len(),
        hop_limit: 64,
    };
    let mut frame = ethernet_frame(
        EthernetProtocol::Ipv4,
        EthernetAddress(ROUTER_MAC),
        ip.buffer_len() + echo.buffer_len(),
    );
    let mut packet = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.emit(&mut packet, &ChecksumCapabilities::default());
    echo.emit(
        &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
        &ChecksumCapabilities::default(),
    );
    driver.send(&frame);

    let frames = collect(&mut driver, Duration::from_millis(300));
    let replies: Vec<_> = frames
        .iter()
        .filter_map(|frame| {
            let ethernet = EthernetFrame::new_checked(&frame[..]).ok()?;
            let packet = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
            let ip = Ipv4Repr::parse(&packet, &ChecksumCapabilities::default()).ok()?;
            let icmp = Icmpv4Packet::new_checked(packet.payload()).ok()?;
            match Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).ok()? {
                Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                } => Some((
                    ethernet.dst_addr(),
                    ip.src_addr,
                    ip.dst_addr,
                    ident,
                    seq_no,
                    data.to_vec(),
                )),
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        replies,
        [(
            EthernetAddress(DEFAULT_MAC),
            GATEWAY,
            GUEST,
            0x4242,
            7,
            b"are you there?".to_vec()
        )]
    );
}

#[test]
fn net_user_survives_malformed_transmit_chains() {
    let mut net = Net::new(
        NetMode::User {
            publish: Vec::new(),
        },
        DEFAULT_MAC,
    )
    .unwrap();
    let mut driver = Driver::activate(&mut net, true);
    driver.send_raw(&[0; HEADER_LEN + MAX_FRAME + 1]); // a giant
    driver.send_raw(&[0; HEADER_LEN - 1]); // shorter than its header
    driver.send_raw(&[0xff; HEADER_LEN + 60]); // garbage
    driver.send(&arp_request(GATEWAY));
    let replies = arp_replies(&collect(&mut driver, Duration::from_millis(300)));
    assert_eq!(replies, [(EthernetAddress(ROUTER_MAC), GATEWAY)]);
}

#[test]
fn net_bogus_receive_ring_index_does_not_hang_the_device() {
    let mut net = Net::new(
        NetMode::User {
            publish: Vec::new(),
        },
        DEFAULT_MAC,
    )
    .unwrap();
    let mut driver = Driver::activate_without_rx_buffers(&mut net, true);
    driver.corrupt_rx_avail_idx();
    driver.send(&arp_request(GATEWAY)); // a reply to deliver into the broken ring
    std::thread::sleep(Duration::from_millis(100));
    // A device stuck in a loop on its I/O thread could not be reset (the reset joins it).
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        net.reset();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the device's I/O thread is stuck");
}

#[test]
fn net_user_backlog_is_bounded_when_the_guest_takes_nothing() {
    let mut net = Net::new(
        NetMode::User {
            publish: Vec::new(),
        },
        DEFAULT_MAC,
    )
    .unwrap();
    let mut driver = Driver::activate_without_rx_buffers(&mut net, false);
    // Each request gets a proxy-ARP reply; the guest posts no receive buffers, so they pile up.
    let flood = BACKLOG_FRAMES + 100;
    for _ in 0..flood {
        while !driver.can_send() {
            std::thread::sleep(Duration::from_millis(1));
        }
        driver.send(&arp_request(Ipv4Addr::new(10, 0, 2, 99)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (len, dropped) = loop {
        let mut backend = net.backend.lock().unwrap();
        let backlog = backend.to_guest();
        let (len, dropped) = (backlog.len(), backlog.dropped());
        drop(backend);
        if len as u64 + dropped == flood as u64 || Instant::now() > deadline {
            break (len, dropped);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(len, BACKLOG_FRAMES);
    assert_eq!(dropped, 100);
    // Buffers arrive: the backlog drains into them.
    driver.post_rx_buffers();
    let frames = collect(&mut driver, Duration::from_millis(500));
    assert_eq!(arp_replies(&frames).len(), BACKLOG_FRAMES);
}

#[test]
fn net_user_works_again_after_a_reset() {
    let mut net = Net::new(
        NetMode::User {
            publish: Vec::new(),
        },
        DEFAULT_MAC,
    )
    .unwrap();
    let mut guest = Guest::with_net(net, false);
    guest.configure(GUEST, 24, Some(GATEWAY));
    assert_eq!(
        dns_query(&mut guest, 3, "host.internal"),
        (3, 0, vec![GATEWAY])
    );
    guest.net.reset();
    net = guest.net;
    let mut guest = Guest::with_net(net, true);
    guest.configure(GUEST, 24, Some(GATEWAY));
    assert_eq!(
        dns_query(&mut guest, 4, "host.internal"),
        (4, 0, vec![GATEWAY])
    );
}

#[test]
fn net_config_space_and_features() {
    let net = Net::new(
        NetMode::User {
            publish: Vec::new(),
        },
        [2, 0, 0, 0, 0, 7],
    )
    .unwrap();
    assert_eq!(net.device_type(), 1);
    assert_eq!(net.queue_max_sizes(), &[256, 256]);
    assert_eq!(net.device_features(), (1 << 5) | (1 << 16));
    let mut config = [0xaa; 10];
    net.read_config(0, &mut config);
    assert_eq!(
        config,
        [2, 0, 0, 0, 0, 7, 1, 0, 0, 0],
        "mac, status = LINK_UP, then nothing"
    );
    let mut status = [0; 2];
    net.read_config(6, &mut status);
    assert_eq!(u16::from_le_bytes(status), 1);
    let mut far = [0xaa; 4];
    net.read_config(u64::MAX - 1, &mut far);
    assert_eq!(far, [0; 4]);
}
