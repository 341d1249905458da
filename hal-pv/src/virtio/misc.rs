//! The small devices: entropy (virtio-rng, the crate's driver: it polls the used ring, and the
//! device answers within microseconds) and the console (virtio-console: our own small driver on
//! the crate's `VirtQueue`, with non-blocking input and an end-of-input the crate cannot report).

use super::hal::VirtioHal;
use super::{Device, Error, Kind, Mmio};
use alloc::boxed::Box;
use alloc::vec;
use virtio_drivers::device::common::Feature;
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{InterruptStatus, Transport};

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

/// What a non-blocking [`Console::read`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were copied into the caller's buffer.
    Data(usize),
    /// The host's input has ended (and every byte before the end was read). Sticky: every later
    /// read says so again.
    Eof,
    /// No input waits now; the device's interrupt announces more.
    Nothing,
}

/// Receive buffers the driver keeps posted, and the size of each.
const RX_BUFFERS: usize = 4;
const RX_BUFFER_BYTES: usize = 4096;
/// Transmit chains in flight: one (a write waits for its chain).
const TX_QUEUE_SIZE: usize = 2;
/// Most bytes of one write handed to the device as one chain (our VMM takes up to 64 KiB).
const TX_CHUNK_BYTES: usize = 32 * 1024;
/// How long a write polls for its completion before it sleeps until the interrupt: the VMM's I/O
/// thread usually answers within this, and the interrupt reaches only the boot CPU (elsewhere the
/// sleep ends on the 20 ms recheck timer).
const TX_POLL_NS: u64 = 100_000;
const RECEIVEQ: u16 = 0;
const TRANSMITQ: u16 = 1;

struct RxBuffer {
    bytes: Box<[u8]>,
    /// The queue's token while the device owns the buffer.
    token: Option<u16>,
}

/// An open console (virtio-console, one port): what a kernel needs for a tty. Bytes go out with
/// [`Console::write`]; input comes in with the non-blocking [`Console::read`], and the device's
/// interrupt says when to read again ([`Console::set_interrupt_hook`], [`Console::interrupts`]).
///
/// Our own driver on the crate's `VirtQueue`: the crate's `VirtIOConsole` treats a receive buffer
/// completed with length 0 as impossible, and that completion is how our VMM says the host's
/// input ended (docs/devices.md). The VMM attaches two consoles: the first is the guest's stdin
/// and stdout (hvc0), the second its stderr (hvc1, no input).
pub struct Console {
    // Dropped first (fields drop in order): the transport resets the device, which then stops
    // using the queues and buffers below before they are freed.
    transport: Mmio,
    receiveq: VirtQueue<VirtioHal, RX_BUFFERS>,
    transmitq: VirtQueue<VirtioHal, TX_QUEUE_SIZE>,
    rx: [RxBuffer; RX_BUFFERS],
    /// A completed receive buffer being read: (index in `rx`, bytes in it, bytes read so far).
    current: Option<(usize, usize, usize)>,
    eof: bool,
    slot: usize,
    irq: u32,
}

impl Console {
    /// Starts the driver: negotiates VERSION_1 and EVENT_IDX (no size, no multiport), sets up
    /// both queues and posts the receive buffers.
    pub fn open(device: Device) -> Result<Console, Error> {
        assert_eq!(device.kind, Kind::Console, "{device:?} is not a console");
        let Device {
            mut transport,
            slot,
            irq,
            ..
        } = device;
        let features = transport.begin_init(Feature::VERSION_1 | Feature::RING_EVENT_IDX);
        let event_idx = features.contains(Feature::RING_EVENT_IDX);
        let receiveq = VirtQueue::new(&mut transport, RECEIVEQ, false, event_idx)?;
        let transmitq = VirtQueue::new(&mut transport, TRANSMITQ, false, event_idx)?;
        transport.finish_init();
        let mut console = Console {
            transport,
            receiveq,
            transmitq,
            rx: core::array::from_fn(|_| RxBuffer {
                bytes: vec![0u8; RX_BUFFER_BYTES].into_boxed_slice(),
                token: None,
            }),
            current: None,
            eof: false,
            slot,
            irq,
        };
        for index in 0..RX_BUFFERS {
            console.post(index)?;
        }
        console.notify_receiveq();
        Ok(console)
    }

    /// Writes all of `bytes` (any bytes) to the host side; returns when the device has taken
    /// them (our VMM has then written them to its stdout or stderr). Polls briefly, then sleeps in
    /// `hlt` until the device's interrupt.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        for chunk in bytes.chunks(TX_CHUNK_BYTES) {
            // SAFETY: `chunk` stays borrowed, and only read, until `pop_used` returns it below.
            let token = unsafe { self.transmitq.add(&[chunk], &mut []) }?;
            if self.transmitq.should_notify() {
                self.transport.notify(TRANSMITQ);
            }
            self.wait_for_transmit();
            // SAFETY: the buffer added with `token` above.
            unsafe { self.transmitq.pop_used(token, &[chunk], &mut []) }?;
        }
        Ok(())
    }

    /// Copies waiting input into `out`, without blocking: as much as has arrived and fits (an
    /// empty `out` reads nothing: `Data(0)`). The end of the input shows only after every byte
    /// before it was read; from then on every read returns [`Read::Eof`].
    pub fn read(&mut self, out: &mut [u8]) -> Result<Read, Error> {
        if out.is_empty() {
            return Ok(Read::Data(0));
        }
        let mut filled = 0;
        let mut reposted = false;
        let result = loop {
            if let Some((index, len, at)) = self.current {
                let n = (len - at).min(out.len() - filled);
                out[filled..filled + n].copy_from_slice(&self.rx[index].bytes[at..at + n]);
                filled += n;
                if at + n == len {
                    self.current = None;
                    if let Err(e) = self.post(index) {
                        break Err(e);
                    }
                    reposted = true;
                } else {
                    self.current = Some((index, len, at + n));
                }
                if filled == out.len() {
                    break Ok(());
                }
            }
            if self.eof {
                break Ok(());
            }
            match self.take_used() {
                Ok(Some((_, 0))) => self.eof = true,
                Ok(Some((index, len))) => self.current = Some((index, len, 0)),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if reposted {
            self.notify_receiveq();
        }
        result?;
        Ok(if filled > 0 {
            Read::Data(filled)
        } else if self.eof {
            Read::Eof
        } else {
            Read::Nothing
        })
    }

    /// Whether [`Console::read`] would return something other than [`Read::Nothing`] now.
    pub fn readable(&self) -> bool {
        self.current.is_some() || self.eof || self.receiveq.can_pop()
    }

    /// Acknowledges the device's interrupt (InterruptACK); true if a queue had used buffers. Call
    /// it after the interrupt, outside the handler; reading and writing work without it.
    pub fn ack_interrupt(&mut self) -> bool {
        self.transport
            .ack_interrupt()
            .contains(InterruptStatus::QUEUE_INTERRUPT)
    }

    /// Runs `hook` each time this console's interrupt arrives — in the interrupt handler, with
    /// interrupts off, on the CPU the IOAPIC delivers to (the boot CPU): enough to wake a reader
    /// (which then calls [`Console::read`]). Replaces an earlier hook.
    pub fn set_interrupt_hook(&self, hook: fn()) {
        super::set_interrupt_hook(self.slot, Some(hook));
    }

    /// The device's interrupt line (GSI, IOAPIC pin).
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Interrupts this console has raised so far.
    pub fn interrupts(&self) -> u32 {
        super::interrupts_seen(self.slot)
    }

    fn wait_for_transmit(&self) {
        let queue = &self.transmitq;
        let poll_until = crate::time::now_ns().saturating_add(TX_POLL_NS);
        while !queue.can_pop() {
            if crate::time::now_ns() >= poll_until {
                super::wait_until(|| queue.can_pop());
                return;
            }
            crate::cpu::relax();
        }
    }

    /// Gives receive buffer `index` to the device (not yet notified: see `notify_receiveq`).
    fn post(&mut self, index: usize) -> Result<(), Error> {
        let buffer = &mut self.rx[index];
        // SAFETY: the buffer is heap memory this console owns; nothing touches it until
        // `take_used` pops it with its token, and the device stops using it before it is freed
        // (see the field order of `Console`).
        let token = unsafe { self.receiveq.add(&[], &mut [&mut buffer.bytes[..]]) }?;
        buffer.token = Some(token);
        Ok(())
    }

    fn notify_receiveq(&mut self) {
        if self.receiveq.should_notify() {
            self.transport.notify(RECEIVEQ);
        }
    }

    /// The next completed receive buffer, if any: (index in `rx`, used length).
    fn take_used(&mut self) -> Result<Option<(usize, usize)>, Error> {
        let Some(token) = self.receiveq.peek_used() else {
            return Ok(None);
        };
        let Some(index) = self.rx.iter().position(|b| b.token == Some(token)) else {
            return Err(Error(virtio_drivers::Error::WrongToken));
        };
        let buffer = &mut self.rx[index];
        // SAFETY: the buffer that was added with this token (in `post`).
        let len = unsafe {
            self.receiveq
                .pop_used(token, &[], &mut [&mut buffer.bytes[..]])
        }?;
        buffer.token = None;
        // A device claiming more than the buffer holds gets no more than the buffer.
        Ok(Some((index, (len as usize).min(RX_BUFFER_BYTES))))
    }
}
