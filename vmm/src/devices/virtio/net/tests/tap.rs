//! The tap backend end to end, inside a network namespace the test creates (and deletes): the
//! tap interface lives there with 10.9.0.1/24, a host TCP echo server listens there, and the
//! smoltcp guest (10.9.0.2) talks to it through the device. Nothing touches the host's own
//! interfaces. Needs root and `ip`; prints "SKIPPED: ..." and passes without them.

use super::guest::{Guest, tcp_socket, test_data};
use crate::devices::virtio::net::{DEFAULT_MAC, Net, NetMode};
use smoltcp::socket::tcp;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Command;

const PEER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const TAP: &str = "noatap0";

/// A network namespace that is deleted when dropped.
struct Netns(String);

impl Netns {
    fn create() -> Result<Netns, String> {
        let name = format!("noa-net-test-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        Ok(Netns(name))
    }

    /// Runs `f` on a thread that has entered the namespace (sockets and taps it creates live
    /// there; the rest of the process is unaffected).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("the namespace exists");
            // SAFETY: setns on a namespace fd, for this thread only.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// Why this test cannot run here, if it cannot.
fn unsupported() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the tap test needs root (network namespaces, /dev/net/tun)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the tap test needs the `ip` command".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("the tap test needs /dev/net/tun".into());
    }
    None
}

#[test]
fn net_tap_guest_talks_to_a_peer_in_a_namespace() {
    if let Some(why) = unsupported() {
        println!("SKIPPED: {why}");
        return;
    }
    let netns = match Netns::create() {
        Ok(netns) => netns,
        Err(e) => {
            println!("SKIPPED: cannot create a network namespace: {e}");
            return;
        }
    };
    let net = netns
        .run(|| Net::new(NetMode::Tap { name: TAP.into() }, DEFAULT_MAC))
        .expect("the tap opens");
    ip(&[
        "-n",
        &netns.0,
        "addr",
        "add",
        &format!("{PEER}/24"),
        "dev",
        TAP,
    ])
    .unwrap();
    ip(&["-n", &netns.0, "link", "set", TAP, "up"]).unwrap();
    let listener = netns.run(|| TcpListener::bind((PEER, 7777))).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), GUEST);
        let mut buffer = [0; 4096];
        let mut echoed = 0;
        loop {
            match stream.read(&mut buffer).unwrap() {
                0 => return echoed,
                n => {
                    stream.write_all(&buffer[..n]).unwrap();
                    echoed += n;
                }
            }
        }
    });

    let mut guest = Guest::with_net(net, true);
    guest.configure(GUEST, 24, None);
    let socket = guest.sockets.add(tcp_socket());
    let cx = guest.iface.context();
    guest
        .sockets
        .get_mut::<tcp::Socket>(socket)
        .connect(cx, (PEER, 7777), 40000)
        .unwrap();
    let data = test_data(128 * 1024);
    let (mut sent, mut received) = (0, Vec::new());
    guest.run_until("the echo through the tap", |g| {
        let s = g.tcp(socket);
        assert!(
            s.state() != tcp::State::Closed,
            "the connection closed early"
        );
        if s.can_send() && sent < data.len() {
            sent += s.send_slice(&data[sent..]).unwrap();
        }
        if s.can_recv() {
            s.recv(|b| {
                received.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        (received.len() == data.len()).then_some(())
    });
    assert!(received == data, "the echo differs");
    guest.tcp(socket).close();
    guest.run_until("the close", |_| server.is_finished().then_some(()));
    assert_eq!(server.join().unwrap(), data.len());
    drop(guest); // closes the tap before the namespace goes
}
