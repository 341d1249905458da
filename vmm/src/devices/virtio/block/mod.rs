//! virtio-blk (virtio 1.2 §5.2): one disk image as a block device with one request queue.
//!
//! This file owns the device as the transport sees it — feature bits, configuration space,
//! activation and reset — and the I/O thread's queue loop. [`request`] owns the request format
//! and its checks, [`disk`] the backing file (locking, size, the `--snapshot` overlay). Nothing
//! here touches guest memory outside the chains the driver hands over, and nothing the guest
//! writes can make it panic or allocate without bound.
//!
//! Offered: FLUSH (`fdatasync` on the file), BLK_SIZE (512), SEG_MAX, and RO for read-only disks.
//! Served: IN, OUT, FLUSH, GET_ID; other request types get UNSUPP.

mod disk;
mod request;
#[cfg(test)]
mod tests;

pub use disk::BlockError;

use super::queue;
use super::worker::{QueueHandler, Worker};
use super::{Activation, Interrupt, Queue, VirtioDevice, device_type};
use disk::{Disk, SECTOR_BYTES};
use request::{ID_BYTES, MAX_DESCRIPTORS, Problem, Requests};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use vm_memory::GuestMemoryMmap;

const QUEUE_SIZES: &[u16] = &[256];

/// Device feature bits (§5.2.3).
pub mod features {
    /// `seg_max` is valid.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The disk is read-only.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` is valid.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// FLUSH requests are supported (and the driver must use them: writes are cached).
    pub const FLUSH: u64 = 1 << 9;
}

/// Data segments per request: a chain also holds the header and the status (QEMU offers the
/// same, queue size - 2).
const SEG_MAX: u32 = (MAX_DESCRIPTORS - 2) as u32;

/// Logical block size we report; the guest's I/O is in 512-byte sectors regardless.
const BLK_SIZE: u32 = 512;

/// Configuration space fields (`struct virtio_blk_config`) we fill in; the rest reads as zero.
const CONFIG_CAPACITY: usize = 0;
const CONFIG_SEG_MAX: usize = 12;
const CONFIG_BLK_SIZE: usize = 20;
const CONFIG_BYTES: usize = 24;

/// The GET_ID serial unless [`Block::with_serial`] sets another.
const DEFAULT_SERIAL: &str = "noa-vda";

/// A virtio-blk device over one disk image.
pub struct Block {
    disk: Arc<Mutex<Disk>>,
    features: u64,
    config: [u8; CONFIG_BYTES],
    serial: [u8; ID_BYTES],
    worker: Option<Worker>,
}

impl Block {
    /// Opens `path` as a disk. `read_only`: the guest can't write (VIRTIO_BLK_F_RO) and the file
    /// is opened read-only. `snapshot`: writes go to a private copy-on-write overlay that is
    /// discarded at exit (QEMU's `-snapshot`); the file is opened read-only.
    ///
    /// The file stays open and locked for the device's lifetime: exclusively when read-write,
    /// shared otherwise, so a second read-write user fails here with [`BlockError::InUse`].
    pub fn open(path: &Path, read_only: bool, snapshot: bool) -> Result<Block, BlockError> {
        let disk = Disk::open(path, read_only, snapshot)?;
        let mut features = features::FLUSH | features::BLK_SIZE | features::SEG_MAX;
        if read_only {
            features |= features::RO;
        }
        let mut config = [0u8; CONFIG_BYTES];
        config[CONFIG_CAPACITY..CONFIG_CAPACITY + 8]
            .copy_from_slice(&(disk.len() / SECTOR_BYTES).to_le_bytes());
        config[CONFIG_SEG_MAX..CONFIG_SEG_MAX + 4].copy_from_slice(&SEG_MAX.to_le_bytes());
        config[CONFIG_BLK_SIZE..CONFIG_BLK_SIZE + 4].copy_from_slice(&BLK_SIZE.to_le_bytes());
        let block = Block {
            disk: Arc::new(Mutex::new(disk)),
            features,
            config,
            serial: [0; ID_BYTES],
            worker: None,
        };
        Ok(block.with_serial(DEFAULT_SERIAL))
    }

    /// Sets the serial GET_ID returns (the guest's `/dev/disk/by-id` name); at most 20 bytes are
    /// kept. The default is "noa-vda".
    pub fn with_serial(mut self, serial: &str) -> Block {
        self.serial = [0; ID_BYTES];
        let n = serial.len().min(ID_BYTES);
        self.serial[..n].copy_from_slice(&serial.as_bytes()[..n]);
        self
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn device_features(&self) -> u64 {
        self.features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            let at = offset
                .checked_add(i as u64)
                .and_then(|at| usize::try_from(at).ok());
            *byte = at.and_then(|at| self.config.get(at)).copied().unwrap_or(0);
        }
    }

    // Every field is read-only (we offer no CONFIG_WCE): writes are ignored.

    fn activate(&mut self, activation: Activation) -> anyhow::Result<()> {
        self.worker = None; // a re-activation without reset: stop the old thread first
        let Activation {
            mem,
            mut queues,
            queue_events,
            interrupt,
            features,
        } = activation;
        let queue = queues
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the request queue is not ready"))?;
        let name = self
            .disk
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .name()
            .to_string();
        let handler = BlockQueue {
            name,
            mem,
            queue,
            interrupt,
            disk: Arc::clone(&self.disk),
            requests: Requests::new(self.serial, features & features::FLUSH == 0),
            broken: false,
            guest_problem_logged: false,
            host_problem_logged: false,
        };
        self.worker = Some(Worker::spawn("virtio-blk", queue_events, handler)?);
        Ok(())
    }

    fn reset(&mut self) {
        // Dropping the worker joins the thread, so no request is in flight once this returns.
        self.worker = None;
    }
}

/// The I/O thread's side of the device.
struct BlockQueue {
    /// The image path, for log lines.
    name: String,
    mem: GuestMemoryMmap,
    queue: Queue,
    interrupt: Arc<Interrupt>,
    disk: Arc<Mutex<Disk>>,
    requests: Requests,
    broken: bool,
    // A misbehaving driver or a failing file would otherwise log once per request.
    guest_problem_logged: bool,
    host_problem_logged: bool,
}

impl QueueHandler for BlockQueue {
    fn queue_notified(&mut self, _index: usize) {
        if self.broken {
            return;
        }
        let BlockQueue {
            name,
            mem,
            queue,
            interrupt,
            disk,
            requests,
            guest_problem_logged,
            host_problem_logged,
            ..
        } = self;
        // Only this thread uses the disk while the device is active; the lock is never contended.
        let mut disk = disk.lock().unwrap_or_else(PoisonError::into_inner);
        // Each request is real I/O: answer the driver as soon as it asked, so that it refills
        // the queue while the rest are served.
        let served = queue::serve_answering_early(queue, mem, interrupt, |chain| {
            let completion = requests.handle(chain, mem, &mut disk);
            match completion.problem {
                Some(Problem::Guest(why)) if !*guest_problem_logged => {
                    tracing::warn!(
                        "virtio-blk {name}: bad request from the driver: {why} (further ones not logged)"
                    );
                    *guest_problem_logged = true;
                }
                Some(Problem::Host(why)) if !*host_problem_logged => {
                    tracing::error!(
                        "virtio-blk {name}: I/O error: {why} (further ones not logged)"
                    );
                    *host_problem_logged = true;
                }
                _ => {}
            }
            completion.used_len
        });
        if !served {
            tracing::warn!(
                "virtio-blk {name}: the queue's rings are unusable; ignoring it until reset"
            );
            self.broken = true;
        }
    }
}
