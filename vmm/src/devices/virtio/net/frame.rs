//! Ethernet frames as the device moves them: the size limits, the `virtio_net_hdr_v1` that
//! precedes each one in the queues, and [`FrameQueue`], the bounded backlog that sits between a
//! backend and the guest's receive queue.
//!
//! Everything here is bounded so that neither a flooding guest nor a flooding host can make the
//! VMM allocate without limit.

use std::collections::VecDeque;

/// The MTU of the user network: our guest takes it from `noa.net.mtu=` on its command line
/// ([`mtu_word`]). Larger than a wire's 1500 because each frame costs the guest a fixed amount of
/// emulated ring-0 work on PVM hosts, and no wire is involved: fewer, larger frames move bulk
/// data several times faster. A guest that does not know the word keeps 1500, and TCP's MSS
/// keeps the router's segments within it.
pub const USER_MTU: usize = 16_000;

/// Largest Ethernet frame without its FCS: the user network's MTU plus the 14-byte header (a tap
/// carries at most its own MTU, 1500 unless raised). We offer no segmentation offloads, so
/// nothing larger ever crosses the device.
pub const MAX_FRAME: usize = USER_MTU + 14;

/// The kernel command-line words that tell our guest about the user network: its MTU, and that
/// the guest need not checksum its TCP and UDP payloads. The router terminates every connection
/// inside the VMM and no wire is involved, so it does not verify them (virtio's
/// VIRTIO_NET_F_CSUM, which virtio-drivers cannot negotiate, says the same in the device's
/// terms); on PVM hosts the checksum is most of the guest's cost per byte sent.
pub fn user_network_words() -> String {
    format!(" noa.net.mtu={USER_MTU} noa.net.tx_csum=off")
}

/// Smallest frame worth handing on: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// `struct virtio_net_hdr_v1` (virtio 1.2 §5.1.6): flags, gso_type, hdr_len, gso_size,
/// csum_start, csum_offset, num_buffers. VERSION_1 makes it 12 bytes even without MRG_RXBUF.
pub const HEADER_LEN: usize = 12;

/// The header of every received frame: no checksum or segmentation hints (we offer none of
/// those features) and `num_buffers` = 1 (little-endian, the last field).
pub const RX_HEADER: [u8; HEADER_LEN] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

/// Frames held for the guest when its receive queue has no buffers: a little more than one full
/// receive queue (at most 4 MiB of full-size frames).
pub const BACKLOG_FRAMES: usize = 256;

/// A bounded FIFO of frames. A frame that does not fit is dropped (the newest, so that what is
/// already queued keeps its order) and counted; TCP recovers by retransmission.
#[derive(Debug)]
pub struct FrameQueue {
    frames: VecDeque<Vec<u8>>,
    limit: usize,
    dropped: u64,
}

impl FrameQueue {
    pub fn new(limit: usize) -> Self {
        FrameQueue {
            frames: VecDeque::new(),
            limit,
            dropped: 0,
        }
    }

    /// Queues `frame`; false (and counted) if the queue is full or the frame is not a frame.
    pub fn push(&mut self, frame: Vec<u8>) -> bool {
        if self.frames.len() >= self.limit || !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::debug!(
                    "virtio-net: {} frames dropped so far (backlog full)",
                    self.dropped
                );
            }
            return false;
        }
        self.frames.push_back(frame);
        true
    }

    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// Puts a frame back at the head (it was popped but could not be delivered yet).
    pub fn unpop(&mut self, frame: Vec<u8>) {
        self.frames.push_front(frame);
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.frames.len() >= self.limit
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Frames dropped because the queue was full (or they were malformed).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn clear(&mut self) {
        self.frames.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_frame_queue_is_bounded_and_drops_the_newest() {
        let mut queue = FrameQueue::new(2);
        assert!(queue.push(vec![1; 60]));
        assert!(queue.push(vec![2; 60]));
        assert!(!queue.push(vec![3; 60]));
        assert_eq!(queue.dropped(), 1);
        assert_eq!(queue.pop().unwrap()[0], 1);
        assert_eq!(queue.pop().unwrap()[0], 2);
        assert!(queue.pop().is_none());
    }

    #[test]
    fn net_frame_queue_refuses_runts_and_giants() {
        let mut queue = FrameQueue::new(8);
        assert!(!queue.push(vec![0; MIN_FRAME - 1]));
        assert!(!queue.push(vec![0; MAX_FRAME + 1]));
        assert!(queue.push(vec![0; MAX_FRAME]));
        assert_eq!(queue.dropped(), 2);
    }
}
