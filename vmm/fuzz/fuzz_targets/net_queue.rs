//! virtio-net's queue processing, synchronously: the device's I/O-thread handler (`NetQueues`)
//! over a fuzzer-built receive and transmit queue in a 64 KiB guest memory, driven through a
//! fuzzer-chosen sequence of transmit notifications, receive notifications and host wake-ups,
//! with guest memory writes and frames from the "host" (of any length, some not frames at all)
//! in between. The backend is an in-memory stand-in: the user network's host sockets and the tap
//! stay out of it, so a run has no side effects and is deterministic.
//!
//! Besides "no crash": every frame handed to the backend is at most `MAX_FRAME` bytes.

#![no_main]

use arbitrary::Arbitrary;
use event_manager::EventSet;
use libfuzzer_sys::fuzz_target;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use virtio_queue::QueueT;
use vmm::devices::virtio::Interrupt;
use vmm::devices::virtio::net::NetBackend;
use vmm::devices::virtio::net::frame::{BACKLOG_FRAMES, FrameQueue, MAX_FRAME};
use vmm::devices::virtio::net::queues::{NetQueues, RX_QUEUE, TX_QUEUE};
use vmm::devices::virtio::worker::QueueHandler;
use vmm_fuzz::{Patch, Ring, apply, guest_memory, queue};
use vmm_sys_util::eventfd::EventFd;

/// Most events per input.
const MAX_EVENTS: usize = 32;
/// Most frames the host side queues per input.
const MAX_HOST_FRAMES: usize = 600;

/// The other end of the wire: frames for the guest come from the input.
struct Backend {
    to_guest: FrameQueue,
    /// Frames the host has not put in the backlog yet (added on `poll`, as a real backend does
    /// once the backlog has room); the harness adds to it.
    waiting: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl NetBackend for Backend {
    fn host_sources(&self) -> Vec<(RawFd, EventSet)> {
        Vec::new()
    }

    fn guest_sent(&mut self, frame: &[u8]) {
        assert!(frame.len() <= MAX_FRAME, "a {}-byte frame", frame.len());
    }

    fn poll(&mut self) {
        while !self.to_guest.is_full() {
            let Some(frame) = self.waiting.lock().expect("waiting frames").pop() else {
                break;
            };
            self.to_guest.push(frame);
        }
    }

    fn host_ready(&mut self, _fd: RawFd, _events: EventSet) {
        self.poll();
    }

    fn to_guest(&mut self) -> &mut FrameQueue {
        &mut self.to_guest
    }
}

#[derive(Arbitrary, Debug)]
enum Event {
    /// The driver notifies the transmit queue.
    Transmit,
    /// The driver notifies the receive queue (new buffers).
    Receive,
    /// A host source of the backend is ready.
    Host,
    /// The driver writes guest memory.
    Memory(Patch),
    /// The host has `count` frames of `len` bytes (`len % 1600`, so some are runts or giants)
    /// for the guest, waiting until the backend polls.
    Frames { count: u8, len: u16, fill: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    rx: Ring,
    tx: Ring,
    /// Frame lengths already in the backlog at activation.
    backlog: Vec<u16>,
    events: Vec<Event>,
}

fuzz_target!(|input: Input| {
    let mem = guest_memory(input.rx.two_regions);
    let Some(rx) = queue(&mem, &input.rx, 256) else {
        return;
    };
    let Some(mut tx) = queue(&mem, &input.tx, 256) else {
        return;
    };
    // EVENT_IDX is negotiated for the device, not per queue.
    tx.set_event_idx(input.rx.event_idx);
    let waiting = Arc::new(Mutex::new(Vec::new()));
    let mut backend = Backend {
        to_guest: FrameQueue::new(BACKLOG_FRAMES),
        waiting: Arc::clone(&waiting),
    };
    for (i, &len) in input.backlog.iter().take(MAX_HOST_FRAMES).enumerate() {
        backend
            .to_guest
            .push(vec![i as u8; usize::from(len % 1600)]);
    }
    let backend: Box<dyn NetBackend> = Box::new(backend);
    let irqfd = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
    let interrupt = Arc::new(Interrupt::new(irqfd));
    let mut queues = NetQueues::new(
        mem.clone(),
        rx,
        tx,
        interrupt,
        Arc::new(Mutex::new(backend)),
    );
    let mut host_frames = 0;
    for event in input.events.iter().take(MAX_EVENTS) {
        match event {
            Event::Transmit => queues.queue_notified(TX_QUEUE),
            Event::Receive => queues.queue_notified(RX_QUEUE),
            Event::Host => queues.host_ready(-1, EventSet::IN),
            Event::Memory(patch) => apply(&mem, std::slice::from_ref(patch)),
            Event::Frames { count, len, fill } => {
                // Queued through a host wake-up: the backend polls, then the device delivers.
                let frames = usize::from(*count).min(MAX_HOST_FRAMES - host_frames);
                host_frames += frames;
                let frame = vec![*fill; usize::from(len % 1600)];
                waiting
                    .lock()
                    .expect("waiting frames")
                    .extend(std::iter::repeat_n(frame, frames));
                queues.host_ready(-1, EventSet::IN);
            }
        }
    }
});
