//! A virtio-mmio device's interrupt: the InterruptStatus bits the driver reads and acknowledges,
//! and the irqfd that raises the device's line in KVM's in-kernel IOAPIC without an exit.

use std::sync::atomic::{AtomicU32, Ordering};
use vmm_sys_util::eventfd::EventFd;

/// InterruptStatus bit: a queue has new used buffers.
pub const USED_BUFFER: u32 = 1;
/// InterruptStatus bit: the configuration changed.
pub const CONFIG_CHANGE: u32 = 2;

pub struct Interrupt {
    status: AtomicU32,
    irqfd: EventFd,
}

impl Interrupt {
    pub fn new(irqfd: EventFd) -> Self {
        Interrupt {
            status: AtomicU32::new(0),
            irqfd,
        }
    }

    /// Tells the driver a queue has new used buffers.
    pub fn signal_used_queue(&self) {
        self.raise(USED_BUFFER);
    }

    /// Tells the driver the configuration space changed.
    pub fn signal_config_change(&self) {
        self.raise(CONFIG_CHANGE);
    }

    fn raise(&self, bits: u32) {
        self.status.fetch_or(bits, Ordering::AcqRel);
        if let Err(e) = self.irqfd.write(1) {
            tracing::warn!("virtio: cannot raise the interrupt: {e}");
        }
    }

    /// InterruptStatus, as the driver reads it.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::Acquire)
    }

    /// InterruptACK: the driver clears the bits it handled.
    pub fn acknowledge(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::AcqRel);
    }
}
