//! The router's smoltcp `Device`: the link between its interface and the guest. Frames from the
//! guest wait in a bounded queue until the next poll; frames from the interface go straight into
//! the device's backlog for the guest's receive queue. When that backlog is full the link reports
//! no transmit capacity, so smoltcp holds its segments back (and retries later) instead of
//! sending them into a drop.

use crate::devices::virtio::net::frame::{BACKLOG_FRAMES, FrameQueue, MAX_FRAME};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use std::collections::VecDeque;

/// Guest frames waiting for the interface (one full transmit queue).
const INBOUND_FRAMES: usize = 256;

pub struct Link {
    from_guest: VecDeque<Vec<u8>>,
    pub to_guest: FrameQueue,
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

impl Link {
    pub fn new() -> Self {
        Link {
            from_guest: VecDeque::new(),
            to_guest: FrameQueue::new(BACKLOG_FRAMES),
        }
    }

    /// Queues a guest frame for the interface's next poll; false if the queue is full.
    pub fn feed(&mut self, frame: &[u8]) -> bool {
        if self.from_guest.len() >= INBOUND_FRAMES {
            return false;
        }
        self.from_guest.push_back(frame.to_vec());
        true
    }

    pub fn clear(&mut self) {
        self.from_guest.clear();
        self.to_guest.clear();
    }
}

pub struct RxToken(Vec<u8>);
pub struct TxToken<'a>(&'a mut FrameQueue);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        self.0.push(frame); // counted as a drop if it is somehow full or oversized
        result
    }
}

impl phy::Device for Link {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.from_guest.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.to_guest)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if self.to_guest.is_full() {
            None
        } else {
            Some(TxToken(&mut self.to_guest))
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        // The guest's TCP and UDP checksums are not verified (`frame::user_network_words`);
        // ours are computed.
        caps.checksum = super::wire::guest_checksums();
        caps
    }
}
