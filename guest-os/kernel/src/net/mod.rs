//! The kernel's network stack: smoltcp over the virtio-net card, configured by DHCP.
//!
//! For now it serves the kernel itself (the ktests); sockets for programs come with the Linux ABI.
//! Polling is event-driven: the stack runs when a frame arrives (the card's interrupt) or when
//! smoltcp's next timer is due, and the CPU sleeps in between.

mod phy;

use alloc::vec;
use hal_pv::virtio::net::Net;
use phy::VirtioPhy;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// The stack's clock: nanoseconds since boot from the HAL.
pub fn now() -> Instant {
    Instant::from_micros((hal_pv::time::now_ns() / 1000) as i64)
}

/// One interface with its sockets.
pub struct Stack {
    phy: VirtioPhy,
    iface: Interface,
    pub sockets: SocketSet<'static>,
}

/// What DHCP gave us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Cidr,
    pub router: Option<Ipv4Address>,
}

impl Stack {
    pub fn new(card: Net) -> Stack {
        let mac = EthernetAddress(card.mac());
        let mut phy = VirtioPhy::new(card);
        let config = Config::new(HardwareAddress::Ethernet(mac));
        let iface = Interface::new(config, &mut phy, now());
        Stack {
            phy,
            iface,
            sockets: SocketSet::new(vec![]),
        }
    }

    /// Runs the stack until `done` says so or `timeout` passes; true if `done` said so.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> bool {
        let deadline = now() + timeout;
        loop {
            self.iface.poll(now(), &mut self.phy, &mut self.sockets);
            if done(self) {
                return true;
            }
            let now = now();
            if now >= deadline {
                return false;
            }
            let wait = self
                .iface
                .poll_delay(now, &self.sockets)
                .unwrap_or(deadline - now)
                .min(deadline - now);
            if wait > Duration::ZERO {
                self.phy.card().wait(wait.total_micros() * 1000);
            }
        }
    }

    /// Configures the interface by DHCP; the lease, or `None` after `timeout`.
    pub fn dhcp(&mut self, timeout: Duration) -> Option<Lease> {
        let handle = self.sockets.add(dhcpv4::Socket::new());
        let mut lease = None;
        self.run_until(timeout, |stack| {
            let event = stack.sockets.get_mut::<dhcpv4::Socket>(handle).poll();
            if let Some(dhcpv4::Event::Configured(config)) = event {
                stack.iface.update_ip_addrs(|addrs| {
                    addrs.clear();
                    let _ = addrs.push(IpCidr::Ipv4(config.address));
                });
                if let Some(router) = config.router {
                    let _ = stack.iface.routes_mut().add_default_ipv4_route(router);
                }
                lease = Some(Lease {
                    address: config.address,
                    router: config.router,
                });
            }
            lease.is_some()
        });
        lease
    }

    /// A new TCP socket with `buffer` bytes each way.
    pub fn tcp_socket(&mut self, buffer: usize) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; buffer]);
        let tx = tcp::SocketBuffer::new(vec![0; buffer]);
        self.sockets.add(tcp::Socket::new(rx, tx))
    }

    /// The interface, for connecting sockets (which needs its context).
    pub fn context_and_socket(
        &mut self,
        handle: SocketHandle,
    ) -> (&mut smoltcp::iface::Context, &mut tcp::Socket<'static>) {
        (
            self.iface.context(),
            self.sockets.get_mut::<tcp::Socket>(handle),
        )
    }
}
