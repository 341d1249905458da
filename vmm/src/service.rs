//! Service mode (`vmm IMAGE`, no `-- CMD`): the guest's init starts noa-server, which listens on
//! the guest's port [`NOA_SERVER_PORT`] (the OpenAI API at /v1, MCP at /mcp, /health). This module
//! owns what the VMM adds around it:
//!
//! - the default forward: with `--net user` and neither `-- CMD` nor any `--publish`, the host's
//!   127.0.0.1:8080 (`--default-publish`, or `$NOA_DEFAULT_PUBLISH`; `off` for none) reaches the
//!   guest's 8080. A default that cannot be bound (the port is taken) is a warning, not an error:
//!   the VM still boots, as a plain `vmm guest.img` should; an explicit `--publish` stays strict;
//! - the banner on stderr that says where the endpoints are, for every forward to port 8080;
//! - the access token: when a forward listens beyond the host's loopback (or the guest sits on a
//!   tap), the VMM makes a random token, gives it to the guest as `noa.token=HEX` on the kernel
//!   command line (noa-server then requires `Authorization: Bearer HEX`) and prints it.
//!
//! It does not bind anything itself (the user network does) and does not know the guest's side.

use crate::devices::virtio::net::{NetArg, Publish};
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::str::FromStr;

/// The guest port noa-server listens on.
pub const NOA_SERVER_PORT: u16 = 8080;
/// The environment variable `--default-publish` falls back to (tests set it to `off`).
pub const DEFAULT_PUBLISH_ENV: &str = "NOA_DEFAULT_PUBLISH";
/// The kernel command-line word that carries the token (docs/boot-protocol.md).
pub const TOKEN_WORD: &str = "noa.token";
/// Random bytes in a token (printed as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// `--default-publish`: where the default forward listens on the host, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPublish {
    Off,
    At(SocketAddr),
}

impl FromStr for DefaultPublish {
    type Err = String;

    /// `off`, or `[HOSTIP:]HOSTPORT` as in `--publish` (HOSTIP 127.0.0.1 unless given; IPv6 in
    /// brackets; port 0 lets the host pick one).
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(DefaultPublish::Off);
        }
        let publish: Publish = format!("{text}:{NOA_SERVER_PORT}").parse().map_err(|_| {
            format!("'{text}' is not `off` or [HOSTIP:]HOSTPORT (e.g. 8080 or 0.0.0.0:8080)")
        })?;
        Ok(DefaultPublish::At(publish.host_addr()))
    }
}

impl fmt::Display for DefaultPublish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultPublish::Off => f.write_str("off"),
            DefaultPublish::At(addr) => write!(f, "{addr}"),
        }
    }
}

/// The default forward this run gets, if any: only in service mode, on the user network, when the
/// user published nothing.
pub fn default_forward(
    runner: bool,
    net: &NetArg,
    publish: &[Publish],
    default: DefaultPublish,
) -> Option<Publish> {
    if runner || *net != NetArg::User || !publish.is_empty() {
        return None;
    }
    match default {
        DefaultPublish::Off => None,
        DefaultPublish::At(addr) => Some(Publish {
            host_ip: addr.ip(),
            host_port: addr.port(),
            guest_port: NOA_SERVER_PORT,
        }),
    }
}

/// The one-line warning when the default forward cannot listen.
pub fn default_forward_unavailable(publish: &Publish, error: &std::io::Error) -> String {
    format!(
        "cannot listen on {} ({error}), so the guest's port {NOA_SERVER_PORT} is not published; \
         choose another port with --default-publish [HOSTIP:]HOSTPORT or --publish \
         HOSTPORT:{NOA_SERVER_PORT}",
        publish.host_addr()
    )
}

/// Whether the guest's services need a token: something beyond the host's loopback can reach
/// them — a forward listening on another address, or a tap.
pub fn needs_token(net: &NetArg, published: &[(Publish, SocketAddr)]) -> bool {
    matches!(net, NetArg::Tap(_)) || published.iter().any(|(_, addr)| !addr.ip().is_loopback())
}

/// A fresh token: 32 random bytes from the kernel, in lowercase hex.
pub fn generate_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The banner lines (without the `vmm: ` the caller adds): the endpoints behind every forward
/// to noa-server's port (service mode only), then the token, if any.
pub fn banner(
    service_mode: bool,
    published: &[(Publish, SocketAddr)],
    token: Option<&str>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if service_mode {
        for (_, addr) in published
            .iter()
            .filter(|(p, _)| p.guest_port == NOA_SERVER_PORT)
        {
            lines.push(format!("OpenAI API  http://{addr}/v1"));
            lines.push(format!("MCP         http://{addr}/mcp"));
            lines.push(format!("health      http://{addr}/health"));
        }
    }
    if let Some(token) = token {
        lines.push(format!(
            "token       {token}  (send it as Authorization: Bearer <token>)"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn publish(text: &str) -> Publish {
        text.parse().unwrap()
    }

    #[test]
    fn default_publish_parses_off_and_host_addresses() {
        assert_eq!("off".parse(), Ok(DefaultPublish::Off));
        assert_eq!(
            "8080".parse(),
            Ok(DefaultPublish::At("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            "0.0.0.0:9000".parse(),
            Ok(DefaultPublish::At("0.0.0.0:9000".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:0".parse(),
            Ok(DefaultPublish::At("[::1]:0".parse().unwrap()))
        );
        for bad in ["", "on", "8080:8080", "x", "70000", "[::1]"] {
            let error = bad.parse::<DefaultPublish>().unwrap_err();
            assert!(error.contains("[HOSTIP:]HOSTPORT"), "{bad:?}: {error}");
        }
        assert_eq!(
            DefaultPublish::At("127.0.0.1:8080".parse().unwrap()).to_string(),
            "127.0.0.1:8080"
        );
    }

    #[test]
    fn the_default_forward_is_only_for_plain_service_mode_on_the_user_network() {
        let default = DefaultPublish::At("127.0.0.1:8080".parse().unwrap());
        let expected = Publish {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: 8080,
            guest_port: 8080,
        };
        assert_eq!(
            default_forward(false, &NetArg::User, &[], default),
            Some(expected)
        );
        assert_eq!(default_forward(true, &NetArg::User, &[], default), None);
        assert_eq!(
            default_forward(false, &NetArg::User, &[publish("9000:80")], default),
            None
        );
        assert_eq!(default_forward(false, &NetArg::None, &[], default), None);
        assert_eq!(
            default_forward(false, &NetArg::Tap("t0".into()), &[], default),
            None
        );
        assert_eq!(
            default_forward(false, &NetArg::User, &[], DefaultPublish::Off),
            None
        );
    }

    #[test]
    fn a_token_is_needed_beyond_loopback() {
        let bound = |text: &str, addr: &str| (publish(text), addr.parse().unwrap());
        assert!(!needs_token(&NetArg::User, &[]));
        assert!(!needs_token(
            &NetArg::User,
            &[
                bound("8080:8080", "127.0.0.1:8080"),
                bound("[::1]:1:2", "[::1]:1")
            ]
        ));
        assert!(needs_token(
            &NetArg::User,
            &[bound("0.0.0.0:9:22", "0.0.0.0:9")]
        ));
        assert!(needs_token(&NetArg::Tap("t0".into()), &[]));
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn the_banner_names_every_endpoint_of_every_forward_to_the_server() {
        let published = [
            (publish("8080:8080"), "127.0.0.1:8080".parse().unwrap()),
            (publish("2222:22"), "127.0.0.1:2222".parse().unwrap()),
            (publish("[::1]:0:8080"), "[::1]:41000".parse().unwrap()),
        ];
        assert_eq!(
            banner(true, &published, None),
            [
                "OpenAI API  http://127.0.0.1:8080/v1",
                "MCP         http://127.0.0.1:8080/mcp",
                "health      http://127.0.0.1:8080/health",
                "OpenAI API  http://[::1]:41000/v1",
                "MCP         http://[::1]:41000/mcp",
                "health      http://[::1]:41000/health",
            ]
        );
        let lines = banner(false, &published, Some("ab12"));
        assert_eq!(
            lines,
            ["token       ab12  (send it as Authorization: Bearer <token>)"]
        );
    }
}
