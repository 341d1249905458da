//! virtio-net: Ethernet frames in and out. The kernel's network stack (smoltcp, in guest-os)
//! drives it through [`Net::send`] and [`Net::receive`], sleeping in [`Net::wait`] until a frame
//! arrives (the device's interrupt) or its next timer is due.

use super::hal::VirtioHal;
use super::{Device, Error, Kind, Mmio};
use virtio_drivers::device::net::VirtIONet;

/// Receive buffers the driver keeps posted.
const QUEUE_SIZE: usize = 64;
/// Each receive buffer: a full Ethernet frame plus the virtio-net header.
const RX_BUFFER_BYTES: usize = 2048;

/// An open network interface.
pub struct Net {
    driver: VirtIONet<VirtioHal, Mmio, QUEUE_SIZE>,
    slot: usize,
}

impl Net {
    pub fn open(device: Device) -> Result<Net, Error> {
        assert_eq!(
            device.kind,
            Kind::Network,
            "{device:?} is not a network card"
        );
        let driver = VirtIONet::new(device.transport, RX_BUFFER_BYTES)?;
        Ok(Net {
            driver,
            slot: device.slot,
        })
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.driver.mac_address()
    }

    /// Sends one frame (returns once the device has taken it).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        let mut buffer = self.driver.new_tx_buffer(frame.len());
        buffer.packet_mut().copy_from_slice(frame);
        Ok(self.driver.send(buffer)?)
    }

    /// Copies the next received frame into `out` (truncating a longer one); `None` if none waits.
    pub fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        let buffer = self.driver.receive().ok()?;
        let packet = buffer.packet();
        let len = packet.len().min(out.len());
        out[..len].copy_from_slice(&packet[..len]);
        if let Err(e) = self.driver.recycle_rx_buffer(buffer) {
            crate::println!("virtio-net: lost a receive buffer: {e:?}");
        }
        Some(len)
    }

    /// Sleeps until a frame may have arrived or `timeout_ns` passed.
    pub fn wait(&mut self, timeout_ns: u64) {
        if !self.driver.can_recv() {
            crate::time::set_timer_in_ns(timeout_ns.max(1000));
            crate::cpu::wait_for_interrupt();
            crate::irq::apic::cancel_timer();
        }
        self.driver.ack_interrupt();
    }

    /// Runs `hook` each time this card's interrupt arrives — in the interrupt handler, with
    /// interrupts off, on the CPU the IOAPIC delivers to: the network stack's cue to run.
    /// Replaces an earlier hook.
    pub fn set_interrupt_hook(&self, hook: fn()) {
        super::set_interrupt_hook(self.slot, Some(hook));
    }

    /// Acknowledges the card's interrupt (InterruptACK): call it before looking at the queues
    /// after an interrupt.
    pub fn ack_interrupt(&mut self) {
        self.driver.ack_interrupt();
    }

    /// Interrupts this card has raised so far.
    pub fn interrupts(&self) -> u32 {
        super::interrupts_seen(self.slot)
    }
}
