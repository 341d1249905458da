//! smoltcp's view of the virtio-net card: a `Device` that hands out received frames and sends
//! the frames smoltcp builds.

use alloc::vec;
use alloc::vec::Vec;
use hal_pv::virtio::net::Net;
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Largest Ethernet frame without the FCS.
const MAX_FRAME: usize = 1514;

pub struct VirtioPhy {
    card: Net,
}

impl VirtioPhy {
    pub fn new(card: Net) -> Self {
        VirtioPhy { card }
    }

    pub fn card(&mut self) -> &mut Net {
        &mut self.card
    }
}

pub struct RxToken(Vec<u8>);
pub struct TxToken<'a>(&'a mut Net);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        if let Err(e) = self.0.send(&frame) {
            hal_pv::println!("net: frame not sent: {e}");
        }
        result
    }
}

impl phy::Device for VirtioPhy {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let mut frame = vec![0; MAX_FRAME];
        let len = self.card.receive(&mut frame)?;
        frame.truncate(len);
        Some((RxToken(frame), TxToken(&mut self.card)))
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
