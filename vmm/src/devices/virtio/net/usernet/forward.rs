//! Published ports (`--publish`): a host `TcpListener` per forward, bound when the device is
//! built so that a busy port is an error before the guest boots. Each accepted connection becomes
//! a smoltcp connection from the gateway (10.0.2.2, an ephemeral port) to 10.0.2.15:GUESTPORT,
//! proxied like any other (see [`proxy`](super::proxy)).

use crate::devices::virtio::net::publish::Publish;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

/// Connections taken from one listener per wake-up (the rest wait for the next: the epoll is
/// level-triggered).
const ACCEPTS_PER_WAKE: usize = 16;
/// The router's source ports for published connections: the IANA dynamic range.
const LOCAL_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

struct Forward {
    publish: Publish,
    listener: TcpListener,
    /// Where it actually listens (the port filled in if the user asked for 0).
    local_addr: SocketAddr,
}

/// The published ports of one user network.
pub struct Forwards {
    forwards: Vec<Forward>,
    next_local_port: u16,
}

/// Epoll data of listener `index`.
pub fn listener_token(index: usize) -> u64 {
    super::TOKEN_LISTENER | index as u64
}

impl Forwards {
    /// Binds every forward; the first that cannot be bound is the error.
    pub fn bind(publish: &[Publish]) -> Result<Forwards, (Publish, io::Error)> {
        let mut forwards = Vec::with_capacity(publish.len());
        for &p in publish {
            let listener = TcpListener::bind(p.host_addr()).map_err(|e| (p, e))?;
            listener.set_nonblocking(true).map_err(|e| (p, e))?;
            let local_addr = listener.local_addr().map_err(|e| (p, e))?;
            tracing::debug!(
                "usernet: {local_addr} forwards to guest port {}",
                p.guest_port
            );
            forwards.push(Forward {
                publish: p,
                listener,
                local_addr,
            });
        }
        Ok(Forwards {
            forwards,
            next_local_port: *LOCAL_PORTS.start(),
        })
    }

    /// Adds the listeners to the user network's epoll.
    pub fn watch(&self, epoll: &Epoll) -> io::Result<()> {
        for (index, forward) in self.forwards.iter().enumerate() {
            let event = EpollEvent::new(EventSet::IN, listener_token(index));
            epoll.ctl(ControlOperation::Add, forward.listener.as_raw_fd(), event)?;
        }
        Ok(())
    }

    /// Each forward with the address it listens on.
    pub fn published(&self) -> Vec<(Publish, SocketAddr)> {
        self.forwards
            .iter()
            .map(|f| (f.publish, f.local_addr))
            .collect()
    }

    /// Accepts what is waiting on listener `index`: (guest port, host connection) pairs.
    pub fn accept(&mut self, index: usize) -> Vec<(u16, TcpStream)> {
        let Some(forward) = self.forwards.get(index) else {
            return Vec::new();
        };
        let mut accepted = Vec::new();
        while accepted.len() < ACCEPTS_PER_WAKE {
            match forward.listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        tracing::debug!("usernet: {peer}: {e}");
                        continue;
                    }
                    tracing::debug!(
                        "usernet: {peer} → guest port {}",
                        forward.publish.guest_port
                    );
                    accepted.push((forward.publish.guest_port, stream));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ECONNABORTED and friends: that one client is gone; resource exhaustion
                // (EMFILE): leave the rest in the backlog for the next wake-up.
                Err(e) => {
                    tracing::debug!("usernet: accept on {}: {e}", forward.local_addr);
                    break;
                }
            }
        }
        accepted
    }

    /// The next router port for a published connection that `in_use` does not rule out.
    pub fn local_port(&mut self, in_use: impl Fn(u16) -> bool) -> Option<u16> {
        for _ in LOCAL_PORTS {
            let port = self.next_local_port;
            self.next_local_port = if port == *LOCAL_PORTS.end() {
                *LOCAL_PORTS.start()
            } else {
                port + 1
            };
            if !in_use(port) {
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn loopback(host_port: u16, guest_port: u16) -> Publish {
        Publish {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port,
            guest_port,
        }
    }

    #[test]
    fn net_forward_busy_port_is_an_error() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let Err((publish, error)) = Forwards::bind(&[loopback(0, 22), loopback(port, 80)]) else {
            panic!("bound a busy port");
        };
        assert_eq!(publish.host_port, port);
        assert_eq!(error.kind(), ErrorKind::AddrInUse);
    }

    #[test]
    fn net_forward_port_zero_gets_a_real_port_and_accepts() {
        let mut forwards = Forwards::bind(&[loopback(0, 80)]).unwrap();
        let (publish, addr) = forwards.published()[0];
        assert_eq!(publish.guest_port, 80);
        assert_ne!(addr.port(), 0);
        assert!(forwards.accept(0).is_empty());
        let _client = TcpStream::connect(addr).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let accepted = forwards.accept(0);
            if !accepted.is_empty() {
                assert_eq!(accepted[0].0, 80);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no connection accepted"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn net_forward_local_ports_skip_ports_in_use_and_wrap() {
        let mut forwards = Forwards::bind(&[]).unwrap();
        assert_eq!(forwards.local_port(|p| p == 49152), Some(49153));
        forwards.next_local_port = 65535;
        assert_eq!(forwards.local_port(|_| false), Some(65535));
        assert_eq!(forwards.local_port(|_| false), Some(49152));
        assert_eq!(forwards.local_port(|_| true), None);
    }
}
