//! The 16550 UART at COM1 (0x3f8, IRQ 4), emulated by vm-superio: the kernel's log.
//!
//! Where the log goes is the VMM's choice ([`LogTo`]): stdout in a plain boot; in runner mode
//! (`-- CMD`) stderr with `--verbose`, otherwise nowhere live — stdout then carries only the
//! command's output. Either way the console keeps the last [`TAIL_BYTES`] it received, so that
//! when the run fails the VMM can show the kernel's report (and, in runner mode, the whole tail)
//! on stderr.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use vm_superio::Serial;
use vm_superio::serial::NoEvents;
use vmm_sys_util::eventfd::EventFd;

/// First port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Its eight registers.
pub const COM1_PORTS: std::ops::Range<u16> = COM1_BASE..COM1_BASE + 8;
/// Its interrupt line (GSI).
pub const COM1_GSI: u32 = 4;
/// How much console output is kept for crash reports and failed runs.
pub const TAIL_BYTES: usize = 64 * 1024;

/// Where the kernel's log goes as it comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    Stderr,
    /// Only into the tail.
    Nowhere,
}

/// Raises the UART's interrupt through an irqfd.
pub struct IrqLine(pub EventFd);

impl vm_superio::Trigger for IrqLine {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// Where the UART's bytes go: the [`LogTo`] destination, a line at a time, plus a bounded tail.
///
/// vm-superio flushes after every byte; writing each byte out would cost a system call per byte,
/// so complete lines go out as they end and a partial line waits for [`SerialConsole::flush`].
pub struct ConsoleOut {
    to: LogTo,
    pending: Vec<u8>,
    tail: VecDeque<u8>,
}

impl ConsoleOut {
    fn emit(&self, bytes: &[u8]) {
        // A closed stdout or stderr must not stop the guest: drop the output, keep the tail.
        match self.to {
            LogTo::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes).and_then(|_| out.flush());
            }
            LogTo::Stderr => {
                let _ = std::io::stderr().lock().write_all(bytes);
            }
            LogTo::Nowhere => {}
        }
    }

    /// Writes out a partial last line.
    fn drain(&mut self) {
        if !self.pending.is_empty() {
            self.emit(&self.pending);
            self.pending.clear();
        }
    }
}

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tail.extend(buf);
        let excess = self.tail.len().saturating_sub(TAIL_BYTES);
        self.tail.drain(..excess);
        if self.to == LogTo::Nowhere {
            return Ok(buf.len());
        }
        self.pending.extend_from_slice(buf);
        if let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(&self.pending[..=last_newline]);
            self.pending.drain(..=last_newline);
        }
        Ok(buf.len())
    }

    /// Line-buffered: complete lines are already out; see [`ConsoleOut::drain`].
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The COM1 device.
pub struct SerialConsole(Mutex<Serial<IrqLine, NoEvents, ConsoleOut>>);

impl SerialConsole {
    /// A UART raising `irq`, its log going to `to`.
    pub fn new(irq: EventFd, to: LogTo) -> Self {
        SerialConsole(Mutex::new(Serial::new(
            IrqLine(irq),
            ConsoleOut {
                to,
                pending: Vec::new(),
                tail: VecDeque::new(),
            },
        )))
    }

    /// A guest read of port `port` (in `COM1_PORTS`), `data.len()` times (`rep insb`).
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let mut serial = self.lock();
        for byte in data {
            *byte = serial.read((port - COM1_BASE) as u8);
        }
    }

    /// A guest write of `data` to port `port` (in `COM1_PORTS`), byte after byte (`rep outsb`).
    pub fn write(&self, port: u16, data: &[u8]) {
        let mut serial = self.lock();
        for &value in data {
            if let Err(e) = serial.write((port - COM1_BASE) as u8, value) {
                tracing::debug!("serial: write to {port:#x} failed: {e:?}");
            }
        }
    }

    /// The last console output, as text.
    pub fn tail(&self) -> String {
        String::from_utf8_lossy(&self.tail_bytes()).into_owned()
    }

    /// The last console output, as the guest wrote it (at most [`TAIL_BYTES`]).
    pub fn tail_bytes(&self) -> Vec<u8> {
        let serial = self.lock();
        let (a, b) = serial.writer().tail.as_slices();
        [a, b].concat()
    }

    /// Writes out anything still buffered (a last line without a newline).
    pub fn flush(&self) {
        self.lock().writer_mut().drain();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Serial<IrqLine, NoEvents, ConsoleOut>> {
        // A vCPU thread that panicked mid-write leaves a usable UART: take it anyway.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
