//! The receiveq side: the host input fd (usually the VMM's stdin) is read into a bounded buffer,
//! which is copied into the guest's writable buffers as the guest posts them.
//!
//! The fd is never made non-blocking (that flag lives in the open file description, shared with
//! the user's shell); it is read only when epoll has just said it is readable. The worker does not
//! watch the fd itself but a private epoll set that holds it, so interest can come and go without
//! the worker's help: the fd is in that set only while the buffer has room and EOF has not been
//! seen. Otherwise a full buffer would leave a level-triggered fd ready forever, and the I/O
//! thread would spin.
//!
//! Files epoll cannot watch (a regular file or /dev/null as stdin) never block on read; for those
//! the set holds an eventfd instead, kept signalled while there is room, meaning "read again".
//!
//! End of input (our convention, docs/devices.md): once the fd has reached EOF (or failed) and
//! every byte read before it has gone to the guest, the device completes exactly one receive
//! buffer with used length 0 — per driver: a driver that resets the device and sets it up again
//! is told again. The device writes no other zero-length receive completion, except for a chain
//! it cannot write a byte into (no writable descriptor inside guest memory), which only a broken
//! driver posts.

use super::Chain;
use super::{ChainHandler, Complaint, Complaints};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use vm_memory::{Address, Bytes, GuestMemoryMmap};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

/// Most input read from the host but not yet taken by the guest.
pub(super) const MAX_PENDING_BYTES: usize = 64 * 1024;
/// Most bytes read from the fd at once.
const READ_CHUNK: usize = 16 * 1024;

pub(super) struct HostInput {
    fd: OwnedFd,
    /// What the I/O thread watches: holds `fd` (or `wake`) while we want to read.
    poller: Epoll,
    /// For an fd epoll cannot watch: signalled while we want to read it.
    wake: Option<EventFd>,
    /// `fd` is in `poller` (or `wake` is signalled).
    watching: bool,
    eof: bool,
    /// The driver has been given the zero-length completion that means EOF.
    eof_told: bool,
    pending: VecDeque<u8>,
    scratch: Vec<u8>,
}

impl HostInput {
    pub(super) fn new(fd: OwnedFd) -> io::Result<Self> {
        let poller = Epoll::new()?;
        let wake = match poller.ctl(
            ControlOperation::Add,
            fd.as_raw_fd(),
            EpollEvent::new(EventSet::IN, 0),
        ) {
            Ok(()) => None,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                let wake = EventFd::new(libc::EFD_NONBLOCK)?;
                poller.ctl(
                    ControlOperation::Add,
                    wake.as_raw_fd(),
                    EpollEvent::new(EventSet::IN, 0),
                )?;
                wake.write(1)?;
                Some(wake)
            }
            Err(e) => return Err(e),
        };
        Ok(HostInput {
            fd,
            poller,
            wake,
            watching: true,
            eof: false,
            eof_told: false,
            pending: VecDeque::new(),
            scratch: vec![0; READ_CHUNK],
        })
    }

    /// The fd the I/O thread watches for input (readable when there is input to read).
    pub(super) fn poll_fd(&self) -> RawFd {
        self.poller.as_raw_fd()
    }

    /// A new driver: it has not been told about EOF yet.
    pub(super) fn new_driver(&mut self) {
        self.eof_told = false;
    }

    /// Whether the next receive chain is the zero-length EOF completion.
    fn eof_due(&self) -> bool {
        self.eof && !self.eof_told && self.pending.is_empty()
    }

    /// (watching, eof, buffered bytes).
    #[cfg(test)]
    pub(super) fn state(&self) -> (bool, bool, usize) {
        (self.watching, self.eof, self.pending.len())
    }

    /// The watched set was ready: reads once from the fd into the buffer, if the fd is still
    /// readable now (another reader of a shared stdin may have taken the input since).
    pub(super) fn read_ready(&mut self) {
        let mut events = [EpollEvent::default(); 1];
        match self.poller.wait(0, &mut events) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("virtio-console: polling the input: {e}");
                return;
            }
        }
        if let Some(wake) = &self.wake {
            // Consumed: update_interest signals it again if we still want to read.
            let _ = wake.read();
            self.watching = false;
        }
        let room = MAX_PENDING_BYTES
            .saturating_sub(self.pending.len())
            .min(READ_CHUNK);
        if room == 0 || self.eof {
            return;
        }
        let buffer = &mut self.scratch[..room];
        // SAFETY: the kernel writes at most `buffer.len()` bytes into `buffer`, which we own.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        match n {
            0 => {
                tracing::debug!("virtio-console: end of the input");
                self.eof = true;
            }
            n if n > 0 => self.pending.extend(&buffer[..n as usize]),
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    // Someone else made it non-blocking, or a signal: epoll tells us again.
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {}
                    _ => {
                        // A hung-up terminal (EIO) and the like: there is nothing more to read.
                        tracing::warn!(
                            "virtio-console: cannot read the input, ignoring it from now on: {e}"
                        );
                        self.eof = true;
                    }
                }
            }
        }
    }

    /// Watches the fd exactly while there is room for more input and it has not ended.
    pub(super) fn update_interest(&mut self) {
        let want = !self.eof && self.pending.len() < MAX_PENDING_BYTES;
        if want == self.watching {
            return;
        }
        let fd = self.fd.as_raw_fd();
        let result = match (&self.wake, want) {
            (None, true) => {
                self.poller
                    .ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, 0))
            }
            (None, false) => self
                .poller
                .ctl(ControlOperation::Delete, fd, EpollEvent::default()),
            (Some(wake), true) => wake.write(1),
            (Some(wake), false) => wake.read().map(drop),
        };
        match result {
            Ok(()) => self.watching = want,
            Err(e) if !want && e.kind() == io::ErrorKind::WouldBlock => self.watching = false,
            Err(e) => {
                // Not expected (the fd and the set are ours): stop reading rather than risk a spin.
                tracing::error!(
                    "virtio-console: cannot watch the input, ignoring it from now on: {e}"
                );
                self.eof = true;
            }
        }
    }
}

impl ChainHandler for HostInput {
    fn wants_chain(&self) -> bool {
        !self.pending.is_empty() || self.eof_due()
    }

    fn handle(
        &mut self,
        chain: Chain<'_>,
        mem: &GuestMemoryMmap,
        complaints: &mut Complaints,
    ) -> u32 {
        if self.eof_due() {
            tracing::debug!("virtio-console: telling the driver the input ended");
            self.eof_told = true;
            return 0;
        }
        let mut written = 0usize;
        for desc in chain {
            if self.pending.is_empty() {
                break;
            }
            if !desc.is_write_only() {
                let what = "a receive chain has device-readable descriptors; skipping them";
                complaints.warn(Complaint::RxReadOnly, format_args!("{what}"));
                continue;
            }
            let mut room = desc.len() as usize;
            let mut addr = desc.addr();
            while room > 0 {
                let (front, _) = self.pending.as_slices();
                let n = front.len().min(room);
                if n == 0 {
                    break;
                }
                if mem.write_slice(&front[..n], addr).is_err() {
                    // The bytes stay buffered for the next descriptor or chain.
                    let what = "a receive descriptor lies outside guest memory; skipping it";
                    complaints.warn(Complaint::RxBadAddress, format_args!("{what}"));
                    break;
                }
                self.pending.drain(..n);
                written += n;
                room -= n;
                match addr.checked_add(n as u64) {
                    Some(next) => addr = next,
                    None => break,
                }
            }
        }
        // At most MAX_PENDING_BYTES, far below u32::MAX.
        written as u32
    }
}
