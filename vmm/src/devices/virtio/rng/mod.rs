//! virtio-rng (virtio 1.2 §5.4): one queue; each chain's writable buffers are filled with bytes
//! from the host's `getrandom`. A request is capped, so a guest cannot make the VMM allocate
//! without bound.

use super::queue::{self, Chain};
use super::worker::{QueueHandler, Worker};
use super::{Activation, Interrupt, Queue, VirtioDevice, device_type};
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

const QUEUE_SIZES: &[u16] = &[256];
/// Most bytes served per request.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub struct Rng {
    worker: Option<Worker>,
}

impl Rng {
    pub fn new() -> Self {
        Rng::default()
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        device_type::RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0); // no configuration space
    }

    fn activate(&mut self, activation: Activation) -> anyhow::Result<()> {
        let Activation {
            mem,
            mut queues,
            queue_events,
            interrupt,
            ..
        } = activation;
        let queue = queues
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the request queue is not ready"))?;
        let handler = RngQueue {
            mem,
            queue,
            interrupt,
            buffer: Vec::new(),
            broken: false,
        };
        self.worker = Some(Worker::spawn("virtio-rng", queue_events, handler)?);
        Ok(())
    }

    fn reset(&mut self) {
        self.worker = None;
    }
}

struct RngQueue {
    mem: GuestMemoryMmap,
    queue: Queue,
    interrupt: Arc<Interrupt>,
    buffer: Vec<u8>,
    broken: bool,
}

impl RngQueue {
    fn fill(buffer: &mut Vec<u8>, chain: Chain<'_>, mem: &GuestMemoryMmap) -> u32 {
        let Ok(mut writer) = chain.writer(mem) else {
            return 0; // a descriptor outside guest memory: return the chain unused
        };
        let len = writer.available_bytes().min(MAX_REQUEST_BYTES);
        buffer.resize(len, 0);
        if getrandom(buffer).is_err() {
            return 0;
        }
        match std::io::Write::write(&mut writer, buffer) {
            Ok(written) => written as u32,
            Err(_) => 0,
        }
    }
}

impl QueueHandler for RngQueue {
    fn queue_notified(&mut self, _index: usize) {
        if self.broken {
            return;
        }
        let RngQueue {
            mem,
            queue,
            interrupt,
            buffer,
            ..
        } = self;
        if !queue::serve(queue, mem, interrupt, |chain| {
            Self::fill(buffer, chain, mem)
        }) {
            tracing::warn!("virtio-rng: the queue's rings are unusable; ignoring it until reset");
            self.broken = true;
        }
    }
}

/// Fills `buffer` from the host's entropy pool (`/dev/urandom`, the same pool as `getrandom`;
/// reading it needs no `unsafe` outside the VMM's KVM and guest-memory rooms).
fn getrandom(buffer: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    static URANDOM: std::sync::OnceLock<std::io::Result<std::fs::File>> =
        std::sync::OnceLock::new();
    match URANDOM.get_or_init(|| std::fs::File::open("/dev/urandom")) {
        Ok(file) => (&*file).read_exact(buffer),
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    }
}
