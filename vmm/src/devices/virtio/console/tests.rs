//! Tests of the console against real split virtqueues laid out in guest memory by a small driver
//! ([`DriverQueue`]), with real pipes and files as input and a shared buffer as the output sink.
//! The device runs on its own I/O thread, so tests poll the used ring with a timeout.

use super::super::interrupt::USED_BUFFER;
use super::super::{Activation, Interrupt, VirtioDevice, features};
use super::input::MAX_PENDING_BYTES;
use super::output::MAX_CHAIN_BYTES;
use super::*;
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const MEM_BYTES: usize = 1 << 20;
const QUEUE_SIZE: u16 = 64;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;
/// Where the tests put their buffers.
const DATA: u64 = 0x1_0000;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Console tests run one at a time, so that [`worker_cpu_ticks`] sees only this test's worker.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// CPU time (clock ticks) used so far by the threads named "virtio-console" of this process.
fn worker_cpu_ticks() -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != "virtio-console" {
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

/// Asserts that the console's I/O thread is idle (not spinning on a ready fd it does not read).
fn assert_worker_idle() {
    let before = worker_cpu_ticks();
    std::thread::sleep(Duration::from_millis(300));
    let used = worker_cpu_ticks() - before;
    // A spinning thread uses ~30 ticks (at 100 Hz) in 300 ms; an idle one none.
    assert!(
        used < 5,
        "the I/O thread used {used} clock ticks in 300 ms with nothing to do"
    );
}

/// The driver's side of one split virtqueue (virtio 1.2 §2.7): descriptor table, avail ring and
/// used ring at `base`, written and read the way a guest driver would.
struct DriverQueue {
    mem: GuestMemoryMmap,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl DriverQueue {
    fn new(mem: &GuestMemoryMmap, base: u64) -> Self {
        // Zeroed rings: a fresh queue even where an earlier test activation left some.
        mem.write_slice(&[0; 0x1000], GuestAddress(base)).unwrap();
        DriverQueue {
            mem: mem.clone(),
            desc: base,
            avail: base + 0x400,
            used: base + 0x600,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    /// The device's copy, as the transport hands it over at DRIVER_OK.
    fn device_queue(&self, max_size: u16, event_idx: bool) -> Queue {
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

    /// Makes `head` available and returns it.
    fn publish(&mut self, head: u16) -> u16 {
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
        head
    }

    /// Adds a chain of (address, length, device-writable) buffers; returns its head.
    fn add_chain(&mut self, buffers: &[(u64, u32, bool)]) -> u16 {
        let first = self.next_desc;
        for (i, &(addr, len, writable)) in buffers.iter().enumerate() {
            let index = (first + i as u16) % QUEUE_SIZE;
            let last = i + 1 == buffers.len();
            let flags = if writable { F_WRITE } else { 0 } | if last { 0 } else { F_NEXT };
            self.write_desc(index, addr, len, flags, (index + 1) % QUEUE_SIZE);
        }
        self.next_desc = (first + buffers.len() as u16) % QUEUE_SIZE;
        self.publish(first)
    }

    /// Puts `bytes` at `addr` and adds them as a one-buffer transmit chain.
    fn add_tx(&mut self, addr: u64, bytes: &[u8]) -> u16 {
        self.mem.write_slice(bytes, GuestAddress(addr)).unwrap();
        self.add_chain(&[(addr, bytes.len() as u32, false)])
    }

    fn used_idx(&self) -> u16 {
        u16::from_le(
            self.mem
                .load(GuestAddress(self.used + 2), Ordering::Acquire)
                .unwrap(),
        )
    }

    /// Used element `i`: (head, length).
    fn used(&self, i: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(i % QUEUE_SIZE);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        (u32::from_le(id), u32::from_le(len))
    }

    fn wait_used(&self, count: u16) {
        wait_until(&format!("{count} used buffers"), || {
            self.used_idx() == count
        });
    }

    /// avail_event (EVENT_IDX): the avail index at which the device wants a notification.
    fn avail_event(&self) -> u16 {
        self.mem
            .read_obj(GuestAddress(self.used + 4 + 8 * u64::from(QUEUE_SIZE)))
            .unwrap()
    }

    /// used_event (EVENT_IDX): the used index at which the driver wants an interrupt.
    fn set_used_event(&self, value: u16) {
        let at = self.avail + 4 + 2 * u64::from(QUEUE_SIZE);
        self.mem
            .write_slice(&value.to_le_bytes(), GuestAddress(at))
            .unwrap();
    }
}

/// A sink the test can read: every write is appended to a shared buffer.
#[derive(Clone, Default)]
struct SharedSink(Arc<Mutex<Vec<u8>>>);

impl SharedSink {
    fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A console behind real queues, notified through its eventfds like KVM's ioeventfds do.
struct Harness {
    mem: GuestMemoryMmap,
    console: Console,
    rx: DriverQueue,
    tx: DriverQueue,
    notify: [EventFd; 2],
    irq: EventFd,
    interrupt: Arc<Interrupt>,
    features: u64,
    /// Last, so that it is released after the console (and its thread) is gone. None for a
    /// second console of the same test.
    _one_at_a_time: Option<std::sync::MutexGuard<'static, ()>>,
}

impl Harness {
    fn new(output: Box<dyn Write + Send>, input: Option<OwnedFd>) -> Self {
        Self::with_features(output, input, features::VERSION_1)
    }

    fn with_features(output: Box<dyn Write + Send>, input: Option<OwnedFd>, features: u64) -> Self {
        let guard = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::build(output, input, features, Some(guard))
    }

    /// Another console in a test that already has one (and so holds the lock).
    fn second(output: Box<dyn Write + Send>, input: Option<OwnedFd>) -> Self {
        Self::build(output, input, features::VERSION_1, None)
    }

    fn build(
        output: Box<dyn Write + Send>,
        input: Option<OwnedFd>,
        features: u64,
        guard: Option<std::sync::MutexGuard<'static, ()>>,
    ) -> Self {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_BYTES)]).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let interrupt = Arc::new(Interrupt::new(irq.try_clone().unwrap()));
        let notify = [
            EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            EventFd::new(libc::EFD_NONBLOCK).unwrap(),
        ];
        let mut harness = Harness {
            _one_at_a_time: guard,
            rx: DriverQueue::new(&mem, 0x1000),
            tx: DriverQueue::new(&mem, 0x2000),
            mem,
            console: Console::new(output, input),
            notify,
            irq,
            interrupt,
            features,
        };
        harness.activate().unwrap();
        harness
    }

    /// DRIVER_OK with the current rings.
    fn activate(&mut self) -> anyhow::Result<()> {
        let event_idx = self.features & features::RING_EVENT_IDX != 0;
        let sizes = self.console.queue_max_sizes();
        let activation = Activation {
            mem: self.mem.clone(),
            queues: vec![
                self.rx.device_queue(sizes[RX], event_idx),
                self.tx.device_queue(sizes[TX], event_idx),
            ],
            queue_events: self.notify.iter().map(|e| e.try_clone().unwrap()).collect(),
            interrupt: Arc::clone(&self.interrupt),
            features: self.features,
        };
        self.console.activate(activation)
    }

    fn kick(&self, queue: usize) {
        self.notify[queue].write(1).unwrap();
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        self.mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
        bytes
    }

    /// Whether the interrupt was raised since the last call.
    fn interrupted(&self) -> bool {
        self.irq.read().is_ok()
    }

    fn input_state(&self) -> (bool, bool, usize) {
        self.console.input_state().expect("the console has input")
    }

    /// Sends `text` through the transmitq and waits until it reaches `sink`.
    fn transmit(&mut self, sink: &SharedSink, text: &[u8]) {
        let before = sink.contents().len();
        let used = self.tx.used_idx();
        self.tx.add_tx(DATA + 0x8000, text);
        self.kick(TX);
        self.tx.wait_used(used.wrapping_add(1));
        wait_until("the transmitted text", || {
            sink.contents().len() >= before + text.len()
        });
        assert_eq!(&sink.contents()[before..], text);
    }
}

fn pipe() -> (OwnedFd, std::io::PipeWriter) {
    let (reader, writer) = std::io::pipe().unwrap();
    (reader.into(), writer)
}

#[test]
fn console_identity_and_config_space() {
    let console = Console::new(Box::new(std::io::sink()), None);
    assert_eq!(console.device_type(), 3);
    assert_eq!(console.queue_max_sizes().len(), 2);
    assert_eq!(console.device_features(), 0);
    let mut config = [0xffu8; 16];
    console.read_config(0, &mut config);
    assert_eq!(config, [80, 0, 25, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut rows = [0u8; 2];
    console.read_config(2, &mut rows);
    assert_eq!(u16::from_le_bytes(rows), 25);
    let mut far = [0xffu8; 4];
    console.read_config(u64::MAX - 1, &mut far);
    assert_eq!(far, [0; 4]);
}

#[test]
fn console_transmit_copies_readable_buffers_to_the_sink_and_interrupts() {
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), None);
    h.mem.write_slice(b"hello ", GuestAddress(DATA)).unwrap();
    h.mem
        .write_slice(b"world\n", GuestAddress(DATA + 0x100))
        .unwrap();
    let head =
        h.tx.add_chain(&[(DATA, 6, false), (DATA + 0x100, 6, false)]);
    h.kick(TX);
    h.tx.wait_used(1);
    assert_eq!(h.tx.used(0), (u32::from(head), 0));
    assert_eq!(sink.contents(), b"hello world\n");
    wait_until("the interrupt", || h.interrupted());
    assert_ne!(h.interrupt.status() & USED_BUFFER, 0);
}

#[test]
fn console_transmit_flushes_a_prompt_without_newline() {
    // A buffered sink like stdout: nothing reaches `sink` until it is flushed.
    let sink = SharedSink::default();
    let mut h = Harness::new(
        Box::new(std::io::BufWriter::with_capacity(1 << 20, sink.clone())),
        None,
    );
    h.transmit(&sink, b"login: ");
    h.transmit(&sink, b"root\n");
}

#[test]
fn console_transmit_caps_the_bytes_of_one_chain() {
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), None);
    let pattern: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
    h.mem.write_slice(&pattern, GuestAddress(DATA)).unwrap();
    // 40 KiB + 60 KiB: the cap falls inside the second descriptor.
    h.tx.add_chain(&[
        (DATA, 40 * 1024, false),
        (DATA + 40 * 1024, 60 * 1024, false),
    ]);
    h.kick(TX);
    h.tx.wait_used(1);
    assert_eq!(sink.contents(), &pattern[..MAX_CHAIN_BYTES]);
    // The next chain is whole again.
    sink.0.lock().unwrap().clear();
    h.transmit(&sink, b"next\n");
}

#[test]
fn console_transmit_skips_write_only_buffers() {
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), None);
    h.mem.write_slice(b"ab", GuestAddress(DATA)).unwrap();
    h.mem
        .write_slice(&[0xee; 16], GuestAddress(DATA + 0x100))
        .unwrap();
    h.mem
        .write_slice(b"cd\n", GuestAddress(DATA + 0x200))
        .unwrap();
    h.tx.add_chain(&[
        (DATA, 2, false),
        (DATA + 0x100, 16, true),
        (DATA + 0x200, 3, false),
    ]);
    h.kick(TX);
    h.tx.wait_used(1);
    assert_eq!(h.tx.used(0).1, 0);
    assert_eq!(sink.contents(), b"abcd\n");
    assert_eq!(h.read(DATA + 0x100, 16), [0xee; 16]);
}

#[test]
fn console_receive_delivers_input_into_posted_buffers() {
    let (input, mut writer) = pipe();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(input));
    let head = h.rx.add_chain(&[(DATA, 64, true)]);
    h.kick(RX);
    writer.write_all(b"hello\n").unwrap();
    h.rx.wait_used(1);
    assert_eq!(h.rx.used(0), (u32::from(head), 6));
    assert_eq!(h.read(DATA, 6), b"hello\n");
    wait_until("the interrupt", || h.interrupted());
    assert_eq!(h.input_state(), (true, false, 0));
}

#[test]
fn console_receive_keeps_input_until_the_guest_posts_buffers() {
    let (input, mut writer) = pipe();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(input));
    writer.write_all(b"early\n").unwrap();
    wait_until("buffered input", || h.input_state().2 == 6);
    assert_eq!(h.rx.used_idx(), 0);
    h.rx.add_chain(&[(DATA, 64, true)]);
    h.kick(RX);
    h.rx.wait_used(1);
    assert_eq!(h.rx.used(0).1, 6);
    assert_eq!(h.read(DATA, 6), b"early\n");
}

#[test]
fn console_receive_spreads_input_over_descriptors_and_chains() {
    let (input, mut writer) = pipe();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(input));
    let text: Vec<u8> = (0..100u8).collect();
    writer.write_all(&text).unwrap();
    wait_until("buffered input", || h.input_state().2 == 100);
    h.rx.add_chain(&[(DATA, 10, true), (DATA + 0x100, 20, true)]);
    h.rx.add_chain(&[(DATA + 0x200, 30, true)]);
    h.rx.add_chain(&[(DATA + 0x300, 64, true)]);
    h.kick(RX);
    h.rx.wait_used(3);
    assert_eq!(
        [h.rx.used(0).1, h.rx.used(1).1, h.rx.used(2).1],
        [30, 30, 40]
    );
    let got = [
        h.read(DATA, 10),
        h.read(DATA + 0x100, 20),
        h.read(DATA + 0x200, 30),
        h.read(DATA + 0x300, 40),
    ];
    assert_eq!(got.concat(), text);
}

#[test]
fn console_receive_buffer_is_bounded_and_loses_nothing() {
    let (reader, mut writer) = std::io::pipe().unwrap();
    // A second handle on the pipe's read end, only to ask how much is still in the pipe.
    let probe = reader.try_clone().unwrap();
    let in_pipe = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int.
        assert_eq!(
            unsafe { libc::ioctl(probe.as_raw_fd(), libc::FIONREAD, &mut n) },
            0
        );
        n as usize
    };
    // SAFETY: plain fcntl on our own write end.
    unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut h = Harness::new(Box::new(std::io::sink()), Some(reader.into()));

    // Write until the device has buffered all it may and the pipe is full, with no receive
    // buffers posted.
    let pattern = |i: usize| (i % 251) as u8;
    let mut written = 0usize;
    let mut full_rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while full_rounds < 10 {
        assert!(
            Instant::now() < deadline,
            "the device never buffered {MAX_PENDING_BYTES} bytes"
        );
        let chunk: Vec<u8> = (written..written + 4096).map(pattern).collect();
        match writer.write(&chunk) {
            Ok(n) => {
                written += n;
                full_rounds = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // The pipe is full; once the device has stopped taking input too, we are done.
                if h.input_state().2 >= MAX_PENDING_BYTES {
                    full_rounds += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
        assert!(written < 16 << 20, "the device keeps reading without bound");
    }
    let taken = written - in_pipe();
    assert_eq!(
        taken, MAX_PENDING_BYTES,
        "the device took {taken} bytes with nowhere to put them"
    );
    assert_eq!(h.input_state(), (false, false, MAX_PENDING_BYTES));
    // Full: the fd is still readable, yet the worker neither reads it nor spins on it.
    assert_worker_idle();
    assert_eq!(written - in_pipe(), MAX_PENDING_BYTES);

    // Now the guest takes everything, eight 4 KiB buffers outstanding at a time; the device
    // reads the rest of the pipe as room frees up.
    let mut received = Vec::new();
    let (mut posted, mut consumed) = (0u16, 0u16);
    let slot = |head: u32| DATA + u64::from(head % 16) * 0x1000;
    while received.len() < written {
        while posted.wrapping_sub(consumed) < 8 {
            let head = h.rx.next_desc;
            h.rx.add_chain(&[(slot(u32::from(head)), 0x1000, true)]);
            posted = posted.wrapping_add(1);
        }
        h.kick(RX);
        wait_until("more input", || h.rx.used_idx() != consumed);
        while consumed != h.rx.used_idx() {
            let (head, len) = h.rx.used(consumed);
            received.extend(h.read(slot(head), len as usize));
            consumed = consumed.wrapping_add(1);
        }
    }
    assert_eq!(received.len(), written);
    assert!(
        received.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "input corrupted or reordered"
    );
}

#[test]
fn console_receive_stops_watching_at_eof() {
    let (input, mut writer) = pipe();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(input));
    writer.write_all(b"bye").unwrap();
    drop(writer);
    wait_until("the end of the input", || {
        h.input_state() == (false, true, 3)
    });
    // A pipe at EOF stays ready (EPOLLHUP) forever: the worker must have stopped watching it.
    assert_worker_idle();
    h.rx.add_chain(&[(DATA, 64, true)]);
    h.kick(RX);
    h.rx.wait_used(1);
    assert_eq!(h.read(DATA, 3), b"bye");
    assert_eq!(h.input_state(), (false, true, 0));
}

#[test]
fn console_receive_reads_files_epoll_cannot_watch() {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"from a file\n").unwrap();
    file.rewind().unwrap();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(file.into()));
    h.rx.add_chain(&[(DATA, 64, true)]);
    h.kick(RX);
    h.rx.wait_used(1);
    assert_eq!(h.read(DATA, 12), b"from a file\n");
    wait_until("the end of the file", || {
        h.input_state() == (false, true, 0)
    });

    drop(h); // one harness at a time
    let null = std::fs::File::open("/dev/null").unwrap();
    let h = Harness::new(Box::new(std::io::sink()), Some(null.into()));
    wait_until("the end of /dev/null", || {
        h.input_state() == (false, true, 0)
    });
    assert_worker_idle();
}

#[test]
fn console_without_input_never_uses_receive_buffers() {
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), None);
    h.rx.add_chain(&[(DATA, 64, true)]);
    h.kick(RX);
    h.transmit(&sink, b"still here\n");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(h.rx.used_idx(), 0);
}

#[test]
fn console_hostile_transmit_chains_do_not_panic() {
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), None);
    h.mem.write_slice(b"xy", GuestAddress(DATA)).unwrap();
    // A loop: 0 -> 1 -> 0 -> ... (virtio-queue stops after a queue's worth of descriptors).
    h.tx.write_desc(0, DATA, 2, F_NEXT, 1);
    h.tx.write_desc(1, DATA, 2, F_NEXT, 0);
    h.tx.publish(0);
    // Outside guest memory, and straddling its end.
    h.tx.write_desc(2, 0xffff_ffff_0000, 16, 0, 0);
    h.tx.publish(2);
    h.tx.write_desc(3, MEM_BYTES as u64 - 4, 64, 0, 0);
    h.tx.publish(3);
    // A length near 4 GiB (capped), a next index beyond the table, a bogus indirect table.
    h.tx.write_desc(4, DATA, u32::MAX, F_NEXT, 1000);
    h.tx.publish(4);
    h.tx.write_desc(5, 0xffff_ffff_0000, 17, F_INDIRECT, 0);
    h.tx.publish(5);
    h.tx.write_desc(6, DATA + 0x100, 0x100, F_INDIRECT, 0); // a table of zeroed descriptors
    h.tx.publish(6);
    h.tx.next_desc = 8;
    h.kick(TX);
    h.tx.wait_used(6);
    assert_eq!(
        &sink.contents()[..2 * QUEUE_SIZE as usize],
        b"xy".repeat(QUEUE_SIZE as usize)
    );
    // The queue still works.
    sink.0.lock().unwrap().clear();
    h.transmit(&sink, b"ok\n");
}

#[test]
fn console_hostile_receive_chains_do_not_lose_input() {
    let (input, mut writer) = pipe();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(input));
    writer.write_all(b"0123456789").unwrap();
    wait_until("buffered input", || h.input_state().2 == 10);
    h.mem.write_slice(&[0xee; 8], GuestAddress(DATA)).unwrap();
    // A readable buffer (skipped), one outside memory (skipped), then a good one of 4 bytes.
    h.rx.add_chain(&[
        (DATA, 8, false),
        (0xffff_ffff_0000, 8, true),
        (DATA + 0x100, 4, true),
    ]);
    // Then a descriptor loop of writable buffers: it takes what is left, and stops.
    h.rx.write_desc(10, DATA + 0x200, 2, F_WRITE | F_NEXT, 11);
    h.rx.write_desc(11, DATA + 0x300, 2, F_WRITE | F_NEXT, 10);
    h.rx.publish(10);
    h.kick(RX);
    h.rx.wait_used(2);
    assert_eq!(h.read(DATA, 8), [0xee; 8]);
    assert_eq!(h.rx.used(0).1, 4);
    assert_eq!(h.read(DATA + 0x100, 4), b"0123");
    assert_eq!(h.rx.used(1).1, 6);
    assert_eq!(h.read(DATA + 0x200, 2), b"89"); // written last, over "45"
    assert_eq!(h.read(DATA + 0x300, 2), b"67");
}

#[test]
fn console_broken_rings_stop_one_queue_not_the_device() {
    // A head index beyond the queue; an avail index more than a queue ahead (which virtio-queue
    // will not iterate, while its enable_notification keeps saying "more": a spin if retried).
    let breakers: [fn(&mut DriverQueue); 2] = [
        |tx| {
            tx.write_desc(0, DATA, 2, 0, 0);
            tx.publish(QUEUE_SIZE + 5);
        },
        |tx| {
            let far = tx.avail_idx.wrapping_add(1000);
            tx.mem
                .store(far.to_le(), GuestAddress(tx.avail + 2), Ordering::Release)
                .unwrap();
        },
    ];
    for breaker in breakers {
        let (input, mut writer) = pipe();
        let sink = SharedSink::default();
        let mut h = Harness::new(Box::new(sink.clone()), Some(input));
        breaker(&mut h.tx);
        h.kick(TX);
        // The I/O thread is not stuck: the receive queue is still served.
        h.rx.add_chain(&[(DATA + 0x100, 16, true)]);
        h.kick(RX);
        writer.write_all(b"alive").unwrap();
        h.rx.wait_used(1);
        assert_eq!(h.read(DATA + 0x100, 5), b"alive");
        assert!(sink.contents().is_empty());
    }
}

#[test]
fn console_reset_then_reactivate() {
    let (input, mut writer) = pipe();
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), Some(input));
    h.transmit(&sink, b"one\n");
    writer.write_all(b"abc").unwrap();
    wait_until("buffered input", || h.input_state().2 == 3);

    h.console.reset();
    // Nothing serves the queues now: input waits in the pipe, output in the ring.
    writer.write_all(b"def").unwrap();
    h.tx.add_tx(DATA, b"lost\n");
    h.kick(TX);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(h.tx.used_idx(), 1);
    assert_eq!(h.input_state().2, 3);

    // The driver sets the device up again, with new rings, posting receive buffers first.
    h.rx = DriverQueue::new(&h.mem, 0x3000);
    h.tx = DriverQueue::new(&h.mem, 0x4000);
    h.rx.add_chain(&[(DATA + 0x100, 64, true)]);
    h.rx.add_chain(&[(DATA + 0x200, 64, true)]);
    h.activate().unwrap();
    h.transmit(&sink, b"two\n");
    let used_len = |h: &Harness| (0..h.rx.used_idx()).map(|i| h.rx.used(i).1).sum::<u32>();
    wait_until("all the input", || used_len(&h) == 6);
    let mut got = h.read(DATA + 0x100, h.rx.used(0).1 as usize);
    if h.rx.used_idx() == 2 {
        got.extend(h.read(DATA + 0x200, h.rx.used(1).1 as usize));
    }
    assert_eq!(got, b"abcdef");
    assert_eq!(sink.contents(), b"one\ntwo\n");
}

#[test]
fn console_activation_needs_both_queues() {
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), None);
    h.console.reset();
    let activation = Activation {
        mem: h.mem.clone(),
        queues: vec![h.tx.device_queue(QUEUE_SIZE, false)],
        queue_events: vec![h.notify[1].try_clone().unwrap()],
        interrupt: Arc::clone(&h.interrupt),
        features: features::VERSION_1,
    };
    assert!(h.console.activate(activation).is_err());
    h.activate().unwrap();
    h.transmit(&sink, b"fine\n");
}

#[test]
fn console_event_idx_asks_for_buffers_and_honours_used_event() {
    let (input, mut writer) = pipe();
    let sink = SharedSink::default();
    let mut h = Harness::with_features(
        Box::new(sink.clone()),
        Some(input),
        features::VERSION_1 | features::RING_EVENT_IDX,
    );
    // One byte delivered moves the device's next_avail to 1...
    h.rx.add_chain(&[(DATA, 16, true)]);
    h.kick(RX);
    writer.write_all(b"a").unwrap();
    h.rx.wait_used(1);
    wait_until("the interrupt", || h.interrupted());
    // ...and input with no buffers left: it must ask to be notified of the next buffer added.
    writer.write_all(b"x").unwrap();
    wait_until("buffered input", || h.input_state().2 == 1);
    assert_eq!(h.rx.avail_event(), 1);
    // Like Linux, the driver asks for the interrupt after the one it has seen (used_event was 0,
    // so without this the next used buffer would rightly raise none).
    h.rx.set_used_event(1);
    h.rx.add_chain(&[(DATA + 0x100, 16, true)]);
    h.kick(RX);
    h.rx.wait_used(2);
    assert_eq!(h.read(DATA + 0x100, 1), b"x");
    wait_until("the interrupt", || h.interrupted());

    // used_event 5: the driver wants no interrupt for the first transmit buffer...
    h.tx.set_used_event(5);
    h.transmit(&sink, b"quiet\n");
    std::thread::sleep(Duration::from_millis(20));
    assert!(!h.interrupted());
    // ...and one when the used index passes used_event again.
    h.tx.set_used_event(1);
    h.transmit(&sink, b"loud\n");
    wait_until("the interrupt", || h.interrupted());
}

#[test]
fn console_sink_failure_does_not_stall_the_guest() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
    }
    let mut h = Harness::new(Box::new(Broken), None);
    for i in 0..3 {
        h.tx.add_tx(DATA + i * 0x100, b"into the void\n");
    }
    h.kick(TX);
    h.tx.wait_used(3);
}

#[test]
fn console_eof_is_one_zero_length_completion_after_the_input() {
    let (input, mut writer) = pipe();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(input));
    // Buffers posted before the input ends: the data, then the end, then nothing more.
    for i in 0..4 {
        h.rx.add_chain(&[(DATA + i * 0x100, 64, true)]);
    }
    h.kick(RX);
    writer.write_all(b"last words").unwrap();
    h.rx.wait_used(1);
    assert_eq!(h.rx.used(0).1, 10);
    drop(writer);
    h.rx.wait_used(2);
    assert_eq!(
        h.rx.used(1).1,
        0,
        "the end of the input is a zero-length completion"
    );
    wait_until("the interrupt", || h.interrupted());
    std::thread::sleep(Duration::from_millis(50));
    h.kick(RX);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.rx.used_idx(), 2, "exactly one end-of-input completion");
    assert_eq!(h.input_state(), (false, true, 0));
    assert_worker_idle();
}

#[test]
fn console_eof_waits_for_buffered_input_and_for_a_buffer() {
    let (input, mut writer) = pipe();
    let mut h = Harness::with_features(
        Box::new(std::io::sink()),
        Some(input),
        features::VERSION_1 | features::RING_EVENT_IDX,
    );
    // 100 bytes and the end arrive with no buffer posted.
    writer.write_all(&[7u8; 100]).unwrap();
    drop(writer);
    wait_until("the end of the input", || {
        h.input_state() == (false, true, 100)
    });
    // A buffer too small for the data: the data comes first, over two chains, then the end.
    h.rx.add_chain(&[(DATA, 60, true)]);
    h.kick(RX);
    h.rx.wait_used(1);
    assert_eq!(h.rx.used(0).1, 60);
    h.rx.add_chain(&[(DATA + 0x100, 60, true)]);
    h.kick(RX);
    h.rx.wait_used(2);
    assert_eq!(h.rx.used(1).1, 40);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(h.rx.used_idx(), 2, "no buffer for the end yet");
    h.rx.set_used_event(2);
    h.rx.add_chain(&[(DATA + 0x200, 60, true)]);
    h.kick(RX);
    h.rx.wait_used(3);
    assert_eq!(h.rx.used(2).1, 0);
    wait_until("the interrupt", || h.interrupted());
}

#[test]
fn console_eof_of_files_and_dev_null() {
    // /dev/null: the end at once.
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(null.into()));
    h.rx.add_chain(&[(DATA, 64, true)]);
    h.rx.add_chain(&[(DATA + 0x100, 64, true)]);
    h.kick(RX);
    h.rx.wait_used(1);
    assert_eq!(h.rx.used(0).1, 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(h.rx.used_idx(), 1);
    drop(h);

    // A regular file: its bytes (any bytes), then the end.
    let all: Vec<u8> = (0..=255).collect();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&all).unwrap();
    file.rewind().unwrap();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(file.into()));
    h.rx.add_chain(&[(DATA, 0x1000, true)]);
    h.rx.add_chain(&[(DATA + 0x1000, 0x1000, true)]);
    h.kick(RX);
    h.rx.wait_used(2);
    assert_eq!(h.rx.used(0).1, 256);
    assert_eq!(h.read(DATA, 256), all);
    assert_eq!(h.rx.used(1).1, 0);
}

#[test]
fn console_eof_is_told_again_to_a_new_driver() {
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut h = Harness::new(Box::new(std::io::sink()), Some(null.into()));
    h.rx.add_chain(&[(DATA, 64, true)]);
    h.kick(RX);
    h.rx.wait_used(1);
    assert_eq!(h.rx.used(0).1, 0);
    h.console.reset();
    h.rx = DriverQueue::new(&h.mem, 0x3000);
    h.tx = DriverQueue::new(&h.mem, 0x4000);
    h.rx.add_chain(&[(DATA + 0x100, 64, true)]);
    h.rx.add_chain(&[(DATA + 0x200, 64, true)]);
    h.activate().unwrap();
    h.rx.wait_used(1);
    assert_eq!(h.rx.used(0).1, 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(h.rx.used_idx(), 1);
}

#[test]
fn console_without_input_never_tells_eof() {
    // Console 1 (stderr): no input, so its receive buffers are never used, not even for an end.
    let sink = SharedSink::default();
    let mut h = Harness::new(Box::new(sink.clone()), None);
    h.rx.add_chain(&[(DATA, 64, true)]);
    h.kick(RX);
    h.transmit(&sink, b"to stderr\n");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(h.rx.used_idx(), 0);
}

#[test]
fn console_output_is_byte_exact_and_flushed_per_chain() {
    // Every byte value, no newline at the end, through a sink that holds everything until it is
    // flushed: when the chain is used, the bytes are out.
    let sink = SharedSink::default();
    let mut h = Harness::new(
        Box::new(std::io::BufWriter::with_capacity(1 << 20, sink.clone())),
        None,
    );
    let all: Vec<u8> = (0..=255).rev().collect();
    h.mem.write_slice(&all, GuestAddress(DATA)).unwrap();
    h.tx.add_chain(&[(DATA, 100, false), (DATA + 100, 156, false)]);
    h.kick(TX);
    h.tx.wait_used(1);
    assert_eq!(sink.contents(), all);
    h.transmit(&sink, b"\r\n\0no newline");
}

#[test]
fn two_consoles_keep_their_streams_apart() {
    // What the VMM attaches: console 0 with input and one sink, console 1 with another and none.
    // Each has its own I/O thread; both serve at once.
    let (input, mut writer) = pipe();
    let (out, err) = (SharedSink::default(), SharedSink::default());
    let mut h0 = Harness::new(Box::new(out.clone()), Some(input));
    let mut h1 = Harness::second(Box::new(err.clone()), None);
    h0.rx.add_chain(&[(DATA, 64, true)]);
    h0.rx.add_chain(&[(DATA + 0x100, 64, true)]);
    h1.rx.add_chain(&[(DATA, 64, true)]);
    h0.kick(RX);
    h1.kick(RX);
    h1.tx.add_tx(DATA + 0x200, b"err\n");
    h1.kick(TX);
    h0.transmit(&out, b"out\n");
    writer.write_all(b"in").unwrap();
    drop(writer);
    h0.rx.wait_used(2);
    assert_eq!((h0.rx.used(0).1, h0.rx.used(1).1), (2, 0));
    h1.tx.wait_used(1);
    assert_eq!(err.contents(), b"err\n");
    assert_eq!(out.contents(), b"out\n");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(h1.rx.used_idx(), 0, "console 1 has no input");
}
