//! Requests from the host to the guest (docs/boot-protocol.md, "Host requests"): the VMM sets
//! bits in a pending word and raises a dedicated interrupt line, GSI [`REQUEST_GSI`], which the
//! guest learns from the `noa.pvport.irq=23` word on its command line; the guest then reads port
//! [`REQUEST_PORT`] (32 bits), which returns the pending bits and clears them.
//!
//! One request exists today: [`SHUTDOWN`] — the VMM got SIGINT or SIGTERM, and the guest should
//! end its programs and power off. This module owns the pending word and the line; when to ask
//! (and when to stop the guest hard instead) is the run loop's business (`vm.rs`).

use anyhow::Context;
use std::sync::atomic::{AtomicU32, Ordering};
use vmm_sys_util::eventfd::EventFd;

/// The guest reads the pending requests here (and so acknowledges them).
pub const REQUEST_PORT: u16 = 0xfc;
/// The interrupt line of host requests: the IOAPIC's last pin, kept out of the virtio-mmio
/// lines (`mmio_bus` hands out 5..=22).
pub const REQUEST_GSI: u32 = 23;
/// Request bit: shut down (the guest's kernel sends SIGTERM to its PID 1).
pub const SHUTDOWN: u32 = 1 << 0;

/// The pending requests and the line that announces them.
pub struct HostRequests {
    pending: AtomicU32,
    line: EventFd,
}

impl HostRequests {
    /// Requests raised through `line`, an eventfd the caller registered as the irqfd of
    /// [`REQUEST_GSI`].
    pub fn new(line: EventFd) -> HostRequests {
        HostRequests {
            pending: AtomicU32::new(0),
            line,
        }
    }

    /// Host requests for `vm`: an eventfd registered as the irqfd of [`REQUEST_GSI`].
    pub fn attach(vm: &kvm_ioctls::VmFd) -> anyhow::Result<HostRequests> {
        let line = EventFd::new(libc::EFD_NONBLOCK).context("eventfd for the request line")?;
        vm.register_irqfd(&line, REQUEST_GSI)
            .context("KVM_IRQFD for the request line")?;
        Ok(HostRequests::new(line))
    }

    /// The kernel command-line word that tells the guest the line (docs/boot-protocol.md).
    pub fn cmdline_word() -> String {
        format!("noa.pvport.irq={REQUEST_GSI}")
    }

    /// Adds `bits` to the pending requests and raises the line (an edge; the guest reads the
    /// port once per interrupt, so requests raised together arrive together).
    pub fn raise(&self, bits: u32) {
        self.pending.fetch_or(bits, Ordering::AcqRel);
        if let Err(e) = self.line.write(1) {
            tracing::warn!("cannot raise the request line: {e}");
        }
    }

    /// What the guest reads from [`REQUEST_PORT`]: the pending requests, which are then cleared.
    pub fn take(&self) -> u32 {
        self.pending.swap(0, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_request_is_read_once_and_rings_the_line() {
        let line = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let requests = HostRequests::new(line.try_clone().unwrap());
        assert_eq!(requests.take(), 0);
        requests.raise(SHUTDOWN);
        requests.raise(SHUTDOWN);
        assert_eq!(line.read().unwrap(), 2, "one edge per raise");
        assert_eq!(requests.take(), SHUTDOWN);
        assert_eq!(requests.take(), 0, "reading acknowledges");
    }

    #[test]
    fn the_command_line_names_the_line() {
        assert_eq!(HostRequests::cmdline_word(), "noa.pvport.irq=23");
    }
}
