//! Virtio 1.x devices over the virtio-mmio transport, one folder per device.
//!
//! A device implements [`VirtioDevice`]: what it offers (type, features, queues, config space) and
//! what it does once the driver sets DRIVER_OK ([`VirtioDevice::activate`]): it gets the validated
//! queues, one eventfd per queue that KVM signals on a notification (ioeventfd — no exit to the
//! VMM), and an [`Interrupt`] that raises its line through an irqfd. Devices process their queues
//! on their own I/O thread ([`worker`]), never on a vCPU thread.
//!
//! Everything in guest memory — descriptors, lengths, addresses — is hostile; the transport and
//! the devices validate it and never panic.

pub mod block;
pub mod console;
pub mod interrupt;
pub mod mmio;
pub mod net;
pub mod queue;
pub mod rng;
pub mod vsock;
pub mod worker;

pub use interrupt::Interrupt;
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// The queue type every device uses (split virtqueues, with EVENT_IDX when negotiated).
pub type Queue = virtio_queue::Queue;

/// Device IDs (virtio 1.2 §5).
pub mod device_type {
    pub const NET: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const CONSOLE: u32 = 3;
    pub const RNG: u32 = 4;
    pub const VSOCK: u32 = 19;
}

/// Feature bits every device offers.
pub mod features {
    /// Virtio 1.x ("modern"): the only version we speak.
    pub const VERSION_1: u64 = 1 << 32;
    /// `used_event` / `avail_event`: interrupt and notification suppression.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// What the transport offers on behalf of every device.
    pub const COMMON: u64 = VERSION_1 | RING_EVENT_IDX;
}

/// What a device gets when the driver has set it up.
pub struct Activation {
    pub mem: GuestMemoryMmap,
    /// The queues the driver made ready, in queue order (validated against guest memory).
    pub queues: Vec<Queue>,
    /// Per queue, signalled by KVM when the driver notifies it.
    pub queue_events: Vec<EventFd>,
    pub interrupt: Arc<Interrupt>,
    /// The features both sides agreed on.
    pub features: u64,
}

/// A virtio device model behind the MMIO transport.
pub trait VirtioDevice: Send {
    /// Its virtio device ID.
    fn device_type(&self) -> u32;
    /// Largest size of each of its queues (the number of queues is the length).
    fn queue_max_sizes(&self) -> &[u16];
    /// Device-specific feature bits it offers (the transport adds [`features::COMMON`]).
    fn device_features(&self) -> u64;
    /// Reads its configuration space at `offset`; out-of-range bytes read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes its configuration space; out-of-range or read-only writes are ignored.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// The driver set DRIVER_OK: start serving the queues.
    fn activate(&mut self, activation: Activation) -> anyhow::Result<()>;
    /// The driver reset the device: stop serving (the transport forgets the queues).
    fn reset(&mut self);
}
