//! The host's side of the Firecracker convention, at the level of Unix sockets: binding the
//! listener (and telling a stale socket file from a live one), connecting to `PATH_PORT` without
//! ever blocking the I/O thread, and reading a host program's `CONNECT <port>\n` line.
//!
//! Nothing here knows about packets or the guest; [`super::muxer`] ties these to connections.

use super::VsockError;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Longest `CONNECT <port>\n` line we wait for ("CONNECT 4294967295\r\n" is 20 bytes).
const MAX_LINE_BYTES: usize = 32;

/// Binds and listens on `path` (non-blocking). A socket file that nothing listens on any more (a
/// VMM that died) is replaced; anything else already at `path` is left alone and is an error.
pub(super) fn bind_listener(path: &Path) -> Result<UnixListener, VsockError> {
    let shown = path.display().to_string();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(VsockError::NotASocket { path: shown });
        }
        Ok(_) => match connect_nonblocking(path) {
            // Someone accepts connections there (or would, with a full backlog: EAGAIN).
            Ok(_) => return Err(VsockError::InUse { path: shown }),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                return Err(VsockError::InUse { path: shown });
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                tracing::debug!("vsock: replacing the stale socket {shown}");
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(VsockError::Bind {
                            path: shown,
                            source,
                        });
                    }
                }
            }
            Err(source) => {
                return Err(VsockError::Bind {
                    path: shown,
                    source,
                });
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(VsockError::Bind {
                path: shown,
                source,
            });
        }
    }
    let bind = || {
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    bind().map_err(|source| VsockError::Bind {
        path: shown,
        source,
    })
}

/// `uds_path` + `_` + `port`: where a host program listens for the guest's connections to `port`.
pub(super) fn port_path(uds_path: &Path, port: u32) -> PathBuf {
    let mut name = uds_path.as_os_str().to_owned().into_vec();
    name.extend_from_slice(format!("_{port}").as_bytes());
    PathBuf::from(OsString::from_vec(name))
}

/// Connects a non-blocking stream to the Unix socket at `path`. A Unix stream connect completes
/// or fails at once, except that a blocking one waits while the listener's backlog is full; this
/// one fails with EAGAIN instead, so a host program that stops accepting cannot stall the I/O
/// thread.
pub(super) fn connect_nonblocking(path: &Path) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid (empty) value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // The path and its terminating NUL must fit.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a usable Unix socket path (empty, too long, or has a NUL byte)",
        ));
    }
    for (to, &from) in addr.sun_path.iter_mut().zip(bytes) {
        *to = from as libc::c_char;
    }
    // SAFETY: socket(2) has no memory effects; we check the result.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un and `len` does not exceed its size.
    let result = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UnixStream::from(fd))
}

/// A host program that connected to the listener and has not yet said which guest port it wants.
pub(super) struct Handshake {
    pub stream: UnixStream,
    line: Vec<u8>,
    pub deadline: std::time::Instant,
}

/// What reading the `CONNECT` line gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// Not all of it has arrived yet.
    Incomplete,
    /// `CONNECT <port>`: forward the stream to the guest's `port`.
    Connect(u32),
    /// Anything else, a line too long, or the host hung up: close the stream.
    Bad,
}

impl Handshake {
    pub fn new(stream: UnixStream, deadline: std::time::Instant) -> Handshake {
        Handshake {
            stream,
            line: Vec::with_capacity(MAX_LINE_BYTES),
            deadline,
        }
    }

    /// Reads what has arrived of the line. One byte at a time, so that nothing after the newline
    /// is taken: those are the first bytes for the guest, read once the guest has accepted.
    pub fn read_line(&mut self) -> Line {
        loop {
            let mut byte = [0u8; 1];
            match (&self.stream).read(&mut byte) {
                Ok(0) => return Line::Bad,
                Ok(_) if byte[0] == b'\n' => return parse_connect(&self.line),
                Ok(_) if self.line.len() >= MAX_LINE_BYTES => return Line::Bad,
                Ok(_) => self.line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Line::Incomplete,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Line::Bad,
            }
        }
    }
}

/// `CONNECT <port>` (a trailing `\r` is tolerated, for programs that send CRLF).
fn parse_connect(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(port) = line.strip_prefix(b"CONNECT ") else {
        return Line::Bad;
    };
    if port.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return Line::Bad;
    }
    match std::str::from_utf8(port).ok().and_then(|p| p.parse().ok()) {
        Some(port) => Line::Connect(port),
        None => Line::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsock_connect_lines_parse() {
        assert_eq!(parse_connect(b"CONNECT 52"), Line::Connect(52));
        assert_eq!(
            parse_connect(b"CONNECT 4294967295\r"),
            Line::Connect(u32::MAX)
        );
        for bad in [
            &b"CONNECT"[..],
            b"CONNECT ",
            b"CONNECT 4294967296",
            b"CONNECT -1",
            b"CONNECT +5",
            b"connect 5",
            b"CONNECT 5 6",
            b"",
        ] {
            assert_eq!(parse_connect(bad), Line::Bad, "{bad:?}");
        }
    }

    #[test]
    fn vsock_port_paths_append_the_port() {
        assert_eq!(
            port_path(Path::new("/tmp/v.sock"), 5000),
            PathBuf::from("/tmp/v.sock_5000")
        );
    }
}
