//! virtio-vsock: stream connections between the guest and its host (CID 2), over the crate's
//! connection manager. Waiting is interrupt-driven: the CPU sleeps until the device signals a new
//! packet or the deadline passes.

use super::hal::VirtioHal;
use super::{Device, Error, Kind, Mmio};
use virtio_drivers::device::socket::{
    VMADDR_CID_HOST, VirtIOSocket, VsockAddr, VsockConnectionManager, VsockEvent, VsockEventType,
};

/// An open vsock device.
pub struct Vsock {
    manager: VsockConnectionManager<VirtioHal, Mmio>,
}

/// How a wait for the host ended.
#[derive(Debug, PartialEq, Eq)]
pub enum VsockError {
    Device(virtio_drivers::Error),
    /// The host refused or closed the connection.
    Disconnected,
    TimedOut,
}

impl From<virtio_drivers::Error> for VsockError {
    fn from(e: virtio_drivers::Error) -> Self {
        VsockError::Device(e)
    }
}

impl Vsock {
    pub fn open(device: Device) -> Result<Vsock, Error> {
        assert_eq!(
            device.kind,
            Kind::Socket,
            "{device:?} is not a vsock device"
        );
        let driver = VirtIOSocket::new(device.transport)?;
        Ok(Vsock {
            manager: VsockConnectionManager::new(driver),
        })
    }

    /// This guest's CID.
    pub fn guest_cid(&self) -> u64 {
        self.manager.guest_cid()
    }

    fn host(port: u32) -> VsockAddr {
        VsockAddr {
            cid: VMADDR_CID_HOST,
            port,
        }
    }

    /// Connects `local_port` to the host's `port`, waiting up to `timeout_ns`.
    pub fn connect(
        &mut self,
        port: u32,
        local_port: u32,
        timeout_ns: u64,
    ) -> Result<(), VsockError> {
        self.manager.connect(Self::host(port), local_port)?;
        self.wait_for(timeout_ns, |event| match event.event_type {
            VsockEventType::Connected => Some(Ok(())),
            VsockEventType::Disconnected { .. } => Some(Err(VsockError::Disconnected)),
            _ => None,
        })
    }

    /// Sends `data` on the connection.
    pub fn send(&mut self, port: u32, local_port: u32, data: &[u8]) -> Result<(), VsockError> {
        Ok(self.manager.send(Self::host(port), local_port, data)?)
    }

    /// Receives what the host sent (at least one byte), waiting up to `timeout_ns`.
    pub fn recv(
        &mut self,
        port: u32,
        local_port: u32,
        out: &mut [u8],
        timeout_ns: u64,
    ) -> Result<usize, VsockError> {
        let peer = Self::host(port);
        let ready = self.manager.recv_buffer_available_bytes(peer, local_port)?;
        if ready == 0 {
            self.wait_for(timeout_ns, |event| match event.event_type {
                VsockEventType::Received { .. } => Some(Ok(())),
                VsockEventType::Disconnected { .. } => Some(Err(VsockError::Disconnected)),
                _ => None,
            })?;
        }
        let n = self.manager.recv(peer, local_port, out)?;
        self.manager.update_credit(peer, local_port)?;
        Ok(n)
    }

    /// Closes the connection.
    pub fn shutdown(&mut self, port: u32, local_port: u32) -> Result<(), VsockError> {
        Ok(self.manager.shutdown(Self::host(port), local_port)?)
    }

    /// Polls events until `done` maps one to a result, sleeping between them.
    fn wait_for(
        &mut self,
        timeout_ns: u64,
        mut done: impl FnMut(&VsockEvent) -> Option<Result<(), VsockError>>,
    ) -> Result<(), VsockError> {
        let deadline = crate::time::now_ns() + timeout_ns;
        loop {
            while let Some(event) = self.manager.poll()? {
                if let Some(result) = done(&event) {
                    return result;
                }
            }
            let now = crate::time::now_ns();
            if now >= deadline {
                return Err(VsockError::TimedOut);
            }
            crate::time::set_timer_in_ns((deadline - now).min(super::RECHECK_NS));
            crate::cpu::wait_for_interrupt();
            crate::irq::apic::cancel_timer();
        }
    }
}
