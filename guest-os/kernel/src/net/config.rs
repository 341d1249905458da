//! How the interface gets its address: Linux's `ip=` kernel parameter
//! (`ip=CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF`, Documentation/admin-guide/
//! nfs/nfsroot.rst), which our VMM passes for its user network and users pass for a tap;
//! `ip=dhcp` or no `ip=` at all means DHCP. `ip=off`/`ip=none` leaves the card unconfigured.

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpConfig {
    Static {
        address: Ipv4Cidr,
        gateway: Option<Ipv4Address>,
    },
    Dhcp,
    Off,
}

fn ipv4(text: &str) -> Option<Ipv4Address> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in octets.iter_mut() {
        *octet = parts.next()?.parse().ok()?;
    }
    parts
        .next()
        .is_none()
        .then(|| Ipv4Address::from_octets(octets))
}

/// The prefix length of a contiguous netmask.
fn prefix_len(mask: Ipv4Address) -> Option<u8> {
    let bits = u32::from_be_bytes(mask.octets());
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones() as u8)
}

impl IpConfig {
    /// The configuration the last `ip=` word of `line` gives (DHCP without one, or for one we
    /// cannot read, with a console line saying so).
    pub fn from_cmdline(line: &str) -> IpConfig {
        let Some(value) = crate::cmdline::Cmdline::values(line, "ip").last() else {
            return IpConfig::Dhcp;
        };
        match value {
            "dhcp" | "on" | "any" | "both" | "" => return IpConfig::Dhcp,
            "off" | "none" => return IpConfig::Off,
            _ => {}
        }
        match Self::parse_static(value) {
            Some(config) => config,
            None => {
                crate::klog!("net: cannot read ip={value}; using DHCP");
                IpConfig::Dhcp
            }
        }
    }

    fn parse_static(value: &str) -> Option<IpConfig> {
        let fields: alloc::vec::Vec<&str> = value.split(':').collect();
        let address = ipv4(fields.first()?)?;
        let gateway = fields.get(2).and_then(|g| ipv4(g));
        let prefix = match fields.get(3).filter(|m| !m.is_empty()) {
            Some(mask) => prefix_len(ipv4(mask)?)?,
            // Linux guesses from the class; everything we meet is a /24.
            None => 24,
        };
        Some(IpConfig::Static {
            address: Ipv4Cidr::new(address, prefix),
            gateway,
        })
    }
}
