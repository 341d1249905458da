//! The device's I/O-thread side: moves frames between the two virtqueues and the backend.
//!
//! - transmitq (1): every chain is one `virtio_net_hdr_v1` plus one frame; the header is ignored
//!   (we negotiate no offloads) and the frame goes to [`NetBackend::guest_sent`]. Chains longer
//!   than header + [`MAX_FRAME`] are returned unread and counted.
//! - receiveq (0): each frame the backend has for the guest takes one chain (no MRG_RXBUF), gets
//!   [`RX_HEADER`] in front, and is returned. Frames wait in the backend's bounded backlog while the
//!   queue has no buffers; then we ask to be notified when the driver adds some.
//!
//! The backend is shared with [`Net`](super::Net) behind a mutex so that it survives a device
//! reset (its published listeners stay bound); only this thread locks it while the device runs.

use super::backend::NetBackend;
use super::frame::{HEADER_LEN, MAX_FRAME, RX_HEADER};
use crate::devices::virtio::queue::{self, Chain};
use crate::devices::virtio::worker::QueueHandler;
use crate::devices::virtio::{Interrupt, Queue};
use event_manager::EventSet;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use virtio_queue::QueueT;
use vm_memory::GuestMemoryMmap;

pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;

pub type SharedBackend = Arc<Mutex<Box<dyn NetBackend>>>;

pub struct NetQueues {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    interrupt: Arc<Interrupt>,
    backend: SharedBackend,
    /// Reused for every transmitted chain.
    tx_buffer: Vec<u8>,
    /// A queue's rings turned out unusable: ignore the device until reset.
    broken: bool,
    /// Transmitted chains dropped for being too short or too long.
    tx_dropped: u64,
}

impl NetQueues {
    pub fn new(
        mem: GuestMemoryMmap,
        rx: Queue,
        tx: Queue,
        interrupt: Arc<Interrupt>,
        backend: SharedBackend,
    ) -> Self {
        NetQueues {
            mem,
            rx,
            tx,
            interrupt,
            backend,
            tx_buffer: Vec::with_capacity(HEADER_LEN + MAX_FRAME),
            broken: false,
            tx_dropped: 0,
        }
    }

    fn backend(backend: &SharedBackend) -> MutexGuard<'_, Box<dyn NetBackend>> {
        backend
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn give_up(&mut self, what: &str) {
        tracing::warn!(
            "virtio-net: the {what} queue's rings are unusable; ignoring it until reset"
        );
        self.broken = true;
    }

    /// Serves the transmit queue: every frame to the backend, then lets it work.
    fn transmit(&mut self) {
        let NetQueues {
            mem,
            tx,
            interrupt,
            backend,
            tx_buffer,
            tx_dropped,
            ..
        } = self;
        let mut backend = Self::backend(backend);
        let ok = queue::serve(tx, mem, interrupt, |chain| {
            match read_frame(chain, mem, tx_buffer) {
                Some(frame) => backend.guest_sent(frame),
                None => *tx_dropped += 1,
            }
            0 // the device writes nothing into a transmit chain
        });
        backend.poll();
        drop(backend);
        if !ok {
            self.give_up("transmit");
        }
    }

    /// Moves frames from the backend's backlog into receive buffers while there are both. The
    /// backend gets to refill the backlog a few times (a bounded loop: the host may be flooding).
    fn deliver(&mut self) {
        for _ in 0..4 {
            if self.broken || !self.deliver_backlog() {
                return;
            }
        }
    }

    /// One pass of [`deliver`](Self::deliver); returns whether any frame was delivered.
    fn deliver_backlog(&mut self) -> bool {
        let NetQueues {
            mem,
            rx,
            interrupt,
            backend,
            ..
        } = self;
        let mut backend = Self::backend(backend);
        let backlog = backend.to_guest();
        let mut delivered = false;
        let mut ok = true;
        // Set when the ring looked empty but its index said otherwise; a second time in a row
        // means the index is bogus (virtio-queue cannot pop past it), not a race: give up.
        let mut rechecked = false;
        'outer: while !backlog.is_empty() {
            if rx.disable_notification(mem).is_err() {
                ok = false;
                break;
            }
            while let Some(frame) = backlog.pop() {
                let Some(chain) = rx.pop_descriptor_chain(&*mem) else {
                    backlog.unpop(frame);
                    // Out of buffers: ask the driver to notify us when it adds some, and look
                    // again in case it did so before seeing the request.
                    match rx.enable_notification(mem) {
                        Ok(true) if !rechecked => {
                            rechecked = true;
                            continue 'outer;
                        }
                        Ok(false) => break 'outer,
                        Ok(true) | Err(_) => {
                            ok = false;
                            break 'outer;
                        }
                    }
                };
                rechecked = false;
                let head = chain.head_index();
                let written = write_frame(chain, mem, &frame);
                if rx.add_used(mem, head, written).is_err() {
                    ok = false;
                    break 'outer;
                }
                delivered = true;
            }
        }
        if delivered && rx.needs_notification(mem).unwrap_or(true) {
            interrupt.signal_used_queue();
        }
        if delivered {
            // The backlog has room again: the backend may have held frames back.
            backend.poll();
        }
        drop(backend);
        if !ok {
            self.give_up("receive");
        }
        delivered
    }
}

/// The frame of a transmit chain, in `buffer`; None (the chain is dropped) if the chain is not
/// readable, shorter than a header, or longer than header + [`MAX_FRAME`].
fn read_frame<'b>(
    chain: Chain<'_>,
    mem: &GuestMemoryMmap,
    buffer: &'b mut Vec<u8>,
) -> Option<&'b [u8]> {
    let mut reader = chain.reader(mem).ok()?;
    let len = reader.available_bytes();
    if !(HEADER_LEN..=HEADER_LEN + MAX_FRAME).contains(&len) {
        return None;
    }
    buffer.resize(len, 0);
    reader.read_exact(buffer).ok()?;
    Some(&buffer[HEADER_LEN..])
}

/// Writes header + `frame` into a receive chain; returns the bytes written, or 0 if the chain's
/// writable part is too small for both (the frame is then lost: without MRG_RXBUF the driver
/// must give buffers of at least 1526 bytes, virtio 1.2 §5.1.6.3.1).
fn write_frame(chain: Chain<'_>, mem: &GuestMemoryMmap, frame: &[u8]) -> u32 {
    let Ok(mut writer) = chain.writer(mem) else {
        return 0;
    };
    if writer.available_bytes() < HEADER_LEN + frame.len() {
        tracing::debug!(
            "virtio-net: receive buffer of {} bytes is too small",
            writer.available_bytes()
        );
        return 0;
    }
    if writer.write_all(&RX_HEADER).is_err() || writer.write_all(frame).is_err() {
        return 0;
    }
    (HEADER_LEN + frame.len()) as u32
}

impl QueueHandler for NetQueues {
    fn queue_notified(&mut self, index: usize) {
        if self.broken {
            return;
        }
        match index {
            TX_QUEUE => self.transmit(),
            RX_QUEUE => {} // new receive buffers: the delivery below uses them
            _ => return,
        }
        self.deliver();
    }

    fn host_sources(&self) -> Vec<(RawFd, EventSet)> {
        Self::backend(&self.backend).host_sources()
    }

    fn host_ready(&mut self, fd: RawFd, events: EventSet) {
        Self::backend(&self.backend).host_ready(fd, events);
        self.deliver();
    }
}

impl Drop for NetQueues {
    fn drop(&mut self) {
        let rx_dropped = Self::backend(&self.backend).to_guest().dropped();
        tracing::debug!(
            "virtio-net: stopping; so far {} malformed transmit chains and {rx_dropped} frames for the guest dropped",
            self.tx_dropped
        );
    }
}
