//! The user network's table of proxied connections ([`Conn`]s, outbound and published), found by
//! id (their host socket's epoll data) or by [`ConnKey`] (a guest segment's ports). Each pass
//! pumps data through all of them, then [`reap`](Connections::reap)s: finished connections go,
//! time-outs are applied, and the epoll interest of the rest follows what they can use.

use super::config::Config;
use super::proxy::{Conn, ConnKey, Expiry, Redial, Timeouts};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use std::collections::HashMap;
use std::net::TcpStream;
use vmm_sys_util::epoll::{Epoll, EventSet};

/// Epoll data of a connection's host socket.
pub fn conn_token(id: u64) -> u64 {
    super::TOKEN_CONN | id
}

/// The connections of one user network.
pub struct Connections {
    conns: HashMap<u64, Conn>,
    by_key: HashMap<ConnKey, u64>,
    next_id: u64,
    timeouts: Timeouts,
}

impl Connections {
    pub fn new(config: &Config) -> Self {
        Connections {
            conns: HashMap::new(),
            by_key: HashMap::new(),
            next_id: 0,
            timeouts: Timeouts::new(config),
        }
    }

    /// Connections open.
    pub fn count(&self) -> usize {
        self.conns.len()
    }

    /// The id and smoltcp socket of the connection `key`.
    pub fn find(&self, key: ConnKey) -> Option<(u64, SocketHandle)> {
        let id = *self.by_key.get(&key)?;
        self.conns.get(&id).map(|conn| (id, conn.handle))
    }

    /// The guest sent a segment for connection `key` (if there is one) at `now`.
    pub fn heard(&mut self, key: ConnKey, now: Instant) {
        if let Some(conn) = self.by_key.get(&key).and_then(|id| self.conns.get_mut(id)) {
            conn.heard(now);
        }
    }

    /// Adds a connection whose smoltcp socket is `handle`, at `now`.
    pub fn add(
        &mut self,
        key: ConnKey,
        handle: SocketHandle,
        stream: TcpStream,
        epoll: &Epoll,
        now: Instant,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let conn = Conn::new(key, handle, stream, conn_token(id), epoll, now);
        // An older one of the same key (there should be none) is no longer found by its key, and
        // leaves when it finishes or times out.
        self.by_key.insert(key, id);
        self.conns.insert(id, conn);
    }

    /// Connection `key` dials the guest again while the guest refuses it (a published one).
    pub fn set_redial(&mut self, key: ConnKey, redial: Redial) {
        if let Some(conn) = self.by_key.get(&key).and_then(|id| self.conns.get_mut(id)) {
            conn.set_redial(redial);
        }
    }

    /// The dials due at `now`: (the connection's smoltcp socket, the dial).
    pub fn due_redials(&mut self, now: Instant) -> Vec<(SocketHandle, Redial)> {
        self.conns
            .values_mut()
            .filter_map(|conn| conn.due_redial(now).map(|redial| (conn.handle, redial)))
            .collect()
    }

    /// The host socket of `id` reported `events`: a hang-up or error takes it out of the epoll
    /// set for good (it would be reported at every wait).
    pub fn host_event(&mut self, id: u64, events: EventSet, epoll: &Epoll) {
        if let Some(conn) = self.conns.get_mut(&id)
            && events.intersects(EventSet::HANG_UP | EventSet::ERROR)
        {
            conn.hung_up(epoll);
        }
    }

    /// Moves data both ways for every connection.
    pub fn pump(&mut self, sockets: &mut SocketSet<'_>, now: Instant) {
        for conn in self.conns.values_mut() {
            conn.pump(sockets.get_mut::<tcp::Socket>(conn.handle), now);
        }
    }

    /// When [`reap`](Self::reap) next has a time-out to apply.
    pub fn next_deadline(&self, sockets: &SocketSet<'_>) -> Option<Instant> {
        self.conns
            .values()
            .map(|conn| conn.deadline(sockets.get::<tcp::Socket>(conn.handle), self.timeouts))
            .min()
    }

    /// Removes finished connections, applies the time-outs (a reset connection goes at a later
    /// pass, once its RST is out) and updates what the epoll watches for the others. Call it
    /// after the interface has been polled (so resets of aborted sockets have gone out).
    pub fn reap(&mut self, sockets: &mut SocketSet<'_>, epoll: &Epoll, now: Instant) {
        let timeouts = self.timeouts;
        let mut done = Vec::new();
        for (&id, conn) in &mut self.conns {
            let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
            match conn.expire(socket, now, timeouts) {
                Expiry::Drop => done.push((id, true)),
                _ if conn.finished(socket) && !conn.keep_for_redial(socket, now) => {
                    done.push((id, false))
                }
                _ => conn.update_interest(socket, epoll),
            }
        }
        for (id, reset) in done {
            self.close(id, sockets, epoll, reset);
        }
    }

    fn close(&mut self, id: u64, sockets: &mut SocketSet<'_>, epoll: &Epoll, reset: bool) {
        if let Some(conn) = self.conns.remove(&id) {
            if self.by_key.get(&conn.key) == Some(&id) {
                self.by_key.remove(&conn.key);
            }
            conn.close(sockets, epoll, reset);
        }
    }

    /// Drops connection `id` now: its host socket is reset, its smoltcp socket goes.
    pub fn remove(&mut self, id: u64, sockets: &mut SocketSet<'_>, epoll: &Epoll) {
        self.close(id, sockets, epoll, true);
    }

    /// Drops every connection (a reset of the device).
    pub fn clear(&mut self, sockets: &mut SocketSet<'_>, epoll: &Epoll) {
        self.by_key.clear();
        for (_, conn) in self.conns.drain() {
            conn.close(sockets, epoll, true);
        }
    }
}
