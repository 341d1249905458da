//! One stream between a guest port and a host Unix socket: its state, both directions of
//! credit-based flow control (virtio 1.2 §5.10.6.3), and the shutdown/reset rules.
//!
//! Guest → host: RW payloads are written to the Unix stream, straight away when it takes them,
//! else into `to_host`, a buffer of at most [`BUF_ALLOC`] bytes — the receive buffer we advertise.
//! A guest that respects the credit we grant never overflows it; one that does gets an RST.
//! `fwd_cnt` counts the bytes the stream has taken; the guest learns it from every packet we send,
//! and from a CREDIT_UPDATE once enough has piled up unannounced.
//!
//! Host → guest: nothing is buffered. When the stream is readable we read, straight into the
//! packet being built for a guest receive buffer, at most what the guest has room for
//! (`buf_alloc - (tx_cnt - fwd_cnt)` from its last packet) and what the buffer holds.
//!
//! The connection never touches epoll or the queues itself: it reports what it wants
//! ([`Connection::interest`], [`Connection::has_rx`], [`Connection::deadline`]) and what should
//! become of it ([`Verdict`]); [`super::muxer`] acts on that.

use super::packet::{Header, MAX_PAYLOAD, op, shutdown};
use event_manager::EventSet;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Our receive buffer per connection (guest → host bytes not yet taken by the host program).
pub const BUF_ALLOC: u32 = 256 * 1024;
/// Forwarded bytes the guest has not been told of that make us send a CREDIT_UPDATE: well before
/// its credit runs out, without a packet per write.
const CREDIT_UPDATE_THRESHOLD: u32 = BUF_ALLOC / 4;
/// How long the guest has to answer our REQUEST (Firecracker's value).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection that is shutting down may linger before we reset it: the guest's RST
/// after our SHUTDOWN, or the host taking the last guest bytes after the guest's.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection, by its two ports (the CIDs are always the host's and the guest's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub host_port: u32,
    pub guest_port: u32,
}

/// What should become of a connection after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Remove it and send the guest an RST (if the guest knows of it).
    Reset,
    /// Remove it quietly (the guest reset it).
    Close,
}

/// What a connection put into a receive buffer.
pub enum Rx {
    /// A packet; for RW its payload is the first `len` bytes of the scratch buffer.
    Packet(Header),
    Nothing,
    /// Reading the host stream failed: reset the connection.
    Reset,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Host-initiated: waiting for the guest's RESPONSE to our REQUEST.
    Connecting {
        request_sent: bool,
    },
    Established,
}

/// Packets owed to the guest, besides data.
mod pending {
    pub const REQUEST: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const SHUTDOWN: u8 = 4;
    pub const CREDIT_UPDATE: u8 = 8;
    pub const CREDIT_REQUEST: u8 = 16;
}

pub struct Connection {
    key: ConnKey,
    /// Its epoll token (see the muxer).
    pub token: u64,
    stream: UnixStream,
    state: State,
    /// The guest's receive buffer and how much of our data it has consumed (its last word).
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Payload bytes we have sent the guest (wrapping, like the counters it is compared with).
    tx_cnt: u32,
    /// Payload bytes from the guest that the host stream has taken.
    fwd_cnt: u32,
    /// `fwd_cnt` as the guest last heard it.
    fwd_cnt_sent: u32,
    to_host: VecDeque<u8>,
    pending: u8,
    /// SHUTDOWN flags we have told (or are about to tell) the guest; they only accumulate.
    shutdown_told: u32,
    /// SHUTDOWN flags the guest has told us.
    guest_shutdown: u32,
    /// The stream may have bytes for the guest (epoll said so and we have not drained it).
    host_readable: bool,
    /// Reading the stream gave end-of-file.
    host_eof: bool,
    /// The host program closed its end: nothing we write can arrive. The stream is out of epoll
    /// (a hung-up socket is always "ready"); reads no longer block, so we drain it without epoll.
    host_hup: bool,
    /// We shut down the stream's write side (the guest will send no more).
    host_write_closed: bool,
    /// We asked the guest for credit and it has not given any since.
    credit_requested: bool,
    deadline: Option<Instant>,
    /// Managed by the muxer: the events the stream is registered for (None: not in epoll).
    pub registered: Option<EventSet>,
    /// Managed by the muxer: the connection is in the receive queue.
    pub queued: bool,
}

impl Connection {
    fn new(key: ConnKey, token: u64, stream: UnixStream, state: State) -> Connection {
        Connection {
            key,
            token,
            stream,
            state,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            tx_cnt: 0,
            fwd_cnt: 0,
            fwd_cnt_sent: 0,
            to_host: VecDeque::new(),
            pending: 0,
            shutdown_told: 0,
            guest_shutdown: 0,
            host_readable: false,
            host_eof: false,
            host_hup: false,
            host_write_closed: false,
            credit_requested: false,
            deadline: None,
            registered: None,
            queued: false,
        }
    }

    /// A host program asked (with `CONNECT`) for the guest's `key.guest_port`: we owe a REQUEST.
    pub fn host_initiated(key: ConnKey, token: u64, stream: UnixStream, now: Instant) -> Self {
        let mut conn = Connection::new(
            key,
            token,
            stream,
            State::Connecting {
                request_sent: false,
            },
        );
        conn.pending = pending::REQUEST;
        conn.deadline = Some(now + REQUEST_TIMEOUT);
        conn
    }

    /// The guest's `request` reached a host listener through `stream`: we owe a RESPONSE.
    pub fn guest_initiated(key: ConnKey, token: u64, stream: UnixStream, request: &Header) -> Self {
        let mut conn = Connection::new(key, token, stream, State::Established);
        conn.peer_buf_alloc = request.buf_alloc;
        conn.peer_fwd_cnt = request.fwd_cnt;
        conn.pending = pending::RESPONSE;
        conn
    }

    pub fn key(&self) -> ConnKey {
        self.key
    }

    pub fn stream_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Whether the guest has heard of this connection, so that removing it takes an RST.
    pub fn guest_knows(&self) -> bool {
        self.state
            != State::Connecting {
                request_sent: false,
            }
    }

    /// When it is to be reset if nothing else happens first.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Bytes from the guest waiting for the host program.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.to_host.len()
    }

    /// The guest's free receive space. Counters wrap; a guest claiming to have consumed more
    /// than we sent gets no credit rather than a huge one.
    fn peer_free(&self) -> u32 {
        let in_flight = self.tx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Whether we may read the stream for the guest now.
    fn can_send_data(&self) -> bool {
        self.state == State::Established
            && self.host_readable
            && !self.host_eof
            && self.guest_shutdown & shutdown::RCV == 0
            && self.peer_free() > 0
    }

    /// Whether it has a packet for the guest.
    pub fn has_rx(&self) -> bool {
        self.pending != 0 || self.can_send_data()
    }

    /// The epoll events it wants (None: keep the stream out of epoll). An empty set still
    /// reports hang-ups and errors.
    pub fn interest(&self) -> Option<EventSet> {
        if self.host_hup {
            return None;
        }
        let mut set = EventSet::empty();
        // Readable matters only until we know it is; then the guest's credit and receive buffers
        // pace the reads, and a level-triggered "readable" would only spin the I/O thread.
        if self.state == State::Established
            && !self.host_readable
            && !self.host_eof
            && self.guest_shutdown & shutdown::RCV == 0
        {
            set |= EventSet::IN;
        }
        if !self.to_host.is_empty() {
            set |= EventSet::OUT;
        }
        Some(set)
    }

    /// Brings the owed credit request in line with the credit: asked once when the host has data
    /// and the guest has no room, forgotten when room appears.
    pub fn refresh(&mut self) {
        let starved = self.state == State::Established
            && self.host_readable
            && !self.host_eof
            && self.guest_shutdown & shutdown::RCV == 0
            && self.peer_free() == 0;
        if starved && !self.credit_requested {
            self.pending |= pending::CREDIT_REQUEST;
        } else if !starved {
            self.pending &= !pending::CREDIT_REQUEST;
        }
    }

    /// A packet the guest sent on this connection.
    pub fn on_guest_packet(&mut self, header: &Header, payload: &[u8], now: Instant) -> Verdict {
        // Every packet carries the sender's credit (§5.10.6.3).
        self.peer_buf_alloc = header.buf_alloc;
        self.peer_fwd_cnt = header.fwd_cnt;
        if self.peer_free() > 0 {
            self.credit_requested = false;
        }
        match header.op {
            op::RESPONSE => self.on_response(),
            op::RW => self.on_data(payload),
            op::SHUTDOWN => self.on_shutdown(header.flags, now),
            op::RST => Verdict::Close,
            op::CREDIT_UPDATE => Verdict::Keep,
            op::CREDIT_REQUEST => {
                self.pending |= pending::CREDIT_UPDATE;
                Verdict::Keep
            }
            // A REQUEST for a connection that exists, or an operation we do not know.
            _ => Verdict::Reset,
        }
    }

    fn on_response(&mut self) -> Verdict {
        if self.state != (State::Connecting { request_sent: true }) {
            return Verdict::Reset;
        }
        self.state = State::Established;
        self.deadline = None;
        // The convention's acknowledgement. Nothing else was ever written to this fresh stream,
        // so its socket buffer takes these few bytes whole; if not, the host is gone.
        let ack = format!("OK {}\n", self.key.host_port);
        match write_some(&self.stream, ack.as_bytes()) {
            Ok(n) if n == ack.len() => Verdict::Keep,
            _ => Verdict::Reset,
        }
    }

    fn on_data(&mut self, payload: &[u8]) -> Verdict {
        if self.state != State::Established
            || self.guest_shutdown & shutdown::SEND != 0
            || self.host_hup
        {
            return Verdict::Reset;
        }
        // Within credit, the guest never has more than BUF_ALLOC bytes unforwarded.
        if self.to_host.len() + payload.len() > BUF_ALLOC as usize {
            tracing::debug!(
                "vsock: guest port {} overran its credit to host port {}; resetting",
                self.key.guest_port,
                self.key.host_port
            );
            return Verdict::Reset;
        }
        let mut rest = payload;
        if self.to_host.is_empty() {
            match write_some(&self.stream, rest) {
                Ok(n) => {
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                    rest = &rest[n..];
                }
                Err(_) => return Verdict::Reset,
            }
        }
        self.to_host.extend(rest);
        self.after_forward()
    }

    fn on_shutdown(&mut self, flags: u32, now: Instant) -> Verdict {
        if self.state != State::Established {
            return Verdict::Reset;
        }
        let flags = flags & shutdown::BOTH;
        self.guest_shutdown |= flags;
        if flags & shutdown::RCV != 0 {
            // Whatever the host writes from now on fails (EPIPE) instead of piling up unread.
            let _ = self.stream.shutdown(std::net::Shutdown::Read);
            // A host program that already closed now has nothing left to tell the guest.
            self.update_shutdown(now);
        }
        if self.guest_shutdown == shutdown::BOTH && !self.to_host.is_empty() {
            // Give the host program a moment to take the rest.
            self.deadline = Some(now + SHUTDOWN_TIMEOUT);
        }
        self.after_forward()
    }

    /// Epoll reported `events` on the stream.
    pub fn on_host_event(&mut self, events: EventSet, now: Instant) -> Verdict {
        if events.contains(EventSet::ERROR) {
            return Verdict::Reset;
        }
        if events.contains(EventSet::HANG_UP) && !self.host_hup {
            self.host_hup = true;
            if !self.to_host.is_empty() || self.state != State::Established {
                // Guest bytes that can no longer arrive, or a host that gave up waiting for the
                // guest to accept.
                return Verdict::Reset;
            }
            // What it wrote before closing is still to be read; reads no longer block.
            self.host_readable = !self.host_eof;
            self.update_shutdown(now);
            return Verdict::Keep;
        }
        if events.contains(EventSet::IN) {
            self.host_readable = true;
        }
        if events.contains(EventSet::OUT) {
            return self.flush();
        }
        Verdict::Keep
    }

    /// Writes buffered guest bytes to the stream.
    fn flush(&mut self) -> Verdict {
        while !self.to_host.is_empty() {
            let (front, _) = self.to_host.as_slices();
            match write_some(&self.stream, front) {
                Ok(0) => break,
                Ok(n) => {
                    self.to_host.drain(..n);
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                }
                Err(_) => return Verdict::Reset,
            }
        }
        self.after_forward()
    }

    /// After guest bytes moved to the host (or the guest shut down): owe a credit update, finish
    /// a shutdown the buffer was holding up.
    fn after_forward(&mut self) -> Verdict {
        if self.fwd_cnt.wrapping_sub(self.fwd_cnt_sent) >= CREDIT_UPDATE_THRESHOLD {
            self.pending |= pending::CREDIT_UPDATE;
        }
        if !self.to_host.is_empty() {
            return Verdict::Keep;
        }
        if self.to_host.capacity() > 64 * 1024 {
            // A burst is over; do not keep its memory per idle connection.
            self.to_host.shrink_to(16 * 1024);
        }
        if self.guest_shutdown == shutdown::BOTH {
            // All delivered; an RST completes the guest's close, as Linux peers answer it.
            return Verdict::Reset;
        }
        if self.guest_shutdown & shutdown::SEND != 0 && !self.host_write_closed {
            self.host_write_closed = true;
            // The host program reads end-of-file; it may still write.
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
        Verdict::Keep
    }

    /// Owes the guest a SHUTDOWN for what the host side can no longer do. SEND once the stream
    /// gave end-of-file (all its bytes delivered); RCV too once the host program closed, and then
    /// the guest is expected to reset the connection soon.
    fn update_shutdown(&mut self, now: Instant) {
        let mut flags = 0;
        if self.host_eof {
            flags |= shutdown::SEND;
        }
        if self.host_hup && (self.host_eof || self.guest_shutdown & shutdown::RCV != 0) {
            flags = shutdown::BOTH;
        }
        if flags & !self.shutdown_told != 0 {
            self.shutdown_told |= flags;
            self.pending |= pending::SHUTDOWN;
            if self.shutdown_told == shutdown::BOTH && self.deadline.is_none() {
                self.deadline = Some(now + SHUTDOWN_TIMEOUT);
            }
        }
    }

    /// The next packet for the guest, in a receive buffer with `room` bytes after the header.
    /// RW payloads are read from the stream into `scratch`.
    pub fn next_packet(
        &mut self,
        guest_cid: u64,
        room: usize,
        scratch: &mut [u8],
        now: Instant,
    ) -> Rx {
        let key = self.key;
        let mut header = Header::to_guest(guest_cid, key.host_port, key.guest_port, 0);
        if self.pending & pending::REQUEST != 0 {
            self.pending &= !pending::REQUEST;
            self.state = State::Connecting { request_sent: true };
            header.op = op::REQUEST;
        } else if self.pending & pending::RESPONSE != 0 {
            self.pending &= !pending::RESPONSE;
            header.op = op::RESPONSE;
        } else if let Some(read) = self.read_data(room, scratch, now) {
            match read {
                Ok(n) => {
                    header.op = op::RW;
                    header.len = n as u32;
                }
                Err(()) => return Rx::Reset,
            }
        } else if self.pending & pending::SHUTDOWN != 0 {
            self.pending &= !pending::SHUTDOWN;
            header.op = op::SHUTDOWN;
            header.flags = self.shutdown_told;
        } else if self.pending & pending::CREDIT_UPDATE != 0 {
            header.op = op::CREDIT_UPDATE;
        } else if self.pending & pending::CREDIT_REQUEST != 0 {
            self.pending &= !pending::CREDIT_REQUEST;
            self.credit_requested = true;
            header.op = op::CREDIT_REQUEST;
        } else {
            return Rx::Nothing;
        }
        // Every packet tells the guest our credit, which makes a separate update unnecessary.
        header.buf_alloc = BUF_ALLOC;
        header.fwd_cnt = self.fwd_cnt;
        self.fwd_cnt_sent = self.fwd_cnt;
        self.pending &= !pending::CREDIT_UPDATE;
        Rx::Packet(header)
    }

    /// Reads host bytes for an RW packet: None if there is nothing to send now (end-of-file
    /// turns into an owed SHUTDOWN), Some(Err) if the stream failed.
    fn read_data(
        &mut self,
        room: usize,
        scratch: &mut [u8],
        now: Instant,
    ) -> Option<Result<usize, ()>> {
        if !self.can_send_data() {
            return None;
        }
        let want = room
            .min(self.peer_free() as usize)
            .min(MAX_PAYLOAD)
            .min(scratch.len());
        if want == 0 {
            return None;
        }
        loop {
            match (&self.stream).read(&mut scratch[..want]) {
                Ok(0) => {
                    self.host_eof = true;
                    self.host_readable = false;
                    self.update_shutdown(now);
                    return None;
                }
                Ok(n) => {
                    self.tx_cnt = self.tx_cnt.wrapping_add(n as u32);
                    if (n < want || self.peer_free() == 0) && !self.host_hup {
                        // Probably drained, or out of credit: epoll says whether there is more
                        // (so a credit request means there is).
                        self.host_readable = false;
                    }
                    return Some(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.host_readable = false;
                    return None;
                }
                Err(_) => return Some(Err(())),
            }
        }
    }
}

/// One write of as much as the stream takes now: Ok(0) when it takes nothing (it is full).
/// MSG_NOSIGNAL: a host program that closed its end must give us EPIPE, not kill the VMM with
/// SIGPIPE (which a program embedding this library may not ignore).
fn write_some(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    if bytes.is_empty() {
        return Ok(0);
    }
    loop {
        // SAFETY: the kernel reads at most `bytes.len()` bytes from `bytes`.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}
