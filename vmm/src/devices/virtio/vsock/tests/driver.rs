//! The tests' guest: a driver that lays out real split virtqueues (virtio 1.2 §2.7) in guest
//! memory, activates a [`Vsock`] through the [`VirtioDevice`] trait, posts receive buffers and
//! writes packets into transmit buffers, and notifies the device through the same eventfds KVM
//! would signal. The device runs on its own I/O thread, so everything waits with a timeout.

use super::super::muxer::Gauges;
use super::super::packet::{HEADER_BYTES, HOST_CID, Header, TYPE_STREAM};
use super::super::{Vsock, queues};
use crate::devices::virtio::{Activation, Interrupt, Queue, VirtioDevice, features};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

pub const MEM_BYTES: usize = 16 << 20;
pub const QUEUE_SIZE: u16 = 64;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
/// Each descriptor index owns a buffer area of this size in its queue's data region (room for a
/// header plus the largest payload), so a buffer is reused only when its descriptor is.
const SLOT: u64 = 0x1_1000;
/// Receive buffers as Linux posts them: a 4 KiB payload after the header.
pub const RX_BUF: u32 = HEADER_BYTES as u32 + 4096;
/// The guest's CID in the tests.
pub const CID: u64 = 3;
/// How long any wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Tests with a device run one at a time, so that [`assert_worker_idle`] sees only its own
/// I/O thread (and timing-sensitive tests do not compete for the CPU).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// CPU time (clock ticks) used so far by this process's threads named "virtio-vsock".
fn worker_cpu_ticks() -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != "virtio-vsock" {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // After "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let times = fields.get(11..13).unwrap_or_default();
        ticks += times
            .iter()
            .map(|t| t.parse::<u64>().unwrap_or(0))
            .sum::<u64>();
    }
    ticks
}

/// Asserts that the device's I/O thread is idle (not spinning on a ready fd it ignores).
pub fn assert_worker_idle(when: &str) {
    let before = worker_cpu_ticks();
    std::thread::sleep(Duration::from_millis(300));
    let used = worker_cpu_ticks() - before;
    // A spinning thread uses ~30 ticks (at 100 Hz) in 300 ms; an idle one next to none.
    assert!(
        used < 5,
        "{when}: the I/O thread used {used} clock ticks in 300 ms with nothing to do"
    );
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The driver's side of one split virtqueue.
pub struct DriverQueue {
    mem: GuestMemoryMmap,
    desc: u64,
    avail: u64,
    used: u64,
    data: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl DriverQueue {
    /// Rings at `base` (one page), buffers from `data` (QUEUE_SIZE slots).
    pub fn new(mem: &GuestMemoryMmap, base: u64, data: u64) -> Self {
        mem.write_slice(&[0; 0x1000], GuestAddress(base)).unwrap();
        DriverQueue {
            mem: mem.clone(),
            desc: base,
            avail: base + 0x400,
            used: base + 0x600,
            data,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    /// The device's copy, as the transport hands it over at DRIVER_OK.
    pub fn device_queue(&self, max_size: u16, event_idx: bool) -> Queue {
        let mut q = Queue::new(max_size).unwrap();
        q.set_size(QUEUE_SIZE);
        q.set_desc_table_address(Some(self.desc as u32), Some(0));
        q.set_avail_ring_address(Some(self.avail as u32), Some(0));
        q.set_used_ring_address(Some(self.used as u32), Some(0));
        q.set_event_idx(event_idx);
        q.set_ready(true);
        assert!(q.is_valid(&self.mem));
        q
    }

    /// The buffer area of descriptor `index`.
    pub fn slot(&self, index: u16) -> u64 {
        self.data + SLOT * u64::from(index)
    }

    fn write_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem
            .write_slice(&raw, GuestAddress(self.desc + 16 * u64::from(index)))
            .unwrap();
    }

    /// Makes `head` available.
    pub fn publish(&mut self, head: u16) {
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % QUEUE_SIZE);
        self.mem
            .write_slice(&head.to_le_bytes(), GuestAddress(slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .store(
                self.avail_idx.to_le(),
                GuestAddress(self.avail + 2),
                Ordering::Release,
            )
            .unwrap();
    }

    /// Adds a chain of (address, length, device-writable) buffers; returns its head. An address
    /// of None means the descriptor's own slot.
    pub fn add_chain(&mut self, buffers: &[(Option<u64>, u32, bool)]) -> u16 {
        let first = self.next_desc;
        for (i, &(addr, len, writable)) in buffers.iter().enumerate() {
            let index = (first + i as u16) % QUEUE_SIZE;
            let last = i + 1 == buffers.len();
            let flags = if writable { F_WRITE } else { 0 } | if last { 0 } else { F_NEXT };
            let addr = addr.unwrap_or(self.slot(index));
            self.write_desc(index, addr, len, flags, (index + 1) % QUEUE_SIZE);
        }
        self.next_desc = (first + buffers.len() as u16) % QUEUE_SIZE;
        self.publish(first);
        first
    }

    /// Index of the next descriptor add_chain uses.
    pub fn next_desc(&self) -> u16 {
        self.next_desc
    }

    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }

    pub fn used_idx(&self) -> u16 {
        u16::from_le(
            self.mem
                .load(GuestAddress(self.used + 2), Ordering::Acquire)
                .unwrap(),
        )
    }

    /// Used element `i`: (head, length).
    pub fn used(&self, i: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(i % QUEUE_SIZE);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        (u32::from_le(id), u32::from_le(len))
    }
}

/// A guest with one vsock device.
pub struct Guest {
    pub mem: GuestMemoryMmap,
    pub device: Vsock,
    pub rx: DriverQueue,
    pub tx: DriverQueue,
    event: DriverQueue,
    notify: [EventFd; 3],
    irq: EventFd,
    interrupt: Arc<Interrupt>,
    /// Receive used entries consumed so far.
    rx_seen: u16,
    /// Size of the receive buffers `recv` posts as it consumes them.
    pub rx_buf: u32,
    /// Last, so that it is released after the device (and its thread) is gone.
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Guest {
    /// A device for `uds`, activated, with `rx_buffers` receive buffers posted.
    pub fn new(uds: &Path, rx_buffers: u16) -> Guest {
        let device = Vsock::new(CID, uds).expect("the vsock device");
        Guest::with_device(device, rx_buffers)
    }

    pub fn with_device(device: Vsock, rx_buffers: u16) -> Guest {
        let one_at_a_time = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_BYTES)]).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let interrupt = Arc::new(Interrupt::new(irq.try_clone().unwrap()));
        let notify = [0, 1, 2].map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let mut guest = Guest {
            rx: DriverQueue::new(&mem, 0x1000, 0x10_0000),
            tx: DriverQueue::new(&mem, 0x2000, 0x60_0000),
            event: DriverQueue::new(&mem, 0x3000, 0xb0_0000),
            mem,
            device,
            notify,
            irq,
            interrupt,
            rx_seen: 0,
            rx_buf: RX_BUF,
            _one_at_a_time: one_at_a_time,
        };
        guest.activate();
        guest.post_rx(rx_buffers);
        guest
    }

    /// DRIVER_OK with fresh rings (EVENT_IDX on, as Linux and virtio-drivers negotiate it).
    pub fn activate(&mut self) {
        self.rx = DriverQueue::new(&self.mem, 0x1000, 0x10_0000);
        self.tx = DriverQueue::new(&self.mem, 0x2000, 0x60_0000);
        self.event = DriverQueue::new(&self.mem, 0x3000, 0xb0_0000);
        self.rx_seen = 0;
        // Eight event buffers, as a driver posts them; the device never uses them.
        for _ in 0..8 {
            self.event.add_chain(&[(None, 8, true)]);
        }
        let sizes = self.device.queue_max_sizes().to_vec();
        assert_eq!(sizes, [256, 256, 256]);
        let activation = Activation {
            mem: self.mem.clone(),
            queues: vec![
                self.rx.device_queue(sizes[0], true),
                self.tx.device_queue(sizes[1], true),
                self.event.device_queue(sizes[2], true),
            ],
            queue_events: self.notify.iter().map(|e| e.try_clone().unwrap()).collect(),
            interrupt: Arc::clone(&self.interrupt),
            features: features::VERSION_1 | features::RING_EVENT_IDX,
        };
        self.device.activate(activation).expect("activation");
    }

    pub fn gauges(&self) -> &Gauges {
        self.device.gauges()
    }

    pub fn connections(&self) -> usize {
        self.gauges().connections.load(Ordering::Relaxed)
    }

    /// Whether the device raised its interrupt since the last call.
    pub fn interrupted(&self) -> bool {
        self.irq.read().is_ok()
    }

    pub fn kick(&self, queue: usize) {
        self.notify[queue].write(1).unwrap();
    }

    /// Posts `count` receive buffers of `rx_buf` bytes.
    pub fn post_rx(&mut self, count: u16) {
        for _ in 0..count {
            self.rx.add_chain(&[(None, self.rx_buf, true)]);
        }
        if count > 0 {
            self.kick(queues::RX);
        }
    }

    /// A header from the guest's `src_port` to the host's `dst_port`, granting 64 KiB of credit.
    pub fn header(&self, op: u16, src_port: u32, dst_port: u32) -> Header {
        Header {
            src_cid: CID,
            dst_cid: HOST_CID,
            src_port,
            dst_port,
            type_: TYPE_STREAM,
            op,
            buf_alloc: 64 * 1024,
            ..Header::default()
        }
    }

    /// Puts a packet in the transmit queue (header and payload in separate descriptors, as
    /// Linux does) and notifies; does not wait.
    pub fn send_nowait(&mut self, header: &Header, payload: &[u8]) {
        let mut header = *header;
        header.len = payload.len() as u32;
        let first = self.tx.next_desc();
        self.mem
            .write_slice(&header.to_bytes(), GuestAddress(self.tx.slot(first)))
            .unwrap();
        if payload.is_empty() {
            self.tx.add_chain(&[(None, HEADER_BYTES as u32, false)]);
        } else {
            let second = (first + 1) % QUEUE_SIZE;
            self.mem
                .write_slice(payload, GuestAddress(self.tx.slot(second)))
                .unwrap();
            self.tx.add_chain(&[
                (None, HEADER_BYTES as u32, false),
                (None, payload.len() as u32, false),
            ]);
        }
        self.kick(queues::TX);
    }

    /// Sends a packet and waits until the device has taken it.
    pub fn send(&mut self, header: &Header, payload: &[u8]) {
        self.send_nowait(header, payload);
        self.wait_tx_done();
    }

    /// Writes `bytes` into the buffer of the next transmit descriptor (for [`Guest::send_raw`]).
    pub fn stage_tx(&self, bytes: &[u8]) {
        let at = self.tx.slot(self.tx.next_desc());
        self.mem.write_slice(bytes, GuestAddress(at)).unwrap();
    }

    /// Adds a raw transmit chain (for malformed packets) and waits until the device took it.
    pub fn send_raw(&mut self, buffers: &[(Option<u64>, u32, bool)]) {
        self.tx.add_chain(buffers);
        self.kick(queues::TX);
        self.wait_tx_done();
    }

    /// Waits until the device has used every transmit chain.
    pub fn wait_tx_done(&self) {
        let want = self.tx.avail_idx();
        wait_until("the transmit queue to drain", || self.tx.used_idx() == want);
    }

    /// The next used receive buffer, if one arrives within `wait`: its raw used length and
    /// bytes. Reposts a buffer in its place.
    pub fn recv_raw(&mut self, wait: Duration) -> Option<(u32, Vec<u8>)> {
        let deadline = Instant::now() + wait;
        while self.rx.used_idx() == self.rx_seen {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let (head, len) = self.rx.used(self.rx_seen);
        self.rx_seen = self.rx_seen.wrapping_add(1);
        let mut bytes = vec![0; len as usize];
        self.mem
            .read_slice(&mut bytes, GuestAddress(self.rx.slot(head as u16)))
            .unwrap();
        self.post_rx(1);
        Some((len, bytes))
    }

    /// The next packet, if one arrives within `wait`.
    pub fn try_recv(&mut self, wait: Duration) -> Option<(Header, Vec<u8>)> {
        let (len, bytes) = self.recv_raw(wait)?;
        assert!(len as usize >= HEADER_BYTES, "a used length of {len}");
        let header = Header::from_bytes(bytes[..HEADER_BYTES].try_into().unwrap());
        assert_eq!(
            len as usize,
            HEADER_BYTES + header.len as usize,
            "used length vs header {header:?}"
        );
        assert!(
            len <= self.rx_buf,
            "a packet of {len} bytes in a {} byte buffer",
            self.rx_buf
        );
        assert_eq!((header.src_cid, header.dst_cid), (HOST_CID, CID));
        assert_eq!(header.type_, TYPE_STREAM);
        Some((header, bytes[HEADER_BYTES..].to_vec()))
    }

    /// The next packet (the test fails if none arrives in time).
    pub fn recv(&mut self) -> (Header, Vec<u8>) {
        self.try_recv(PATIENCE)
            .expect("timed out waiting for a packet from the device")
    }
}
