//! The storage under a file system: [`BlockDevice`], and its error, [`IoError`].
//!
//! The VMM implements it over the image file, the guest kernel over virtio-blk, the tests over a
//! byte vector. Reads are at byte granularity on purpose: the reader asks for exactly what it
//! needs (a 128-byte inode, a few block pointers, a file's bytes straight into the caller's
//! buffer, partial blocks included), and a device over sectors handles alignment and caching.
//! Writes will come as a `write_at` beside `read_at` when the file system learns to write.

use alloc::vec::Vec;
use core::fmt;

/// Random-access storage holding a file system.
pub trait BlockDevice {
    /// Fills all of `buf` with the bytes at `offset`, or fails. The file system never asks for
    /// bytes past [`len`](Self::len) and never for an empty range.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;

    /// Size of the device in bytes.
    fn len(&self) -> u64;

    /// Whether the device holds no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a [`BlockDevice`] read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoError {
    /// The range runs past the end of the device (it shrank under us).
    OutOfRange,
    /// The device failed with this Linux errno value (for example 5, `EIO`), so that the guest can
    /// pass it on and the host can name it.
    Errno(i32),
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::OutOfRange => f.write_str("read past the end of the device"),
            IoError::Errno(errno) => write!(f, "device error (errno {errno})"),
        }
    }
}

impl core::error::Error for IoError {}

impl<T: BlockDevice + ?Sized> BlockDevice for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read_at(offset, buf)
    }

    fn len(&self) -> u64 {
        (**self).len()
    }
}

/// An image in memory (tests, fuzzing, a ramdisk).
impl BlockDevice for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let start = usize::try_from(offset).map_err(|_| IoError::OutOfRange)?;
        let end = start.checked_add(buf.len()).ok_or(IoError::OutOfRange)?;
        let src = self.get(start..end).ok_or(IoError::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl BlockDevice for Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.as_slice().read_at(offset, buf)
    }

    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
}
