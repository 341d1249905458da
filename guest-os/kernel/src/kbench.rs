//! In-guest benchmarks (`noa.kbench=NAME` on the command line), run by `cargo xtask bench`:
//! they print one `NOA-KBENCH name=… bytes=… ns=…` line per measurement, timed with the guest's
//! clock; the host side computes rates and compares them with its own run of the same work.
//!
//! - `block_read`: reads the first `noa.kbench.mib` MiB (default 64) of the disk
//!   `noa.kbench.disk` (default vdb) sequentially, `noa.kbench.request_kib` KiB (default 1024)
//!   per request, `noa.kbench.in_flight` (default 8) requests in flight
//!   (`Block::stream`: the queue is refilled as requests are answered).
//! - `block_write`: writes the same way (the disk must be a scratch volume).
//! - `tcp_sink`: takes a DHCP lease, listens on TCP port `noa.kbench.port` (default 5001),
//!   accepts one connection and reads it to the end; the host pushes data through a port forward.

use crate::cmdline::Cmdline;
use alloc::vec;
use alloc::vec::Vec;
use hal_pv::println;
use hal_pv::virtio::block::{Block, SECTOR_BYTES};
use hal_pv::virtio::{self, Kind};

const DEFAULT_REQUEST_BYTES: usize = 1024 * 1024;
const IN_FLIGHT: usize = 8;

/// Runs the benchmark `name`; returns the exit code.
pub fn run(name: &str, cmdline: &str) -> u8 {
    let value = |key| Cmdline::values(cmdline, key).next();
    if name == "tcp_sink" {
        let port = value("noa.kbench.port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(5001);
        return tcp_sink(cmdline, port);
    }
    // `noa.kbench.request_kib`: the size of each request (default 1 MiB), a multiple of 4 KiB.
    let request_bytes = value("noa.kbench.request_kib")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|kib| *kib > 0 && kib % 4 == 0 && *kib <= 16 * 1024)
        .map_or(DEFAULT_REQUEST_BYTES, |kib| kib * 1024);
    // `noa.kbench.in_flight`: requests kept in flight (default 8).
    let in_flight = value("noa.kbench.in_flight")
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(IN_FLIGHT, |n| n.clamp(1, 32));
    let mib: usize = value("noa.kbench.mib")
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let disk_index = value("noa.kbench.disk")
        .and_then(|d| d.strip_prefix("vd"))
        .and_then(|d| d.bytes().next())
        .map_or(1, |letter| usize::from(letter.wrapping_sub(b'a')));
    let Some(device) = virtio::discover(cmdline)
        .into_iter()
        .filter(|d| d.kind == Kind::Block)
        .nth(disk_index)
    else {
        println!("NOA-KBENCH error=no-disk");
        return 1;
    };
    let mut disk = match Block::open(device) {
        Ok(disk) => disk,
        Err(e) => {
            println!("NOA-KBENCH error={e}");
            return 1;
        }
    };
    let bytes = (mib * 1024 * 1024).min(disk.capacity_sectors() as usize * SECTOR_BYTES);
    let write = match name {
        "block_read" => false,
        "block_write" => true,
        _ => {
            println!("NOA-KBENCH error=unknown-benchmark name={name}");
            return 2;
        }
    };
    let mut buffers: Vec<Vec<u8>> = (0..in_flight)
        .map(|i| vec![i as u8; request_bytes])
        .collect();
    let mut buffers: Vec<&mut [u8]> = buffers.iter_mut().map(|b| b.as_mut_slice()).collect();
    let requests = bytes / request_bytes;
    let sectors_per_request = (request_bytes / SECTOR_BYTES) as u64;
    let start = hal_pv::time::now_ns();
    let (mut issued, mut answered) = (0, 0);
    let streamed = disk.stream(
        write,
        &mut buffers,
        |_| {
            (issued < requests).then(|| {
                issued += 1;
                (issued - 1) as u64 * sectors_per_request
            })
        },
        |_, _| answered += 1,
    );
    if let Err(e) = streamed {
        println!("NOA-KBENCH error={e}");
        return 1;
    }
    let offset = answered * request_bytes;
    if write && disk.flush().is_err() {
        println!("NOA-KBENCH error=flush");
        return 1;
    }
    let ns = hal_pv::time::now_ns() - start;
    println!("NOA-KBENCH name={name} bytes={offset} ns={ns}");
    0
}

/// Reads one TCP connection on `port` to its end; prints the bytes and the time from the first
/// byte to the end.
fn tcp_sink(cmdline: &str, port: u16) -> u8 {
    use crate::net::Stack;
    use smoltcp::socket::tcp::{Socket, State};
    use smoltcp::time::Duration;

    let Some(device) = virtio::discover(cmdline)
        .into_iter()
        .find(|d| d.kind == Kind::Network)
    else {
        println!("NOA-KBENCH error=no-network-card");
        return 1;
    };
    // The link as the kernel's own network would drive it: under our VMM's user network that is
    // its larger MTU, under QEMU's slirp a wire's 1500.
    let link = crate::net::Link::from_cmdline(cmdline);
    let card = match link.open(device) {
        Ok(card) => card,
        Err(e) => {
            println!("NOA-KBENCH error={e}");
            return 1;
        }
    };
    let mut stack = Stack::new(card, link);
    if stack.dhcp(Duration::from_secs(10)).is_none() {
        println!("NOA-KBENCH error=no-dhcp-lease");
        return 1;
    }
    let socket = stack.tcp_socket(256 * 1024);
    if stack
        .sockets
        .get_mut::<Socket>(socket)
        .listen(port)
        .is_err()
    {
        println!("NOA-KBENCH error=listen");
        return 1;
    }
    println!("NOA-KBENCH listening port={port}");
    let (mut bytes, mut first, mut last) = (0u64, 0u64, 0u64);
    stack.run_until(Duration::from_secs(120), |s| {
        let tcp = s.sockets.get_mut::<Socket>(socket);
        while tcp.can_recv() {
            if let Ok(n) = tcp.recv(|data| (data.len(), data.len())) {
                if bytes == 0 {
                    first = hal_pv::time::now_ns();
                }
                bytes += n as u64;
                last = hal_pv::time::now_ns();
            }
        }
        if bytes > 0 && !tcp.may_recv() {
            tcp.close();
        }
        bytes > 0
            && matches!(
                tcp.state(),
                State::Closed | State::TimeWait | State::LastAck | State::Closing
            )
    });
    println!(
        "NOA-KBENCH name=tcp_sink bytes={bytes} ns={}",
        last.saturating_sub(first)
    );
    0
}
