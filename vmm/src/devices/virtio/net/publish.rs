//! `--publish [HOSTIP:]HOSTPORT:GUESTPORT`: what one port forward of the user network is, and
//! how it is written on the command line (the docker `-p` form, TCP only).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// One TCP port forward: connections to `host_ip:host_port` on the host reach the guest's
/// `guest_port` (from the gateway, 10.0.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// Where the host listens; 127.0.0.1 unless the user names another address.
    pub host_ip: IpAddr,
    /// 0 lets the host pick a free port (see `Net::published`).
    pub host_port: u16,
    pub guest_port: u16,
}

impl Publish {
    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host_ip, self.host_port)
    }
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr puts an IPv6 address in brackets.
        write!(f, "{}:{}", self.host_addr(), self.guest_port)
    }
}

/// Why a `--publish` value is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishParseError(String);

impl fmt::Display for PublishParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (expected [HOSTIP:]HOSTPORT:GUESTPORT, e.g. 8080:80 or 127.0.0.1:8080:80)",
            self.0
        )
    }
}

impl std::error::Error for PublishParseError {}

fn error(what: String) -> PublishParseError {
    PublishParseError(what)
}

fn port(text: &str, which: &str) -> Result<u16, PublishParseError> {
    if text.is_empty() {
        return Err(error(format!("the {which} is missing")));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(format!("{which} '{text}' is not a number")));
    }
    text.parse()
        .map_err(|_| error(format!("{which} '{text}' is not a port (0-65535)")))
}

impl FromStr for Publish {
    type Err = PublishParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (host_ip, ports) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, rest) = rest
                .split_once(']')
                .ok_or_else(|| error(format!("'{text}': '[' without ']'")))?;
            let ip: IpAddr = ip
                .parse()
                .ok()
                .filter(IpAddr::is_ipv6)
                .ok_or_else(|| error(format!("'{ip}' is not an IPv6 address")))?;
            let ports = rest
                .strip_prefix(':')
                .ok_or_else(|| error(format!("'{text}': expected ':' after ']'")))?;
            (ip, ports)
        } else {
            match text.matches(':').count() {
                1 => (IpAddr::V4(Ipv4Addr::LOCALHOST), text),
                2 => {
                    let (ip, ports) = text.split_once(':').unwrap_or_default();
                    let ip: Ipv4Addr = ip
                        .parse()
                        .map_err(|_| error(format!("'{ip}' is not an IPv4 address")))?;
                    (IpAddr::V4(ip), ports)
                }
                0 => return Err(error(format!("'{text}' has no guest port"))),
                _ => {
                    return Err(error(format!(
                        "'{text}': put an IPv6 host address in brackets"
                    )));
                }
            }
        };
        let (host_port, guest_port) = ports
            .split_once(':')
            .ok_or_else(|| error(format!("'{text}' has no guest port")))?;
        let host_port = port(host_port, "host port")?;
        let guest_port = port(guest_port, "guest port")?;
        if guest_port == 0 {
            return Err(error(format!("'{text}': guest port 0 is not a port")));
        }
        Ok(Publish {
            host_ip,
            host_port,
            guest_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn parse(text: &str) -> Result<Publish, String> {
        text.parse::<Publish>().map_err(|e| e.to_string())
    }

    #[test]
    fn net_publish_defaults_to_loopback() {
        let p = parse("8080:80").unwrap();
        assert_eq!(
            p,
            Publish {
                host_ip: Ipv4Addr::LOCALHOST.into(),
                host_port: 8080,
                guest_port: 80
            }
        );
        assert_eq!(p.to_string(), "127.0.0.1:8080:80");
    }

    #[test]
    fn net_publish_takes_ipv4_and_bracketed_ipv6_hosts() {
        let p = parse("0.0.0.0:2222:22").unwrap();
        assert_eq!(p.host_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!((p.host_port, p.guest_port), (2222, 22));
        let p = parse("[::1]:8443:443").unwrap();
        assert_eq!(p.host_ip, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!((p.host_port, p.guest_port), (8443, 443));
        assert_eq!(p.to_string(), "[::1]:8443:443");
        // Port 0: the host picks one.
        assert_eq!(parse("0:80").unwrap().host_port, 0);
    }

    #[test]
    fn net_publish_errors_say_what_is_wrong() {
        let cases = [
            ("80", "no guest port"),
            ("", "no guest port"),
            ("8080:", "guest port is missing"),
            (":80", "host port is missing"),
            ("x:80", "host port 'x' is not a number"),
            ("8080:+80", "guest port '+80' is not a number"),
            ("70000:80", "not a port"),
            ("8080:0", "guest port 0"),
            ("localhost:8080:80", "'localhost' is not an IPv4 address"),
            ("::1:8080:80", "brackets"),
            ("[::1:8080:80", "without ']'"),
            ("[127.0.0.1]:8080:80", "not an IPv6 address"),
            ("[::1]8080:80", "expected ':' after ']'"),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains("[HOSTIP:]HOSTPORT:GUESTPORT"), "{error}");
        }
    }
}
