//! The cross-check against a reference machine: the same `kernel.elf` under QEMU, with QEMU's own
//! firmware path (PVH through `-kernel`), ACPI tables, APIC and clock. Under TCG there is no
//! x2APIC and no kvmclock, so this exercises the xAPIC, the PIT-calibrated TSC and the INIT/SIPI
//! start of the other CPUs — the paths our own VMM never takes.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

fn qemu(machine: &[&str], append: &str) -> Run {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(machine)
        .args([
            "-m",
            "128M",
            "-display",
            "none",
            "-nodefaults",
            "-no-user-config",
            "-serial",
            "stdio",
        ])
        .args([
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
        ])
        .arg(kernel_elf())
        .args(["-append", append]);
    run(&mut command, Duration::from_secs(120))
}

/// isa-debug-exit turns the guest's power-off code into QEMU's exit status `(code << 1) | 1`.
const QEMU_EXIT_FOR_GUEST_0: i32 = 1;

/// Without a disk there is no /sbin/init: the kernel says so and powers off with 127 (as a
/// shell does for a missing command).
const QEMU_EXIT_FOR_NO_INIT: i32 = (127 << 1) | 1;

#[test]
fn boots_under_qemu_tcg() {
    let run = qemu(&["-accel", "tcg", "-smp", "1"], "");
    assert_eq!(
        run.code, QEMU_EXIT_FOR_NO_INIT,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("cannot start /sbin/init"),
        "{}",
        run.stdout
    );
    let (cpus, mem_mib) = boot_line(&run.stdout);
    assert_eq!(cpus, 1);
    assert!((120..128).contains(&mem_mib), "mem_mib={mem_mib}");
}

#[test]
fn ktests_pass_under_qemu_tcg_with_sipi_started_cpus() {
    let run = qemu(&["-accel", "tcg", "-smp", "3"], "noa.ktest=all");
    assert_eq!(
        run.code, QEMU_EXIT_FOR_GUEST_0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(
        boot_line(&run.stdout).0,
        3,
        "INIT/SIPI must bring up every CPU: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("ktest smp_ipi_every_cpu ... ok"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("NOA-KTEST ") && l.ends_with(" failed=0")),
        "{}",
        run.stdout
    );
}

#[test]
fn ktests_pass_under_qemu_microvm_with_kvm() {
    if !have_kvm() {
        return;
    }
    // `-cpu host` alone makes QEMU 7.2 abort on PVM hosts (MSR 0x10a); without arch-capabilities it runs.
    let run = qemu(
        &[
            "-M",
            "microvm",
            "-accel",
            "kvm",
            "-cpu",
            "host,arch-capabilities=off",
            "-smp",
            "2",
        ],
        "noa.ktest=all",
    );
    assert_eq!(
        run.code, QEMU_EXIT_FOR_GUEST_0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(boot_line(&run.stdout).0, 2);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("NOA-KTEST ") && l.ends_with(" failed=0")),
        "{}",
        run.stdout
    );
}

/// A TCP echo server on the host's loopback, for the guest to reach through the gateway; returns
/// its port. It serves until the test process ends.
pub fn spawn_echo_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// QEMU's microvm under KVM, ready for devices, `-kernel` and `-append`. `acpi=off`: microvm then
/// lists its virtio devices on the command line (with ACPI, only in the DSDT), and the guest runs
/// on one CPU (CPUs come from the MADT). `-cpu host` alone makes QEMU 7.2 abort on PVM hosts
/// (MSR 0x10a); without arch-capabilities it runs.
fn microvm() -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args([
            "-M",
            "microvm,acpi=off",
            "-accel",
            "kvm",
            "-cpu",
            "host,arch-capabilities=off",
        ])
        .args([
            "-m",
            "256M",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args([
            "-serial",
            "stdio",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
    command
}

/// The guest's network stack (virtio-net, smoltcp, DHCP, TCP) against QEMU's slirp — the
/// reference for our VMM's user network, with the same addresses.
#[test]
fn net_ktest_passes_against_qemu_slirp() {
    if !have_kvm() {
        return;
    }
    let port = spawn_echo_server();
    let mut command = microvm();
    command
        .args([
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-device,netdev=n0",
            "-kernel",
        ])
        .arg(kernel_elf())
        .args([
            "-append",
            &format!("noa.ktest=virtio_net noa.ktest.echo={port}"),
        ]);
    let run = run(&mut command, Duration::from_secs(120));
    assert_eq!(
        run.code, QEMU_EXIT_FOR_GUEST_0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout
            .contains("ktest virtio_net_dhcp_and_tcp_echo ... ok"),
        "{}",
        run.stdout
    );
}

/// QEMU's own virtio-mmio devices (microvm: virtio-blk, virtio-rng) drive the same ktests as our
/// VMM's. microvm with ACPI describes its virtio devices only in the DSDT; without ACPI it puts
/// them on the command line (and we then run on one CPU: CPUs come from the MADT).
#[test]
fn virtio_ktests_pass_against_qemu_devices() {
    if !have_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.img");
    std::fs::copy(guest_image(), &root).unwrap();
    let scratch = dir.path().join("scratch.img");
    std::fs::write(&scratch, vec![0u8; 1 << 20]).unwrap();
    let drive = |id: &str, path: &std::path::Path| {
        format!("id={id},file={},format=raw,if=none", path.display())
    };
    let mut command = microvm();
    command
        // microvm gives the first device the highest address: list the scratch disk first so the
        // image becomes vda, as in our VMM.
        .args([
            "-drive",
            &drive("scratch", &scratch),
            "-device",
            "virtio-blk-device,drive=scratch",
        ])
        .args([
            "-drive",
            &drive("root", &root),
            "-device",
            "virtio-blk-device,drive=root",
        ])
        .args(["-device", "virtio-rng-device", "-kernel"])
        .arg(kernel_elf())
        .args(["-append", "noa.ktest=virtio noa.ktest.scratch=vdb"]);
    let run = run(&mut command, Duration::from_secs(120));
    assert_eq!(
        run.code, QEMU_EXIT_FOR_GUEST_0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    for test in [
        "virtio_rng_gives_entropy",
        "virtio_block_reads_the_root_disk",
        "virtio_block_scratch_write_flush_read",
    ] {
        assert!(
            run.stdout.contains(&format!("ktest {test} ... ok")),
            "{test}: {}",
            run.stdout
        );
    }
    let content = std::fs::read(&scratch).unwrap();
    assert!(
        (0..64 * 1024).all(|i| content[i] == ((i.wrapping_mul(7) ^ (i >> 9)) as u8)),
        "scratch content"
    );
}

/// The guest's console driver against QEMU's virtio-console (a `virtconsole` port on
/// `virtio-serial-device`, which offers MULTIPORT; without it, port 0 uses queues 0 and 1 as on
/// our VMM): what the ktest writes arrives byte for byte.
#[test]
fn console_ktest_passes_against_qemu_virtconsole() {
    if !have_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hvc0 = dir.path().join("hvc0.out");
    let mut command = microvm();
    command
        .args(["-chardev"])
        .arg(format!("file,id=hvc0,path={}", hvc0.display()))
        .args(["-device", "virtio-serial-device"])
        .args(["-device", "virtconsole,chardev=hvc0", "-kernel"])
        .arg(kernel_elf())
        .args(["-append", "noa.ktest=virtio_console"]);
    let run = run(&mut command, Duration::from_secs(120));
    assert_eq!(
        run.code, QEMU_EXIT_FOR_GUEST_0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("ktest virtio_console_writes ... ok"),
        "{}",
        run.stdout
    );
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&hvc0).unwrap()),
        "NOA-VIRTIO-CONSOLE-OK\n"
    );
}
