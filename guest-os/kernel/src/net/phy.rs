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

/// Largest Ethernet frame without the FCS.
const MAX_FRAME: usize = 1514;

pub struct VirtioPhy {
    card: Net,
    /// The frame being received.
    rx: Box<[u8; MAX_FRAME]>,
}

impl VirtioPhy {
    pub fn new(card: Net) -> Self {
        VirtioPhy {
            card,
            rx: Box::new([0; MAX_FRAME]),
        }
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
        caps.max_transmission_unit = MAX_FRAME;
        caps.medium = Medium::Ethernet;
        // Verifying checksums of received frames costs emulated ring-0 instructions per byte on
        // PVM hosts, and both peers (our VMM's user network, QEMU's slirp) are on this machine:
        // no wire to corrupt them. Outgoing checksums are still computed.
        caps.checksum.ipv4 = Checksum::Tx;
        caps.checksum.tcp = Checksum::Tx;
        caps.checksum.udp = Checksum::Tx;
        caps
    }
}
