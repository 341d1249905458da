//! End-to-end tests of the vsock device: a test driver ([`driver::Guest`]) on real virtqueues on
//! one side, real Unix sockets on the other.

mod driver;

use super::connection::BUF_ALLOC;
use super::muxer::{MAX_CONNECTIONS, MAX_HANDSHAKES, RESET_BACKLOG_PAUSE};
use super::packet::{HEADER_BYTES, Header, op, shutdown};
use super::{Vsock, VsockError, queues};
use crate::devices::virtio::VirtioDevice;
use driver::{CID, Guest, PATIENCE, QUEUE_SIZE, assert_worker_idle, wait_until};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A short wait, for "nothing more happens".
const QUIET: Duration = Duration::from_millis(300);

fn socket_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("vsock")
        .tempdir_in("/tmp")
        .unwrap();
    let uds = dir.path().join("v.sock");
    (dir, uds)
}

fn port_path(uds: &Path, port: u32) -> PathBuf {
    PathBuf::from(format!("{}_{port}", uds.display()))
}

fn host_connect(uds: &Path) -> UnixStream {
    let stream = UnixStream::connect(uds).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads up to a newline, byte by byte (what follows stays in the stream).
fn read_line(stream: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).unwrap() == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(line).unwrap()
}

/// Whether the stream reaches end-of-file (or is reset) within PATIENCE, ignoring data.
fn reaches_eof(stream: &mut UnixStream) -> bool {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // timed out
        }
    }
}

/// Payload bytes the guest receives on its `guest_port`, until it has `len` of them; other
/// packets (credit updates) are skipped.
fn recv_data(guest: &mut Guest, guest_port: u32, len: usize) -> Vec<u8> {
    let mut data = Vec::new();
    while data.len() < len {
        let (header, payload) = guest.recv();
        assert_eq!(header.dst_port, guest_port, "{header:?}");
        match header.op {
            op::RW => data.extend(payload),
            op::CREDIT_UPDATE => {}
            _ => panic!("expected data, got {header:?}"),
        }
    }
    data
}

/// A host-initiated connection to the guest's `guest_port`, accepted: (host stream, host port).
fn open_from_host(guest: &mut Guest, uds: &Path, guest_port: u32) -> (UnixStream, u32) {
    let mut host = host_connect(uds);
    host.write_all(format!("CONNECT {guest_port}\n").as_bytes())
        .unwrap();
    let (request, _) = guest.recv();
    assert_eq!(request.op, op::REQUEST, "{request:?}");
    assert_eq!(request.dst_port, guest_port);
    let host_port = request.src_port;
    guest.send(&guest.header(op::RESPONSE, guest_port, host_port), &[]);
    assert_eq!(read_line(&mut host), format!("OK {host_port}\n"));
    (host, host_port)
}

#[test]
fn vsock_identity_and_config_space() {
    let (_dir, uds) = socket_dir();
    let device = Vsock::new(0x1234_5678, &uds).unwrap();
    assert_eq!(device.device_type(), 19);
    assert_eq!(device.queue_max_sizes(), [256, 256, 256]);
    assert_eq!(device.device_features(), 1, "VIRTIO_VSOCK_F_STREAM");
    let mut config = [0xffu8; 12];
    device.read_config(0, &mut config);
    assert_eq!(config, [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0]);
    // The driver reads the two halves as 32-bit fields.
    let (mut low, mut high) = ([0u8; 4], [0u8; 4]);
    device.read_config(0, &mut low);
    device.read_config(4, &mut high);
    assert_eq!(
        (u32::from_le_bytes(low), u32::from_le_bytes(high)),
        (0x1234_5678, 0)
    );
    let mut far = [0xffu8; 4];
    device.read_config(u64::MAX - 1, &mut far);
    assert_eq!(far, [0; 4]);
}

#[test]
fn vsock_new_binds_the_listener_and_refuses_paths_in_use() {
    let (dir, uds) = socket_dir();
    // Reserved and oversized CIDs.
    for cid in [0, 1, 2, u64::from(u32::MAX), u64::MAX] {
        let error = Vsock::new(cid, &uds).err().unwrap();
        assert!(matches!(error, VsockError::Cid { .. }), "{cid}: {error}");
    }
    assert!(!uds.exists(), "a refused CID binds nothing");

    // A regular file is never replaced.
    std::fs::write(&uds, b"precious").unwrap();
    let error = Vsock::new(CID, &uds).err().unwrap();
    assert!(matches!(error, VsockError::NotASocket { .. }), "{error}");
    assert!(error.to_string().contains(&uds.display().to_string()));
    assert_eq!(std::fs::read(&uds).unwrap(), b"precious");
    std::fs::remove_file(&uds).unwrap();

    // A live listener (another VMM) is in use.
    let other = UnixListener::bind(&uds).unwrap();
    let error = Vsock::new(CID, &uds).err().unwrap();
    assert!(matches!(error, VsockError::InUse { .. }), "{error}");
    assert!(error.to_string().contains(&uds.display().to_string()));
    // Once it is gone its socket file is stale, and replaced.
    drop(other);
    assert!(uds.exists());
    let device = Vsock::new(CID, &uds).unwrap();
    UnixStream::connect(&uds).expect("the device listens");
    drop(device);
    assert!(!uds.exists(), "the device removes its socket file");

    // A directory that does not exist.
    let error = Vsock::new(CID, &dir.path().join("no/such/dir/v.sock"))
        .err()
        .unwrap();
    assert!(matches!(error, VsockError::Bind { .. }), "{error}");
    assert!(error.to_string().contains("no/such/dir/v.sock"), "{error}");
}

#[test]
fn vsock_host_to_guest_connect_data_both_ways_and_shutdown() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 16);
    let mut host = host_connect(&uds);
    host.write_all(b"CONNECT 5000\n").unwrap();

    let (request, payload) = guest.recv();
    assert!(
        guest.interrupted(),
        "the first used buffer interrupts (used_event 0)"
    );
    assert_eq!(request.op, op::REQUEST);
    assert!(payload.is_empty());
    assert_eq!(request.dst_port, 5000);
    assert!(request.src_port >= 1024, "host port {}", request.src_port);
    assert_eq!(
        request.buf_alloc, BUF_ALLOC,
        "our credit rides on the REQUEST"
    );
    assert_eq!(request.fwd_cnt, 0);
    let host_port = request.src_port;

    guest.send(&guest.header(op::RESPONSE, 5000, host_port), &[]);
    assert_eq!(read_line(&mut host), format!("OK {host_port}\n"));

    // Host → guest.
    host.write_all(b"hello, guest").unwrap();
    assert_eq!(recv_data(&mut guest, 5000, 12), b"hello, guest");

    // Guest → host, in two packets.
    guest.send(&guest.header(op::RW, 5000, host_port), b"hello, ");
    guest.send(&guest.header(op::RW, 5000, host_port), b"host");
    let mut got = [0u8; 11];
    host.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello, host");

    // Our forwarded count reaches the guest on request.
    guest.send(&guest.header(op::CREDIT_REQUEST, 5000, host_port), &[]);
    let (update, _) = guest.recv();
    assert_eq!(update.op, op::CREDIT_UPDATE);
    assert_eq!((update.buf_alloc, update.fwd_cnt), (BUF_ALLOC, 11));

    // The guest will send no more: the host reads end-of-file, and can still write.
    let mut bye = guest.header(op::SHUTDOWN, 5000, host_port);
    bye.flags = shutdown::SEND;
    guest.send(&bye, &[]);
    assert_eq!(host.read(&mut got).unwrap(), 0);
    host.write_all(b"bye").unwrap();
    assert_eq!(recv_data(&mut guest, 5000, 3), b"bye");

    // The host closes: the guest hears it can neither send nor receive more, and resets.
    drop(host);
    let (closing, _) = guest.recv();
    assert_eq!(closing.op, op::SHUTDOWN, "{closing:?}");
    assert_eq!(closing.flags, shutdown::BOTH);
    assert_eq!(guest.connections(), 1);
    guest.send(&guest.header(op::RST, 5000, host_port), &[]);
    wait_until("the connection to go", || guest.connections() == 0);
    assert!(guest.try_recv(QUIET).is_none(), "nothing answers an RST");
}

#[test]
fn vsock_guest_to_host_connect_echo_and_close() {
    let (_dir, uds) = socket_dir();
    let listener = UnixListener::bind(port_path(&uds, 6000)).unwrap();
    let mut guest = Guest::new(&uds, 16);

    guest.send(&guest.header(op::REQUEST, 40000, 6000), &[]);
    let (response, _) = guest.recv();
    assert_eq!(response.op, op::RESPONSE, "{response:?}");
    assert_eq!((response.src_port, response.dst_port), (6000, 40000));
    assert_eq!(response.buf_alloc, BUF_ALLOC);
    let (mut host, _) = listener.accept().unwrap();
    host.set_read_timeout(Some(PATIENCE)).unwrap();

    guest.send(&guest.header(op::RW, 40000, 6000), b"ping");
    let mut got = [0u8; 4];
    host.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    host.write_all(b"pong").unwrap();
    assert_eq!(recv_data(&mut guest, 40000, 4), b"pong");

    // A guest close (SHUTDOWN both) is answered with an RST, and the host reads end-of-file.
    let mut close = guest.header(op::SHUTDOWN, 40000, 6000);
    close.flags = shutdown::BOTH;
    guest.send(&close, &[]);
    let (reset, _) = guest.recv();
    assert_eq!(reset.op, op::RST, "{reset:?}");
    assert_eq!((reset.src_port, reset.dst_port), (6000, 40000));
    assert_eq!(host.read(&mut got).unwrap(), 0);
    assert_eq!(guest.connections(), 0);

    // Packets for the closed connection get an RST; an RST gets nothing.
    guest.send(&guest.header(op::RW, 40000, 6000), b"late");
    assert_eq!(guest.recv().0.op, op::RST);
    guest.send(&guest.header(op::RST, 40000, 6000), &[]);
    assert!(guest.try_recv(QUIET).is_none());
}

#[test]
fn vsock_guest_request_without_a_host_listener_gets_rst() {
    let (dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 16);
    // No socket at all.
    guest.send(&guest.header(op::REQUEST, 40001, 6001), &[]);
    let (reset, _) = guest.recv();
    assert_eq!(reset.op, op::RST, "{reset:?}");
    assert_eq!((reset.src_port, reset.dst_port), (6001, 40001));
    // A socket file nobody listens on, and a file that is not a socket.
    drop(UnixListener::bind(port_path(&uds, 6002)).unwrap());
    std::fs::write(port_path(&uds, 6003), b"").unwrap();
    for port in [6002, 6003] {
        guest.send(&guest.header(op::REQUEST, 40002, port), &[]);
        let (reset, _) = guest.recv();
        assert_eq!((reset.op, reset.src_port), (op::RST, port), "{reset:?}");
    }
    assert_eq!(guest.connections(), 0);
    drop(dir);
}

#[test]
fn vsock_host_to_guest_never_exceeds_the_guest_credit() {
    let (_dir, uds) = socket_dir();
    // Small receive buffers (300 bytes of payload), and 1000 bytes of buffer for the stream.
    let mut guest = Guest::new(&uds, 0);
    guest.rx_buf = HEADER_BYTES as u32 + 300;
    guest.post_rx(16);
    let mut host = host_connect(&uds);
    host.write_all(b"CONNECT 5000\n").unwrap();
    let (request, _) = guest.recv();
    let host_port = request.src_port;
    let mut response = guest.header(op::RESPONSE, 5000, host_port);
    response.buf_alloc = 1000;
    guest.send(&response, &[]);
    assert_eq!(read_line(&mut host), format!("OK {host_port}\n"));

    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    host.write_all(&data).unwrap();
    let mut received = Vec::new();
    let mut fwd_cnt = 0u32;
    while received.len() < data.len() {
        // Everything the device may send within the credit arrives; then it asks for more.
        let mut window = 0;
        let mut asked = false;
        while let Some((header, payload)) = guest.try_recv(QUIET) {
            match header.op {
                op::RW => {
                    assert!(payload.len() <= 300, "a packet bigger than the buffer");
                    window += payload.len();
                    received.extend(payload);
                }
                op::CREDIT_REQUEST => asked = true,
                _ => panic!("unexpected {header:?}"),
            }
        }
        let expected = (data.len() - fwd_cnt as usize).min(1000);
        assert_eq!(
            window, expected,
            "the device used exactly the credit it had"
        );
        if received.len() < data.len() {
            assert!(asked, "a starved sender asks for credit");
        }
        // The guest's application consumed it all: more credit.
        fwd_cnt = received.len() as u32;
        let mut update = guest.header(op::CREDIT_UPDATE, 5000, host_port);
        update.buf_alloc = 1000;
        update.fwd_cnt = fwd_cnt;
        guest.send(&update, &[]);
    }
    assert_eq!(received, data);

    // A guest claiming to have consumed more than it was sent gets no credit at all.
    let mut bogus = guest.header(op::CREDIT_UPDATE, 5000, host_port);
    bogus.buf_alloc = 1000;
    bogus.fwd_cnt = fwd_cnt + 100_000;
    guest.send(&bogus, &[]);
    host.write_all(b"more").unwrap();
    while let Some((header, _)) = guest.try_recv(QUIET) {
        assert_ne!(header.op, op::RW, "data sent without credit");
    }
}

#[test]
fn vsock_guest_to_host_is_bounded_by_the_credit_we_grant() {
    let (_dir, uds) = socket_dir();
    let listener = UnixListener::bind(port_path(&uds, 6000)).unwrap();
    let mut guest = Guest::new(&uds, 32);
    guest.send(&guest.header(op::REQUEST, 40000, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RESPONSE);
    let (mut host, _) = listener.accept().unwrap();
    host.set_read_timeout(Some(PATIENCE)).unwrap();

    // The host does not read. A guest within its credit (BUF_ALLOC from what it last heard)
    // fills the host socket and then the device's buffer, never more.
    let chunk = vec![0x5a; 64 * 1024];
    let mut sent = 0usize;
    let mut fwd_cnt_heard = 0u32;
    let mut reset = false;
    while !reset {
        assert!(
            sent < 16 << 20,
            "the device took {sent} bytes without resetting"
        );
        let credit = (BUF_ALLOC as usize).saturating_sub(sent - fwd_cnt_heard as usize);
        // First within credit; once the host is stuck, the guest overruns it on purpose.
        let len = if credit > 0 {
            credit.min(chunk.len())
        } else {
            chunk.len()
        };
        guest.send(&guest.header(op::RW, 40000, 6000), &chunk[..len]);
        sent += len;
        let buffered = guest.gauges().buffered_bytes.load(Ordering::Relaxed);
        assert!(buffered <= BUF_ALLOC as usize, "{buffered} bytes buffered");
        while let Some((header, _)) = guest.try_recv(Duration::from_millis(20)) {
            match header.op {
                op::CREDIT_UPDATE => fwd_cnt_heard = header.fwd_cnt,
                op::RST => reset = true,
                _ => panic!("unexpected {header:?}"),
            }
        }
        if credit > 0 {
            assert!(!reset, "reset a guest within its credit ({sent} sent)");
        }
    }
    assert_eq!(guest.connections(), 0);
    // The host gets what was forwarded, then end-of-file.
    assert!(reaches_eof(&mut host));
}

#[test]
fn vsock_hostile_packets_are_dropped_or_reset_without_harm() {
    let (_dir, uds) = socket_dir();
    let listener = UnixListener::bind(port_path(&uds, 6000)).unwrap();
    let mut guest = Guest::new(&uds, 16);
    let header_len = HEADER_BYTES as u32;

    // Dropped silently: bad CIDs, a bad type, bad lengths, short or unreadable chains.
    let mut spoofed = guest.header(op::REQUEST, 40000, 6000);
    spoofed.src_cid = 99;
    guest.send(&spoofed, &[]);
    let mut elsewhere = guest.header(op::REQUEST, 40000, 6000);
    elsewhere.dst_cid = 7;
    guest.send(&elsewhere, &[]);
    let mut seqpacket = guest.header(op::REQUEST, 40000, 6000);
    seqpacket.type_ = 2;
    guest.send(&seqpacket, &[]);
    let mut liar = guest.header(op::RW, 40000, 6000);
    liar.len = 100; // but 10 bytes follow
    guest.stage_tx(&liar.to_bytes());
    guest.send_raw(&[(None, header_len, false), (None, 10, false)]);
    let mut huge = guest.header(op::RW, 40000, 6000);
    huge.len = u32::MAX;
    guest.stage_tx(&huge.to_bytes());
    guest.send_raw(&[(None, header_len, false), (None, 0x1_0000, false)]);
    guest.send_raw(&[(None, 10, false)]); // shorter than a header
    guest.send_raw(&[(None, header_len, true)]); // write-only: nothing to read
    guest.send_raw(&[(Some(driver::MEM_BYTES as u64 - 8), header_len, false)]); // past memory
    guest.send_raw(&[(Some(u64::MAX - 8), 64, false)]); // wraps around
    // Pseudo-random garbage headers on valid chains.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut raw = [0u8; HEADER_BYTES];
        for byte in raw.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = seed as u8;
        }
        guest.stage_tx(&raw);
        guest.send_raw(&[(None, header_len, false)]);
    }
    // Garbage with our CIDs and type (so it reaches the connection logic): unknown ops,
    // RW/SHUTDOWN/credit packets for connections that do not exist.
    for op in [
        0,
        8,
        99,
        u16::MAX,
        op::RW,
        op::SHUTDOWN,
        op::CREDIT_UPDATE,
        op::RESPONSE,
    ] {
        guest.send(&guest.header(op, 41000 + u32::from(op), 7000), &[]);
    }
    // Receive chains the device cannot use: too small, read-only. They come back empty.
    guest.rx.add_chain(&[(None, 10, true)]);
    guest.rx.add_chain(&[(None, driver::RX_BUF, false)]);
    // Whatever came of all that is answered by now (RSTs only, never to dropped packets).
    let mut resets = 0;
    while let Some((len, bytes)) = guest.recv_raw(QUIET) {
        if len == 0 {
            continue; // an unusable receive chain
        }
        let header = Header::from_bytes(bytes[..HEADER_BYTES].try_into().unwrap());
        assert_eq!(header.op, op::RST, "{header:?}");
        assert_ne!(header.dst_port, 40000, "answered a dropped packet");
        resets += 1;
    }
    assert!(resets >= 8, "{resets} RSTs for the 8 stray packets");

    // A garbage op on a live connection resets it; the device still serves new ones.
    guest.send(&guest.header(op::REQUEST, 40000, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RESPONSE);
    let (mut host, _) = listener.accept().unwrap();
    host.set_read_timeout(Some(PATIENCE)).unwrap();
    guest.send(&guest.header(42, 40000, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RST);
    assert!(reaches_eof(&mut host));
    // So does a second REQUEST for a live connection, and data before it is accepted.
    guest.send(&guest.header(op::REQUEST, 40001, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RESPONSE);
    let (mut host, _) = listener.accept().unwrap();
    host.set_read_timeout(Some(PATIENCE)).unwrap();
    guest.send(&guest.header(op::REQUEST, 40001, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RST);
    assert!(reaches_eof(&mut host));
    guest.send(&guest.header(op::REQUEST, 40002, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RESPONSE);
    let (mut host, _) = listener.accept().unwrap();
    guest.send(&guest.header(op::RW, 40002, 6000), b"still alive");
    let mut got = [0u8; 11];
    host.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still alive");
}

#[test]
fn vsock_host_handshake_errors_close_the_stream() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 16);
    // Not a CONNECT line; a line too long; an end before the newline.
    for bad in [&b"HELLO\n"[..], &[b'C'; 100], b"CONNECT 5000"] {
        let mut host = host_connect(&uds);
        host.write_all(bad).unwrap();
        host.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(reaches_eof(&mut host), "{:?}", String::from_utf8_lossy(bad));
    }
    // The guest refuses: the stream closes without an OK.
    let mut host = host_connect(&uds);
    host.write_all(b"CONNECT 5001\n").unwrap();
    let (request, _) = guest.recv();
    assert_eq!(request.op, op::REQUEST);
    guest.send(&guest.header(op::RST, 5001, request.src_port), &[]);
    let mut rest = String::new();
    host.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "no OK after a refusal");
    // Nothing reached the guest for the bad lines.
    assert!(guest.try_recv(QUIET).is_none());
    assert_eq!(guest.connections(), 0);
}

#[test]
fn vsock_host_request_the_guest_ignores_times_out() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 16);
    let mut host = host_connect(&uds);
    host.write_all(b"CONNECT 5002\n").unwrap();
    let (request, _) = guest.recv();
    assert_eq!(request.op, op::REQUEST);
    let start = Instant::now();
    assert!(reaches_eof(&mut host));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // The guest heard of it, so it hears of its end.
    let (reset, _) = guest.recv();
    assert_eq!((reset.op, reset.src_port), (op::RST, request.src_port));
    // A host that gives up first is the same to the guest.
    let mut host = host_connect(&uds);
    host.write_all(b"CONNECT 5003\n").unwrap();
    let (request, _) = guest.recv();
    drop(host);
    let (reset, _) = guest.recv();
    assert_eq!((reset.op, reset.src_port), (op::RST, request.src_port));
}

#[test]
fn vsock_host_bytes_sent_with_the_connect_line_wait_for_the_guest() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 16);
    let mut host = host_connect(&uds);
    host.write_all(b"CONNECT 5000\nearly bytes").unwrap();
    let (request, _) = guest.recv();
    assert_eq!(request.op, op::REQUEST);
    guest.send(&guest.header(op::RESPONSE, 5000, request.src_port), &[]);
    assert_eq!(read_line(&mut host), format!("OK {}\n", request.src_port));
    assert_eq!(recv_data(&mut guest, 5000, 11), b"early bytes");
}

#[test]
fn vsock_reset_closes_connections_and_the_listener_survives() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 16);
    let (mut host, _) = open_from_host(&mut guest, &uds, 5000);
    guest.device.reset();
    assert!(reaches_eof(&mut host), "a reset closes the host streams");
    // A host program connecting while the device is down waits for the next driver.
    let mut waiting = host_connect(&uds);
    waiting.write_all(b"CONNECT 5005\n").unwrap();
    guest.activate();
    guest.post_rx(16);
    let (request, _) = guest.recv();
    assert_eq!((request.op, request.dst_port), (op::REQUEST, 5005));
    guest.send(&guest.header(op::RESPONSE, 5005, request.src_port), &[]);
    assert_eq!(
        read_line(&mut waiting),
        format!("OK {}\n", request.src_port)
    );
    waiting.write_all(b"again").unwrap();
    assert_eq!(recv_data(&mut guest, 5005, 5), b"again");
}

#[test]
fn vsock_many_host_connections_get_distinct_ports() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 16);
    let mut hosts = Vec::new();
    let mut ports = std::collections::HashSet::new();
    for i in 0..20u32 {
        let (host, port) = open_from_host(&mut guest, &uds, 5000 + i % 2);
        assert!(ports.insert(port), "host port {port} reused");
        hosts.push((host, port, 5000 + i % 2));
    }
    // Each stream reaches its own connection.
    for (host, port, guest_port) in &mut hosts {
        host.write_all(format!("to {port}").as_bytes()).unwrap();
        let (header, payload) = guest.recv();
        assert_eq!(header.op, op::RW);
        assert_eq!((header.src_port, header.dst_port), (*port, *guest_port));
        assert_eq!(payload, format!("to {port}").as_bytes());
    }
    assert_eq!(guest.connections(), 20);
}

#[test]
fn vsock_a_guest_that_takes_no_rsts_is_paused_not_buffered() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 0);
    // Packets for connections that do not exist, each owed an RST, with no receive buffers.
    let total = RESET_BACKLOG_PAUSE + 64;
    let mut sent = 0;
    while sent < total {
        let batch = 32.min(total - sent);
        for i in 0..batch {
            let port = 10_000 + (sent + i) as u32;
            // Header-only, one descriptor each: a batch fills half the ring.
            guest.send_nowait(&guest.header(op::CREDIT_UPDATE, port, 7000), &[]);
        }
        sent += batch;
        if sent <= RESET_BACKLOG_PAUSE {
            guest.wait_tx_done();
        }
    }
    // The device stops taking transmit buffers once the backlog is full.
    std::thread::sleep(QUIET);
    assert_eq!(usize::from(guest.tx.used_idx()), RESET_BACKLOG_PAUSE);
    let pending = guest.gauges().pending_resets.load(Ordering::Relaxed);
    assert_eq!(pending, RESET_BACKLOG_PAUSE);
    // Receive buffers let it go on: every packet gets its RST, in order.
    guest.post_rx(QUEUE_SIZE / 2);
    for i in 0..total {
        let (header, _) = guest.recv();
        assert_eq!(header.op, op::RST);
        assert_eq!(header.dst_port, 10_000 + i as u32);
    }
    guest.wait_tx_done();
    assert_eq!(guest.gauges().pending_resets.load(Ordering::Relaxed), 0);
}

#[test]
fn vsock_host_programs_that_never_send_connect_are_capped() {
    let (_dir, uds) = socket_dir();
    let guest = Guest::new(&uds, 16);
    let mut idle: Vec<UnixStream> = (0..MAX_HANDSHAKES).map(|_| host_connect(&uds)).collect();
    wait_until("the handshakes", || {
        guest.gauges().handshakes.load(Ordering::Relaxed) == MAX_HANDSHAKES
    });
    // One more is closed at once.
    let mut extra = host_connect(&uds);
    assert!(reaches_eof(&mut extra));
    assert_eq!(
        guest.gauges().handshakes.load(Ordering::Relaxed),
        MAX_HANDSHAKES
    );
    // The silent ones are closed after the handshake timeout.
    assert!(reaches_eof(&mut idle[0]));
    wait_until("the handshakes to expire", || {
        guest.gauges().handshakes.load(Ordering::Relaxed) == 0
    });
    idle.clear();
}

#[test]
fn vsock_connections_are_capped() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if limit.rlim_cur < 4 * MAX_CONNECTIONS as u64 {
        eprintln!("skipped: needs {} fds", 4 * MAX_CONNECTIONS);
        return;
    }
    let (_dir, uds) = socket_dir();
    let listener = UnixListener::bind(port_path(&uds, 6000)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut accepted = Vec::new();
    let mut guest = Guest::new(&uds, 32);
    for i in 0..=MAX_CONNECTIONS as u32 {
        guest.send(&guest.header(op::REQUEST, 20_000 + i, 6000), &[]);
        let (reply, _) = guest.recv();
        let expected = if (i as usize) < MAX_CONNECTIONS {
            op::RESPONSE
        } else {
            op::RST
        };
        assert_eq!(reply.op, expected, "connection {i}");
        // Keep the listener's backlog short.
        while let Ok((stream, _)) = listener.accept() {
            accepted.push(stream);
        }
    }
    assert_eq!(guest.connections(), MAX_CONNECTIONS);
    // Freeing one makes room again.
    guest.send(&guest.header(op::RST, 20_000, 6000), &[]);
    guest.send(&guest.header(op::REQUEST, 30_000, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RESPONSE);
}

#[test]
fn vsock_queue_kick_without_buffers_and_unready_queues_are_harmless() {
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 0);
    guest.kick(queues::RX);
    guest.kick(queues::TX);
    guest.kick(2);
    assert!(guest.try_recv(QUIET).is_none());
    // Activating with a queue missing is an error, not a panic.
    guest.device.reset();
    let error = guest
        .device
        .activate(crate::devices::virtio::Activation {
            mem: guest.mem.clone(),
            queues: vec![guest.rx.device_queue(256, true)],
            queue_events: vec![],
            interrupt: std::sync::Arc::new(crate::devices::virtio::Interrupt::new(
                vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            )),
            features: 0,
        })
        .unwrap_err();
    assert!(error.to_string().contains("queues ready"), "{error}");
}

#[test]
fn vsock_io_thread_sleeps_while_connections_wait() {
    let (_dir, uds) = socket_dir();
    let listener = UnixListener::bind(port_path(&uds, 6000)).unwrap();
    let mut guest = Guest::new(&uds, 16);
    assert_worker_idle("with nothing connected");

    // The host has data, the guest has no room for it.
    let mut starved = host_connect(&uds);
    starved.write_all(b"CONNECT 5000\n").unwrap();
    let (request, _) = guest.recv();
    let starved_port = request.src_port;
    let mut response = guest.header(op::RESPONSE, 5000, starved_port);
    response.buf_alloc = 10;
    guest.send(&response, &[]);
    assert_eq!(read_line(&mut starved), format!("OK {starved_port}\n"));
    starved.write_all(&[7; 100]).unwrap();
    assert_eq!(recv_data(&mut guest, 5000, 10), [7; 10]);
    assert_eq!(guest.recv().0.op, op::CREDIT_REQUEST);
    assert_worker_idle("with host data and no credit");

    // The guest has data, the host program does not read (its socket and our buffer fill).
    guest.send(&guest.header(op::REQUEST, 40000, 6000), &[]);
    assert_eq!(guest.recv().0.op, op::RESPONSE);
    let (mut not_reading, _) = listener.accept().unwrap();
    let mut sent = 0;
    while sent < BUF_ALLOC as usize {
        let chunk = [1u8; 32 * 1024];
        guest.send(&guest.header(op::RW, 40000, 6000), &chunk);
        sent += chunk.len();
    }
    // Credit updates for what the host socket took.
    while let Some((update, _)) = guest.try_recv(QUIET) {
        assert_eq!((update.op, update.dst_port), (op::CREDIT_UPDATE, 40000));
    }
    assert_worker_idle("with guest data the host does not take");

    // A host program that sent half a CONNECT line.
    let mut halfway = host_connect(&uds);
    halfway.write_all(b"CONN").unwrap();
    assert_worker_idle("with half a CONNECT line");

    // A host that half-closes: the guest hears SHUTDOWN(SEND).
    let (half_closed, half_port) = open_from_host(&mut guest, &uds, 5001);
    half_closed.shutdown(std::net::Shutdown::Write).unwrap();
    let (shut, _) = guest.recv();
    assert_eq!(
        (shut.op, shut.flags, shut.src_port),
        (op::SHUTDOWN, shutdown::SEND, half_port)
    );
    assert_worker_idle("after the host half-closed");

    // The starved connection's host closes, its data still unread by the guest.
    drop(starved);
    assert_worker_idle("after a host closed with data the guest has no room for");
    assert!(guest.try_recv(QUIET).is_none(), "nothing without credit");

    // The guest will receive no more on the other connection; the host writes anyway.
    let mut no_more = guest.header(op::SHUTDOWN, 40000, 6000);
    no_more.flags = shutdown::RCV;
    guest.send(&no_more, &[]);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        not_reading.write_all(b"into the void").is_err(),
        "EPIPE after SHUTDOWN(RCV)"
    );
    assert_worker_idle("after the guest stopped receiving");

    // Credit for the starved connection: the rest arrives, then SHUTDOWN both.
    let mut update = guest.header(op::CREDIT_UPDATE, 5000, starved_port);
    update.buf_alloc = 1000;
    update.fwd_cnt = 10;
    guest.send(&update, &[]);
    assert_eq!(recv_data(&mut guest, 5000, 90), [7; 90]);
    let (closing, _) = guest.recv();
    assert_eq!((closing.op, closing.flags), (op::SHUTDOWN, shutdown::BOTH));
    drop(halfway);
}

#[test]
fn vsock_bulk_transfers_both_ways_keep_to_the_credit_and_never_stall() {
    const TOTAL: usize = 2 << 20;
    let pattern = |i: usize| (i * 31 % 253) as u8;
    let (_dir, uds) = socket_dir();
    let mut guest = Guest::new(&uds, 32);
    let (host, host_port) = open_from_host(&mut guest, &uds, 5000);

    // Host → guest: the guest grants 64 KiB and returns credit as its application reads, the
    // way Linux does.
    let mut writer = host.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
        writer.write_all(&data).unwrap();
    });
    const WINDOW: u32 = 64 * 1024;
    let mut consumed = 0usize;
    let mut announced = 0usize;
    while consumed < TOTAL {
        let (header, payload) = guest.recv();
        match header.op {
            op::RW => {}
            op::CREDIT_REQUEST => continue,
            _ => panic!("unexpected {header:?}"),
        }
        for (i, byte) in payload.iter().enumerate() {
            assert_eq!(*byte, pattern(consumed + i), "byte {}", consumed + i);
        }
        consumed += payload.len();
        assert!(consumed - announced <= WINDOW as usize, "over the credit");
        if consumed - announced >= WINDOW as usize / 2 || consumed == TOTAL {
            let mut update = guest.header(op::CREDIT_UPDATE, 5000, host_port);
            update.buf_alloc = WINDOW;
            update.fwd_cnt = consumed as u32;
            guest.send(&update, &[]);
            announced = consumed;
        }
    }
    feeder.join().unwrap();

    // Guest → host: the guest sends what our credit allows, learning our forwarded count from
    // what we send back; a host thread reads and checks everything.
    let mut reader = host.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        let mut got = vec![0u8; TOTAL];
        reader.read_exact(&mut got).unwrap();
        got.iter().enumerate().all(|(i, &byte)| byte == pattern(i))
    });
    // Credit updates carry our forwarded count; a credit request (owed from the first half, if
    // the device ran out of credit just as the data ended) is answered as Linux would.
    let on_packet = |guest: &mut Guest, header: Header, peer_fwd: &mut u32, buf_alloc: &mut u32| {
        match header.op {
            op::CREDIT_UPDATE => (*peer_fwd, *buf_alloc) = (header.fwd_cnt, header.buf_alloc),
            op::CREDIT_REQUEST => {
                let mut update = guest.header(op::CREDIT_UPDATE, 5000, host_port);
                update.buf_alloc = WINDOW;
                update.fwd_cnt = TOTAL as u32;
                guest.send(&update, &[]);
            }
            _ => panic!("unexpected {header:?}"),
        }
    };
    let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
    let mut sent = 0usize;
    let mut peer_fwd = 0u32;
    let mut buf_alloc = BUF_ALLOC;
    while sent < TOTAL {
        let in_flight = (sent as u32).wrapping_sub(peer_fwd);
        let credit = buf_alloc.saturating_sub(in_flight) as usize;
        if credit == 0 {
            // Wait for the device to say it forwarded more.
            let (header, _) = guest.recv();
            on_packet(&mut guest, header, &mut peer_fwd, &mut buf_alloc);
            continue;
        }
        let len = credit.min(16 * 1024).min(TOTAL - sent);
        guest.send(
            &guest.header(op::RW, 5000, host_port),
            &data[sent..sent + len],
        );
        sent += len;
        while let Some((header, _)) = guest.try_recv(Duration::ZERO) {
            on_packet(&mut guest, header, &mut peer_fwd, &mut buf_alloc);
        }
    }
    assert!(
        drain.join().unwrap(),
        "the host got other bytes than the guest sent"
    );
}
