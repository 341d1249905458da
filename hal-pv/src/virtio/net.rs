//! virtio-net: Ethernet frames in and out. The kernel's network stack (smoltcp, in guest-os)
//! drives it through [`Net::send`] and [`Net::receive`], and runs when the card's interrupt
//! arrives ([`Net::set_interrupt_hook`]) or its own timers say so.
//!
//! Built on virtio-drivers' raw driver, with the buffers kept here: the high-level `VirtIONet`
//! waits for the device to take each transmitted frame (spinning on the used ring — every spin
//! an emulated instruction on PVM hosts) and allocates a fresh zeroed buffer per frame. Here a
//! frame is copied once into a buffer from a fixed pool and handed over; finished transmissions
//! are reaped the next time one is needed. Receive buffers are posted once and reposted as soon
//! as their frame is copied out.

use super::hal::VirtioHal;
use super::{Device, Error, Kind, Mmio};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use virtio_drivers::device::net::VirtIONetRaw;

/// Descriptors per queue.
const QUEUE_SIZE: usize = 64;
/// Receive buffers kept posted.
const RX_BUFFERS: usize = 32;
/// Transmit buffers in flight at most.
const TX_BUFFERS: usize = 32;
/// The virtio-net header and the Ethernet header before the payload of each buffer.
const HEADERS: usize = 12 + 14;

/// One frame buffer: whole pages of physically contiguous memory (a device writes or reads
/// it in one descriptor), taken without zeroing — a fresh zeroed heap buffer costs ~195 µs per
/// 4 KiB of emulated ring-0 work here — or from the heap when no contiguous run is left.
enum Buffer {
    Run(crate::mm::frames::FrameRun),
    Heap(Box<[u8]>),
}

impl Buffer {
    fn new(bytes: usize) -> Buffer {
        let pages = bytes.div_ceil(crate::mm::PAGE_SIZE as usize) as u64;
        match crate::mm::frames::FrameRun::alloc(pages) {
            Some(run) => Buffer::Run(run),
            None => Buffer::Heap(vec![0u8; bytes].into_boxed_slice()),
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        match self {
            Buffer::Run(run) => run.bytes_mut(),
            Buffer::Heap(heap) => heap,
        }
    }
}

/// An open network interface.
pub struct Net {
    driver: VirtIONetRaw<VirtioHal, Mmio, QUEUE_SIZE>,
    slot: usize,
    rx: Vec<Buffer>,
    /// Receive token (descriptor head) → buffer index.
    rx_posted: [Option<u8>; QUEUE_SIZE],
    tx: Vec<Buffer>,
    tx_free: Vec<u8>,
    /// Transmit token → (buffer index, bytes handed over).
    tx_in_flight: [Option<(u8, u16)>; QUEUE_SIZE],
}

impl Net {
    /// Opens the card for frames of up to `mtu` bytes of payload (1500 on a real wire; our
    /// VMM's user network takes larger ones, and fewer frames mean fewer emulated instructions).
    pub fn open(device: Device, mtu: usize) -> Result<Net, Error> {
        assert_eq!(
            device.kind,
            Kind::Network,
            "{device:?} is not a network card"
        );
        let driver = VirtIONetRaw::new(device.transport)?;
        let bytes = HEADERS + mtu.clamp(576, 65_535);
        let mut net = Net {
            driver,
            slot: device.slot,
            rx: (0..RX_BUFFERS).map(|_| Buffer::new(bytes)).collect(),
            rx_posted: [None; QUEUE_SIZE],
            tx: (0..TX_BUFFERS).map(|_| Buffer::new(bytes)).collect(),
            tx_free: (0..TX_BUFFERS as u8).collect(),
            tx_in_flight: [None; QUEUE_SIZE],
        };
        for index in 0..RX_BUFFERS {
            net.post_rx(index)?;
        }
        Ok(net)
    }

    fn post_rx(&mut self, index: usize) -> Result<(), Error> {
        // SAFETY: the buffer is a heap allocation owned by `self.rx`, never touched (nor freed:
        // buffers live as long as the card) until `receive_complete` returns it for this token.
        let token = unsafe { self.driver.receive_begin(self.rx[index].bytes())? };
        self.rx_posted[token as usize % QUEUE_SIZE] = Some(index as u8);
        Ok(())
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.driver.mac_address()
    }

    /// Takes back the buffers of finished transmissions.
    fn reap_tx(&mut self) {
        while let Some(token) = self.driver.poll_transmit() {
            let Some((index, len)) = self.tx_in_flight[token as usize % QUEUE_SIZE].take() else {
                crate::println!("virtio-net: used transmit token {token} unknown");
                return;
            };
            let buffer = &self.tx[index as usize].bytes()[..len as usize];
            // SAFETY: the same buffer and length `transmit_begin` was given for this token.
            if let Err(e) = unsafe { self.driver.transmit_complete(token, buffer) } {
                crate::println!("virtio-net: transmit completion: {e:?}");
            }
            self.tx_free.push(index);
        }
    }

    /// Queues one frame for sending (returns once the device has it queued, not sent).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        self.transmit(frame.len(), |buffer| buffer.copy_from_slice(frame))
    }

    /// Queues a frame of `len` bytes that `fill` writes straight into the transmit buffer (no
    /// intermediate copy); returns what `fill` returned.
    pub fn transmit<R>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, Error> {
        self.reap_tx();
        if self.tx_free.is_empty() || !self.driver.can_send() {
            let driver = &mut self.driver;
            super::wait_until(|| driver.poll_transmit().is_some());
            self.reap_tx();
        }
        let index = self
            .tx_free
            .pop()
            .ok_or(Error(virtio_drivers::Error::QueueFull))?;
        let buffer = self.tx[index as usize].bytes();
        let header = self.driver.fill_buffer_header(buffer)?;
        let len = header + len;
        if len > buffer.len() {
            self.tx_free.push(index);
            return Err(Error(virtio_drivers::Error::InvalidParam));
        }
        let result = fill(&mut buffer[header..len]);
        let buffer = &self.tx[index as usize].bytes()[..len];
        // SAFETY: the buffer is owned by `self.tx` and left alone until `reap_tx` completes it.
        match unsafe { self.driver.transmit_begin(buffer) } {
            Ok(token) => {
                self.tx_in_flight[token as usize % QUEUE_SIZE] = Some((index, len as u16));
                Ok(result)
            }
            Err(e) => {
                self.tx_free.push(index);
                Err(e.into())
            }
        }
    }

    /// Copies the next received frame into `out` (truncating a longer one); `None` if none waits.
    pub fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        let token = self.driver.poll_receive()?;
        let Some(index) = self.rx_posted[token as usize % QUEUE_SIZE].take() else {
            crate::println!("virtio-net: used receive token {token} unknown");
            return None;
        };
        let index = index as usize;
        // SAFETY: the buffer `receive_begin` was given for this token.
        let buffer = self.rx[index].bytes();
        let result = unsafe { self.driver.receive_complete(token, buffer) };
        let copied = match result {
            Ok((header, len)) => {
                let n = len.min(out.len());
                out[..n].copy_from_slice(&buffer[header..header + n]);
                Some(n)
            }
            Err(e) => {
                crate::println!("virtio-net: bad received frame: {e:?}");
                Some(0)
            }
        };
        if let Err(e) = self.post_rx(index) {
            crate::println!("virtio-net: lost a receive buffer: {e:?}");
        }
        copied
    }

    /// Whether a received frame waits.
    pub fn can_receive(&self) -> bool {
        self.driver.poll_receive().is_some()
    }

    /// Sleeps until a frame may have arrived or `timeout_ns` passed.
    pub fn wait(&mut self, timeout_ns: u64) {
        if !self.can_receive() {
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
