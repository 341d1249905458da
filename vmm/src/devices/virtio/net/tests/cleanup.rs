//! The user network cleans up after connections that end badly: reset by the guest or the host,
//! left half-open by either, published connections the guest refuses, ignores or resets. Each
//! test opens many connections through the device (a smoltcp guest, real sockets on 127.0.0.1),
//! ends them one bad way, then checks that the router's connection table empties within its
//! (shortened) time-outs, that the guest's sockets were told, and that the process has exactly
//! the file descriptors it had before — so each runs in a process of its own ([`isolated`]),
//! where no other test opens or closes descriptors meanwhile.

use super::guest::{Guest, tcp_socket};
use crate::devices::virtio::net::usernet::Config;
use crate::devices::virtio::net::usernet::GATEWAY;
use crate::devices::virtio::net::usernet::proxy::set_linger_zero;
use crate::devices::virtio::net::{Net, Publish};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Connections per test.
const N: usize = 24;

/// Time-outs short enough for tests, long enough for a busy two-core machine.
fn config() -> Config {
    Config {
        guest_timeout: Duration::from_secs(2),
        keep_alive: Duration::from_millis(300),
        half_closed_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Runs the test `name` of this module again in a child process, alone, and checks that it
/// passed there; true in the parent (which is then done), false in the child (which does the
/// work). `/proc/self/fd` then counts only that test's descriptors.
fn isolated(name: &str) -> bool {
    const VAR: &str = "NOA_VMM_ISOLATED_TEST";
    if std::env::var(VAR).is_ok_and(|v| v == name) {
        return false;
    }
    // The harness names tests by their path below the crate.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([&format!("{module}::{name}"), "--exact", "--test-threads=1"])
        .env(VAR, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} in its own process: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Polls `guest` until `check` holds (panics naming `what` after the step time-out).
fn settle(guest: &mut Guest, what: &str, mut check: impl FnMut(&mut Guest) -> bool) {
    guest.run_until(what, |g| check(g).then_some(()));
}

fn open_connections(guest: &Guest) -> usize {
    guest.net.backend.lock().unwrap().open_connections()
}

/// Waits for the router's table to empty, then for every descriptor beyond `fds` to close.
fn assert_all_cleaned_up(guest: &mut Guest, fds: usize) {
    settle(guest, "the router's table to empty", |g| {
        open_connections(g) == 0
    });
    settle(guest, "the descriptors to close", |_| open_fds() == fds);
}

/// A host server on 127.0.0.1 whose accepted connections the test holds.
struct Host {
    listener: TcpListener,
    streams: Vec<TcpStream>,
}

impl Host {
    fn new() -> Host {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Host {
            listener,
            streams: Vec::new(),
        }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            self.streams.push(stream);
        }
    }
}

/// `n` guest connections to the host server, established on both sides.
fn connect_many(guest: &mut Guest, host: &mut Host, first_port: u16) -> Vec<SocketHandle> {
    let port = host.port();
    let sockets: Vec<_> = (0..N)
        .map(|i| {
            let socket = guest.sockets.add(tcp_socket());
            let cx = guest.iface.context();
            guest
                .sockets
                .get_mut::<tcp::Socket>(socket)
                .connect(cx, (GATEWAY, port), first_port + i as u16)
                .unwrap();
            socket
        })
        .collect();
    settle(guest, "every connection to be established", |g| {
        host.accept();
        host.streams.len() == N
            && sockets
                .iter()
                .all(|&s| g.tcp(s).state() == tcp::State::Established)
    });
    sockets
}

/// Whether the host side has learnt that its connection is gone: EOF or a reset, after any
/// data. Does not wait.
fn ended(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) => panic!("host side: {e}"),
        }
    }
}

fn all_closed(guest: &mut Guest, sockets: &[SocketHandle]) -> bool {
    sockets
        .iter()
        .all(|&s| guest.tcp(s).state() == tcp::State::Closed)
}

#[test]
fn net_user_cleanup_guest_resets() {
    if isolated("net_user_cleanup_guest_resets") {
        return;
    }
    let before = open_fds();
    let mut host = Host::new();
    let mut guest = Guest::user_with(&[], config());
    let fds = open_fds();
    let sockets = connect_many(&mut guest, &mut host, 41000);
    for &socket in &sockets {
        guest.tcp(socket).abort();
    }
    settle(&mut guest, "the router's table to empty", |g| {
        open_connections(g) == 0
    });
    for stream in &mut host.streams {
        let mut byte = [0];
        let error = stream.read(&mut byte).expect_err("a reset, not EOF");
        assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    }
    host.streams.clear();
    assert_all_cleaned_up(&mut guest, fds);
    drop((guest, host));
    assert_eq!(open_fds(), before);
}

#[test]
fn net_user_cleanup_host_closes_and_resets() {
    if isolated("net_user_cleanup_host_closes_and_resets") {
        return;
    }
    let mut host = Host::new();
    let mut guest = Guest::user_with(&[], config());
    let fds = open_fds();
    let sockets = connect_many(&mut guest, &mut host, 42000);
    // Half are closed (a FIN the guest never answers: its side stays open), half reset.
    for (i, stream) in host.streams.drain(..).enumerate() {
        if i % 2 == 1 {
            set_linger_zero(&stream);
        }
    }
    settle(&mut guest, "the guest's sockets to be reset", |g| {
        all_closed(g, &sockets)
    });
    assert_all_cleaned_up(&mut guest, fds);
}

#[test]
fn net_user_cleanup_half_open_connections() {
    if isolated("net_user_cleanup_half_open_connections") {
        return;
    }
    let mut host = Host::new();
    let mut guest = Guest::user_with(&[], config());
    let fds = open_fds();
    let sockets = connect_many(&mut guest, &mut host, 43000);
    // Half: the guest sends a request and its FIN; the host never reads nor closes.
    // The others: the host closes its writing half; the guest never closes.
    for (i, &socket) in sockets.iter().enumerate() {
        if i % 2 == 0 {
            guest.tcp(socket).send_slice(b"a request").unwrap();
            guest.tcp(socket).close();
        } else {
            host.streams[i].shutdown(Shutdown::Write).unwrap();
        }
    }
    let started = Instant::now();
    settle(&mut guest, "the half-open connections to be reset", |g| {
        all_closed(g, &sockets)
    });
    assert!(
        started.elapsed() >= config().half_closed_timeout,
        "reset before their time-out"
    );
    settle(&mut guest, "the host side to be told", |_| {
        host.streams.iter_mut().all(ended)
    });
    host.streams.clear();
    assert_all_cleaned_up(&mut guest, fds);
}

#[test]
fn net_user_idle_connections_stay_up_while_the_guest_answers() {
    let mut host = Host::new();
    let config = Config {
        guest_timeout: Duration::from_secs(1),
        keep_alive: Duration::from_millis(200),
        ..Config::default()
    };
    let mut guest = Guest::user_with(&[], config);
    let sockets = connect_many(&mut guest, &mut host, 44000);
    let idle = Instant::now() + Duration::from_secs(3);
    settle(&mut guest, "three idle seconds", |_| Instant::now() > idle);
    assert_eq!(open_connections(&guest), N);
    let (socket, stream) = (sockets[0], &mut host.streams[0]);
    assert_eq!(guest.tcp(socket).state(), tcp::State::Established);
    stream.write_all(b"still there?").unwrap();
    settle(&mut guest, "the host's bytes", |g| g.tcp(socket).can_recv());
}

/// Connects `n` host clients to the published address.
fn host_clients(addr: SocketAddr) -> Vec<TcpStream> {
    (0..N)
        .map(|_| {
            let stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
        })
        .collect()
}

#[test]
fn net_user_cleanup_published_connections_the_guest_refuses_or_resets() {
    if isolated("net_user_cleanup_published_connections_the_guest_refuses_or_resets") {
        return;
    }
    let publish: Publish = "127.0.0.1:0:8080".parse().unwrap();
    let mut guest = Guest::user_with(&[publish], config());
    let addr = guest.net.published()[0].1;
    let fds = open_fds();

    // Nothing listens on the guest port: the guest's stack refuses each with a RST.
    let mut clients = host_clients(addr);
    settle(&mut guest, "the host clients to be reset", |_| {
        clients.iter_mut().all(ended)
    });
    clients.clear();
    assert_all_cleaned_up(&mut guest, fds);

    // The guest accepts, then resets each connection.
    let listeners: Vec<_> = (0..N)
        .map(|_| {
            let socket = guest.sockets.add(tcp_socket());
            guest.tcp(socket).listen(8080).unwrap();
            socket
        })
        .collect();
    let mut clients = host_clients(addr);
    settle(&mut guest, "the guest to accept", |g| {
        listeners
            .iter()
            .all(|&s| g.tcp(s).state() == tcp::State::Established)
    });
    for &socket in &listeners {
        guest.tcp(socket).abort();
    }
    settle(&mut guest, "the router's table to empty", |g| {
        open_connections(g) == 0
    });
    settle(&mut guest, "the host clients to be reset", |_| {
        clients.iter_mut().all(ended)
    });
    clients.clear();
    assert_all_cleaned_up(&mut guest, fds);

    // The guest accepts, the host closes, the guest never does.
    for &socket in &listeners {
        guest.sockets.remove(socket);
    }
    let listeners: Vec<_> = (0..N)
        .map(|_| {
            let socket = guest.sockets.add(tcp_socket());
            guest.tcp(socket).listen(8080).unwrap();
            socket
        })
        .collect();
    let clients = host_clients(addr);
    settle(&mut guest, "the guest to accept", |g| {
        listeners
            .iter()
            .all(|&s| g.tcp(s).state() == tcp::State::Established)
    });
    drop(clients);
    settle(&mut guest, "the guest's sockets to be reset", |g| {
        all_closed(g, &listeners)
    });
    assert_all_cleaned_up(&mut guest, fds);
}

#[test]
fn net_user_cleanup_published_connections_the_guest_never_answers() {
    if isolated("net_user_cleanup_published_connections_the_guest_never_answers") {
        return;
    }
    let publish: Publish = "127.0.0.1:0:8080".parse().unwrap();
    let mut net = Net::user(
        &[publish],
        config(),
        crate::devices::virtio::net::DEFAULT_MAC,
    )
    .expect("the device builds");
    let addr = net.published()[0].1;
    // A guest that takes its frames and never answers one.
    let mut driver = super::driver::Driver::activate(&mut net, false);
    let fds = open_fds();
    let mut clients = host_clients(addr);
    let deadline = Instant::now() + super::guest::STEP_TIMEOUT;
    let mut most_open = 0;
    loop {
        driver.receive();
        driver.wait_interrupt(Duration::from_millis(5));
        let open = net.backend.lock().unwrap().open_connections();
        most_open = most_open.max(open);
        if most_open == N && open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
    }
    assert!(clients.iter_mut().all(ended), "a host client was not told");
    clients.clear();
    let deadline = Instant::now() + super::guest::STEP_TIMEOUT;
    while open_fds() != fds {
        assert!(Instant::now() < deadline, "descriptors left open");
        std::thread::sleep(Duration::from_millis(5));
    }
}
