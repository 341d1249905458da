//! The signals init acts on, turned into events its loops wait for: a self-pipe. The handler
//! only writes the signal's number to a non-blocking pipe (async-signal-safe, errno kept); the
//! loops `poll` the other end with a timeout, so a child's exit (SIGCHLD), a stop request and a
//! restart deadline all wake the same wait, and no signal is lost between a check and the wait.
//!
//! Owns the handlers of SIGCHLD, SIGTERM, SIGINT and SIGHUP. PID 1 receives only the signals it
//! has handlers for, so installing these is also what lets the kernel deliver them to init.
//! What each signal *means* is the caller's (`runner`, `shell`, `supervise`).

use std::io::Error;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The signals init handles.
pub const HANDLED: [libc::c_int; 4] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The pipe's write end, for the handler (-1: no pipe, the handler does nothing).
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = WRITE_END.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: errno is thread-local and its location valid for the thread's life; write(2) is
    // async-signal-safe and reads one byte from our stack. A full pipe (EAGAIN) loses nothing
    // that matters: the reader has that many wake-ups pending already, and callers reap and
    // check their state on every wake-up, not once per byte.
    unsafe {
        let errno = *libc::__errno_location();
        let byte = signal as u8;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// The read end of the self-pipe; one per process (init makes it once, at start).
pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Signals {
    /// Makes the pipe and installs the handlers (SIGCHLD only for exits, not stops). No
    /// SA_RESTART: every call init makes either cannot block (waitpid WNOHANG) or retries
    /// EINTR itself (std's I/O, `poll` here), and a kernel's restart logic then never comes in.
    pub fn install() -> std::io::Result<Signals> {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(Error::last_os_error());
        }
        // SAFETY: pipe2 just returned these descriptors and nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        WRITE_END.store(write.as_raw_fd(), Ordering::Relaxed);
        for signal in HANDLED {
            // SAFETY: a zeroed sigaction is a valid empty one; we fill in a handler that is
            // async-signal-safe (see `on_signal`), and sigaction reads only that struct.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_NOCLDSTOP;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                    return Err(Error::last_os_error());
                }
            }
        }
        Ok(Signals {
            read,
            _write: write,
        })
    }

    /// Waits until a signal arrives or `timeout` passes (`None`: no limit), and returns the
    /// signals that arrived, oldest first (empty on timeout).
    pub fn wait(&self, timeout: Option<Duration>) -> Vec<libc::c_int> {
        let millis = match timeout {
            // Rounded up, so a deadline is never woken for just before it.
            Some(timeout) => timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut poll = libc::pollfd {
            fd: self.read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes the one pollfd it is given. EINTR (a handler ran) just
        // means the pipe has something to read now.
        unsafe { libc::poll(&mut poll, 1, millis) };
        self.drain()
    }

    fn drain(&self) -> Vec<libc::c_int> {
        let mut signals = Vec::new();
        let mut buffer = [0u8; 64];
        loop {
            // SAFETY: read writes at most buffer.len() bytes into the buffer.
            let n = unsafe {
                libc::read(
                    self.read.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if n <= 0 {
                if n < 0 && Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return signals;
            }
            signals.extend(buffer[..n as usize].iter().map(|&b| libc::c_int::from(b)));
        }
    }
}

/// Makes a forked child, before its exec, stop writing to init's pipe: a signal that reaches
/// it in that window is then its own, not init's. Async-signal-safe (an atomic store).
pub fn forget_in_child() {
    WRITE_END.store(-1, Ordering::Relaxed);
}

/// Sends `signal` to `pid` (a negative pid: that process group). A process already gone
/// (ESRCH) is not an error here: it is about to be reaped.
pub fn send(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(pid, signal) };
}

/// The signal's name for messages (`SIGTERM`), or its number.
pub fn name(signal: libc::c_int) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGCHLD => "SIGCHLD".into(),
        other => format!("signal {other}"),
    }
}
