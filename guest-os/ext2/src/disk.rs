//! [`Disk`]: the one place that reads and writes the device once the file system is open. It
//! refuses any access outside the file system, whatever a corrupt pointer asked for, and names
//! the range of a failed access.

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
        self.check_inside(offset, buf.len())?;
        read_device(&self.dev, offset, buf)
    }

    /// Writes `buf` at byte `offset` of the file system.
    pub(crate) fn write(&self, offset: u64, buf: &[u8]) -> Result<()> {
        self.check_inside(offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        self.dev
            .write_at(offset, buf)
            .map_err(|error| Error::WriteIo {
                offset,
                len: buf.len(),
                error,
            })
    }

    /// Makes every write so far durable.
    pub(crate) fn flush(&self) -> Result<()> {
        self.dev.flush().map_err(Error::Flush)
    }

    fn check_inside(&self, offset: u64, len: usize) -> Result<()> {
        let inside = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.fs_bytes);
        if inside {
            Ok(())
        } else {
            Err(Corrupt::OutsideFileSystem {
                offset,
                len,
                fs_bytes: self.fs_bytes,
            }
            .into())
        }
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
