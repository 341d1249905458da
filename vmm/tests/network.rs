//! Network for programs (issue 6), end to end: guest programs' sockets over the guest kernel's
//! stack and the VMM's networks.
//!
//! - servers in the guest reached from the host through `--publish` (python3's http.server with
//!   real `curl`; the Go `gonet serve` under 1,000 sequential and 1,000 concurrent requests);
//! - guest clients reaching a host loopback service through the gateway 10.0.2.2, by name
//!   through /etc/resolv.conf (`host.internal`), and refused at a closed host port;
//! - `sockets` (runtimes/tests/sockets) in the guest printing what it prints natively: AF_UNIX,
//!   TCP and UDP over loopback, two processes;
//! - `--net tap:NAME` inside a network namespace the test creates (root only).
//!
//! The programs come from `cargo xtask test` (`$NOA_TEST_PROGRAMS`, in `$NOA_TEST_IMAGE` under
//! /opt/tests). Every guest run has a `--timeout`, and every wait a deadline: a hang fails.

mod common;
#[path = "network/netns.rs"]
mod netns;
#[path = "network/server.rs"]
mod server;

use common::*;
use server::GuestServer;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GUEST_TESTS: &str = "/opt/tests";
/// `--timeout` of a guest server: longer than any test keeps it, which stops it sooner.
const SERVER_TIMEOUT_SECS: &str = "600";
/// How long a guest server may take to boot and start listening.
const START_LIMIT: Duration = Duration::from_secs(240);
const NATIVE_LIMIT: Duration = Duration::from_secs(120);
/// The 1,064 requests of the load through --publish (natively they take under a second; in a
/// guest on a PVM host ~0.1 s each, most of it the Go runtime's own system calls).
const LOAD_LIMIT: Duration = Duration::from_secs(400);

// --- what the tests need ---

/// The built test programs; fails (with what to run) when they are missing.
fn programs() -> PathBuf {
    let dir = test_programs();
    for program in ["sockets", "gonet"] {
        assert!(
            dir.join(program).is_file(),
            "no {program} in {}: run `cargo xtask test` (or `cargo xtask test --no-run` to only \
             build the test programs)",
            dir.display()
        );
    }
    dir
}

/// The test image; None (with the skip line) without /dev/kvm, a failure when it is missing.
fn guest_ready() -> Option<PathBuf> {
    if !have_kvm() {
        return None;
    }
    programs();
    let image = test_image();
    assert!(
        image.is_file(),
        "no test image at {}: run `cargo xtask test` (or `cargo xtask test --no-run`)",
        image.display()
    );
    Some(image)
}

fn gonet() -> PathBuf {
    programs().join("gonet")
}

/// A TCP port on the host's loopback that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl -sS --max-time 30 ARGS…` on the host.
fn curl(args: &[&str]) -> Run {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "30"]).args(args);
    run(&mut command, Duration::from_secs(60))
}

/// A run's exit code and streams, for a failure message.
fn report(what: &str, run: &Run) -> String {
    format!(
        "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    )
}

/// Starts `vmm --timeout 600 --snapshot [--verbose] --publish HOSTPORT:GUESTPORT IMAGE -- CMD`
/// on a free host port; returns the server and the host port. The VMM binds the port before
/// it boots: one that is taken meanwhile makes it exit at once with 2, and another is tried.
fn start_published(image: &PathBuf, guest_port: u16, command: &[&str]) -> (GuestServer, u16) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut vmm = vmm();
        vmm.args(["--timeout", SERVER_TIMEOUT_SECS, "--snapshot", "--verbose"])
            .args(["--publish", &format!("{port}:{guest_port}")])
            .arg(image)
            .arg("--")
            .args(command);
        let mut server = GuestServer::start(vmm);
        let settle = Instant::now() + Duration::from_secs(2);
        while Instant::now() < settle && server.exited().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        match server.exited() {
            None => return (server, port),
            Some(2) if server.stderr().contains("cannot listen") => last = server.report(),
            Some(_) => panic!("the VMM stopped at once\n{}", server.report()),
        }
    }
    panic!("no free host port for --publish after 5 tries; last:\n{last}");
}

/// Fetches `url` with curl until it answers `want` (the guest server may still be starting:
/// until it listens, the VMM accepts and then drops the host's connection); panics with the
/// VMM's output if the VMM exits or `limit` passes first.
fn fetch_when_served(server: &mut GuestServer, url: &str, want: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        if server.exited().is_some() {
            panic!("the guest server ended\n{}", server.report());
        }
        let run = curl(&["--max-time", "10", url]);
        if run.code == 0 && run.stdout == want {
            return;
        }
        last = Some(report(&format!("curl {url}"), &run));
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!(
        "{url} did not answer {want:?} within {limit:?}; last try: {}\n{}",
        last.unwrap_or_default(),
        server.report()
    );
}

/// A one-page HTTP server on the host's loopback: every GET answers "host saw GET PATH\n".
/// Returns its port and the peer addresses of the connections it took.
fn spawn_host_http_server() -> (u16, Arc<Mutex<Vec<std::net::IpAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Ok(peer) = stream.peer_addr() {
                seen.lock().unwrap().push(peer.ip());
            }
            std::thread::spawn(move || answer_one(stream));
        }
    });
    (port, peers)
}

fn answer_one(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("?");
    let body = format!("host saw GET {path}\n");
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

// --- servers in the guest, clients on the host (--publish) ---

#[test]
fn python_http_server_in_the_guest_serves_curl_on_the_host_through_publish() {
    let Some(image) = guest_ready() else { return };
    // `python3 -m http.server 8000` (on [::], dual-stack) serving the image's /etc.
    let (mut server, port) = start_published(
        &image,
        8000,
        &["python3", "-m", "http.server", "-d", "/etc", "8000"],
    );
    let base = format!("http://127.0.0.1:{port}");
    fetch_when_served(
        &mut server,
        &format!("{base}/hostname"),
        "noa\n",
        START_LIMIT,
    );

    let listing = curl(&[&format!("{base}/")]);
    assert_eq!(listing.code, 0, "{}", report("curl /", &listing));
    for entry in [
        "href=\"hostname\"",
        "href=\"passwd\"",
        "href=\"resolv.conf\"",
    ] {
        assert!(
            listing.stdout.contains(entry),
            "the listing of /etc lacks {entry}: {}",
            listing.stdout
        );
    }
    let missing = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{base}/no-such"),
    ]);
    assert_eq!(
        missing.stdout,
        "404",
        "{}",
        report("curl /no-such", &missing)
    );
    // A second connection after the others closed: the server is still there.
    let again = curl(&[&format!("{base}/resolv.conf")]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, "nameserver 10.0.2.3\n"),
        "{}",
        report("curl /resolv.conf", &again)
    );
    let code = server.stop();
    assert_no_panic(&server.stderr());
    assert_ne!(code, 125, "the guest crashed\n{}", server.report());
}

#[test]
fn go_server_in_the_guest_answers_1000_sequential_and_64_concurrent_requests() {
    let Some(image) = guest_ready() else { return };
    let serve = format!("{GUEST_TESTS}/gonet");
    let (mut server, port) = start_published(&image, 8000, &[&serve, "serve", ":8000"]);
    if let Err(why) = server.wait_for_line("listening ", START_LIMIT) {
        panic!("{why}");
    }
    let base = format!("http://127.0.0.1:{port}/");
    fetch_when_served(&mut server, &base, "hello from gonet\n", START_LIMIT);

    let mut load = Command::new(gonet());
    load.args(["load", &base, "-n", "1000", "-c", "64", "-m", "64"]);
    let mut load = GuestServer::start(load);
    let code = load.wait(LOAD_LIMIT);
    assert!(
        code == Some(0) && load.stdout().contains(": 0 failed"),
        "gonet load -n 1000 -c 64 -m 64 (limit {LOAD_LIMIT:?}):\n{}\n{}",
        load.report(),
        server.report()
    );
    assert!(
        server.exited().is_none(),
        "the guest server ended under load\n{}",
        server.report()
    );
    server.stop();
    assert_no_panic(&server.stderr());
}

/// The same load natively: the client and server themselves are right (a failure of the guest
/// test is then the guest's or the VMM's).
#[test]
fn go_load_passes_against_a_native_go_server() {
    let mut serve = Command::new(gonet());
    serve.args(["serve", "127.0.0.1:0"]);
    let mut server = GuestServer::start(serve);
    let line = server
        .wait_for_line("listening ", NATIVE_LIMIT)
        .unwrap_or_else(|why| panic!("{why}"));
    let addr = line.trim_start_matches("listening ");
    let load = run(
        Command::new(gonet()).args([
            "load",
            &format!("http://{addr}/"),
            "-n",
            "1000",
            "-c",
            "64",
            "-m",
            "64",
        ]),
        NATIVE_LIMIT,
    );
    assert_eq!(load.code, 0, "{}", report("gonet load", &load));
    assert_eq!(
        load.stdout,
        "load: 1000 sequential, 64 concurrent (64 at once, 16 on new connections): 0 failed\n"
    );
    // And it notices wrong answers: a server that is not gonet's fails it.
    let (port, _) = spawn_host_http_server();
    let wrong = run(
        Command::new(gonet()).args(["load", &format!("http://127.0.0.1:{port}/"), "-n", "8"]),
        NATIVE_LIMIT,
    );
    assert_ne!(
        wrong.code,
        0,
        "{}",
        report("gonet load (wrong server)", &wrong)
    );
}

// --- clients in the guest, servers on the host (the gateway 10.0.2.2) ---

#[test]
fn guest_programs_reach_a_host_loopback_service_through_the_gateway() {
    let Some(image) = guest_ready() else { return };
    let (port, peers) = spawn_host_http_server();
    let script = format!(
        "{GUEST_TESTS}/gonet get http://10.0.2.2:{port}/from-go; echo \"gonet exit $?\"; \
         wget -q -O - http://10.0.2.2:{port}/from-wget; echo \"wget exit $?\""
    );
    let run = run_in_guest(&image, &[], &["sh", "-c", &script]);
    assert_eq!(
        run.stdout,
        "host saw GET /from-go\ngonet exit 0\nhost saw GET /from-wget\nwget exit 0\n",
        "{}",
        report("guest", &run)
    );
    assert_eq!(run.code, 0, "{}", report("guest", &run));
    // The VMM connected from the host's loopback.
    let peers = peers.lock().unwrap();
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(peers.iter().all(|ip| ip.is_loopback()), "{peers:?}");
}

#[test]
fn guest_resolves_host_internal_through_resolv_conf() {
    let Some(image) = guest_ready() else { return };
    let (port, _) = spawn_host_http_server();
    // Go's own resolver and glibc's (python3), both reading /etc/nsswitch.conf and
    // /etc/resolv.conf, asking the user network's DNS at 10.0.2.3 over UDP.
    let script = format!(
        "{GUEST_TESTS}/gonet get http://host.internal:{port}/by-name; echo \"gonet exit $?\"; \
         python3 -c 'import socket; print(socket.gethostbyname(\"host.internal\"))'"
    );
    let run = run_in_guest(&image, &[], &["sh", "-c", &script]);
    assert_eq!(
        run.stdout,
        "host saw GET /by-name\ngonet exit 0\n10.0.2.2\n",
        "{}",
        report("guest", &run)
    );
    assert_eq!(run.code, 0, "{}", report("guest", &run));
}

#[test]
fn guest_connection_to_a_closed_host_port_is_refused() {
    let Some(image) = guest_ready() else { return };
    let port = free_port(); // nobody listens there now
    let script = format!(
        "{GUEST_TESTS}/gonet get http://10.0.2.2:{port}/; echo \"gonet exit $?\"; \
         wget -q -O - http://10.0.2.2:{port}/; echo \"wget exit $?\""
    );
    let started = Instant::now();
    let run = run_in_guest(&image, &[], &["sh", "-c", &script]);
    assert_eq!(
        run.stdout,
        "gonet exit 1\nwget exit 1\n",
        "{}",
        report("guest", &run)
    );
    // ECONNREFUSED as each program words it, not a timeout.
    for needle in [
        format!("dial tcp 10.0.2.2:{port}: connect: connection refused"),
        "wget: can't connect to remote host (10.0.2.2): Connection refused".to_string(),
    ] {
        assert!(
            run.stderr.contains(&needle),
            "stderr lacks {needle:?}\n{}",
            report("guest", &run)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(200),
        "refusals should be quick, took {:?}",
        started.elapsed()
    );
}

// --- sockets: a C program, natively and in the guest ---

fn sockets_native() -> Run {
    let dir = tempfile::tempdir().unwrap();
    run(
        Command::new(programs().join("sockets")).arg(dir.path()),
        NATIVE_LIMIT,
    )
}

/// sockets passed its own checks: exit 0, no FAIL line, its summary line last.
fn assert_sockets_passed(run: &Run) {
    let report = report("sockets", run);
    assert_eq!(run.code, 0, "{report}");
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("FAIL")),
        "{report}"
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some("sockets: all checks passed"),
        "{report}"
    );
    // The parts the issue names each have their lines.
    for part in [
        "ok unix stream",
        "ok unix dgram",
        "ok tcp4",
        "ok tcp6",
        "ok dual-stack",
        "ok udp4",
        "ok udp6",
        "ok fork unix",
        "ok fork tcp",
        "ok fork udp",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(part)),
            "no {part:?} check: {report}"
        );
    }
}

#[test]
fn sockets_passes_natively() {
    assert_sockets_passed(&sockets_native());
}

#[test]
fn sockets_runs_in_the_guest_as_natively() {
    let Some(image) = guest_ready() else { return };
    let native = sockets_native();
    assert_sockets_passed(&native);
    let guest = run_in_guest(
        &image,
        &["--cpus", "2"],
        &[&format!("{GUEST_TESTS}/sockets"), "/tmp"],
    );
    assert_no_panic(&guest.stderr);
    assert_eq!(
        guest.stdout, native.stdout,
        "sockets: stdout differs in the guest (left) from natively (right); guest exit {}, \
         stderr:\n{}",
        guest.code, guest.stderr
    );
    assert_eq!(guest.code, native.code, "{}", guest.stderr);
}

// --- --net tap:NAME in a network namespace ---

/// The tap interface, the namespace's address on it and the guest's (the Linux `ip=` word).
const TAP: &str = "noatap1";
const PEER_CIDR: &str = "10.9.0.1/24";
const GUEST_IP: &str = "10.9.0.2";
const GUEST_IP_PARAM: &str = "ip=10.9.0.2::10.9.0.1:255.255.255.0::eth0:off";

#[test]
fn tap_network_in_a_namespace_serves_http_and_echoes_udp() {
    if !have_kvm() {
        return;
    }
    if let Some(why) = netns::unsupported() {
        println!("SKIPPED: {why}");
        return;
    }
    let image = guest_ready().expect("KVM is here");
    let ns = netns::Netns::create().expect("create a network namespace");
    ns.add_tap(TAP, PEER_CIDR).expect("a tap in the namespace");

    // Declared after the namespace: dropped (the VMM stopped) before the namespace goes.
    let mut vmm = ns.command(env!("CARGO_BIN_EXE_vmm"));
    let guest_cmd =
        format!("{GUEST_TESTS}/gonet udpecho :7000 & exec {GUEST_TESTS}/gonet serve :8000");
    vmm.args(["--timeout", SERVER_TIMEOUT_SECS, "--snapshot", "--verbose"])
        .args(["--net", &format!("tap:{TAP}"), "--cmdline", GUEST_IP_PARAM])
        .arg(&image)
        .args(["--", "sh", "-c", &guest_cmd]);
    let mut server = GuestServer::start(vmm);
    let mut ports = Vec::new();
    for _ in 0..2 {
        let line = server
            .wait_for_line("listening ", START_LIMIT)
            .unwrap_or_else(|why| panic!("{why}"));
        ports.push(line.rsplit(':').next().unwrap_or("").to_string());
    }
    ports.sort();
    assert_eq!(ports, ["7000", "8000"], "{}", server.report());

    let in_ns = |program: &str, args: &[&str]| -> Run {
        let mut command = ns.command(program);
        command.args(args);
        run(&mut command, Duration::from_secs(300))
    };
    let base = format!("http://{GUEST_IP}:8000/");
    let get = in_ns("curl", &["-sS", "--max-time", "30", &base]);
    assert_eq!(
        (get.code, get.stdout.as_str()),
        (0, "hello from gonet\n"),
        "{}\n{}",
        report("curl through the tap", &get),
        server.report()
    );
    let gonet = gonet();
    let gonet = gonet.to_str().unwrap();
    let load = in_ns(gonet, &["load", &base, "-n", "200", "-c", "16"]);
    assert!(
        load.code == 0 && load.stdout.contains(": 0 failed"),
        "{}\n{}",
        report("gonet load through the tap", &load),
        server.report()
    );
    let udp = in_ns(
        gonet,
        &[
            "udpsend",
            &format!("{GUEST_IP}:7000"),
            "a datagram through the tap",
        ],
    );
    assert_eq!(
        (udp.code, udp.stdout.as_str()),
        (0, "a datagram through the tap\n"),
        "{}\n{}",
        report("gonet udpsend through the tap", &udp),
        server.report()
    );
    server.stop();
    assert_no_panic(&server.stderr());
}
