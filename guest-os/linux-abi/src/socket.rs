//! Sockets: address families, types, levels and options, message flags, and the address and
//! message structures (`sockaddr_in`, `sockaddr_in6`, `sockaddr_un`, `msghdr`, `cmsghdr`) as
//! `include/linux/socket.h`, `uapi/linux/{in,in6,un,tcp}.h` and `asm-generic/socket.h` define
//! them for x86-64.
//!
//! [`SockAddr`] is the decoded form of every address the kernel accepts: decoding checks the
//! family and the length the way Linux does (EINVAL for a short or unknown one, EAFNOSUPPORT for
//! a family the socket does not speak is the caller's call).

use alloc::vec::Vec;

use crate::bytes::*;
use crate::errno::Errno;

pub const AF_UNSPEC: u16 = 0;
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const AF_NETLINK: u16 = 16;
pub const AF_PACKET: u16 = 17;

pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
pub const SOCK_RAW: u32 = 3;
pub const SOCK_SEQPACKET: u32 = 5;
/// The type's low bits; the rest are SOCK_NONBLOCK and SOCK_CLOEXEC.
pub const SOCK_TYPE_MASK: u32 = 0xf;
pub const SOCK_NONBLOCK: u32 = 0o4000;
pub const SOCK_CLOEXEC: u32 = 0o2000000;

pub const IPPROTO_IP: u32 = 0;
pub const IPPROTO_ICMP: u32 = 1;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;
pub const IPPROTO_IPV6: u32 = 41;

pub const SOL_SOCKET: u32 = 1;
pub const SO_DEBUG: u32 = 1;
pub const SO_REUSEADDR: u32 = 2;
pub const SO_TYPE: u32 = 3;
pub const SO_ERROR: u32 = 4;
pub const SO_DONTROUTE: u32 = 5;
pub const SO_BROADCAST: u32 = 6;
pub const SO_SNDBUF: u32 = 7;
pub const SO_RCVBUF: u32 = 8;
pub const SO_KEEPALIVE: u32 = 9;
pub const SO_OOBINLINE: u32 = 10;
pub const SO_LINGER: u32 = 13;
pub const SO_REUSEPORT: u32 = 15;
pub const SO_PASSCRED: u32 = 16;
pub const SO_PEERCRED: u32 = 17;
pub const SO_RCVLOWAT: u32 = 18;
pub const SO_SNDLOWAT: u32 = 19;
pub const SO_RCVTIMEO: u32 = 20;
pub const SO_SNDTIMEO: u32 = 21;
pub const SO_ACCEPTCONN: u32 = 30;
pub const SO_SNDBUFFORCE: u32 = 32;
pub const SO_RCVBUFFORCE: u32 = 33;
pub const SO_PROTOCOL: u32 = 38;
pub const SO_DOMAIN: u32 = 39;

pub const TCP_NODELAY: u32 = 1;
pub const TCP_MAXSEG: u32 = 2;
pub const TCP_KEEPIDLE: u32 = 4;
pub const TCP_KEEPINTVL: u32 = 5;
pub const TCP_KEEPCNT: u32 = 6;
pub const TCP_INFO: u32 = 11;
pub const TCP_QUICKACK: u32 = 12;
pub const TCP_CONGESTION: u32 = 13;
pub const TCP_USER_TIMEOUT: u32 = 18;
pub const TCP_FASTOPEN: u32 = 23;

pub const IP_TOS: u32 = 1;
pub const IP_TTL: u32 = 2;
pub const IPV6_V6ONLY: u32 = 26;

pub const MSG_OOB: u32 = 0x1;
pub const MSG_PEEK: u32 = 0x2;
pub const MSG_DONTROUTE: u32 = 0x4;
pub const MSG_CTRUNC: u32 = 0x8;
pub const MSG_TRUNC: u32 = 0x20;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_EOR: u32 = 0x80;
pub const MSG_WAITALL: u32 = 0x100;
pub const MSG_NOSIGNAL: u32 = 0x4000;
pub const MSG_MORE: u32 = 0x8000;
pub const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;

pub const SHUT_RD: u32 = 0;
pub const SHUT_WR: u32 = 1;
pub const SHUT_RDWR: u32 = 2;

pub const SCM_RIGHTS: u32 = 1;
pub const SCM_CREDENTIALS: u32 = 2;

/// Largest backlog listen(2) takes (`net.core.somaxconn`).
pub const SOMAXCONN: u32 = 4096;

/// `sizeof(struct sockaddr_in)`.
pub const SOCKADDR_IN_SIZE: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
pub const SOCKADDR_IN6_SIZE: usize = 28;
/// `sizeof(struct sockaddr_un)`: the family and 108 bytes of path.
pub const SOCKADDR_UN_SIZE: usize = 110;
/// `sizeof(struct sockaddr_storage)`: the most an address may take.
pub const SOCKADDR_STORAGE_SIZE: usize = 128;
/// Bytes of `sun_path`.
pub const UNIX_PATH_MAX: usize = 108;

/// An Internet address and port, v4 or v6 (v6 keeps its flow info and scope id as given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InetAddr {
    V4 {
        ip: [u8; 4],
        port: u16,
    },
    V6 {
        ip: [u8; 16],
        port: u16,
        flowinfo: u32,
        scope_id: u32,
    },
}

impl InetAddr {
    pub fn port(&self) -> u16 {
        match *self {
            InetAddr::V4 { port, .. } | InetAddr::V6 { port, .. } => port,
        }
    }
}

/// A decoded socket address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Unspec,
    Inet(InetAddr),
    /// `sun_path` as given up to its NUL: empty for an unnamed socket (autobind), a leading 0
    /// byte for the abstract namespace (then every byte up to the length counts).
    Unix(Vec<u8>),
}

impl SockAddr {
    /// Decodes `b` (exactly the `addrlen` bytes the caller passed).
    pub fn decode(b: &[u8]) -> Result<SockAddr, Errno> {
        if b.len() < 2 {
            return Err(Errno::EINVAL);
        }
        match u16_at(b, 0) {
            AF_UNSPEC => Ok(SockAddr::Unspec),
            AF_INET => {
                if b.len() < SOCKADDR_IN_SIZE {
                    return Err(Errno::EINVAL);
                }
                Ok(SockAddr::Inet(InetAddr::V4 {
                    port: u16::from_be_bytes([b[2], b[3]]),
                    ip: [b[4], b[5], b[6], b[7]],
                }))
            }
            AF_INET6 => {
                // Linux accepts the RFC 2133 24-byte form without the scope id.
                if b.len() < 24 {
                    return Err(Errno::EINVAL);
                }
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&b[8..24]);
                Ok(SockAddr::Inet(InetAddr::V6 {
                    port: u16::from_be_bytes([b[2], b[3]]),
                    flowinfo: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    ip,
                    scope_id: if b.len() >= SOCKADDR_IN6_SIZE {
                        u32_at(b, 24)
                    } else {
                        0
                    },
                }))
            }
            AF_UNIX => {
                let path = &b[2..b.len().min(SOCKADDR_UN_SIZE)];
                if path.first() == Some(&0) {
                    Ok(SockAddr::Unix(path.to_vec()))
                } else {
                    let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                    Ok(SockAddr::Unix(path[..end].to_vec()))
                }
            }
            _ => Err(Errno::EAFNOSUPPORT),
        }
    }

    /// The bytes getsockname/accept/recvfrom copy out (truncated by the caller to its buffer;
    /// the full length is what it reports).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SockAddr::Unspec => AF_UNSPEC.to_le_bytes().to_vec(),
            SockAddr::Inet(InetAddr::V4 { ip, port }) => {
                let mut b = [0u8; SOCKADDR_IN_SIZE];
                put_u16(&mut b, 0, AF_INET);
                b[2..4].copy_from_slice(&port.to_be_bytes());
                b[4..8].copy_from_slice(ip);
                b.to_vec()
            }
            SockAddr::Inet(InetAddr::V6 {
                ip,
                port,
                flowinfo,
                scope_id,
            }) => {
                let mut b = [0u8; SOCKADDR_IN6_SIZE];
                put_u16(&mut b, 0, AF_INET6);
                b[2..4].copy_from_slice(&port.to_be_bytes());
                b[4..8].copy_from_slice(&flowinfo.to_be_bytes());
                b[8..24].copy_from_slice(ip);
                put_u32(&mut b, 24, *scope_id);
                b.to_vec()
            }
            SockAddr::Unix(path) => {
                let mut b = Vec::with_capacity(3 + path.len());
                b.extend_from_slice(&AF_UNIX.to_le_bytes());
                b.extend_from_slice(path);
                // A path name's length counts its NUL (as Linux reports it); an abstract one's
                // and an unnamed one's do not.
                if path.first().is_some_and(|&c| c != 0) {
                    b.push(0);
                }
                b
            }
        }
    }
}

/// `struct msghdr` (56 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgHdr {
    pub name: u64,
    pub namelen: u32,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
    pub flags: u32,
}

impl MsgHdr {
    pub const SIZE: usize = 56;
    /// Offset of `msg_namelen` (recvmsg writes it back).
    pub const NAMELEN_OFFSET: u64 = 8;
    /// Offset of `msg_controllen`.
    pub const CONTROLLEN_OFFSET: u64 = 40;
    /// Offset of `msg_flags`.
    pub const FLAGS_OFFSET: u64 = 48;

    pub fn decode(b: &[u8]) -> Option<MsgHdr> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(MsgHdr {
            name: u64_at(b, 0),
            namelen: u32_at(b, 8),
            iov: u64_at(b, 16),
            iovlen: u64_at(b, 24),
            control: u64_at(b, 32),
            controllen: u64_at(b, 40),
            flags: u32_at(b, 48),
        })
    }
}

/// `struct mmsghdr`: a msghdr and the byte count the call stores after it.
pub const MMSGHDR_SIZE: usize = 64;

/// `struct cmsghdr` header bytes (len: u64, level: i32, type: i32).
pub const CMSG_HDR_SIZE: usize = 16;

/// `CMSG_ALIGN`.
pub const fn cmsg_align(len: usize) -> usize {
    (len + 7) & !7
}

/// One control message: level, type and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmsg {
    pub level: u32,
    pub kind: u32,
    pub data: Vec<u8>,
}

/// Splits a control buffer into its messages (EINVAL for a malformed header).
pub fn decode_cmsgs(b: &[u8]) -> Result<Vec<Cmsg>, Errno> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + CMSG_HDR_SIZE <= b.len() {
        let len = u64_at(b, at) as usize;
        if len < CMSG_HDR_SIZE || len > b.len() - at {
            return Err(Errno::EINVAL);
        }
        out.push(Cmsg {
            level: u32_at(b, at + 8),
            kind: u32_at(b, at + 12),
            data: b[at + CMSG_HDR_SIZE..at + len].to_vec(),
        });
        at += cmsg_align(len);
    }
    Ok(out)
}

/// One encoded control message (header, data, padding to alignment).
pub fn encode_cmsg(level: u32, kind: u32, data: &[u8]) -> Vec<u8> {
    let len = CMSG_HDR_SIZE + data.len();
    let mut b = alloc::vec![0u8; cmsg_align(len)];
    put_u64(&mut b, 0, len as u64);
    put_u32(&mut b, 8, level);
    put_u32(&mut b, 12, kind);
    b[CMSG_HDR_SIZE..len].copy_from_slice(data);
    b
}

/// `struct ucred` (SO_PEERCRED): pid, uid, gid.
pub fn encode_ucred(pid: u32, uid: u32, gid: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    put_u32(&mut b, 0, pid);
    put_u32(&mut b, 4, uid);
    put_u32(&mut b, 8, gid);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addresses_round_trip() {
        let v4 = SockAddr::Inet(InetAddr::V4 {
            ip: [127, 0, 0, 1],
            port: 8080,
        });
        let b = v4.encode();
        assert_eq!(b.len(), SOCKADDR_IN_SIZE);
        assert_eq!(&b[2..4], &[0x1f, 0x90]);
        assert_eq!(SockAddr::decode(&b), Ok(v4));
        let mut ip = [0u8; 16];
        ip[15] = 1;
        let v6 = SockAddr::Inet(InetAddr::V6 {
            ip,
            port: 1,
            flowinfo: 0,
            scope_id: 3,
        });
        assert_eq!(SockAddr::decode(&v6.encode()), Ok(v6));
    }

    #[test]
    fn short_or_unknown_addresses_are_refused() {
        assert_eq!(SockAddr::decode(&[2]), Err(Errno::EINVAL));
        assert_eq!(SockAddr::decode(&[2, 0, 0, 80]), Err(Errno::EINVAL));
        assert_eq!(SockAddr::decode(&[99, 0, 0, 0]), Err(Errno::EAFNOSUPPORT));
    }

    #[test]
    fn unix_paths_stop_at_the_nul_and_abstract_names_do_not() {
        assert_eq!(
            SockAddr::decode(b"\x01\x00/tmp/s\x00junk"),
            Ok(SockAddr::Unix(b"/tmp/s".to_vec()))
        );
        assert_eq!(
            SockAddr::decode(b"\x01\x00\x00ab\x00c"),
            Ok(SockAddr::Unix(b"\x00ab\x00c".to_vec()))
        );
        assert_eq!(SockAddr::Unix(b"/s".to_vec()).encode(), b"\x01\x00/s\x00");
        assert_eq!(SockAddr::Unix(b"\x00a".to_vec()).encode(), b"\x01\x00\x00a");
    }

    #[test]
    fn control_messages_round_trip() {
        let mut b = encode_cmsg(SOL_SOCKET, SCM_RIGHTS, &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(b.len(), 24);
        b.extend(encode_cmsg(SOL_SOCKET, SCM_CREDENTIALS, &[0; 12]));
        let cmsgs = decode_cmsgs(&b).unwrap();
        assert_eq!(cmsgs.len(), 2);
        assert_eq!(cmsgs[0].data, [1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(cmsgs[1].kind, SCM_CREDENTIALS);
        assert_eq!(
            decode_cmsgs(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
    }
}
