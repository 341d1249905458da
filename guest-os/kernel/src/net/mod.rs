//! The kernel's networking: sockets for programs and the stack under them.
//!
//! - [`socket`]: what a socket is to the file layer, and the options every socket keeps;
//! - [`tcp`], [`udp`], [`unix`]: the protocols programs open;
//! - [`local`]: this machine's own endpoints (ports, loopback delivery), [`stream`]: local
//!   byte-stream connections — traffic between local addresses never becomes packets;
//! - [`iface`]: the smoltcp interface over the virtio-net card for everything else, configured
//!   from the `ip=` parameter ([`config`]) or by DHCP.
//!
//! [`Stack`] below is the standalone form the in-guest tests and benchmarks drive directly
//! (no sockets, one thread, polling until done).

pub mod config;
pub mod iface;
pub mod local;
pub mod phy;
pub mod socket;
pub mod stream;
pub mod tcp;
pub mod udp;
pub mod unix;

use alloc::vec;
use hal_pv::virtio::net::Net;
use phy::VirtioPhy;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp as smol_tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// Brings up the network for programs on the first network card among `devices` (none: only
/// local sockets work), configured as the command line says.
pub fn init(devices: alloc::vec::Vec<hal_pv::virtio::Device>, cmdline: &str) {
    let Some(device) = devices
        .into_iter()
        .find(|d| d.kind == hal_pv::virtio::Kind::Network)
    else {
        return;
    };
    let link = Link::from_cmdline(cmdline);
    match link.open(device) {
        Ok(card) => iface::init(
            card,
            link.mtu,
            link.tx_checksums,
            config::IpConfig::from_cmdline(cmdline),
        ),
        Err(e) => crate::klog!("net: cannot open the network card: {e:?}"),
    }
}

/// How the link to the network card is driven, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Largest payload of a frame.
    pub mtu: usize,
    /// Whether outgoing TCP and UDP checksums are computed.
    pub tx_checksums: bool,
}

impl Link {
    pub fn from_cmdline(cmdline: &str) -> Link {
        // `noa.net.mtu=N`: our VMM's user network carries larger frames than a wire (fewer
        // frames, fewer emulated instructions per byte); taps and QEMU's slirp keep 1500.
        let mtu = crate::cmdline::Cmdline::values(cmdline, "noa.net.mtu")
            .find_map(|v| v.parse::<usize>().ok())
            .unwrap_or(phy::DEFAULT_MTU)
            .clamp(576, 65_000);
        // `noa.net.tx_csum=off`: the peer (our VMM's user network) does not verify TCP and UDP
        // checksums, so we do not compute them — on PVM hosts that is most of the cost per byte.
        let tx_checksums =
            !crate::cmdline::Cmdline::values(cmdline, "noa.net.tx_csum").any(|v| v == "off");
        Link { mtu, tx_checksums }
    }

    /// Opens `device` for this link.
    pub fn open(&self, device: hal_pv::virtio::Device) -> Result<Net, hal_pv::virtio::Error> {
        Net::open(device, self.mtu)
    }
}

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
    /// The stack over `card`, opened with [`Link::open`] for `link`.
    pub fn new(card: Net, link: Link) -> Stack {
        let mac = EthernetAddress(card.mac());
        let mut phy = VirtioPhy::new(card, link.mtu);
        phy.set_tx_checksums(link.tx_checksums);
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
        let rx = smol_tcp::SocketBuffer::new(vec![0; buffer]);
        let tx = smol_tcp::SocketBuffer::new(vec![0; buffer]);
        self.sockets.add(smol_tcp::Socket::new(rx, tx))
    }

    /// The interface, for connecting sockets (which needs its context).
    pub fn context_and_socket(
        &mut self,
        handle: SocketHandle,
    ) -> (&mut smoltcp::iface::Context, &mut smol_tcp::Socket<'static>) {
        (
            self.iface.context(),
            self.sockets.get_mut::<smol_tcp::Socket>(handle),
        )
    }
}
