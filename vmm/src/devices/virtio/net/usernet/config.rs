//! The user network's settings: its time-outs, and the two places where it reaches into the host —
//! the TCP connect behind a guest's connection to 10.0.2.2:PORT and the name lookup behind a DNS
//! query. [`Config::default`] is what the VMM uses; tests and the fuzzer shorten the time-outs
//! and keep the host out of it (a connect hook that leads to a listener of their own, a resolver
//! that answers by itself).

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Where the guest's TCP connection to 10.0.2.2:`port` goes on the host; None refuses it (the
/// guest sees ECONNREFUSED, as from a closed port).
pub type HostConnect = Arc<dyn Fn(u16) -> Option<SocketAddrV4> + Send + Sync>;

/// The host's name lookup (IPv4 addresses of a name). Runs on a thread of its own: it may block.
pub type Resolver = Arc<dyn Fn(&str) -> io::Result<Vec<Ipv4Addr>> + Send + Sync>;

/// How the user network behaves. Time-outs are measured on the router's clock.
#[derive(Clone)]
pub struct Config {
    /// A host connect that takes longer refuses the guest's connection.
    pub connect_timeout: Duration,
    /// A connection whose guest sends nothing at all (not even an answer to a keep-alive probe)
    /// for this long is reset both ways: the guest is gone.
    pub guest_timeout: Duration,
    /// An idle connection probes its guest this often (shorter than `guest_timeout`, so a live
    /// guest's idle connections stay up).
    pub keep_alive: Duration,
    /// A connection closed in one direction (a FIN from either side, the conntrack FIN-WAIT /
    /// CLOSE-WAIT states) that moves no data for this long is reset both ways.
    pub half_closed_timeout: Duration,
    /// How long a DNS query waits for the host's resolver before the guest gets SERVFAIL.
    pub lookup_timeout: Duration,
    /// Where TCP to 10.0.2.2:PORT goes: 127.0.0.1:PORT by default.
    pub host_connect: HostConnect,
    /// Names other than `host.internal`: the host's `getaddrinfo` by default.
    pub resolver: Resolver,
    /// A published connection that the guest refuses before it ever got through (nothing
    /// listens there yet: the guest is still booting) is dialled again, with a growing pause,
    /// for this long before the host side is reset. Zero resets it at once.
    pub published_redial: Duration,
    /// Seeds smoltcp's initial sequence numbers (None: random), for reproducible runs.
    pub random_seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connect_timeout: Duration::from_secs(10),
            guest_timeout: Duration::from_secs(120),
            keep_alive: Duration::from_secs(30),
            half_closed_timeout: Duration::from_secs(120),
            lookup_timeout: Duration::from_secs(5),
            host_connect: Arc::new(|port| Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))),
            resolver: Arc::new(host_lookup),
            published_redial: Duration::from_secs(5),
            random_seed: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("connect_timeout", &self.connect_timeout)
            .field("guest_timeout", &self.guest_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("half_closed_timeout", &self.half_closed_timeout)
            .field("lookup_timeout", &self.lookup_timeout)
            .field("published_redial", &self.published_redial)
            .field("random_seed", &self.random_seed)
            .finish_non_exhaustive()
    }
}

/// The host's resolver (`getaddrinfo`, through std), IPv4 answers only, each address once.
pub fn host_lookup(name: &str) -> io::Result<Vec<Ipv4Addr>> {
    let mut found = Vec::new();
    for addr in (name, 0).to_socket_addrs()? {
        if let std::net::SocketAddr::V4(v4) = addr
            && !found.contains(v4.ip())
        {
            found.push(*v4.ip());
        }
    }
    Ok(found)
}
