//! vsock on a real KVM boot: the guest kernel connects to host port P, which the VMM maps to the
//! Unix socket `PATH_P` (Firecracker's convention); an echo server there answers.

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn guest_reaches_a_host_unix_socket_through_vsock() {
    if !have_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let uds = dir.path().join("v.sock");
    let port = 5000;
    let listener =
        std::os::unix::net::UnixListener::bind(format!("{}_{port}", uds.display())).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let vsock = format!("cid=3,uds={}", uds.display());
    let run = boot(&[
        "--vsock",
        &vsock,
        "--cmdline",
        &format!("noa.ktest=virtio_vsock noa.ktest.vsock={port}"),
    ]);
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout
            .contains("ktest virtio_vsock_echo_with_the_host ... ok"),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_vsock_flags_are_usage_errors() {
    for (value, needle) in [
        ("cid=2,uds=/tmp/x", "cid"),
        ("uds=/tmp/x", "cid"),
        ("cid=3", "uds"),
    ] {
        let mut command = vmm();
        command
            .args(["--snapshot", "--vsock", value])
            .arg(guest_image());
        let run = run(&mut command, Duration::from_secs(30));
        assert_eq!(run.code, 2, "--vsock {value}: {}", run.stderr);
        assert!(
            run.stderr.contains(needle),
            "--vsock {value}: {}",
            run.stderr
        );
        assert_no_panic(&run.stderr);
    }
}
