//! The console tty: hvc0 (the first virtio console: stdin and stdout) and hvc1 (the second:
//! stderr), as /dev/console, /dev/tty and init's fds 0–2.
//!
//! The host side is the VMM's stdin and stdout — a terminal that does its own line editing and
//! echo, or a file or pipe in runner mode, where bytes must pass unchanged. So this tty passes
//! bytes through: no echo, no CR/NL translation, no signal characters; termios is kept for
//! programs that ask (TCGETS starts as a cooked terminal's), and it shapes reads: in canonical
//! mode (ICANON) a read returns at most one line (up to and including its newline, or 4 KiB, or
//! what is left at end of input); otherwise it returns what has arrived (VMIN 0 with VTIME 0:
//! without waiting; VTIME alone: waiting up to VTIME tenths of a second). The window is 80×25
//! until TIOCSWINSZ; TIOCGPGRP/TIOCSPGRP keep a foreground process group.
//!
//! Reads sleep on a wait queue that hvc0's interrupt wakes (the HAL's per-device hook). The end
//! of the host's input (the VMM reports it on the device) makes every later read return 0. A
//! missing console falls back: stderr to hvc0, output to the serial port (QEMU without virtio
//! consoles), input to an immediate end of file.
//!
//! Writes go to the device from a bounce buffer and return when the device has taken them. The
//! HAL's drivers wait for their interrupt on the CPU the IOAPIC delivers to (the boot CPU).
//!
//! Owns: the two consoles and the tty state.

use super::iobuf::PAGE;
use super::poll::Pollee;
use super::{FileKind, Inode, InodeId, Io, OpenFile, READY_IN, READY_OUT, ReadBuf, WriteBuf};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI32, Ordering};
use hal_pv::virtio::Device;
use hal_pv::virtio::misc::{Console, Read};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{Stat, Statfs, makedev};
use noa_linux_abi::tty::{
    FIONREAD, ICANON, TCFLSH, TCGETS, TCIFLUSH, TCIOFLUSH, TCSBRK, TCSBRKP, TCSETS, TCSETSF,
    TCSETSW, TIOCGPGRP, TIOCGSID, TIOCGWINSZ, TIOCNOTTY, TIOCOUTQ, TIOCSCTTY, TIOCSPGRP,
    TIOCSWINSZ, Termios, VMIN, VTIME, Winsize,
};
use spin::Mutex;

/// Bytes of input staged from the device (and the longest canonical line).
const STAGE_BYTES: usize = PAGE;

struct Input {
    /// Staged bytes not yet read: `staged[start..end]`.
    staged: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// hvc0's interrupt count when it was last acknowledged.
    acked: u32,
}

struct Tty {
    main: Mutex<Option<Console>>,
    error: Mutex<Option<Console>>,
    input: Mutex<Input>,
    termios: Mutex<Termios>,
    winsize: Mutex<Winsize>,
    /// Foreground process group (0: not set yet; the caller's group is reported).
    pgrp: AtomicI32,
    pollee: Pollee,
}

static TTY: Tty = Tty {
    main: Mutex::new(None),
    error: Mutex::new(None),
    input: Mutex::new(Input {
        staged: Vec::new(),
        start: 0,
        end: 0,
        eof: false,
        acked: 0,
    }),
    termios: Mutex::new(Termios::default_tty()),
    winsize: Mutex::new(Winsize {
        rows: 25,
        cols: 80,
        xpixel: 0,
        ypixel: 0,
    }),
    pgrp: AtomicI32::new(0),
    pollee: Pollee::new(),
};

/// The interrupt hook of hvc0: input (or room for output) arrived.
fn on_console_interrupt() {
    TTY.pollee.notify();
}

/// Opens the consoles (hvc0: input and output; hvc1: error output).
pub fn init(main: Option<Device>, error: Option<Device>) {
    let open = |device: Option<Device>, what: &str| {
        device.and_then(|d| match Console::open(d) {
            Ok(console) => Some(console),
            Err(e) => {
                hal_pv::println!("tty: {what} console not opened: {e}");
                None
            }
        })
    };
    let main = open(main, "main");
    if let Some(console) = &main {
        console.set_interrupt_hook(on_console_interrupt);
    }
    *TTY.main.lock() = main;
    *TTY.error.lock() = open(error, "error");
}

/// Which side of the tty an inode is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Port {
    /// hvc0: reads input, writes stdout.
    Main,
    /// hvc1: writes stderr (reads like Main).
    Error,
}

/// The tty as a file.
pub struct TtyNode {
    port: Port,
    ino: u64,
}

/// The inodes of init's fds 0, 1, 2.
pub fn stdio_inodes() -> (super::InodeRef, super::InodeRef, super::InodeRef) {
    (
        console(),
        console(),
        Arc::new(TtyNode {
            port: Port::Error,
            ino: 3,
        }),
    )
}

/// /dev/console and /dev/tty.
pub fn console() -> super::InodeRef {
    Arc::new(TtyNode {
        port: Port::Main,
        ino: 2,
    })
}

/// Writes to a console, or the serial port without one.
fn write_console(console: &mut Option<Console>, bytes: &[u8]) -> SysResult<usize> {
    match console {
        Some(console) => console.write(bytes).map_err(|_| Errno::EIO)?,
        None => hal_pv::print!("{}", String::from_utf8_lossy(bytes)),
    }
    Ok(bytes.len())
}

impl Tty {
    /// Moves input from the device into the stage (after what is staged); true if anything
    /// arrived or the input ended.
    fn refill(&self, input: &mut Input) -> SysResult<bool> {
        let mut main = self.main.lock();
        let Some(console) = main.as_mut() else {
            input.eof = true;
            return Ok(true);
        };
        let seen = console.interrupts();
        if seen != input.acked {
            input.acked = seen;
            console.ack_interrupt();
        }
        if input.staged.len() != STAGE_BYTES {
            input.staged = vec![0u8; STAGE_BYTES];
        }
        if input.start > 0 {
            input.staged.copy_within(input.start..input.end, 0);
            input.end -= input.start;
            input.start = 0;
        }
        if input.end == STAGE_BYTES {
            return Ok(false);
        }
        let end = input.end;
        match console
            .read(&mut input.staged[end..])
            .map_err(|_| Errno::EIO)?
        {
            Read::Data(n) => {
                input.end += n;
                Ok(n > 0)
            }
            Read::Eof => {
                input.eof = true;
                Ok(true)
            }
            Read::Nothing => Ok(false),
        }
    }

    /// One attempt at a read: Some(bytes) when done, None to wait.
    fn try_read(&self, buf: &mut ReadBuf<'_>, canonical: bool) -> SysResult<Option<usize>> {
        let mut input = self.input.lock();
        loop {
            let staged = &input.staged[input.start..input.end];
            let line_end = if canonical {
                staged.iter().position(|&b| b == b'\n').map(|i| i + 1)
            } else {
                None
            };
            let full = input.end - input.start == STAGE_BYTES;
            let ready = if canonical {
                line_end.or((full || input.eof).then_some(staged.len()))
            } else {
                Some(staged.len())
            };
            if let Some(available) = ready.filter(|&n| n > 0) {
                let n = available.min(buf.len());
                buf.put(0, &input.staged[input.start..input.start + n])?;
                input.start += n;
                if input.start == input.end {
                    input.start = 0;
                    input.end = 0;
                }
                return Ok(Some(n));
            }
            if input.eof {
                return Ok(Some(0));
            }
            if !self.refill(&mut input)? {
                return Ok(None);
            }
        }
    }

    fn read(&self, buf: &mut ReadBuf<'_>, io: Io) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let termios = *self.termios.lock();
        let canonical = termios.lflag & ICANON != 0;
        if let Some(n) = self.try_read(buf, canonical)? {
            return Ok(n);
        }
        let (vmin, vtime) = (termios.cc[VMIN], termios.cc[VTIME]);
        if io.nonblock {
            return Err(Errno::EAGAIN);
        }
        if !canonical && vmin == 0 && vtime == 0 {
            return Ok(0);
        }
        let deadline = (!canonical && vmin == 0)
            .then(|| hal_pv::time::now_ns() + u64::from(vtime) * 100_000_000);
        let found = self.pollee.queue().wait_until_deadline(
            || match self.try_read(buf, canonical) {
                Ok(Some(n)) => Some(Ok(n)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            },
            deadline,
        )?;
        found.unwrap_or(Ok(0))
    }

    fn readable(&self) -> bool {
        let input = self.input.lock();
        if input.end > input.start || input.eof {
            return true;
        }
        self.main.lock().as_ref().is_none_or(Console::readable)
    }

    fn flush_input(&self) {
        let mut input = self.input.lock();
        input.start = 0;
        input.end = 0;
    }
}

impl Inode for TtyNode {
    fn id(&self) -> InodeId {
        (super::devfs::DEV, self.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::CharDevice
    }

    fn stat(&self) -> SysResult<Stat> {
        let now = super::now();
        Ok(Stat {
            dev: super::devfs::DEV,
            ino: self.ino,
            nlink: 1,
            mode: FileKind::CharDevice.mode_bits() | 0o620,
            rdev: match self.port {
                Port::Main => makedev(229, 0),
                Port::Error => makedev(229, 1),
            },
            blksize: PAGE as i64,
            atime: now,
            mtime: now,
            ctime: now,
            ..Stat::default()
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        super::devfs::statfs()
    }

    fn read_at(&self, _offset: u64, buf: &mut ReadBuf<'_>, io: Io) -> SysResult<usize> {
        TTY.read(buf, io)
    }

    fn write_at(&self, _offset: u64, buf: &WriteBuf<'_>, _io: Io) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // stderr goes to hvc1 if there is one, else with stdout.
        if self.port == Port::Error {
            let mut error = TTY.error.lock();
            if error.is_some() {
                return buf.drain_via_kernel(|chunk| write_console(&mut error, chunk));
            }
        }
        let mut main = TTY.main.lock();
        buf.drain_via_kernel(|chunk| write_console(&mut main, chunk))
    }

    fn seekable(&self) -> bool {
        false
    }

    fn poll(&self) -> u32 {
        if TTY.readable() {
            READY_IN | READY_OUT
        } else {
            READY_OUT
        }
    }

    fn pollee(&self) -> Option<&Pollee> {
        Some(&TTY.pollee)
    }

    fn ioctl(&self, _file: &OpenFile, cmd: u32, arg: u64) -> SysResult<u64> {
        use crate::mm::uaccess;
        match cmd {
            TCGETS => {
                let termios = *TTY.termios.lock();
                uaccess::copy_to_user(arg, &termios.encode())?;
            }
            TCSETS | TCSETSW | TCSETSF => {
                let mut raw = [0u8; Termios::SIZE];
                uaccess::copy_from_user(arg, &mut raw)?;
                let termios = Termios::decode(&raw).ok_or(Errno::EINVAL)?;
                if cmd == TCSETSF {
                    TTY.flush_input();
                }
                *TTY.termios.lock() = termios;
                // A read waiting for a line may now be satisfied by raw mode.
                TTY.pollee.notify();
            }
            TIOCGWINSZ => {
                let winsize = *TTY.winsize.lock();
                uaccess::copy_to_user(arg, &winsize.encode())?;
            }
            TIOCSWINSZ => {
                let mut raw = [0u8; Winsize::SIZE];
                uaccess::copy_from_user(arg, &mut raw)?;
                *TTY.winsize.lock() = Winsize::decode(&raw).ok_or(Errno::EINVAL)?;
            }
            TIOCGPGRP => {
                let pgrp = match TTY.pgrp.load(Ordering::Acquire) {
                    0 => current_pgrp(),
                    pgrp => pgrp,
                };
                uaccess::write_u32(arg, pgrp as u32)?;
            }
            TIOCSPGRP => {
                let pgrp = uaccess::read_u32(arg)? as i32;
                if pgrp <= 0 {
                    return Err(Errno::EINVAL);
                }
                TTY.pgrp.store(pgrp, Ordering::Release);
            }
            TIOCGSID => {
                let sid = crate::task::sched::try_current()
                    .map_or(1, |t| t.process.sid.load(Ordering::Acquire));
                uaccess::write_u32(arg, sid)?;
            }
            TIOCSCTTY | TIOCNOTTY => {}
            FIONREAD => {
                let input = TTY.input.lock();
                uaccess::write_u32(arg, (input.end - input.start) as u32)?;
            }
            TIOCOUTQ => uaccess::write_u32(arg, 0)?,
            TCFLSH => {
                if matches!(arg as u32, TCIFLUSH | TCIOFLUSH) {
                    TTY.flush_input();
                }
            }
            TCSBRK | TCSBRKP => {}
            _ => return Err(Errno::ENOTTY),
        }
        Ok(0)
    }
}

/// The caller's process group (1 without a process).
fn current_pgrp() -> i32 {
    crate::task::sched::try_current().map_or(1, |t| t.process.pgid.load(Ordering::Acquire) as i32)
}
