//! virtio-vsock's queue processing: fuzzer-built receive, transmit and event queues in a 64 KiB
//! guest memory, packet headers the guest puts in it (REQUEST/RESPONSE/RST/SHUTDOWN/RW/CREDIT_*
//! or any op, to the host or elsewhere, any lengths), and host programs that connected to the
//! device's socket before activation (with a `CONNECT` line, or garbage) — served once by the
//! device's I/O thread (packet parsing, the muxer, connection state and credit).
//!
//! The device's Unix sockets live in a private folder, removed at exit (or, after a crash, by the
//! next run). A guest REQUEST to the
//! host's port 5000 reaches a listener of the harness (connections are accepted and dropped after
//! each input); every other port has nothing behind it.
//!
//! Once the device accepts a host connection, reading its `CONNECT` line takes another I/O-thread
//! round, which may come after the reset: that part of an input can differ between runs.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress};
use vmm::devices::virtio::vsock::Vsock;
use vmm::devices::virtio::{VirtioDevice, features};
use vmm_fuzz::{Ring, guest_memory, queue, run_device};

const GUEST_CID: u64 = 3;
const HOST_CID: u64 = 2;
/// The host port with a listener behind it.
const LISTENING_PORT: u32 = 5000;
const HEADER_BYTES: usize = 44;

/// A packet header the guest writes at `addr` (`struct virtio_vsock_hdr`).
#[derive(Arbitrary, Debug)]
struct Header {
    addr: u16,
    /// 0: the guest's CID; else the value.
    src_cid: u64,
    /// 0: the host's CID; else the value.
    dst_cid: u64,
    src_port: u32,
    /// 0: the port with a listener; else the value.
    dst_port: u32,
    /// Top bit clear: up to 8 KiB; set: any.
    len: u32,
    /// 0: STREAM; else the value.
    kind: u16,
    /// 1..=7 are the operations; the value as given in any case.
    op: u16,
    flags: u32,
    buf_alloc: u32,
    fwd_cnt: u32,
}

impl Header {
    fn bytes(&self) -> [u8; HEADER_BYTES] {
        let or = |value: u64, default: u64| if value == 0 { default } else { value };
        let len = if self.len >> 31 == 0 {
            self.len % 8193
        } else {
            self.len
        };
        let mut raw = [0u8; HEADER_BYTES];
        raw[0..8].copy_from_slice(&or(self.src_cid, GUEST_CID).to_le_bytes());
        raw[8..16].copy_from_slice(&or(self.dst_cid, HOST_CID).to_le_bytes());
        raw[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        let dst_port = or(self.dst_port.into(), LISTENING_PORT.into()) as u32;
        raw[20..24].copy_from_slice(&dst_port.to_le_bytes());
        raw[24..28].copy_from_slice(&len.to_le_bytes());
        raw[28..30].copy_from_slice(&(or(self.kind.into(), 1) as u16).to_le_bytes());
        raw[30..32].copy_from_slice(&self.op.to_le_bytes());
        raw[32..36].copy_from_slice(&self.flags.to_le_bytes());
        raw[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        raw[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        raw
    }
}

/// A host program that connected to the device's socket and wrote `CONNECT <port>\n` (or, if
/// `garbage`, just the bytes), then `bytes`.
#[derive(Arbitrary, Debug)]
struct HostProgram {
    port: u32,
    garbage: bool,
    bytes: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rx: Ring,
    tx: Ring,
    event: Ring,
    headers: Vec<Header>,
    host: Vec<HostProgram>,
}

/// The device (its listener bound once) and the harness's listener on `_5000`.
struct Sockets {
    vsock: Vsock,
    path: PathBuf,
    listener: UnixListener,
}

thread_local! {
    static SOCKETS: RefCell<Option<Sockets>> = const { RefCell::new(None) };
}

static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

extern "C" fn remove_dir() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn sockets() -> Sockets {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    // A run that ended in a crash or a hang (`_exit`: no atexit) left its folder behind.
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("noa-vmm-fuzz-vsock-"));
        if pid.is_some_and(|pid| !std::path::Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("noa-vmm-fuzz-vsock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("a folder for the vsock sockets");
    DIR.set(dir.clone()).expect("set once");
    // SAFETY: registers a plain function with no arguments, run at exit.
    unsafe { libc::atexit(remove_dir) };
    let path = dir.join("v.sock");
    let vsock = Vsock::new(GUEST_CID, &path).expect("the vsock device");
    let listener =
        UnixListener::bind(dir.join(format!("v.sock_{LISTENING_PORT}"))).expect("listener");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    Sockets {
        vsock,
        path,
        listener,
    }
}

fuzz_target!(|input: Input| {
    SOCKETS.with_borrow_mut(|sockets| {
        let Sockets {
            vsock,
            path,
            listener,
        } = sockets.get_or_insert_with(self::sockets);
        let mem = guest_memory(input.rx.two_regions);
        for header in input.headers.iter().take(16) {
            let _ = mem.write(&header.bytes(), GuestAddress(u64::from(header.addr)));
        }
        let max = vsock.queue_max_sizes()[0];
        let (Some(rx), Some(mut tx), Some(mut event)) = (
            queue(&mem, &input.rx, max),
            queue(&mem, &input.tx, max),
            queue(&mem, &input.event, max),
        ) else {
            return;
        };
        // EVENT_IDX is negotiated for the device, not per queue.
        tx.set_event_idx(input.rx.event_idx);
        event.set_event_idx(input.rx.event_idx);
        let mut negotiated = features::VERSION_1 | 1; // VIRTIO_VSOCK_F_STREAM
        if input.rx.event_idx {
            negotiated |= features::RING_EVENT_IDX;
        }

        let mut programs = Vec::new();
        for program in input.host.iter().take(2) {
            let Ok(mut stream) = UnixStream::connect(&*path) else {
                continue;
            };
            let _ = stream.set_nonblocking(true);
            if !program.garbage {
                let _ = writeln!(stream, "CONNECT {}", program.port);
            }
            let _ = stream.write(&program.bytes[..program.bytes.len().min(4096)]);
            programs.push(stream);
        }

        run_device(vsock, &mem, vec![rx, tx, event], negotiated);
        drop(programs);
        // Whatever the device connected to port 5000: accepted and closed.
        while listener.accept().is_ok() {}
    });
});
