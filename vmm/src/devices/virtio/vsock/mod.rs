//! virtio-vsock (virtio 1.2 §5.10): stream sockets between the guest and the host, with the host
//! end on Unix sockets as Firecracker does it.
//!
//! - Host → guest: the VMM listens on `PATH`. A host program connects and writes
//!   `CONNECT <port>\n`; the guest gets a REQUEST to `port` from a fresh host port (1024 up), and
//!   when it answers RESPONSE the program reads `OK <host port>\n`; from then on the Unix stream
//!   carries the connection's bytes both ways. A refusal (RST) or no answer within 2 s closes it.
//! - Guest → host: a REQUEST to CID 2 port P connects to the Unix socket `PATH_P`; success gets a
//!   RESPONSE, failure an RST.
//!
//! This file owns the device as the transport sees it — identity, feature bits, the config space
//! (the guest's CID), activation and reset — and its errors. `config` parses `--vsock`,
//! `packet` is the header layout, `connection` one connection's state and flow control,
//! `muxer` the table of connections and the host sockets, `unix` the Unix socket plumbing,
//! and `queues` moves packets between the virtqueues and the muxer on the I/O thread.
//!
//! The listening socket is bound in [`Vsock::new`] and lives as long as the device; connections
//! live as long as an activation (a reset closes them all).
//!
//! Everything the guest or a host program can make the VMM hold is bounded: 1024 connections,
//! each buffering at most the 256 KiB of credit it grants the guest (host → guest bytes are never
//! buffered: they are read only when the guest has room and a receive buffer); 64 host programs
//! that have not sent `CONNECT` (5 s each); 64 KiB per packet; and 256 RSTs waiting for receive
//! buffers, past which the guest's transmit queue waits too.

mod config;
mod connection;
mod log_once;
mod muxer;
mod packet;
mod queues;
mod unix;

#[cfg(test)]
mod tests;

pub use config::VsockConfig;

use super::worker::Worker;
use super::{Activation, Queue, VirtioDevice, device_type};
use muxer::{Gauges, Muxer};
use queues::{TX, VsockQueues};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const QUEUE_SIZES: &[u16] = &[256, 256, 256];

/// Device feature bits (§5.10.3).
pub mod features {
    /// Stream sockets (implied without F_NO_IMPLIED_STREAM; offered for drivers that look).
    pub const STREAM: u64 = 1 << 0;
}

/// Config space: `le64 guest_cid`.
const CONFIG_BYTES: usize = 8;

/// Why the device could not be created. Each names what the user gave.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    #[error("--vsock cid={cid}: {reason}")]
    Cid { cid: u64, reason: String },
    #[error("{path}: another program listens on this vsock socket; give another uds=PATH")]
    InUse { path: String },
    #[error("{path}: exists and is not a socket; not replacing it with the vsock socket")]
    NotASocket { path: String },
    #[error("{path}: cannot listen on it for vsock: {source}")]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A virtio-vsock device whose host side is the Unix socket `uds_path` (and `uds_path_PORT`).
pub struct Vsock {
    guest_cid: u64,
    uds_path: PathBuf,
    listener: Arc<UnixListener>,
    /// The socket file we created (device and inode), removed when the device goes if it is
    /// still ours.
    socket_file: Option<(u64, u64)>,
    gauges: Arc<Gauges>,
    worker: Option<Worker>,
}

impl Vsock {
    /// A device for a guest with CID `guest_cid` (3 ..= 2^32 - 2). Binds the listener on
    /// `uds_path` now, so a busy or unusable path is a usage error before the VM starts: a
    /// socket file nothing listens on any more is replaced; anything else is left alone.
    pub fn new(guest_cid: u64, uds_path: &Path) -> Result<Vsock, VsockError> {
        config::check_cid(guest_cid).map_err(|reason| VsockError::Cid {
            cid: guest_cid,
            reason,
        })?;
        let listener = unix::bind_listener(uds_path)?;
        let socket_file = std::fs::symlink_metadata(uds_path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Ok(Vsock {
            guest_cid,
            uds_path: uds_path.to_path_buf(),
            listener: Arc::new(listener),
            socket_file,
            gauges: Arc::default(),
            worker: None,
        })
    }
}

impl Drop for Vsock {
    fn drop(&mut self) {
        self.worker = None;
        let ours = std::fs::symlink_metadata(&self.uds_path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.socket_file {
            let _ = std::fs::remove_file(&self.uds_path);
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        device_type::VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn device_features(&self) -> u64 {
        features::STREAM
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.guest_cid.to_le_bytes();
        for (i, byte) in data.iter_mut().enumerate() {
            let at = offset
                .checked_add(i as u64)
                .and_then(|o| usize::try_from(o).ok());
            *byte = at.filter(|&o| o < CONFIG_BYTES).map_or(0, |o| config[o]);
        }
    }

    // write_config: the default (ignore); guest_cid is read-only.

    fn activate(&mut self, activation: Activation) -> anyhow::Result<()> {
        let Activation {
            mem,
            queues,
            queue_events,
            interrupt,
            ..
        } = activation;
        // The transport passes only the queues the driver made ready, without their indices.
        let Ok(queues) = <[Queue; 3]>::try_from(queues) else {
            anyhow::bail!("virtio-vsock needs its receive, transmit and event queues ready");
        };
        if queue_events.len() != 3 {
            anyhow::bail!(
                "virtio-vsock: expected 3 queue eventfds, got {}",
                queue_events.len()
            );
        }
        let muxer = Muxer::new(
            self.guest_cid,
            self.uds_path.clone(),
            Arc::clone(&self.listener),
            Arc::clone(&self.gauges),
        )
        .map_err(|e| anyhow::anyhow!("virtio-vsock: cannot watch the host sockets: {e}"))?;
        // Transmit chains the driver posted before DRIVER_OK: one pass at start takes them.
        let kick = queue_events[TX].try_clone()?;
        let handler = VsockQueues::new(mem, queues, interrupt, muxer);
        self.worker = Some(Worker::spawn("virtio-vsock", queue_events, handler)?);
        kick.write(1)?;
        Ok(())
    }

    fn reset(&mut self) {
        // Joins the thread; dropping the muxer closes every connection's host stream. The
        // listener stays: host programs connecting meanwhile wait in its backlog.
        self.worker = None;
    }
}

#[cfg(test)]
impl Vsock {
    fn gauges(&self) -> &Gauges {
        &self.gauges
    }
}
