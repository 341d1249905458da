//! Local byte-stream connections: the two ends of an AF_UNIX stream socket pair, and of a TCP
//! connection over loopback. Both are a pair of [`PageRing`]s — no TCP segments, checksums or
//! timers on the way: on these hosts every ring-0 instruction is emulated, and a loopback
//! connection through a full TCP stack would cost thousands of them per write.
//!
//! Each end belongs to a socket with its own pollee; the connection keeps both pollees and
//! notifies the reader when data or EOF arrives and the writer when room frees up.
//!
//! Owns: the rings, the shutdown state of each direction, and the files passed with
//! SCM_RIGHTS along the stream.

use crate::fs::ring::PageRing;
use crate::fs::{FileRef, Io, Pollee, READY_IN, READY_OUT, ReadBuf, WriteBuf};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::io::{POLLERR, POLLHUP, POLLRDHUP};
use spin::Mutex;

/// Bytes buffered in each direction (Linux's default is larger for TCP and about this for
/// AF_UNIX; what matters is that a writer waits once a reader falls this far behind).
pub const STREAM_BYTES: usize = 256 * 1024;

/// One direction: what side `to` reads.
struct Direction {
    ring: PageRing,
    /// No more data will come (the writer shut down or is gone).
    write_closed: bool,
    /// The reader is gone or shut down reading: writes fail with EPIPE.
    read_closed: bool,
    /// The connection was reset (a reader gone with unread data, as TCP's RST): ECONNRESET.
    reset: bool,
    /// Files passed along (SCM_RIGHTS), each with the ring position (bytes written before it)
    /// they arrived with.
    rights: VecDeque<(u64, Vec<FileRef>)>,
    /// Bytes ever written and read, to place the rights.
    written: u64,
    read: u64,
}

pub struct Connection {
    /// `dirs[i]`: the data side `i` reads.
    dirs: [Mutex<Direction>; 2],
    pollees: [Arc<Pollee>; 2],
}

/// One end of a connection.
pub struct StreamEnd {
    conn: Arc<Connection>,
    side: usize,
}

/// A connected pair: the end whose socket has `a`'s pollee, and the one with `b`'s.
pub fn pair(a: Arc<Pollee>, b: Arc<Pollee>) -> (StreamEnd, StreamEnd) {
    let direction = || {
        Mutex::new(Direction {
            ring: PageRing::new(STREAM_BYTES),
            write_closed: false,
            read_closed: false,
            reset: false,
            rights: VecDeque::new(),
            written: 0,
            read: 0,
        })
    };
    let conn = Arc::new(Connection {
        dirs: [direction(), direction()],
        pollees: [a, b],
    });
    (
        StreamEnd {
            conn: conn.clone(),
            side: 0,
        },
        StreamEnd { conn, side: 1 },
    )
}

/// What a read got: bytes and any files passed with them.
pub struct Received {
    pub bytes: usize,
    pub rights: Vec<FileRef>,
}

impl StreamEnd {
    fn inbound(&self) -> &Mutex<Direction> {
        &self.conn.dirs[self.side]
    }

    fn outbound(&self) -> &Mutex<Direction> {
        &self.conn.dirs[1 - self.side]
    }

    fn own_pollee(&self) -> &Pollee {
        &self.conn.pollees[self.side]
    }

    fn peer_pollee(&self) -> &Pollee {
        &self.conn.pollees[1 - self.side]
    }

    /// Reads what is there (waiting for something unless non-blocking); 0 at EOF. `peek`
    /// leaves the data; `wait_all` waits until the buffer is full (MSG_WAITALL). Files passed
    /// with the bytes read come with them.
    pub fn read(
        &self,
        buf: &mut ReadBuf<'_>,
        io: Io,
        peek: bool,
        wait_all: bool,
    ) -> SysResult<Received> {
        let mut got = Received {
            bytes: 0,
            rights: Vec::new(),
        };
        if buf.is_empty() {
            return Ok(got);
        }
        loop {
            let step = self.own_pollee().queue().wait_until(|| {
                let mut dir = self.inbound().lock();
                if !dir.ring.is_empty() {
                    return Some(Ok(true));
                }
                if dir.reset {
                    dir.reset = false;
                    return Some(Err(Errno::ECONNRESET));
                }
                if dir.write_closed || dir.read_closed {
                    return Some(Ok(false));
                }
                if io.nonblock || got.bytes > 0 {
                    return Some(Err(Errno::EAGAIN));
                }
                None
            });
            match step {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Ok(got),
                Ok(Err(e)) | Err(e) => {
                    return if got.bytes > 0 { Ok(got) } else { Err(e) };
                }
            }
            let n = {
                let mut dir = self.inbound().lock();
                let n = if got.bytes == 0 {
                    dir.ring.read_into(buf, peek)?
                } else {
                    // MSG_WAITALL: the rest of the buffer.
                    let rest = buf.len() - got.bytes;
                    let mut tail = TailBuf(buf, got.bytes, rest);
                    tail.read(&mut dir.ring, peek)?
                };
                if !peek {
                    let start = dir.read;
                    dir.read += n as u64;
                    while dir
                        .rights
                        .front()
                        .is_some_and(|(at, _)| *at < start + n as u64)
                    {
                        let (_, files) = dir.rights.pop_front().unwrap_or_default();
                        got.rights.extend(files);
                    }
                }
                n
            };
            got.bytes += n;
            if !peek && n > 0 {
                self.peer_pollee().notify();
            }
            if !wait_all || peek || got.bytes >= buf.len() || io.nonblock {
                return Ok(got);
            }
        }
    }

    /// Writes all of `buf` (or what fits, non-blocking); EPIPE once the reader is gone.
    pub fn write(&self, buf: &WriteBuf<'_>, io: Io, rights: Vec<FileRef>) -> SysResult<usize> {
        let total = buf.len();
        let mut written = 0;
        let mut rights = Some(rights).filter(|r| !r.is_empty());
        loop {
            let step = self.peer_pollee().queue().wait_until(|| {
                let mut dir = self.outbound().lock();
                // The reader gone, or our own write side shut down.
                if dir.read_closed || dir.write_closed {
                    return Some(Err(Errno::EPIPE));
                }
                if dir.ring.free() > 0 {
                    if let Some(files) = rights.take() {
                        let at = dir.written;
                        dir.rights.push_back((at, files));
                    }
                    let n = match dir.ring.write_from(buf, written, total - written) {
                        Ok(n) => n,
                        Err(e) => return Some(Err(e)),
                    };
                    dir.written += n as u64;
                    return Some(Ok(n));
                }
                if io.nonblock {
                    return Some(Err(Errno::EAGAIN));
                }
                None
            });
            match step {
                Ok(Ok(n)) => {
                    written += n;
                    self.peer_pollee().notify();
                    if written == total || io.nonblock {
                        return Ok(written);
                    }
                }
                Ok(Err(e)) | Err(e) => {
                    return if written > 0 { Ok(written) } else { Err(e) };
                }
            }
        }
    }

    /// shutdown(2): `read` stops reads (they see EOF), `write` sends EOF to the peer.
    pub fn shutdown(&self, read: bool, write: bool) {
        if read {
            self.inbound().lock().read_closed = true;
        }
        if write {
            self.outbound().lock().write_closed = true;
        }
        self.own_pollee().notify();
        self.peer_pollee().notify();
    }

    /// Bytes waiting to be read (FIONREAD).
    pub fn pending(&self) -> usize {
        self.inbound().lock().ring.len()
    }

    pub fn poll(&self) -> u32 {
        let (readable, eof, reset) = {
            let dir = self.inbound().lock();
            (!dir.ring.is_empty(), dir.write_closed, dir.reset)
        };
        let (writable, peer_gone, shut_write) = {
            let dir = self.outbound().lock();
            (dir.ring.free() > 0, dir.read_closed, dir.write_closed)
        };
        let mut ready = 0;
        if readable || eof {
            ready |= READY_IN;
        }
        if eof {
            ready |= u32::from(POLLRDHUP);
        }
        if writable && !peer_gone && !shut_write {
            ready |= READY_OUT;
        }
        if peer_gone && !shut_write {
            // Linux reports the writer's end of a closed connection writable (the write then
            // fails with EPIPE).
            ready |= READY_OUT;
        }
        if eof && (shut_write || peer_gone) {
            ready |= u32::from(POLLHUP);
        }
        if reset {
            ready |= u32::from(POLLERR);
        }
        ready
    }
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        {
            let mut inbound = self.inbound().lock();
            inbound.read_closed = true;
            let unread = !inbound.ring.is_empty();
            inbound.rights.clear();
            drop(inbound);
            let mut outbound = self.outbound().lock();
            outbound.write_closed = true;
            // Closing with unread data resets the connection, as TCP does.
            if unread {
                outbound.reset = true;
            }
        }
        self.peer_pollee().notify();
    }
}

/// The part of a read buffer after `at` (for MSG_WAITALL's later rounds).
struct TailBuf<'r, 'b>(&'r mut ReadBuf<'b>, usize, usize);

impl TailBuf<'_, '_> {
    fn read(&mut self, ring: &mut PageRing, peek: bool) -> SysResult<usize> {
        let (buf, at, len) = (&mut *self.0, self.1, self.2);
        let n = ring.len().min(len);
        let mut chunk = alloc::vec![0u8; n];
        let got = ring.read_into(&mut ReadBuf::Kernel(&mut chunk), peek)?;
        buf.put(at, &chunk[..got])?;
        Ok(got)
    }
}
