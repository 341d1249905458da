//! What the device needs from the other end of its wire: somewhere to put the guest's frames and
//! somewhere frames for the guest come from. The device owns the virtqueues; a backend never sees
//! them, only whole Ethernet frames without the virtio header.

use super::frame::FrameQueue;
use event_manager::EventSet;
use std::os::fd::RawFd;

/// The host side of a virtio-net device. Runs on the device's I/O thread.
pub trait NetBackend: Send {
    /// Host file descriptors the I/O thread must watch for this backend. Asked once per
    /// activation, so the set must not change; a backend that juggles many sockets watches them
    /// through one epoll fd of its own.
    fn host_sources(&self) -> Vec<(RawFd, EventSet)>;

    /// A frame the guest transmitted (Ethernet, header stripped, at most
    /// [`MAX_FRAME`](super::frame::MAX_FRAME) bytes).
    fn guest_sent(&mut self, frame: &[u8]);

    /// Called after a batch of [`guest_sent`](Self::guest_sent) frames, and after frames were
    /// delivered to the guest (room in the backlog): do whatever host-side work is now possible.
    fn poll(&mut self);

    /// A source from [`host_sources`](Self::host_sources) is ready.
    fn host_ready(&mut self, fd: RawFd, events: EventSet);

    /// Frames waiting for the guest's receive queue.
    fn to_guest(&mut self) -> &mut FrameQueue;

    /// Proxied connections open (the user network's; for diagnostics and tests).
    fn open_connections(&self) -> usize {
        0
    }

    /// The driver reset the device: forget frames in flight.
    fn reset(&mut self) {
        self.to_guest().clear();
    }
}
