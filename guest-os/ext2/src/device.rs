//! The storage under a file system: [`BlockDevice`], its error, [`IoError`], and [`MemDisk`], a
//! writable image in memory for tests, fuzzing and ramdisks.
//!
//! The VMM implements it over the image file (read-only), the guest kernel over virtio-blk, the
//! tests over a byte vector. Reads and writes are at byte granularity on purpose: the file system
//! asks for exactly what it needs (a 128-byte inode, a few block pointers, a file's bytes straight
//! into or out of the caller's buffer, partial blocks included) and writes exactly the bytes that
//! changed (an inode, a bitmap byte, a directory entry), and a device over sectors handles
//! alignment and caching. Every method takes `&self`: a device shared by threads has its own
//! lock, and [`MemDisk`] uses a `RefCell`.

use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

/// Random-access storage holding a file system.
pub trait BlockDevice {
    /// Fills all of `buf` with the bytes at `offset`, or fails. The file system never asks for
    /// bytes past [`len`](Self::len) and never for an empty range.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;

    /// Writes all of `buf` at `offset`, or fails. The file system never writes past
    /// [`len`](Self::len) and never an empty range. A read-only device keeps this default.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        let _ = (offset, buf);
        Err(IoError::ReadOnly)
    }

    /// Makes every completed write durable (virtio-blk FLUSH, `fdatasync`).
    fn flush(&self) -> Result<(), IoError> {
        Ok(())
    }

    /// Size of the device in bytes.
    fn len(&self) -> u64;

    /// Whether the device holds no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a [`BlockDevice`] read, write or flush failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoError {
    /// The range runs past the end of the device (it shrank under us).
    OutOfRange,
    /// The device failed with this Linux errno value (for example 5, `EIO`), so that the guest can
    /// pass it on and the host can name it.
    Errno(i32),
    /// The device cannot be written.
    ReadOnly,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::OutOfRange => f.write_str("access past the end of the device"),
            IoError::Errno(errno) => write!(f, "device error (errno {errno})"),
            IoError::ReadOnly => f.write_str("the device is read-only"),
        }
    }
}

impl core::error::Error for IoError {}

impl<T: BlockDevice + ?Sized> BlockDevice for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        (**self).write_at(offset, buf)
    }

    fn flush(&self) -> Result<(), IoError> {
        (**self).flush()
    }

    fn len(&self) -> u64 {
        (**self).len()
    }
}

/// An image in memory, read-only (the VMM's tests, a borrowed image).
impl BlockDevice for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let src = range(self, offset, buf.len()).ok_or(IoError::OutOfRange)?;
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

/// `len` bytes of `bytes` at `offset`, if they are all inside it.
fn range(bytes: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// A writable image in memory of a fixed size: tests, fuzzing, a ramdisk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemDisk(RefCell<Vec<u8>>);

impl MemDisk {
    /// A disk holding `bytes`; it never grows or shrinks.
    pub fn new(bytes: Vec<u8>) -> Self {
        MemDisk(RefCell::new(bytes))
    }

    /// The bytes, giving the disk up.
    pub fn into_inner(self) -> Vec<u8> {
        self.0.into_inner()
    }

    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.borrow().clone()
    }
}

impl BlockDevice for MemDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.0.borrow().as_slice().read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        let mut bytes = self.0.borrow_mut();
        let start = usize::try_from(offset).map_err(|_| IoError::OutOfRange)?;
        let end = start.checked_add(buf.len()).ok_or(IoError::OutOfRange)?;
        let dst = bytes.get_mut(start..end).ok_or(IoError::OutOfRange)?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.0.borrow().len() as u64
    }
}
