//! Kernel tests of the virtio drivers, against whatever machine runs us — our VMM or QEMU's
//! microvm with its own devices. Disks are named as Linux would: vda, vdb, … in address order.
//!
//! `noa.ktest.scratch=vdX` names a disk the tests may overwrite: they write a pattern to its first
//! 64 KiB (several requests in flight), flush, and read it back; the host then checks the file.
//!
//! The console test writes a line to console 0 (the VMM's stdout) and console 1 (its stderr), and
//! the words after `--` (the runner-mode command, still encoded) as `NOA-INIT-ARGS …`; with
//! `noa.ktest.console=echo` it then copies console 0's input back to it until the input ends.

use super::{Failure, TestResult, ensure};
use crate::cmdline::Cmdline;
use alloc::vec;
use alloc::vec::Vec;
use hal_pv::virtio::block::{Block, Request, SECTOR_BYTES};
use hal_pv::virtio::misc::{Console, Read, Rng};
use hal_pv::virtio::{Device, Kind};
use spin::Mutex;

/// Devices found on the command line, not yet taken by a test. Disks keep their place (vda is
/// index 0) when taken.
static DEVICES: Mutex<Vec<(Kind, Option<Device>)>> = Mutex::new(Vec::new());
/// Index of the scratch disk among the disks, from `noa.ktest.scratch`.
static SCRATCH: Mutex<Option<usize>> = Mutex::new(None);

/// Port of the host's TCP echo server on its loopback, from `noa.ktest.echo`.
static ECHO_PORT: Mutex<Option<u16>> = Mutex::new(None);
/// Host vsock port of an echo service (a Unix socket `UDS_PORT` on the host), from `noa.ktest.vsock`.
static VSOCK_PORT: Mutex<Option<u32>> = Mutex::new(None);

/// The network link as the command line configures it (our VMM's user network: a larger MTU).
static LINK: Mutex<Option<crate::net::Link>> = Mutex::new(None);
/// The words after `--` on the command line (the command for init), if there is a `--`.
static INIT_ARGS: Mutex<Option<alloc::string::String>> = Mutex::new(None);
/// `noa.ktest.console=echo`: the console test echoes its input until the input ends.
static CONSOLE_ECHO: Mutex<bool> = Mutex::new(false);
/// Calls of the console's interrupt hook.
static CONSOLE_HOOK_CALLS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Bytes of the scratch pattern, and how many requests carry it.
pub const SCRATCH_BYTES: usize = 64 * 1024;
const SCRATCH_REQUESTS: usize = 8;

pub fn set_up(full_cmdline: &str) {
    // Words after `--` are the command for init, not ours.
    let words: Vec<&str> = full_cmdline.split_ascii_whitespace().collect();
    let (kernel_words, init_args) = match words.iter().position(|w| *w == "--") {
        Some(at) => (&words[..at], Some(words[at + 1..].join(" "))),
        None => (&words[..], None),
    };
    *INIT_ARGS.lock() = init_args;
    let cmdline = kernel_words.join(" ");
    let cmdline = cmdline.as_str();
    *CONSOLE_ECHO.lock() = Cmdline::values(cmdline, "noa.ktest.console").any(|v| v == "echo");
    *LINK.lock() = Some(crate::net::Link::from_cmdline(cmdline));
    *DEVICES.lock() = hal_pv::virtio::discover(cmdline)
        .into_iter()
        .map(|d| (d.kind, Some(d)))
        .collect();
    *SCRATCH.lock() = Cmdline::values(cmdline, "noa.ktest.scratch")
        .next()
        .and_then(|name| name.strip_prefix("vd"))
        .filter(|letter| letter.len() == 1)
        .map(|letter| usize::from(letter.as_bytes()[0].wrapping_sub(b'a')));
    *ECHO_PORT.lock() = Cmdline::values(cmdline, "noa.ktest.echo")
        .next()
        .and_then(|port| port.parse().ok());
    *VSOCK_PORT.lock() = Cmdline::values(cmdline, "noa.ktest.vsock")
        .next()
        .and_then(|port| port.parse().ok());
}

/// Takes the `index`-th device of `kind` (counting those taken before).
fn take(kind: Kind, index: usize) -> Option<Device> {
    let mut devices = DEVICES.lock();
    let (_, slot) = devices.iter_mut().filter(|(k, _)| *k == kind).nth(index)?;
    slot.take()
}

/// The byte at `offset` of the scratch pattern (the host test computes the same).
fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(7) ^ (offset >> 9)) as u8
}

pub fn rng_gives_entropy() -> TestResult {
    let device = take(Kind::Entropy, 0).ok_or(Failure::Skipped("no virtio-rng device"))?;
    let mut rng = Rng::open(device)?;
    let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
    rng.fill(&mut a)?;
    rng.fill(&mut b)?;
    ensure!(a != [0; 64] && b != [0; 64], "the device returned zeros");
    ensure!(a != b, "two requests returned the same bytes");
    Ok(())
}

pub fn console_writes() -> TestResult {
    let device = take(Kind::Console, 0).ok_or(Failure::Skipped("no virtio-console device"))?;
    let mut console = Console::open(device)?;
    console.set_interrupt_hook(|| {
        CONSOLE_HOOK_CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    });
    console.write(b"NOA-VIRTIO-CONSOLE-OK\n")?;
    let init_args = INIT_ARGS.lock().clone();
    if let Some(args) = init_args {
        console.write(b"NOA-INIT-ARGS ")?;
        console.write(args.as_bytes())?;
        console.write(b"\n")?;
    }
    let mut buf = [0u8; 512];
    if let Some(device) = take(Kind::Console, 1) {
        let mut second = Console::open(device)?;
        second.write(b"NOA-VIRTIO-CONSOLE1-OK\n")?;
        ensure!(
            second.read(&mut buf)? == Read::Nothing,
            "console 1 has input"
        );
    }
    if !*CONSOLE_ECHO.lock() {
        return Ok(());
    }
    // Echo: the host checks its stdout holds exactly its stdin after the lines above.
    let deadline = hal_pv::time::now_ns() + 20_000_000_000;
    let mut echoed = 0usize;
    loop {
        match console.read(&mut buf)? {
            Read::Data(n) => {
                console.write(&buf[..n])?;
                echoed += n;
            }
            Read::Eof => break,
            Read::Nothing => {
                ensure!(
                    hal_pv::time::now_ns() < deadline,
                    "no end of input within 20 s ({echoed} bytes echoed)"
                );
                if !console.readable() {
                    hal_pv::time::set_timer_in_ns(10_000_000);
                    hal_pv::cpu::wait_for_interrupt();
                    hal_pv::irq::apic::cancel_timer();
                }
                console.ack_interrupt();
            }
        }
    }
    ensure!(
        console.read(&mut buf)? == Read::Eof,
        "the end of input is not sticky"
    );
    // Every request may have been answered before the driver slept; the interrupts are then
    // still pending, taken when interrupts are next on. Give them up to a second.
    let hook_calls = || CONSOLE_HOOK_CALLS.load(core::sync::atomic::Ordering::Relaxed);
    let deadline = hal_pv::time::now_ns() + 1_000_000_000;
    while hook_calls() == 0 && hal_pv::time::now_ns() < deadline {
        hal_pv::time::set_timer_in_ns(10_000_000);
        hal_pv::cpu::wait_for_interrupt();
    }
    hal_pv::irq::apic::cancel_timer();
    ensure!(
        console.interrupts() > 0 && hook_calls() > 0,
        "console 0 raised no interrupt (or its hook did not run)"
    );
    Ok(())
}

pub fn block_reads_the_root_disk() -> TestResult {
    let device = take(Kind::Block, 0).ok_or(Failure::Skipped("no virtio-blk device"))?;
    let mut disk = Block::open(device)?;
    ensure!(
        disk.capacity_sectors() >= 8,
        "capacity {} sectors",
        disk.capacity_sectors()
    );
    let before = disk.interrupts();
    // The ext2 superblock: 1 KiB at byte 1024, magic 0xef53 at its byte 56.
    let mut superblock = [0u8; 1024];
    disk.read(2, &mut superblock)?;
    let magic = u16::from_le_bytes([superblock[56], superblock[57]]);
    ensure!(
        magic == 0xef53,
        "no ext2 superblock on vda (magic {magic:#x})"
    );
    // The device may have answered before the driver slept; its interrupt may then still be on
    // its way (the VMM's I/O thread competes for host CPUs). Give it up to a second.
    let deadline = hal_pv::time::now_ns() + 1_000_000_000;
    while disk.interrupts() == before && hal_pv::time::now_ns() < deadline {
        hal_pv::time::set_timer_in_ns(10_000_000);
        hal_pv::cpu::wait_for_interrupt();
    }
    hal_pv::irq::apic::cancel_timer();
    ensure!(
        disk.interrupts() > before,
        "the device raised no interrupt for the read"
    );
    Ok(())
}

pub fn block_scratch_write_flush_read() -> TestResult {
    let index = SCRATCH
        .lock()
        .ok_or(Failure::Skipped("no noa.ktest.scratch=vdX"))?;
    let device = take(Kind::Block, index).ok_or("the scratch disk does not exist")?;
    let mut disk = Block::open(device)?;
    ensure!(!disk.read_only(), "the scratch disk is read-only");
    let written: Vec<u8> = (0..SCRATCH_BYTES).map(pattern).collect();
    let chunk = SCRATCH_BYTES / SCRATCH_REQUESTS;
    let sectors_per_chunk = (chunk / SECTOR_BYTES) as u64;
    let mut writes: Vec<Request> = written
        .chunks(chunk)
        .enumerate()
        .map(|(i, buf)| Request::Write {
            sector: i as u64 * sectors_per_chunk,
            buf,
        })
        .collect();
    disk.batch(&mut writes)?;
    disk.flush()?;
    let mut read = vec![0u8; SCRATCH_BYTES];
    let mut reads: Vec<Request> = read
        .chunks_mut(chunk)
        .enumerate()
        .map(|(i, buf)| Request::Read {
            sector: i as u64 * sectors_per_chunk,
            buf,
        })
        .collect();
    disk.batch(&mut reads)?;
    ensure!(read == written, "read back differs from what was written");
    Ok(())
}

/// DHCP on the user network (ours or QEMU's slirp: both hand out 10.0.2.15 with gateway
/// 10.0.2.2), then, with `noa.ktest.echo=PORT`, a TCP round trip to the host's echo server on its
/// loopback through the gateway.
pub fn net_dhcp_and_tcp_echo() -> TestResult {
    use crate::net::Stack;
    use smoltcp::socket::tcp::State;
    use smoltcp::time::Duration;
    use smoltcp::wire::{IpAddress, Ipv4Address};

    let device = take(Kind::Network, 0).ok_or(Failure::Skipped("no virtio-net device"))?;
    let link = LINK
        .lock()
        .unwrap_or_else(|| crate::net::Link::from_cmdline(""));
    let mut stack = Stack::new(link.open(device)?, link);
    let lease = stack
        .dhcp(Duration::from_secs(10))
        .ok_or("no DHCP lease within 10 s")?;
    ensure!(
        lease.address.address() == Ipv4Address::new(10, 0, 2, 15),
        "leased {}",
        lease.address
    );
    ensure!(lease.address.prefix_len() == 24, "leased {}", lease.address);
    let router = lease.router.ok_or("the lease names no router")?;
    ensure!(router == Ipv4Address::new(10, 0, 2, 2), "router {router}");

    let Some(port) = *ECHO_PORT.lock() else {
        return Ok(()); // DHCP checked; no echo server named.
    };
    let socket = stack.tcp_socket(4096);
    let (context, tcp) = stack.context_and_socket(socket);
    tcp.connect(context, (IpAddress::Ipv4(router), port), 49152)
        .map_err(|_| "connect refused locally")?;
    let connected = stack.run_until(Duration::from_secs(10), |s| {
        matches!(
            s.sockets
                .get::<smoltcp::socket::tcp::Socket>(socket)
                .state(),
            State::Established | State::Closed
        )
    });
    let state = stack
        .sockets
        .get::<smoltcp::socket::tcp::Socket>(socket)
        .state();
    ensure!(
        connected && state == State::Established,
        "TCP to {router}:{port}: {state}"
    );
    let message = b"noa-echo: the quick brown fox jumps over the lazy dog";
    stack
        .sockets
        .get_mut::<smoltcp::socket::tcp::Socket>(socket)
        .send_slice(message)
        .map_err(|_| "send")?;
    let mut echoed = Vec::new();
    stack.run_until(Duration::from_secs(10), |s| {
        let tcp = s.sockets.get_mut::<smoltcp::socket::tcp::Socket>(socket);
        while tcp.can_recv() {
            let _ = tcp.recv(|data| {
                echoed.extend_from_slice(data);
                (data.len(), ())
            });
        }
        echoed.len() >= message.len()
    });
    ensure!(
        echoed == message,
        "echo returned {} bytes: {:?}",
        echoed.len(),
        core::str::from_utf8(&echoed)
    );
    stack
        .sockets
        .get_mut::<smoltcp::socket::tcp::Socket>(socket)
        .close();
    stack.run_until(Duration::from_millis(200), |_| false);
    Ok(())
}

/// A vsock stream to the host's echo service (`noa.ktest.vsock=PORT`): connect, send, read the
/// echo, shut down.
pub fn vsock_echo_with_the_host() -> TestResult {
    use hal_pv::virtio::vsock::Vsock;
    const LOCAL_PORT: u32 = 40_000;
    const SECOND: u64 = 1_000_000_000;
    let device = take(Kind::Socket, 0).ok_or(Failure::Skipped("no virtio-vsock device"))?;
    let mut vsock = Vsock::open(device)?;
    ensure!(vsock.guest_cid() >= 3, "guest CID {}", vsock.guest_cid());
    let port = VSOCK_PORT
        .lock()
        .ok_or(Failure::Skipped("no noa.ktest.vsock=PORT"))?;
    vsock
        .connect(port, LOCAL_PORT, 5 * SECOND)
        .map_err(|e| alloc::format!("connect to host port {port}: {e:?}"))?;
    let message = b"noa-vsock: ping through the host's unix socket";
    vsock
        .send(port, LOCAL_PORT, message)
        .map_err(|e| alloc::format!("send: {e:?}"))?;
    let mut echoed = Vec::new();
    let mut buf = [0u8; 256];
    while echoed.len() < message.len() {
        let n = vsock
            .recv(port, LOCAL_PORT, &mut buf, 5 * SECOND)
            .map_err(|e| alloc::format!("recv: {e:?}"))?;
        echoed.extend_from_slice(&buf[..n]);
    }
    ensure!(
        echoed == message,
        "echo returned {:?}",
        core::str::from_utf8(&echoed)
    );
    let _ = vsock.shutdown(port, LOCAL_PORT);
    Ok(())
}
