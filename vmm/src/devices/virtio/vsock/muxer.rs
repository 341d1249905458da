//! The host end of every connection: the listening socket, host programs that have not yet sent
//! `CONNECT`, the connection table, the packets owed to the guest, and one private epoll set that
//! watches all their sockets (the I/O thread watches just that set's fd, since its own list of
//! sources is fixed when it starts, and connections come and go).
//!
//! Packets for the guest are pulled, not pushed: the queue handler asks [`Muxer::next_rx`] for
//! one whenever it holds a receive buffer, and the connection builds it then, reading host bytes
//! straight into it. What waits for receive buffers is therefore bounded by the connections
//! themselves (each is queued at most once) plus the RSTs for packets that had no connection,
//! which are capped; when that backlog is full, the handler stops taking transmit buffers until the
//! guest takes some RSTs. Connections, half-open host streams and per-connection buffers are capped
//! too, so neither a flooding guest nor a flooding host program grows the VMM without bound.

use super::connection::{ConnKey, Connection, Rx, Verdict};
use super::log_once::{LogOnce, Problem};
use super::packet::{HOST_CID, Header, MAX_PAYLOAD, TYPE_STREAM, op};
use super::unix::{self, Handshake, Line};
use event_manager::EventSet;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent};
use vmm_sys_util::timerfd::TimerFd;

/// Most connections at once (each holds a host socket and up to BUF_ALLOC bytes).
pub const MAX_CONNECTIONS: usize = 1024;
/// Most host programs connected to the listener that have not yet sent their `CONNECT` line.
pub const MAX_HANDSHAKES: usize = 64;
/// How long a host program has to send its `CONNECT` line.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// RSTs waiting for receive buffers beyond which we stop reading the guest's transmit queue.
pub const RESET_BACKLOG_PAUSE: usize = 256;
/// RSTs waiting for receive buffers beyond which more are dropped (only host-side events can
/// add past the pause; a guest that takes none of them loses the excess).
const MAX_PENDING_RESETS: usize = 1024;
/// Host ports we give host-initiated connections start here.
const FIRST_HOST_PORT: u32 = 1024;
/// How often deadlines are checked while any is pending.
const TICK: Duration = Duration::from_millis(100);
/// Connections accepted per wake-up, so a connect storm cannot starve the queues.
const ACCEPT_BATCH: usize = 16;

// Epoll tokens: the listener, the timer, then one per host stream (never reused).
const LISTENER: u64 = 0;
const TIMER: u64 = 1;
const FIRST_STREAM_TOKEN: u64 = 2;

/// Counts the muxer publishes for whoever watches the device (tests, debugging).
#[derive(Default, Debug)]
pub struct Gauges {
    pub connections: AtomicUsize,
    pub handshakes: AtomicUsize,
    pub pending_resets: AtomicUsize,
    #[cfg(test)]
    pub buffered_bytes: AtomicUsize,
}

pub struct Muxer {
    guest_cid: u64,
    uds_path: PathBuf,
    listener: Arc<UnixListener>,
    /// Accepting failed (say, out of fds); the listener is out of epoll until the next tick.
    listener_paused: bool,
    epoll: Epoll,
    timer: TimerFd,
    timer_running: bool,
    next_token: u64,
    handshakes: HashMap<u64, Handshake>,
    connections: HashMap<ConnKey, Connection>,
    tokens: HashMap<u64, ConnKey>,
    /// Connections that may have a packet for the guest: exactly those with `queued` set.
    rxq: VecDeque<ConnKey>,
    /// RSTs for connections that no longer (or never) existed.
    resets: VecDeque<Header>,
    next_host_port: u32,
    /// Where RW payloads for the guest are read to.
    scratch: Vec<u8>,
    log: LogOnce,
    gauges: Arc<Gauges>,
}

impl Muxer {
    pub fn new(
        guest_cid: u64,
        uds_path: PathBuf,
        listener: Arc<UnixListener>,
        gauges: Arc<Gauges>,
    ) -> io::Result<Muxer> {
        let epoll = Epoll::new()?;
        let timer = TimerFd::new()?;
        // A tick consumed before a disarm must not leave a blocking read behind.
        set_nonblocking(timer.as_raw_fd())?;
        epoll.ctl(
            ControlOperation::Add,
            listener.as_raw_fd(),
            EpollEvent::new(EventSet::IN, LISTENER),
        )?;
        epoll.ctl(
            ControlOperation::Add,
            timer.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TIMER),
        )?;
        Ok(Muxer {
            guest_cid,
            uds_path,
            listener,
            listener_paused: false,
            epoll,
            timer,
            timer_running: false,
            next_token: FIRST_STREAM_TOKEN,
            handshakes: HashMap::new(),
            connections: HashMap::new(),
            tokens: HashMap::new(),
            rxq: VecDeque::new(),
            resets: VecDeque::new(),
            next_host_port: FIRST_HOST_PORT,
            scratch: vec![0; MAX_PAYLOAD],
            log: LogOnce::default(),
            gauges,
        })
    }

    /// The fd the I/O thread watches: readable when a host socket or the timer is.
    pub fn poll_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    pub fn log(&mut self) -> &mut LogOnce {
        &mut self.log
    }

    /// Whether the RSTs owed to the guest are so many that its transmit queue should wait.
    pub fn tx_blocked(&self) -> bool {
        self.resets.len() >= RESET_BACKLOG_PAUSE
    }

    /// Whether there may be a packet for the guest.
    pub fn has_rx(&self) -> bool {
        !self.resets.is_empty() || !self.rxq.is_empty()
    }

    /// A packet from the guest's transmit queue (`payload` is its body, `header.len` bytes).
    pub fn on_guest_packet(&mut self, header: &Header, payload: &[u8]) {
        if header.src_cid != self.guest_cid || header.dst_cid != HOST_CID {
            let (src, dst) = (header.src_cid, header.dst_cid);
            self.log.warn(
                Problem::BadCid,
                format_args!("dropped a packet from CID {src} to CID {dst}"),
            );
            return;
        }
        if header.type_ != TYPE_STREAM {
            let type_ = header.type_;
            self.log.warn(
                Problem::BadType,
                format_args!("dropped a packet of socket type {type_}"),
            );
            return;
        }
        let key = ConnKey {
            host_port: header.dst_port,
            guest_port: header.src_port,
        };
        let now = Instant::now();
        if let Some(conn) = self.connections.get_mut(&key) {
            let verdict = conn.on_guest_packet(header, payload, now);
            self.settle(key, verdict);
        } else {
            match header.op {
                op::REQUEST => self.guest_connect(key, header),
                op::RST => {}
                _ => self.push_reset(key),
            }
        }
        self.publish();
    }

    /// The guest asked for a host port: connect to the host program listening at `PATH_port`.
    fn guest_connect(&mut self, key: ConnKey, request: &Header) {
        if self.connections.len() >= MAX_CONNECTIONS {
            self.log.warn(
                Problem::TooManyConnections,
                format_args!("{MAX_CONNECTIONS} connections open; refusing more"),
            );
            self.push_reset(key);
            return;
        }
        let path = unix::port_path(&self.uds_path, key.host_port);
        match unix::connect_nonblocking(&path) {
            Ok(stream) => {
                let token = self.new_token();
                let conn = Connection::guest_initiated(key, token, stream, request);
                self.insert(conn);
            }
            Err(e) => {
                tracing::debug!(
                    "vsock: guest port {} cannot reach {}: {e}",
                    key.guest_port,
                    path.display()
                );
                self.push_reset(key);
            }
        }
    }

    /// The next packet for the guest, for a receive buffer with `room` bytes after the header;
    /// None if there is none now.
    pub fn next_rx(&mut self, room: usize) -> Option<(Header, &[u8])> {
        let now = Instant::now();
        let mut found = None;
        if let Some(header) = self.resets.pop_front() {
            found = Some(header);
        }
        // One round over the queue at most: a connection with nothing to send now leaves it, or
        // (if it could send with a bigger buffer) goes to the back.
        let mut turns = self.rxq.len();
        while found.is_none() && turns > 0 {
            turns -= 1;
            let Some(key) = self.rxq.pop_front() else {
                break;
            };
            let Some(conn) = self.connections.get_mut(&key) else {
                continue; // not expected: removal takes it out of the queue
            };
            match conn.next_packet(self.guest_cid, room, &mut self.scratch, now) {
                Rx::Packet(header) => {
                    conn.queued = false;
                    self.settle(key, Verdict::Keep);
                    found = Some(header);
                }
                Rx::Nothing if conn.has_rx() => self.rxq.push_back(key),
                Rx::Nothing => {
                    conn.queued = false;
                    self.settle(key, Verdict::Keep);
                }
                Rx::Reset => {
                    self.remove(key, true);
                    found = self.resets.pop_front();
                }
            }
        }
        self.publish();
        let header = found?;
        let len = if header.op == op::RW {
            header.len as usize
        } else {
            0
        };
        Some((header, &self.scratch[..len]))
    }

    /// The private epoll set is ready: serve the listener, the timer and the streams.
    pub fn host_ready(&mut self) {
        let mut events = [EpollEvent::default(); 32];
        let count = match self.epoll.wait(0, &mut events) {
            Ok(count) => count,
            Err(e) => {
                tracing::debug!("vsock: polling the host sockets: {e}");
                return;
            }
        };
        let now = Instant::now();
        for event in &events[..count] {
            match event.data() {
                LISTENER => self.accept(now),
                TIMER => self.tick(now),
                token => self.stream_event(token, event.event_set(), now),
            }
        }
        self.publish();
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    // Accepted and closed at once when full, so the listener's backlog drains
                    // (a readable listener we ignore would spin the I/O thread).
                    if self.handshakes.len() >= MAX_HANDSHAKES {
                        self.log.warn(
                            Problem::TooManyHandshakes,
                            format_args!(
                                "{MAX_HANDSHAKES} host connections have not sent CONNECT yet; \
                                 closing new ones"
                            ),
                        );
                        continue;
                    }
                    if self.connections.len() >= MAX_CONNECTIONS {
                        self.log.warn(
                            Problem::TooManyConnections,
                            format_args!("{MAX_CONNECTIONS} connections open; refusing more"),
                        );
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let token = self.new_token();
                    let watch = EpollEvent::new(EventSet::IN, token);
                    if let Err(e) = self
                        .epoll
                        .ctl(ControlOperation::Add, stream.as_raw_fd(), watch)
                    {
                        self.log.warn(
                            Problem::EpollFailed,
                            format_args!("cannot watch a host connection: {e}"),
                        );
                        continue;
                    }
                    self.handshakes
                        .insert(token, Handshake::new(stream, now + HANDSHAKE_TIMEOUT));
                    self.start_timer();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of fds and the like: the listener stays readable, so stop watching it
                    // until the next tick rather than spin.
                    self.log.warn(
                        Problem::AcceptFailed,
                        format_args!("cannot accept a host connection: {e}"),
                    );
                    let _ = self.epoll.ctl(
                        ControlOperation::Delete,
                        self.listener.as_raw_fd(),
                        EpollEvent::default(),
                    );
                    self.listener_paused = true;
                    self.start_timer();
                    return;
                }
            }
        }
    }

    fn stream_event(&mut self, token: u64, events: EventSet, now: Instant) {
        if let Some(&key) = self.tokens.get(&token) {
            if let Some(conn) = self.connections.get_mut(&key) {
                let verdict = conn.on_host_event(events, now);
                self.settle(key, verdict);
            }
            return;
        }
        let Some(handshake) = self.handshakes.get_mut(&token) else {
            return; // an event for a stream closed earlier in this batch
        };
        let line = if events.contains(EventSet::ERROR) {
            Line::Bad
        } else {
            handshake.read_line()
        };
        match line {
            Line::Incomplete => {}
            Line::Bad => self.drop_handshake(token),
            Line::Connect(guest_port) => {
                if let Some(handshake) = self.handshakes.remove(&token) {
                    self.host_connect(token, handshake, guest_port, now);
                }
            }
        }
    }

    fn drop_handshake(&mut self, token: u64) {
        if let Some(handshake) = self.handshakes.remove(&token) {
            let _ = self.epoll.ctl(
                ControlOperation::Delete,
                handshake.stream.as_raw_fd(),
                EpollEvent::default(),
            );
        }
    }

    /// A host program sent `CONNECT guest_port`: a connection from a fresh host port, which
    /// owes the guest a REQUEST.
    fn host_connect(&mut self, token: u64, handshake: Handshake, guest_port: u32, now: Instant) {
        let fd = handshake.stream.as_raw_fd();
        let host_port = self.free_host_port(guest_port);
        let (Some(host_port), true) = (host_port, self.connections.len() < MAX_CONNECTIONS) else {
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
            return; // closing the stream tells the host program
        };
        let key = ConnKey {
            host_port,
            guest_port,
        };
        let mut conn = Connection::host_initiated(key, token, handshake.stream, now);
        conn.registered = Some(EventSet::IN); // as the handshake left it
        self.insert(conn);
    }

    /// A host port not in use with `guest_port`, from FIRST_HOST_PORT upward, wrapping.
    fn free_host_port(&mut self, guest_port: u32) -> Option<u32> {
        // At most MAX_CONNECTIONS keys are taken, so one of MAX_CONNECTIONS + 1 tries is free.
        for _ in 0..=MAX_CONNECTIONS {
            let port = self.next_host_port;
            self.next_host_port = match port.checked_add(1) {
                Some(next) => next,
                None => FIRST_HOST_PORT,
            };
            let key = ConnKey {
                host_port: port,
                guest_port,
            };
            if !self.connections.contains_key(&key) {
                return Some(port);
            }
        }
        None
    }

    fn new_token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    fn insert(&mut self, conn: Connection) {
        let key = conn.key();
        self.tokens.insert(conn.token, key);
        self.connections.insert(key, conn);
        self.settle(key, Verdict::Keep);
    }

    /// Acts on what a connection wants after an event: its removal, or its epoll interest, its
    /// place in the receive queue and its deadline.
    fn settle(&mut self, key: ConnKey, verdict: Verdict) {
        match verdict {
            Verdict::Reset => return self.remove(key, true),
            Verdict::Close => return self.remove(key, false),
            Verdict::Keep => {}
        }
        let Some(conn) = self.connections.get_mut(&key) else {
            return;
        };
        conn.refresh();
        let want = conn.interest();
        if want != conn.registered {
            let fd = conn.stream_fd();
            let result = match (conn.registered, want) {
                (None, Some(set)) => {
                    self.epoll
                        .ctl(ControlOperation::Add, fd, EpollEvent::new(set, conn.token))
                }
                (Some(_), Some(set)) => self.epoll.ctl(
                    ControlOperation::Modify,
                    fd,
                    EpollEvent::new(set, conn.token),
                ),
                (Some(_), None) => {
                    self.epoll
                        .ctl(ControlOperation::Delete, fd, EpollEvent::default())
                }
                (None, None) => Ok(()),
            };
            if let Err(e) = result {
                self.log.warn(
                    Problem::EpollFailed,
                    format_args!("cannot watch a host connection: {e}"),
                );
                conn.registered = None;
                return self.remove(key, true);
            }
            conn.registered = want;
        }
        if conn.has_rx() && !conn.queued {
            conn.queued = true;
            self.rxq.push_back(key);
        }
        if conn.deadline().is_some() {
            self.start_timer();
        }
    }

    /// Removes a connection (closing its host stream), with an RST to the guest if `reset`.
    fn remove(&mut self, key: ConnKey, reset: bool) {
        let Some(conn) = self.connections.remove(&key) else {
            return;
        };
        self.tokens.remove(&conn.token);
        if conn.queued {
            // A stale entry could outlive it and pile up (a guest can open and reset the same
            // connection endlessly while taking no packets).
            self.rxq.retain(|queued| *queued != key);
        }
        if conn.registered.is_some() {
            let _ = self.epoll.ctl(
                ControlOperation::Delete,
                conn.stream_fd(),
                EpollEvent::default(),
            );
        }
        if reset && conn.guest_knows() {
            self.push_reset(key);
        }
    }

    fn push_reset(&mut self, key: ConnKey) {
        if self.resets.len() >= MAX_PENDING_RESETS {
            self.log.warn(
                Problem::ResetBacklogFull,
                format_args!("{MAX_PENDING_RESETS} RSTs wait for receive buffers; dropping more"),
            );
            return;
        }
        let mut header = Header::to_guest(self.guest_cid, key.host_port, key.guest_port, op::RST);
        header.buf_alloc = 0;
        self.resets.push_back(header);
    }

    fn start_timer(&mut self) {
        if !self.timer_running {
            match self.timer.reset(TICK, Some(TICK)) {
                Ok(()) => self.timer_running = true,
                Err(e) => tracing::error!("vsock: cannot arm the timer: {e}"),
            }
        }
    }

    /// Resets what outlived its deadline; re-watches the listener after an accept failure.
    fn tick(&mut self, now: Instant) {
        let _ = self.timer.wait(); // consume the expirations (non-blocking)
        if self.listener_paused {
            let watch = EpollEvent::new(EventSet::IN, LISTENER);
            if self
                .epoll
                .ctl(ControlOperation::Add, self.listener.as_raw_fd(), watch)
                .is_ok()
            {
                self.listener_paused = false;
            }
        }
        let late_handshakes: Vec<u64> = self
            .handshakes
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(&token, _)| token)
            .collect();
        for token in late_handshakes {
            self.drop_handshake(token);
        }
        let late: Vec<ConnKey> = self
            .connections
            .values()
            .filter(|c| c.deadline().is_some_and(|d| d <= now))
            .map(Connection::key)
            .collect();
        for key in late {
            tracing::debug!("vsock: host port {} timed out; resetting", key.host_port);
            self.remove(key, true);
        }
        let waiting = !self.handshakes.is_empty()
            || self.listener_paused
            || self.connections.values().any(|c| c.deadline().is_some());
        if !waiting {
            if let Err(e) = self.timer.clear() {
                tracing::debug!("vsock: cannot disarm the timer: {e}");
            }
            self.timer_running = false;
        }
    }

    fn publish(&self) {
        let g = &self.gauges;
        g.connections
            .store(self.connections.len(), Ordering::Relaxed);
        g.handshakes.store(self.handshakes.len(), Ordering::Relaxed);
        g.pending_resets.store(self.resets.len(), Ordering::Relaxed);
        // A sum over every connection: worth it for the tests only.
        #[cfg(test)]
        g.buffered_bytes.store(
            self.connections.values().map(Connection::buffered).sum(),
            Ordering::Relaxed,
        );
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with no pointers involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
