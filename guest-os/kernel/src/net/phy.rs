//! smoltcp's view of the virtio-net card: a `Device` that hands out received frames and sends
//! the frames smoltcp builds.
//!
//! Frames are built and read in place: smoltcp writes an outgoing frame straight into the card's
//! transmit buffer, and reads an incoming one from a receive buffer kept here — no allocation or
//! zeroing per frame (ring-0 work is emulated instruction by instruction on PVM hosts).

use alloc::boxed::Box;
use hal_pv::virtio::net::Net;
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The Ethernet header before each frame's payload.
const ETHERNET_HEADER: usize = 14;
/// The payload a wire takes (the MTU) unless told otherwise.
pub const DEFAULT_MTU: usize = 1500;

pub struct VirtioPhy {
    card: Net,
    /// The largest frame, Ethernet header included (no FCS).
    max_frame: usize,
    /// The frame being received.
    rx: Box<[u8]>,
    /// Whether outgoing TCP and UDP checksums are computed.
    tx_checksums: bool,
}

impl VirtioPhy {
    /// The card, carrying payloads of up to `mtu` bytes (what it was opened for).
    pub fn new(card: Net, mtu: usize) -> Self {
        let max_frame = ETHERNET_HEADER + mtu;
        VirtioPhy {
            card,
            max_frame,
            rx: alloc::vec![0; max_frame].into_boxed_slice(),
            tx_checksums: true,
        }
    }

    /// Whether outgoing TCP and UDP checksums are computed (IPv4 headers' always are).
    pub fn set_tx_checksums(&mut self, on: bool) {
        self.tx_checksums = on;
    }

    pub fn card(&mut self) -> &mut Net {
        &mut self.card
    }
}

pub struct RxToken<'a>(&'a [u8]);
pub struct TxToken<'a>(&'a mut Net);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        match self.0.transmit(len, |buffer| f.take().map(|f| f(buffer))) {
            Ok(Some(result)) => result,
            // Not queued: smoltcp still wants its closure run (it records what it sent, and
            // retransmits later as for a frame lost on the wire).
            _ => {
                hal_pv::println!("net: frame not sent");
                let mut scratch = alloc::vec![0u8; len];
                match f.take() {
                    Some(f) => f(&mut scratch),
                    None => unreachable_consumed(),
                }
            }
        }
    }
}

#[cold]
fn unreachable_consumed() -> ! {
    panic!("net: a transmit closure ran twice")
}

impl phy::Device for VirtioPhy {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = self.card.receive(&mut self.rx[..])?;
        Some((RxToken(&self.rx[..len]), TxToken(&mut self.card)))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.card))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = self.max_frame;
        caps.medium = Medium::Ethernet;
        // Verifying checksums of received frames costs emulated ring-0 instructions per byte on
        // PVM hosts, and both peers (our VMM's user network, QEMU's slirp) are on this machine:
        // no wire to corrupt them. Outgoing checksums are still computed.
        // Outgoing ones too, unless the peer says it does not verify them (our VMM's user
        // network: `noa.net.tx_csum=off`).
        let tx = if self.tx_checksums {
            Checksum::Tx
        } else {
            Checksum::None
        };
        caps.checksum.ipv4 = Checksum::Tx;
        caps.checksum.tcp = tx;
        caps.checksum.udp = tx;
        caps
    }
}
