//! The I/O thread's handler: moves packets between the virtqueues and the [`Muxer`].
//!
//! Transmit chains (queue 1) hold a header and its payload, in any split over device-readable
//! descriptors; each is read, checked (a short chain, a `len` over [`MAX_PAYLOAD`] or past the
//! chain, a descriptor outside guest memory: dropped) and handed to the muxer. Receive chains
//! (queue 0) are taken only while the muxer has a packet for them, and one that turns out to
//! have none is put back. The event queue (2) only ever carries TRANSPORT_RESET, which a VMM
//! without migration never sends; its buffers are left with the device.

use super::log_once::Problem;
use super::muxer::Muxer;
use super::packet::{HEADER_BYTES, Header, MAX_PAYLOAD};
use crate::devices::virtio::queue::{Chain, ChainHandler, Handled, serve_chains};
use crate::devices::virtio::worker::QueueHandler;
use crate::devices::virtio::{Interrupt, Queue};
use event_manager::EventSet;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

pub const RX: usize = 0;
pub const TX: usize = 1;

pub struct VsockQueues {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    /// Held, never used (see the module docs).
    _event: Queue,
    interrupt: Arc<Interrupt>,
    muxer: Muxer,
    rx_broken: bool,
    tx_broken: bool,
    /// The last transmit pass stopped at a full RST backlog.
    tx_stalled: bool,
    /// A transmitted payload, on its way to the muxer.
    payload: Vec<u8>,
}

impl VsockQueues {
    /// The queues in device order (receive, transmit, event).
    pub fn new(
        mem: GuestMemoryMmap,
        [rx, tx, event]: [Queue; 3],
        interrupt: Arc<Interrupt>,
        muxer: Muxer,
    ) -> Self {
        VsockQueues {
            mem,
            rx,
            tx,
            _event: event,
            interrupt,
            muxer,
            rx_broken: false,
            tx_broken: false,
            tx_stalled: false,
            payload: Vec::new(),
        }
    }
}

struct TxPass<'a> {
    muxer: &'a mut Muxer,
    payload: &'a mut Vec<u8>,
}

impl ChainHandler for TxPass<'_> {
    fn wants_chain(&self) -> bool {
        !self.muxer.tx_blocked()
    }

    fn handle(&mut self, chain: Chain<'_>, mem: &GuestMemoryMmap) -> Handled {
        let log = |muxer: &mut Muxer, what, message: &str| {
            muxer
                .log()
                .warn(what, format_args!("{message}; dropped it"));
        };
        let Ok(mut reader) = chain.reader(mem) else {
            log(
                self.muxer,
                Problem::TxBadAddress,
                "a transmit chain lies outside guest memory",
            );
            return Handled::Used(0);
        };
        let mut raw = [0u8; HEADER_BYTES];
        if reader.available_bytes() < HEADER_BYTES || reader.read_exact(&mut raw).is_err() {
            log(
                self.muxer,
                Problem::TxShort,
                "a transmit chain is shorter than a packet header",
            );
            return Handled::Used(0);
        }
        let header = Header::from_bytes(&raw);
        let len = header.len as usize;
        if len > MAX_PAYLOAD || len > reader.available_bytes() {
            let message = format!(
                "a packet says it carries {len} bytes, and its chain has {} (at most {MAX_PAYLOAD})",
                reader.available_bytes()
            );
            log(self.muxer, Problem::TxBadLength, &message);
            return Handled::Used(0);
        }
        self.payload.resize(len, 0);
        if reader.read_exact(self.payload).is_err() {
            log(
                self.muxer,
                Problem::TxBadAddress,
                "a transmit chain could not be read",
            );
            return Handled::Used(0);
        }
        self.muxer.on_guest_packet(&header, self.payload);
        Handled::Used(0)
    }
}

struct RxPass<'a> {
    muxer: &'a mut Muxer,
}

impl ChainHandler for RxPass<'_> {
    fn wants_chain(&self) -> bool {
        self.muxer.has_rx()
    }

    fn handle(&mut self, chain: Chain<'_>, mem: &GuestMemoryMmap) -> Handled {
        let Ok(mut writer) = chain.writer(mem) else {
            self.muxer.log().warn(
                Problem::RxBadAddress,
                format_args!("a receive chain lies outside guest memory; returned it empty"),
            );
            return Handled::Used(0);
        };
        let room = writer.available_bytes();
        if room < HEADER_BYTES {
            self.muxer.log().warn(
                Problem::RxTooSmall,
                format_args!(
                    "a receive chain has {room} writable bytes, less than a header; returned it empty"
                ),
            );
            return Handled::Used(0);
        }
        let Some((header, payload)) = self.muxer.next_rx(room - HEADER_BYTES) else {
            return Handled::PutBack;
        };
        // The writer checked the whole chain against guest memory, and the packet fits.
        let written = writer
            .write_all(&header.to_bytes())
            .and_then(|()| writer.write_all(payload));
        if written.is_err() {
            return Handled::Used(0);
        }
        Handled::Used((HEADER_BYTES + payload.len()) as u32)
    }
}

impl VsockQueues {
    /// Moves everything that can move: transmit chains to the muxer (if the guest notified, or
    /// a transmit pass is waiting for room), packets to receive chains, and transmit again when
    /// taking RSTs made that room.
    fn pump(&mut self, transmit: bool) {
        if transmit || self.tx_stalled {
            self.transmit();
        }
        loop {
            self.receive();
            if !self.tx_stalled || self.muxer.tx_blocked() {
                break;
            }
            self.transmit();
        }
    }

    fn transmit(&mut self) {
        if self.tx_broken {
            return;
        }
        let mut pass = TxPass {
            muxer: &mut self.muxer,
            payload: &mut self.payload,
        };
        if !serve_chains(&mut self.tx, &self.mem, &self.interrupt, &mut pass) {
            self.tx_broken = true;
            self.muxer.log().warn(
                Problem::QueueBroken,
                format_args!("the transmit queue's rings are unusable; ignoring it until reset"),
            );
        }
        // Chains may wait in the ring, and with EVENT_IDX the driver does not notify for them
        // again: we come back when the guest takes RSTs.
        self.tx_stalled = !self.tx_broken && self.muxer.tx_blocked();
    }

    fn receive(&mut self) {
        if self.rx_broken {
            return;
        }
        let mut pass = RxPass {
            muxer: &mut self.muxer,
        };
        if !serve_chains(&mut self.rx, &self.mem, &self.interrupt, &mut pass) {
            self.rx_broken = true;
            self.muxer.log().warn(
                Problem::QueueBroken,
                format_args!("the receive queue's rings are unusable; ignoring it until reset"),
            );
        }
    }
}

impl QueueHandler for VsockQueues {
    fn queue_notified(&mut self, index: usize) {
        match index {
            RX => self.pump(false),
            TX => self.pump(true),
            _ => {} // the event queue: nothing to do
        }
    }

    fn host_sources(&self) -> Vec<(RawFd, EventSet)> {
        vec![(self.muxer.poll_fd(), EventSet::IN)]
    }

    fn host_ready(&mut self, _fd: RawFd, _events: EventSet) {
        self.muxer.host_ready();
        self.pump(false);
    }
}
