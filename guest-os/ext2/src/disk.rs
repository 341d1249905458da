//! [`Disk`]: the one place that reads the device once the file system is open. It refuses any
//! read outside the file system, whatever a corrupt pointer asked for, and names the range of a
//! failed read.

use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::{Error, Result};

/// The device, fenced to the file system's bytes.
#[derive(Debug)]
pub(crate) struct Disk<D> {
    pub(crate) dev: D,
    pub(crate) fs_bytes: u64,
}

impl<D: BlockDevice> Disk<D> {
    /// Fills `buf` from byte `offset` of the file system.
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let inside = offset
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= self.fs_bytes);
        if !inside {
            return Err(Corrupt::OutsideFileSystem {
                offset,
                len: buf.len(),
                fs_bytes: self.fs_bytes,
            }
            .into());
        }
        read_device(&self.dev, offset, buf)
    }
}

/// Fills `buf` from byte `offset` of `dev` (non-empty reads only), naming the range on failure.
pub(crate) fn read_device<D: BlockDevice + ?Sized>(
    dev: &D,
    offset: u64,
    buf: &mut [u8],
) -> Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    dev.read_at(offset, buf).map_err(|error| Error::Io {
        offset,
        len: buf.len(),
        error,
    })
}
