//! virtio-net (virtio 1.2 §5.1): one receive queue (0) and one transmit queue (1), each frame
//! preceded by a 12-byte `virtio_net_hdr_v1`. We offer VIRTIO_NET_F_MAC and VIRTIO_NET_F_STATUS
//! only — no checksum or segmentation offloads, no mergeable buffers, no control queue — so
//! frames are at most 1514 bytes and the header carries nothing but `num_buffers` = 1.
//!
//! The other end of the wire is a [`NetBackend`]:
//! - [`usernet`]: `--net user` (the default), a NAT'ing router inside the VMM (QEMU slirp
//!   addresses; the guest reaches the host's loopback only, see its module doc), with
//!   `--publish` port forwards;
//! - [`tap`]: `--net tap:NAME`, a host tap interface;
//! - `--net none` builds no device at all ([`NetArg::None`]).
//!
//! This module owns the device model and its public API; [`queues`] moves frames between the
//! virtqueues and the backend on the device's I/O thread; [`frame`] has the size limits and the
//! bounded backlog.

pub mod backend;
pub mod frame;
pub mod publish;
pub mod queues;
pub mod tap;
pub mod usernet;

#[cfg(test)]
mod tests;

pub use backend::NetBackend;
pub use publish::Publish;

use super::worker::Worker;
use super::{Activation, VirtioDevice, device_type};
use queues::{NetQueues, SharedBackend};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Both queues hold 256 descriptors.
const QUEUE_SIZES: &[u16] = &[256, 256];

/// Feature bits (virtio 1.2 §5.1.3).
pub mod features {
    /// The device has a MAC address in its configuration space.
    pub const MAC: u64 = 1 << 5;
    /// The configuration space has a link status.
    pub const STATUS: u64 = 1 << 16;
}

/// `status` in the configuration space: the link is up (and stays up).
const STATUS_LINK_UP: u16 = 1;

/// The guest's MAC address unless told otherwise (QEMU's default, locally administered).
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// `--net`: which network the guest gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetArg {
    /// No network device.
    None,
    /// The user-mode network (the default).
    #[default]
    User,
    /// A host tap interface.
    Tap(String),
}

impl FromStr for NetArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(NetArg::None),
            "user" => Ok(NetArg::User),
            _ => match text.strip_prefix("tap:") {
                Some(name) => tap::check_name(name).map(|()| NetArg::Tap(name.to_string())),
                None => Err(format!(
                    "unknown network '{text}' (expected user, tap:NAME or none)"
                )),
            },
        }
    }
}

impl NetArg {
    /// What to build for `--net self --publish publish`: None for no device. `--publish` needs
    /// the user network (a tap's ports are the host's business).
    pub fn into_mode(self, publish: Vec<Publish>) -> Result<Option<NetMode>, String> {
        match self {
            NetArg::User => Ok(Some(NetMode::User { publish })),
            _ if !publish.is_empty() => Err("--publish needs --net user".to_string()),
            NetArg::None => Ok(None),
            NetArg::Tap(name) => Ok(Some(NetMode::Tap { name })),
        }
    }
}

/// The backend of a [`Net`] device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    User { publish: Vec<Publish> },
    Tap { name: String },
}

/// Why a [`Net`] device could not be built.
#[derive(Debug)]
pub enum NetError {
    /// A `--publish` host port could not be bound (typically: already in use).
    Publish {
        publish: Publish,
        source: std::io::Error,
    },
    /// The tap interface could not be opened.
    Tap {
        name: String,
        source: std::io::Error,
    },
    /// The user network could not get its host resources (epoll, timerfd, eventfd).
    Host(std::io::Error),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The io::Error is the `source`: error chains (`{:#}`) print it after a colon.
            NetError::Publish { publish, .. } => {
                write!(
                    f,
                    "--publish {publish}: cannot listen on {}",
                    publish.host_addr()
                )
            }
            NetError::Tap { name, .. } => {
                write!(f, "--net tap:{name}: cannot open the tap interface")
            }
            NetError::Host(_) => write!(f, "user network: cannot get host resources"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Publish { source, .. }
            | NetError::Tap { source, .. }
            | NetError::Host(source) => Some(source),
        }
    }
}

/// A virtio-net device and its backend.
pub struct Net {
    /// The configuration space: mac[6], status (le16).
    config: [u8; 8],
    backend: SharedBackend,
    published: Vec<(Publish, SocketAddr)>,
    worker: Option<Worker>,
}

impl Net {
    /// Builds the device and its backend: for the user network, every `--publish` listener is
    /// bound here, so a busy port is an error before the guest boots.
    pub fn new(mode: NetMode, mac: [u8; 6]) -> Result<Net, NetError> {
        match mode {
            NetMode::User { publish } => Self::user(&publish, usernet::Config::default(), mac),
            NetMode::Tap { name } => {
                let tap = tap::Tap::open(&name).map_err(|source| NetError::Tap { name, source })?;
                Ok(Self::with_backend(Box::new(tap), Vec::new(), mac))
            }
        }
    }

    /// A device on the user network with the time-outs and host hooks of `config`.
    pub fn user(
        publish: &[Publish],
        config: usernet::Config,
        mac: [u8; 6],
    ) -> Result<Net, NetError> {
        let user = usernet::UserNet::with_config(publish, config).map_err(|e| match e {
            usernet::SetupError::Publish(publish, source) => NetError::Publish { publish, source },
            usernet::SetupError::Host(source) => NetError::Host(source),
        })?;
        let published = user.published();
        Ok(Self::with_backend(Box::new(user), published, mac))
    }

    fn with_backend(
        backend: Box<dyn NetBackend>,
        published: Vec<(Publish, SocketAddr)>,
        mac: [u8; 6],
    ) -> Net {
        let mut config = [0; 8];
        config[..6].copy_from_slice(&mac);
        config[6..].copy_from_slice(&STATUS_LINK_UP.to_le_bytes());
        Net {
            config,
            backend: Arc::new(Mutex::new(backend)),
            published,
            worker: None,
        }
    }

    /// Each `--publish` with the host address it listens on (its port filled in if it was 0).
    pub fn published(&self) -> &[(Publish, SocketAddr)] {
        &self.published
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        device_type::NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn device_features(&self) -> u64 {
        features::MAC | features::STATUS
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            let at = offset
                .checked_add(i as u64)
                .and_then(|at| usize::try_from(at).ok());
            *byte = at.and_then(|at| self.config.get(at)).copied().unwrap_or(0);
        }
    }

    // The MAC is writable only by legacy drivers; a modern driver must not write (§5.1.4.2).

    fn activate(&mut self, activation: Activation) -> anyhow::Result<()> {
        let Activation {
            mem,
            queues,
            queue_events,
            interrupt,
            ..
        } = activation;
        let Ok([rx, tx]) = <[_; 2]>::try_from(queues) else {
            anyhow::bail!("virtio-net needs both its receive and its transmit queue");
        };
        let handler = NetQueues::new(mem, rx, tx, interrupt, Arc::clone(&self.backend));
        self.worker = Some(Worker::spawn("virtio-net", queue_events, handler)?);
        Ok(())
    }

    fn reset(&mut self) {
        self.worker = None; // stops and joins the I/O thread
        self.backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reset();
    }
}
