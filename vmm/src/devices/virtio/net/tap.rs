//! The tap backend (`--net tap:NAME`): frames go to and come from a host tap interface, which
//! the user sets up (addresses, bridge, NAT) as they like. Opened with IFF_TAP | IFF_NO_PI and
//! without IFF_VNET_HDR: we negotiate no offloads, so the kernel has nothing to tell us per frame
//! and the device's own 12-byte header is added and stripped in [`queues`](super::queues).
//!
//! The tap fd is non-blocking and watched by the device's I/O thread. A frame the tap cannot take
//! right now is dropped (as a NIC with a full ring would); frames from the tap wait in the
//! bounded backlog while the guest has no receive buffers, and are dropped beyond it.

use super::backend::NetBackend;
use super::frame::{BACKLOG_FRAMES, FrameQueue, MAX_FRAME};
use event_manager::EventSet;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// Longest interface name (IFNAMSIZ less the NUL).
pub const MAX_NAME_LEN: usize = 15;
/// Frames read from the tap per wake-up (the rest are reported again: level-triggered).
const READS_PER_WAKE: usize = 256;
/// Read buffer: larger than any frame, so an oversized one (the tap's MTU raised) is seen whole
/// and dropped, not truncated into a wrong frame.
const READ_BUFFER: usize = 64 * 1024;

/// `TUNSETIFF` = `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the union is 24 bytes).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Checks an interface name the way the kernel would, with a clearer message.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "tap interface name '{name}' must be 1 to {MAX_NAME_LEN} bytes"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(format!("'{name}' is not a valid interface name"));
    }
    Ok(())
}

fn ifreq(name: &str) -> IfReq {
    let mut request = IfReq {
        name: [0; 16],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    request.name[..name.len()].copy_from_slice(name.as_bytes());
    request
}

pub struct Tap {
    file: File,
    name: String,
    to_guest: FrameQueue,
    buffer: Box<[u8]>,
    /// Guest frames the tap refused (full) or that failed.
    tx_dropped: u64,
}

impl Tap {
    /// Opens (or creates, with CAP_NET_ADMIN) tap interface `name` in the calling thread's
    /// network namespace.
    pub fn open(name: &str) -> io::Result<Tap> {
        check_name(name).map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut request = ifreq(name);
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `request` is laid out as.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &raw mut request) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tap {
            file,
            name: name.to_string(),
            to_guest: FrameQueue::new(BACKLOG_FRAMES),
            buffer: vec![0; READ_BUFFER].into_boxed_slice(),
            tx_dropped: 0,
        })
    }
}

impl NetBackend for Tap {
    fn host_sources(&self) -> Vec<(RawFd, EventSet)> {
        vec![(self.file.as_raw_fd(), EventSet::IN)]
    }

    fn guest_sent(&mut self, frame: &[u8]) {
        // A tap write is all or nothing: one frame per write.
        if let Err(e) = self.file.write(frame) {
            self.tx_dropped += 1;
            if e.kind() != ErrorKind::WouldBlock && self.tx_dropped.is_power_of_two() {
                tracing::debug!(
                    "virtio-net: tap {}: {e} ({} frames dropped)",
                    self.name,
                    self.tx_dropped
                );
            }
        }
    }

    fn poll(&mut self) {}

    fn host_ready(&mut self, _fd: RawFd, _events: EventSet) {
        for _ in 0..READS_PER_WAKE {
            match self.file.read(&mut self.buffer) {
                // FrameQueue::push drops (and counts) frames over MAX_FRAME.
                Ok(len) if len > 0 => {
                    let frame = self.buffer[..len.min(MAX_FRAME + 1)].to_vec();
                    self.to_guest.push(frame);
                }
                Ok(_) => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != ErrorKind::WouldBlock {
                        tracing::debug!("virtio-net: tap {}: {e}", self.name);
                    }
                    return;
                }
            }
        }
    }

    fn to_guest(&mut self) -> &mut FrameQueue {
        &mut self.to_guest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_tap_ifreq_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::offset_of!(IfReq, flags), 16);
        let request = ifreq("tap0");
        assert_eq!(&request.name[..5], b"tap0\0");
        assert_eq!(request.flags as i32, libc::IFF_TAP | libc::IFF_NO_PI);
        // The ioctl number, from <linux/if_tun.h>: _IOW('T', 202, int).
        assert_eq!(
            TUNSETIFF,
            (1 << 30) | (4 << 16) | ((b'T' as libc::c_ulong) << 8) | 202
        );
    }

    #[test]
    fn net_tap_names_are_checked() {
        assert!(check_name("tap0").is_ok());
        assert!(check_name("noa-tap-123456x").is_ok()); // 15 bytes
        assert!(check_name("noa-tap-1234567x").is_err());
        for bad in ["", "a/b", "a b", "a:b", ".", ".."] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
