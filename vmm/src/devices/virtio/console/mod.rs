//! virtio-console (virtio 1.2 §5.3): one port, no features (no MULTIPORT, SIZE or EMERG_WRITE).
//! The VMM attaches two: console 0 (the guest's hvc0: stdin and stdout) and console 1 (hvc1:
//! stderr, no input); see docs/devices.md.
//!
//! Queue 0 (receiveq) carries host input to the guest, queue 1 (transmitq) guest output to the
//! host. The end of the host input is one receive buffer completed with used length 0 (see
//! `input.rs`). A transmit chain is returned to the driver only after its bytes were written to
//! the sink and the sink flushed: when the guest sees its output done, the host has it. This file owns the device model ([`Console`], its [`VirtioDevice`] impl and config space)
//! and the I/O thread's handler, which runs both queues; `output.rs` copies transmit chains to the
//! output sink, `input.rs` reads the host input fd into a bounded buffer and copies it into receive
//! chains.
//!
//! The sink and the input live in a `Port` shared with the worker, not inside it: a reset drops
//! the worker (and its thread), and the next activation gets the same port back. Input read from
//! the host but not yet given to the guest survives a reset; it is host-side data, not device
//! state, and the next driver gets it.

mod input;
mod output;
#[cfg(test)]
mod tests;

use super::queue::Chain;
use super::worker::{QueueHandler, Worker};
use super::{Activation, Interrupt, Queue, VirtioDevice, device_type};
use event_manager::EventSet;
use input::HostInput;
use output::Output;
use std::io::Write;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use vm_memory::GuestMemoryMmap;

/// receiveq (host → guest) and transmitq (guest → host).
const RX: usize = 0;
const TX: usize = 1;
const QUEUE_SIZES: &[u16] = &[256, 256];

/// Config space (§5.3.4): cols, rows, max_nr_ports, emerg_wr. Without VIRTIO_CONSOLE_F_SIZE and
/// F_MULTIPORT the driver must ignore it; we still report an honest 80x25, single port.
const CONFIG: [u8; 12] = {
    let mut c = [0u8; 12];
    let cols = 80u16.to_le_bytes();
    let rows = 25u16.to_le_bytes();
    let ports = 1u32.to_le_bytes();
    c[0] = cols[0];
    c[1] = cols[1];
    c[2] = rows[0];
    c[3] = rows[1];
    c[4] = ports[0];
    c[5] = ports[1];
    c[6] = ports[2];
    c[7] = ports[3];
    c
};

/// The host side of the single port: where guest output goes and where guest input comes from.
struct Port {
    output: Output,
    /// None when the VMM gave no input fd (or it could not be watched): receiveq never gets data.
    input: Option<HostInput>,
}

pub struct Console {
    port: Arc<Mutex<Port>>,
    /// What the worker watches for input (the input's own epoll fd); owned by `port`.
    input_source: Option<RawFd>,
    worker: Option<Worker>,
}

impl Console {
    /// A console writing guest output to `output` and feeding `input` (if any) to the guest.
    ///
    /// `input` is only read when epoll says it is readable (or, for a file epoll cannot watch such
    /// as a regular file or /dev/null, where reads do not block); its O_NONBLOCK flag is left
    /// alone, because it is usually the VMM's stdin, shared with the user's shell.
    pub fn new(output: Box<dyn Write + Send>, input: Option<OwnedFd>) -> Console {
        let input = input.and_then(|fd| match HostInput::new(fd) {
            Ok(input) => Some(input),
            Err(e) => {
                tracing::error!("virtio-console: cannot watch the input; the guest gets none: {e}");
                None
            }
        });
        let input_source = input.as_ref().map(HostInput::poll_fd);
        let port = Port {
            output: Output::new(output),
            input,
        };
        Console {
            port: Arc::new(Mutex::new(port)),
            input_source,
            worker: None,
        }
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        device_type::CONSOLE
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            let at = offset
                .checked_add(i as u64)
                .and_then(|o| usize::try_from(o).ok());
            *byte = at.and_then(|o| CONFIG.get(o)).copied().unwrap_or(0);
        }
    }

    // write_config: the default (ignore). emerg_wr is writable only with F_EMERG_WRITE.

    fn activate(&mut self, activation: Activation) -> anyhow::Result<()> {
        let Activation {
            mem,
            queues,
            queue_events,
            interrupt,
            ..
        } = activation;
        // The transport passes only the queues the driver made ready, without their indices: the
        // port needs both, so anything else is a driver we cannot serve.
        let Ok([rx, tx]) = <[Queue; 2]>::try_from(queues) else {
            anyhow::bail!("virtio-console needs both the receive and the transmit queue ready");
        };
        if queue_events.len() != 2 {
            anyhow::bail!(
                "virtio-console: expected 2 queue eventfds, got {}",
                queue_events.len()
            );
        }
        // Input buffered before a reset (or its end): one receive pass at start delivers it. The
        // worker finds the receiveq's notification eventfd already signalled.
        if let Some(input) = lock(&self.port).input.as_mut() {
            input.new_driver();
        }
        queue_events[RX].write(1)?;
        let handler = ConsoleQueues {
            mem,
            rx,
            tx,
            rx_broken: false,
            tx_broken: false,
            interrupt,
            port: Arc::clone(&self.port),
            input_source: self.input_source,
            complaints: Complaints::default(),
        };
        self.worker = Some(Worker::spawn("virtio-console", queue_events, handler)?);
        Ok(())
    }

    fn reset(&mut self) {
        // Joins the thread; the port (sink, input, buffered input) stays for the next activation.
        self.worker = None;
    }
}

#[cfg(test)]
impl Console {
    /// (watching the input fd, reached EOF, bytes buffered), for tests.
    fn input_state(&self) -> Option<(bool, bool, usize)> {
        lock(&self.port).input.as_ref().map(HostInput::state)
    }
}

fn lock(port: &Mutex<Port>) -> MutexGuard<'_, Port> {
    // A worker that panicked mid-chain leaves a usable port: take it anyway.
    port.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Driver mistakes, logged once per activation rather than once per chain.
#[derive(Default)]
struct Complaints {
    seen: u8,
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Complaint {
    TxWriteOnly = 1,
    TxTooLong = 2,
    TxBadAddress = 4,
    RxReadOnly = 8,
    RxBadAddress = 16,
    SinkFailed = 32,
    TxBroken = 64,
    RxBroken = 128,
}

impl Complaints {
    fn warn(&mut self, what: Complaint, message: std::fmt::Arguments<'_>) {
        if self.seen & what as u8 == 0 {
            self.seen |= what as u8;
            tracing::warn!("virtio-console: {message} (not logged again until reset)");
        }
    }
}

/// What one queue pass does with the chains it pops.
trait ChainHandler {
    /// Whether to take another chain (receiveq: only while there is input to give).
    fn wants_chain(&self) -> bool {
        true
    }
    /// Handles `chain`; returns the bytes written into it (the used length).
    fn handle(
        &mut self,
        chain: Chain<'_>,
        mem: &GuestMemoryMmap,
        complaints: &mut Complaints,
    ) -> u32;
}

/// Serves `queue` while `handler` wants chains, through the shared loop
/// ([`super::queue::serve_chains`]); the handler also gets the device's complaint log.
fn serve(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    interrupt: &Interrupt,
    handler: &mut impl ChainHandler,
    complaints: &mut Complaints,
) -> bool {
    struct WithComplaints<'a, H> {
        handler: &'a mut H,
        complaints: &'a mut Complaints,
    }
    impl<H: ChainHandler> super::queue::ChainHandler for WithComplaints<'_, H> {
        fn wants_chain(&self) -> bool {
            self.handler.wants_chain()
        }
        fn handle(&mut self, chain: Chain<'_>, mem: &GuestMemoryMmap) -> super::queue::Handled {
            super::queue::Handled::Used(self.handler.handle(chain, mem, self.complaints))
        }
    }
    super::queue::serve_chains(
        queue,
        mem,
        interrupt,
        &mut WithComplaints {
            handler,
            complaints,
        },
    )
}

/// The I/O thread's view: both queues, and the port.
struct ConsoleQueues {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    rx_broken: bool,
    tx_broken: bool,
    interrupt: Arc<Interrupt>,
    port: Arc<Mutex<Port>>,
    input_source: Option<RawFd>,
    complaints: Complaints,
}

impl ConsoleQueues {
    fn transmit(&mut self) {
        if self.tx_broken {
            return;
        }
        let mut port = lock(&self.port);
        let output = &mut port.output;
        let usable = serve(
            &mut self.tx,
            &self.mem,
            &self.interrupt,
            output,
            &mut self.complaints,
        );
        if !usable {
            self.tx_broken = true;
            let what = "the transmit queue's rings are unusable; ignoring it until reset";
            self.complaints
                .warn(Complaint::TxBroken, format_args!("{what}"));
        }
    }

    /// Gives buffered input to the guest, then watches the input fd again if there is room.
    fn receive(&mut self, port: &mut Port) {
        let Some(input) = port.input.as_mut() else {
            return;
        };
        if !self.rx_broken
            && !serve(
                &mut self.rx,
                &self.mem,
                &self.interrupt,
                input,
                &mut self.complaints,
            )
        {
            self.rx_broken = true;
            let what = "the receive queue's rings are unusable; ignoring it until reset";
            self.complaints
                .warn(Complaint::RxBroken, format_args!("{what}"));
        }
        input.update_interest();
    }
}

impl QueueHandler for ConsoleQueues {
    fn queue_notified(&mut self, index: usize) {
        match index {
            RX => {
                let port = Arc::clone(&self.port);
                self.receive(&mut lock(&port));
            }
            TX => self.transmit(),
            _ => {}
        }
    }

    fn host_sources(&self) -> Vec<(RawFd, EventSet)> {
        self.input_source
            .map(|fd| (fd, EventSet::IN))
            .into_iter()
            .collect()
    }

    fn host_ready(&mut self, _fd: RawFd, _events: EventSet) {
        let port = Arc::clone(&self.port);
        let mut port = lock(&port);
        if let Some(input) = port.input.as_mut() {
            input.read_ready();
        }
        self.receive(&mut port);
    }
}
