//! The small devices: entropy (virtio-rng) and the console (virtio-console).
//!
//! The crate offers only blocking calls for these (it polls the used ring); the device answers
//! within microseconds, so the poll is short. Our own interrupt-driven versions can replace them
//! when a caller needs to sleep through a long wait (console input).

use super::hal::VirtioHal;
use super::{Device, Error, Kind, Mmio};
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::rng::VirtIORng;

/// An open entropy source.
pub struct Rng(VirtIORng<VirtioHal, Mmio>);

impl Rng {
    pub fn open(device: Device) -> Result<Rng, Error> {
        assert_eq!(
            device.kind,
            Kind::Entropy,
            "{device:?} is not an entropy source"
        );
        Ok(Rng(VirtIORng::new(device.transport)?))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            filled += self.0.request_entropy(&mut buf[filled..])?;
        }
        Ok(())
    }
}

/// An open console.
pub struct Console(VirtIOConsole<VirtioHal, Mmio>);

impl Console {
    pub fn open(device: Device) -> Result<Console, Error> {
        assert_eq!(device.kind, Kind::Console, "{device:?} is not a console");
        Ok(Console(VirtIOConsole::new(device.transport)?))
    }

    /// Writes `bytes` to the host side of the console.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        Ok(self.0.send_bytes(bytes)?)
    }
}
