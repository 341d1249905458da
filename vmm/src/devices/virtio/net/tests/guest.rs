//! A pretend guest for the end-to-end tests: a smoltcp interface whose link is the [`Driver`] —
//! its frames go into the device's transmit queue, and what the device puts in the receive queue
//! comes back to it — so the device is exercised by a real TCP/IP stack, DHCP client included,
//! without a guest kernel.

use super::driver::Driver;
use crate::devices::virtio::net::frame::MAX_FRAME;
use crate::devices::virtio::net::{DEFAULT_MAC, Net, NetMode};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long any one step of a test may take before it fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The guest's smoltcp link: the driver plus frames received but not yet consumed.
pub struct GuestLink {
    pub driver: Driver,
    inbox: VecDeque<Vec<u8>>,
}

pub struct RxToken(Vec<u8>);
pub struct TxToken<'a>(&'a mut Driver);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        self.0.send(&frame);
        result
    }
}

impl phy::Device for GuestLink {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: smoltcp::time::Instant) -> Option<(RxToken, TxToken<'_>)> {
        if self.inbox.is_empty() {
            self.inbox.extend(self.driver.receive());
        }
        if !self.driver.can_send() {
            return None;
        }
        let frame = self.inbox.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.driver)))
    }

    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<TxToken<'_>> {
        if self.driver.can_send() {
            Some(TxToken(&mut self.driver))
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}

pub struct Guest {
    pub net: Net,
    pub link: GuestLink,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    start: Instant,
}

impl Guest {
    /// A guest with a fresh device of `mode`, activated, and no address yet.
    pub fn new(mode: NetMode) -> Guest {
        Self::with_net(
            Net::new(mode, DEFAULT_MAC).expect("the device builds"),
            false,
        )
    }

    /// A guest on the user network, configured as DHCP would (10.0.2.15/24 via 10.0.2.2).
    pub fn user(publish: Vec<crate::devices::virtio::net::Publish>) -> Guest {
        let mut guest = Self::new(NetMode::User { publish });
        guest.configure(
            Ipv4Addr::new(10, 0, 2, 15),
            24,
            Some(Ipv4Addr::new(10, 0, 2, 2)),
        );
        guest
    }

    /// [`user`](Self::user) with the router's time-outs and host hooks from `config`.
    pub fn user_with(
        publish: &[crate::devices::virtio::net::Publish],
        config: crate::devices::virtio::net::usernet::Config,
    ) -> Guest {
        let net = Net::user(publish, config, DEFAULT_MAC).expect("the device builds");
        let mut guest = Self::with_net(net, false);
        guest.configure(
            Ipv4Addr::new(10, 0, 2, 15),
            24,
            Some(Ipv4Addr::new(10, 0, 2, 2)),
        );
        guest
    }

    pub fn with_net(mut net: Net, event_idx: bool) -> Guest {
        let driver = Driver::activate(&mut net, event_idx);
        let mut link = GuestLink {
            driver,
            inbox: VecDeque::new(),
        };
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(DEFAULT_MAC)));
        let iface = Interface::new(config, &mut link, smoltcp::time::Instant::ZERO);
        Guest {
            net,
            link,
            iface,
            sockets: SocketSet::new(Vec::new()),
            start: Instant::now(),
        }
    }

    pub fn configure(&mut self, address: Ipv4Addr, prefix_len: u8, router: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            addrs
                .push(IpCidr::new(IpAddress::Ipv4(address), prefix_len))
                .unwrap();
        });
        if let Some(router) = router {
            self.iface
                .routes_mut()
                .add_default_ipv4_route(router)
                .unwrap();
        }
    }

    /// One round: take what the device delivered, let the stack work, sleep until an interrupt
    /// (or a millisecond).
    pub fn poll(&mut self) {
        let now = smoltcp::time::Instant::from_micros(self.start.elapsed().as_micros() as i64);
        self.iface.poll(now, &mut self.link, &mut self.sockets);
        self.link.driver.wait_interrupt(Duration::from_millis(1));
    }

    /// Polls until `check` returns Some; panics naming `what` after [`STEP_TIMEOUT`].
    pub fn run_until<T>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&mut Guest) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            self.poll();
            if let Some(result) = check(self) {
                return result;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
    }

    pub fn tcp(&mut self, handle: smoltcp::iface::SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }
}

/// A TCP socket for the guest.
pub fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
    )
}

/// `len` bytes that are not all the same (a cheap xorshift).
pub fn test_data(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
