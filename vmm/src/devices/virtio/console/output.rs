//! The transmitq side: every readable descriptor of a chain is copied, in order, to the output
//! sink. A chain's bytes are capped so one chain cannot keep the I/O thread (and the sink) busy
//! without bound; write-only descriptors, which a transmit chain must not have, are skipped.
//!
//! The sink is flushed at the end of every chain, before the chain goes back to the driver: bytes
//! are passed on exactly as the guest wrote them (no line buffering holds a prompt back), and a
//! guest that saw its output completed may power off at once without losing any of it.

use super::Chain;
use super::{ChainHandler, Complaint, Complaints};
use std::io::Write;
use vm_memory::{Bytes, GuestMemoryMmap};

/// Most bytes taken from one transmit chain; the rest of it is dropped.
pub(super) const MAX_CHAIN_BYTES: usize = 64 * 1024;

pub(super) struct Output {
    sink: Box<dyn Write + Send>,
    /// Guest bytes on their way to the sink (at most one descriptor's share of a chain).
    scratch: Vec<u8>,
}

impl Output {
    pub(super) fn new(sink: Box<dyn Write + Send>) -> Self {
        Output {
            sink,
            scratch: Vec::new(),
        }
    }

    fn flush(&mut self, complaints: &mut Complaints) {
        if let Err(e) = self.sink.flush() {
            complaints.warn(
                Complaint::SinkFailed,
                format_args!("cannot write the guest's output: {e}"),
            );
        }
    }
}

impl ChainHandler for Output {
    fn handle(
        &mut self,
        chain: Chain<'_>,
        mem: &GuestMemoryMmap,
        complaints: &mut Complaints,
    ) -> u32 {
        let mut budget = MAX_CHAIN_BYTES;
        let mut wrote = false;
        for desc in chain {
            if desc.is_write_only() {
                let what = "a transmit chain has write-only descriptors; skipping them";
                complaints.warn(Complaint::TxWriteOnly, format_args!("{what}"));
                continue;
            }
            let len = desc.len() as usize;
            if len > budget {
                let what = format_args!(
                    "a transmit chain exceeds {MAX_CHAIN_BYTES} bytes; dropping the rest"
                );
                complaints.warn(Complaint::TxTooLong, what);
            }
            let take = len.min(budget);
            if take == 0 {
                continue;
            }
            self.scratch.resize(take, 0);
            if mem.read_slice(&mut self.scratch, desc.addr()).is_err() {
                let what = "a transmit descriptor lies outside guest memory; skipping it";
                complaints.warn(Complaint::TxBadAddress, format_args!("{what}"));
                continue;
            }
            budget -= take;
            // A failing sink (a closed stdout) must not stall the guest: the bytes are dropped.
            if let Err(e) = self.sink.write_all(&self.scratch) {
                complaints.warn(
                    Complaint::SinkFailed,
                    format_args!("cannot write the guest's output: {e}"),
                );
            }
            wrote = true;
        }
        if wrote {
            self.flush(complaints);
        }
        0 // the device writes nothing into a transmit chain
    }
}
