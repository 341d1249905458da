//! The virtio-vsock packet header (virtio 1.2 §5.10.6): its 44-byte little-endian layout, the
//! operations and flags we speak, and the limits a packet must respect. Only the layout lives
//! here; what a packet means for a connection is [`super::connection`]'s business.

/// The host's CID (VMADDR_CID_HOST): every connection has the host at one end.
pub const HOST_CID: u64 = 2;

/// `struct virtio_vsock_hdr`, packed.
pub const HEADER_BYTES: usize = 44;

/// The only socket type without VIRTIO_VSOCK_F_SEQPACKET.
pub const TYPE_STREAM: u16 = 1;

/// Most payload in one RW packet, either way. Linux never sends more
/// (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE); anything longer is a driver we do not trust.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Operations (`op`).
pub mod op {
    pub const REQUEST: u16 = 1;
    pub const RESPONSE: u16 = 2;
    pub const RST: u16 = 3;
    pub const SHUTDOWN: u16 = 4;
    pub const RW: u16 = 5;
    pub const CREDIT_UPDATE: u16 = 6;
    pub const CREDIT_REQUEST: u16 = 7;
}

/// SHUTDOWN `flags`: what the sender will no longer do.
pub mod shutdown {
    /// The sender will receive no more data.
    pub const RCV: u32 = 1;
    /// The sender will send no more data.
    pub const SEND: u32 = 2;
    pub const BOTH: u32 = RCV | SEND;
}

/// A packet header, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    /// Payload bytes that follow the header.
    pub len: u32,
    pub type_: u16,
    pub op: u16,
    pub flags: u32,
    /// The sender's receive buffer for this connection, in bytes.
    pub buf_alloc: u32,
    /// Payload bytes the sender has consumed from this connection so far (wrapping).
    pub fwd_cnt: u32,
}

impl Header {
    pub fn from_bytes(raw: &[u8; HEADER_BYTES]) -> Header {
        let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
        let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap_or_default());
        let u16_at = |at: usize| u16::from_le_bytes(raw[at..at + 2].try_into().unwrap_or_default());
        Header {
            src_cid: u64_at(0),
            dst_cid: u64_at(8),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            type_: u16_at(28),
            op: u16_at(30),
            flags: u32_at(32),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }

    pub fn to_bytes(self) -> [u8; HEADER_BYTES] {
        let mut raw = [0u8; HEADER_BYTES];
        raw[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        raw[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        raw[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        raw[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        raw[24..28].copy_from_slice(&self.len.to_le_bytes());
        raw[28..30].copy_from_slice(&self.type_.to_le_bytes());
        raw[30..32].copy_from_slice(&self.op.to_le_bytes());
        raw[32..36].copy_from_slice(&self.flags.to_le_bytes());
        raw[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        raw[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        raw
    }

    /// A header-only packet from the host's `host_port` to the guest's `guest_port`.
    pub fn to_guest(guest_cid: u64, host_port: u32, guest_port: u32, op: u16) -> Header {
        Header {
            src_cid: HOST_CID,
            dst_cid: guest_cid,
            src_port: host_port,
            dst_port: guest_port,
            type_: TYPE_STREAM,
            op,
            ..Header::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsock_header_layout_round_trips() {
        let header = Header {
            src_cid: 0x0102_0304_0506_0708,
            dst_cid: 2,
            src_port: 0x1122_3344,
            dst_port: 5000,
            len: 7,
            type_: TYPE_STREAM,
            op: op::RW,
            flags: shutdown::BOTH,
            buf_alloc: 256 * 1024,
            fwd_cnt: u32::MAX,
        };
        let raw = header.to_bytes();
        assert_eq!(raw[0], 0x08, "little-endian src_cid");
        assert_eq!(&raw[16..20], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&raw[28..32], &[1, 0, 5, 0], "type then op");
        assert_eq!(&raw[40..44], &[0xff; 4]);
        assert_eq!(Header::from_bytes(&raw), header);
    }
}
