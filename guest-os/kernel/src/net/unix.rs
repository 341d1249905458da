//! AF_UNIX sockets: stream (connections are [`super::stream`] pairs) and datagram (each socket
//! a queue of messages; a SOCK_SEQPACKET socketpair is a datagram pair that also sees its peer
//! close — Rust's std makes one to spawn a child), with names in the file system (a socket inode created at bind, found
//! again by connect through path resolution) or in the abstract namespace (a leading NUL),
//! socketpair, SCM_RIGHTS and SO_PEERCRED.
//!
//! Owns: the name table (which bound socket a name reaches) and the AF_UNIX state machine.

use super::local::{Incoming, Listener};
use super::socket::{BindFlags, Received, Socket};
use super::stream::{self, StreamEnd};
use crate::fs::{FileKind, FileRef, InodeId, Io, Pollee, READY_IN, READY_OUT, ReadBuf, WriteBuf};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::io::POLLHUP;
use noa_linux_abi::socket::*;
use spin::Mutex;

/// Bytes of messages a datagram socket queues before senders wait (Linux's default
/// `rmem_default`).
const DGRAM_QUEUE_BYTES: usize = 212_992;

/// What a bound name stands for in the table.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Path(InodeId),
    Abstract(Vec<u8>),
}

/// What a name reaches: a listening stream socket or a datagram socket's queue.
#[derive(Clone)]
enum Bound {
    Listener(Weak<Listener>),
    Dgram(Weak<DgramQueue>),
}

static NAMES: Mutex<BTreeMap<Key, Bound>> = Mutex::new(BTreeMap::new());

/// A name held by a socket; the abstract ones are freed when it goes (path names stay in the
/// file system, as on Linux, but reach nothing once their socket is gone).
struct NameGuard {
    key: Key,
    /// What getsockname reports.
    name: Vec<u8>,
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        NAMES.lock().remove(&self.key);
    }
}

/// Creates (path) or claims (abstract) `name`; EADDRINUSE if taken.
fn claim(name: &[u8], target: Bound) -> SysResult<NameGuard> {
    let key = if name.first() == Some(&0) {
        let key = Key::Abstract(name.to_vec());
        let mut names = NAMES.lock();
        if names.contains_key(&key) {
            return Err(Errno::EADDRINUSE);
        }
        names.insert(key.clone(), target);
        key
    } else {
        let inode = create_socket_node(name)?;
        let key = Key::Path(inode);
        NAMES.lock().insert(key.clone(), target);
        key
    };
    Ok(NameGuard {
        key,
        name: name.to_vec(),
    })
}

/// Binding to an empty name (just the family): an unused abstract name of five hex digits, as
/// Linux's autobind gives.
fn autobind(target: Bound) -> SysResult<NameGuard> {
    static NEXT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    for _ in 0..0x10_0000 {
        let n = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed) & 0xf_ffff;
        let mut name = alloc::vec![0u8];
        name.extend_from_slice(alloc::format!("{n:05x}").as_bytes());
        match claim(&name, target.clone()) {
            Err(Errno::EADDRINUSE) => continue,
            other => return other,
        }
    }
    Err(Errno::EADDRINUSE)
}

/// Makes the socket inode at `path` (EADDRINUSE if the name exists).
fn create_socket_node(path: &[u8]) -> SysResult<InodeId> {
    use crate::fs::path::{Start, resolve_parent};
    let parent = resolve_parent(Start::Cwd, path, false)?;
    if matches!(parent.name.as_slice(), b"." | b".." | b"/") {
        return Err(Errno::EADDRINUSE);
    }
    if crate::fs::path::lookup_child(&parent.dir.inode, &parent.name).is_ok() {
        return Err(Errno::EADDRINUSE);
    }
    let mode = 0o777 & !crate::syscall::path::umask_now();
    let inode = parent
        .dir
        .inode
        .create(&parent.name, FileKind::Socket, mode)?;
    Ok(inode.id())
}

/// What `name` reaches: ENOENT for a missing path, ECONNREFUSED for a name nobody serves.
fn find(name: &[u8]) -> SysResult<Bound> {
    let key = if name.first() == Some(&0) {
        Key::Abstract(name.to_vec())
    } else {
        use crate::fs::path::{Start, resolve};
        let inode = resolve(Start::Cwd, name, true)?.inode;
        if inode.kind() != FileKind::Socket {
            return Err(Errno::ECONNREFUSED);
        }
        Key::Path(inode.id())
    };
    NAMES.lock().get(&key).cloned().ok_or(Errno::ECONNREFUSED)
}

fn check_name(addr: &SockAddr) -> SysResult<&[u8]> {
    match addr {
        SockAddr::Unix(name) => Ok(name),
        _ => Err(Errno::EINVAL),
    }
}

/// The caller's credentials (pid, uid, gid) for SO_PEERCRED.
fn credentials() -> (u32, u32, u32) {
    let pid = crate::task::sched::try_current().map_or(0, |t| t.process.pid);
    (pid, 0, 0)
}

// --- stream ---

enum StreamState {
    Unbound,
    Bound,
    Listening(Arc<Listener>),
    Connected {
        end: Arc<StreamEnd>,
        peer_name: Vec<u8>,
        peer_cred: (u32, u32, u32),
    },
}

pub struct UnixStream {
    pollee: Arc<Pollee>,
    state: Mutex<StreamState>,
    name: Mutex<Option<NameGuard>>,
    /// A name received at accept (the listener's) for getsockname.
    inherited_name: Vec<u8>,
}

impl UnixStream {
    pub fn new() -> UnixStream {
        UnixStream::with(Arc::new(Pollee::new()), StreamState::Unbound, Vec::new())
    }

    fn with(pollee: Arc<Pollee>, state: StreamState, inherited_name: Vec<u8>) -> UnixStream {
        UnixStream {
            pollee,
            state: Mutex::new(state),
            name: Mutex::new(None),
            inherited_name,
        }
    }

    /// socketpair(AF_UNIX, SOCK_STREAM).
    pub fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = (Arc::new(Pollee::new()), Arc::new(Pollee::new()));
        let (end_a, end_b) = stream::pair(a.clone(), b.clone());
        let cred = credentials();
        let connected = |end| StreamState::Connected {
            end: Arc::new(end),
            peer_name: Vec::new(),
            peer_cred: cred,
        };
        (
            UnixStream::with(a, connected(end_a), Vec::new()),
            UnixStream::with(b, connected(end_b), Vec::new()),
        )
    }

    fn end(&self) -> SysResult<Arc<StreamEnd>> {
        match &*self.state.lock() {
            StreamState::Connected { end, .. } => Ok(end.clone()),
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn own_name(&self) -> Vec<u8> {
        match &*self.name.lock() {
            Some(guard) => guard.name.clone(),
            None => self.inherited_name.clone(),
        }
    }
}

impl Socket for UnixStream {
    fn family(&self) -> u16 {
        AF_UNIX
    }

    fn sock_type(&self) -> u32 {
        SOCK_STREAM
    }

    fn protocol(&self) -> u32 {
        0
    }

    fn pollee(&self) -> &Arc<Pollee> {
        &self.pollee
    }

    fn bind(&self, addr: SockAddr, _flags: BindFlags) -> SysResult<()> {
        let name = check_name(&addr)?;
        let mut own = self.name.lock();
        if own.is_some() {
            return Err(Errno::EINVAL);
        }
        // Streams are reachable only once listening: the name is claimed with no target yet.
        *own = Some(if name.is_empty() {
            autobind(Bound::Listener(Weak::new()))?
        } else {
            claim(name, Bound::Listener(Weak::new()))?
        });
        let mut state = self.state.lock();
        if matches!(*state, StreamState::Unbound) {
            *state = StreamState::Bound;
        }
        Ok(())
    }

    fn listen(&self, backlog: usize, _flags: BindFlags) -> SysResult<()> {
        let mut state = self.state.lock();
        match &*state {
            StreamState::Listening(listener) => {
                listener.set_backlog(backlog);
                Ok(())
            }
            StreamState::Bound => {
                let listener = Listener::new(self.pollee.clone(), backlog, false);
                if let Some(guard) = self.name.lock().as_ref() {
                    NAMES.lock().insert(
                        guard.key.clone(),
                        Bound::Listener(Arc::downgrade(&listener)),
                    );
                }
                *state = StreamState::Listening(listener);
                Ok(())
            }
            StreamState::Unbound => Err(Errno::EINVAL),
            StreamState::Connected { .. } => Err(Errno::EINVAL),
        }
    }

    fn accept(&self, io: Io) -> SysResult<(Box<dyn Socket>, SockAddr)> {
        let listener = match &*self.state.lock() {
            StreamState::Listening(listener) => listener.clone(),
            _ => return Err(Errno::EINVAL),
        };
        if let Some(incoming) = listener.take() {
            return Ok(incoming);
        }
        if io.nonblock {
            return Err(Errno::EAGAIN);
        }
        self.pollee.queue().wait_until(|| listener.take())
    }

    fn connect(&self, addr: SockAddr, _io: Io, _flags: BindFlags) -> SysResult<()> {
        let name = check_name(&addr)?;
        match &*self.state.lock() {
            StreamState::Connected { .. } => return Err(Errno::EISCONN),
            StreamState::Listening(_) => return Err(Errno::EINVAL),
            _ => {}
        }
        let Bound::Listener(listener) = find(name)? else {
            return Err(Errno::EPROTOTYPE);
        };
        let listener = listener.upgrade().ok_or(Errno::ECONNREFUSED)?;
        let server_pollee = Arc::new(Pollee::new());
        let (client_end, server_end) = stream::pair(self.pollee.clone(), server_pollee.clone());
        let server = UnixStream::with(
            server_pollee,
            StreamState::Connected {
                end: Arc::new(server_end),
                peer_name: self.own_name(),
                peer_cred: credentials(),
            },
            name.to_vec(),
        );
        let server_cred = credentials();
        let incoming: Incoming = (Box::new(server), SockAddr::Unix(self.own_name()));
        if !listener.offer(incoming) {
            return Err(Errno::EAGAIN);
        }
        *self.state.lock() = StreamState::Connected {
            end: Arc::new(client_end),
            peer_name: name.to_vec(),
            peer_cred: server_cred,
        };
        self.pollee.notify();
        Ok(())
    }

    fn send(
        &self,
        buf: &WriteBuf<'_>,
        _to: Option<SockAddr>,
        flags: u32,
        io: Io,
        rights: Vec<FileRef>,
    ) -> SysResult<usize> {
        let io = super::socket::call_io(io, flags);
        let result = self.end()?.write(buf, io, rights);
        if result == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
            crate::task::signal::raise_current(noa_linux_abi::signal::SIGPIPE);
        }
        result
    }

    fn recv(&self, buf: &mut ReadBuf<'_>, flags: u32, io: Io) -> SysResult<Received> {
        let io = super::socket::call_io(io, flags);
        let got = self
            .end()?
            .read(buf, io, flags & MSG_PEEK != 0, flags & MSG_WAITALL != 0)?;
        Ok(Received {
            bytes: got.bytes,
            full: got.bytes,
            from: None,
            rights: got.rights,
        })
    }

    fn shutdown(&self, how: u32) -> SysResult<()> {
        let (read, write) = super::socket::shutdown_halves(how)?;
        self.end()?.shutdown(read, write);
        Ok(())
    }

    fn local_addr(&self) -> SysResult<SockAddr> {
        Ok(SockAddr::Unix(self.own_name()))
    }

    fn peer_addr(&self) -> SysResult<SockAddr> {
        match &*self.state.lock() {
            StreamState::Connected { peer_name, .. } => Ok(SockAddr::Unix(peer_name.clone())),
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn poll(&self) -> u32 {
        let state = self.state.lock();
        match &*state {
            StreamState::Connected { end, .. } => {
                let end = end.clone();
                drop(state);
                end.poll()
            }
            StreamState::Listening(listener) => {
                if listener.has_waiting() {
                    READY_IN
                } else {
                    0
                }
            }
            _ => READY_OUT | u32::from(POLLHUP),
        }
    }

    fn is_listening(&self) -> bool {
        matches!(*self.state.lock(), StreamState::Listening(_))
    }

    fn pending_bytes(&self) -> usize {
        self.end().map_or(0, |end| end.pending())
    }

    fn peer_cred(&self) -> Option<(u32, u32, u32)> {
        match &*self.state.lock() {
            StreamState::Connected { peer_cred, .. } => Some(*peer_cred),
            _ => None,
        }
    }
}

// --- datagram ---

struct Message {
    data: Vec<u8>,
    from: Vec<u8>,
    rights: Vec<FileRef>,
}

/// A datagram socket's receive queue, which names and peers point at.
pub struct DgramQueue {
    messages: Mutex<(VecDeque<Message>, usize)>,
    pollee: Arc<Pollee>,
    /// Its socket is gone (a SOCK_SEQPACKET peer then reads end of file).
    closed: core::sync::atomic::AtomicBool,
}

impl DgramQueue {
    fn push(&self, message: Message, io: Io) -> SysResult<()> {
        let len = message.data.len();
        let mut message = Some(message);
        self.pollee.queue().wait_until(|| {
            let mut queue = self.messages.lock();
            if queue.1 + len <= DGRAM_QUEUE_BYTES || queue.0.is_empty() {
                queue.1 += len;
                queue.0.push_back(message.take()?);
                return Some(Ok(()));
            }
            if io.nonblock {
                return Some(Err(Errno::EAGAIN));
            }
            None
        })??;
        self.pollee.notify();
        Ok(())
    }
}

pub struct UnixDgram {
    queue: Arc<DgramQueue>,
    /// One end of a SOCK_SEQPACKET pair: connected for good, end of file once the peer closes.
    seqpacket: bool,
    name: Mutex<Option<NameGuard>>,
    /// The default destination (connect, socketpair) and its name.
    peer: Mutex<Option<(Weak<DgramQueue>, Vec<u8>)>>,
}

impl UnixDgram {
    pub fn new() -> UnixDgram {
        UnixDgram {
            queue: Arc::new(DgramQueue {
                messages: Mutex::new((VecDeque::new(), 0)),
                pollee: Arc::new(Pollee::new()),
                closed: core::sync::atomic::AtomicBool::new(false),
            }),
            seqpacket: false,
            name: Mutex::new(None),
            peer: Mutex::new(None),
        }
    }

    /// socketpair(AF_UNIX, SOCK_DGRAM).
    pub fn pair() -> (UnixDgram, UnixDgram) {
        let (a, b) = (UnixDgram::new(), UnixDgram::new());
        *a.peer.lock() = Some((Arc::downgrade(&b.queue), Vec::new()));
        *b.peer.lock() = Some((Arc::downgrade(&a.queue), Vec::new()));
        (a, b)
    }

    /// socketpair(AF_UNIX, SOCK_SEQPACKET).
    pub fn seqpacket_pair() -> (UnixDgram, UnixDgram) {
        let (mut a, mut b) = UnixDgram::pair();
        a.seqpacket = true;
        b.seqpacket = true;
        (a, b)
    }

    /// Whether this is a SOCK_SEQPACKET end whose peer has closed.
    fn peer_closed(&self) -> bool {
        self.seqpacket
            && self.peer.lock().as_ref().is_none_or(|(peer, _)| {
                peer.upgrade()
                    .is_none_or(|q| q.closed.load(core::sync::atomic::Ordering::Acquire))
            })
    }

    fn own_name(&self) -> Vec<u8> {
        self.name
            .lock()
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_default()
    }
}

impl Socket for UnixDgram {
    fn family(&self) -> u16 {
        AF_UNIX
    }

    fn sock_type(&self) -> u32 {
        if self.seqpacket {
            SOCK_SEQPACKET
        } else {
            SOCK_DGRAM
        }
    }

    fn protocol(&self) -> u32 {
        0
    }

    fn pollee(&self) -> &Arc<Pollee> {
        &self.queue.pollee
    }

    fn bind(&self, addr: SockAddr, _flags: BindFlags) -> SysResult<()> {
        let name = check_name(&addr)?;
        let mut own = self.name.lock();
        if own.is_some() {
            return Err(Errno::EINVAL);
        }
        let target = Bound::Dgram(Arc::downgrade(&self.queue));
        *own = Some(if name.is_empty() {
            autobind(target)?
        } else {
            claim(name, target)?
        });
        Ok(())
    }

    fn connect(&self, addr: SockAddr, _io: Io, _flags: BindFlags) -> SysResult<()> {
        if self.seqpacket {
            return Err(Errno::EISCONN);
        }
        if matches!(addr, SockAddr::Unspec) {
            *self.peer.lock() = None;
            return Ok(());
        }
        let name = check_name(&addr)?;
        let Bound::Dgram(queue) = find(name)? else {
            return Err(Errno::EPROTOTYPE);
        };
        *self.peer.lock() = Some((queue, name.to_vec()));
        Ok(())
    }

    fn send(
        &self,
        buf: &WriteBuf<'_>,
        to: Option<SockAddr>,
        flags: u32,
        io: Io,
        rights: Vec<FileRef>,
    ) -> SysResult<usize> {
        if self.peer_closed() {
            return Err(Errno::EPIPE);
        }
        let target = match to {
            Some(_) if self.seqpacket => return Err(Errno::EISCONN),
            Some(addr) => match find(check_name(&addr)?)? {
                Bound::Dgram(queue) => queue,
                Bound::Listener(_) => return Err(Errno::EPROTOTYPE),
            },
            None => match &*self.peer.lock() {
                Some((queue, _)) => queue.clone(),
                None => return Err(Errno::ENOTCONN),
            },
        };
        let target = target.upgrade().ok_or(Errno::ECONNREFUSED)?;
        if buf.len() > DGRAM_QUEUE_BYTES {
            return Err(Errno::EMSGSIZE);
        }
        let mut data = vec![0u8; buf.len()];
        buf.get(0, &mut data)?;
        let io = super::socket::call_io(io, flags);
        target.push(
            Message {
                data,
                from: self.own_name(),
                rights,
            },
            io,
        )?;
        Ok(buf.len())
    }

    fn recv(&self, buf: &mut ReadBuf<'_>, flags: u32, io: Io) -> SysResult<Received> {
        let peek = flags & MSG_PEEK != 0;
        let nonblock = super::socket::call_io(io, flags).nonblock;
        let mut take = || -> Option<SysResult<Received>> {
            let mut queue = self.queue.messages.lock();
            if queue.0.is_empty() && self.peer_closed() {
                let end = Received {
                    bytes: 0,
                    full: 0,
                    from: None,
                    rights: Vec::new(),
                };
                return Some(Ok(end));
            }
            let message = queue.0.front()?;
            let n = message.data.len().min(buf.len());
            if let Err(e) = buf.put(0, &message.data[..n]) {
                return Some(Err(e));
            }
            let mut received = Received {
                bytes: n,
                full: message.data.len(),
                from: Some(SockAddr::Unix(message.from.clone())),
                rights: Vec::new(),
            };
            if !peek {
                let message = queue.0.pop_front()?;
                queue.1 -= message.data.len();
                received.rights = message.rights;
            }
            Some(Ok(received))
        };
        let got = match take() {
            Some(got) => got?,
            None if nonblock => return Err(Errno::EAGAIN),
            None => self.queue.pollee.queue().wait_until(take)??,
        };
        if !peek {
            // Room for blocked senders.
            self.queue.pollee.notify();
        }
        Ok(got)
    }

    fn shutdown(&self, how: u32) -> SysResult<()> {
        if how > SHUT_RDWR {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn local_addr(&self) -> SysResult<SockAddr> {
        Ok(SockAddr::Unix(self.own_name()))
    }

    fn peer_addr(&self) -> SysResult<SockAddr> {
        match &*self.peer.lock() {
            Some((_, name)) => Ok(SockAddr::Unix(name.clone())),
            None => Err(Errno::ENOTCONN),
        }
    }

    fn poll(&self) -> u32 {
        let readable = !self.queue.messages.lock().0.is_empty() || self.peer_closed();
        READY_OUT | if readable { READY_IN } else { 0 }
    }

    fn pending_bytes(&self) -> usize {
        self.queue
            .messages
            .lock()
            .0
            .front()
            .map_or(0, |m| m.data.len())
    }
}

impl Drop for UnixDgram {
    fn drop(&mut self) {
        if !self.seqpacket {
            return;
        }
        self.queue
            .closed
            .store(true, core::sync::atomic::Ordering::Release);
        // A peer blocked in recv wakes to read end of file.
        if let Some((peer, _)) = &*self.peer.lock()
            && let Some(peer) = peer.upgrade()
        {
            peer.pollee.notify();
        }
    }
}
