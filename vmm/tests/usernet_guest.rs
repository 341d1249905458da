//! The user network with a real guest: the guest kernel's own network stack (its virtio-net
//! driver, smoltcp, DHCP, a TCP echo to the host's loopback) against our VMM — the ktest that
//! `qemu.rs` runs against QEMU's slirp, the reference for our addresses. Plus the `--net` and
//! `--publish` errors the VMM reports before booting.
//!
//! Until `--net` is wired into the VMM these tests print "SKIPPED: ..." and pass.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;

/// Whether this build's VMM has the network flags.
fn vmm_has_net() -> bool {
    let help = vmm().arg("--help").output().expect("vmm --help");
    let has = String::from_utf8_lossy(&help.stdout).contains("--publish");
    if !has {
        println!("SKIPPED: this vmm has no --net/--publish yet (virtio-net not wired in)");
    }
    has
}

/// A TCP echo server on the host's loopback, for the guest to reach as 10.0.2.2; returns its
/// port. It serves until the test process ends.
fn spawn_echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn usernet_guest_gets_dhcp_and_reaches_the_host_loopback() {
    if !have_kvm() || !vmm_has_net() {
        return;
    }
    let port = spawn_echo_server();
    let cmdline = format!("noa.ktest=virtio_net noa.ktest.echo={port}");
    let run = boot(&["--cpus", "1", "--cmdline", &cmdline]);
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_no_panic(&run.stderr);
    assert!(
        run.stdout
            .contains("ktest virtio_net_dhcp_and_tcp_echo ... ok"),
        "{}",
        run.stdout
    );
}

#[test]
fn usernet_busy_publish_port_is_a_usage_error() {
    if !have_kvm() || !vmm_has_net() {
        return;
    }
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let run = boot(&["--publish", &format!("{port}:80")]);
    run.assert_vmm_error(2, &format!("--publish 127.0.0.1:{port}:80: cannot listen"));
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
}

#[test]
fn usernet_publish_needs_the_user_network() {
    if !have_kvm() || !vmm_has_net() {
        return;
    }
    let run = boot(&["--net", "none", "--publish", "8080:80"]);
    run.assert_vmm_error(2, "--publish needs --net user");
}

#[test]
fn usernet_none_boots_without_a_network_device() {
    if !have_kvm() || !vmm_has_net() {
        return;
    }
    let with = boot(&["--cpus", "1", "--verbose"]);
    let without = boot(&["--cpus", "1", "--verbose", "--net", "none"]);
    for run in [&with, &without] {
        assert_eq!(
            run.code, 0,
            "stdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        boot_line(&run.stdout);
    }
    // One virtio-mmio device fewer on the kernel command line.
    let devices = |run: &Run| run.stderr.matches("virtio_mmio.device=").count();
    assert_eq!(
        devices(&with),
        devices(&without) + 1,
        "{}\n{}",
        with.stderr,
        without.stderr
    );
}

#[test]
fn usernet_bad_net_and_publish_values_are_usage_errors() {
    if !vmm_has_net() {
        return;
    }
    for (args, needle) in [
        (&["--net", "bogus"][..], "unknown network 'bogus'"),
        (&["--net", "tap:"][..], "must be 1 to 15 bytes"),
        (&["--publish", "8080"][..], "has no guest port"),
        (&["--publish", "8080:0"][..], "guest port 0"),
    ] {
        let run = boot(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert_no_panic(&run.stderr);
    }
}
