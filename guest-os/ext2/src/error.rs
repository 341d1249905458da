//! [`Error`]: every way reading the file system can fail, as data (no allocation), so that the
//! guest kernel can map each to an errno and the VMM to a one-line message.

use core::fmt;

use crate::corrupt::Corrupt;
use crate::device::IoError;
use crate::features::Unsupported;
use crate::inode::{FileType, InodeNo};

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why an operation on the file system failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The device failed to read `len` bytes at byte `offset`.
    Io {
        offset: u64,
        len: usize,
        error: IoError,
    },
    /// The device is too small to hold an ext2 superblock.
    TooSmall { len: u64 },
    /// The superblock magic is not ext2's.
    NotExt2 { magic: u16 },
    /// The superblock describes a file system larger than the device.
    Truncated { fs_bytes: u64, device_len: u64 },
    /// A valid file system this reader does not handle (ext4 features, a huge group count).
    Unsupported(Unsupported),
    /// The file system contradicts itself; it needs `e2fsck`.
    Corrupt(Corrupt),
    /// A path given to [`Ext2::lookup_path`](crate::Ext2::lookup_path) does not start with `/`.
    NotAbsolute,
    /// A name (a path component) is longer than [`NAME_MAX`](crate::NAME_MAX) bytes.
    NameTooLong,
    /// A path component does not exist.
    NotFound,
    /// A directory operation met an inode that is not a directory.
    NotADirectory { ino: InodeNo },
    /// A file read met an inode that is not a regular file.
    NotARegularFile { ino: InodeNo, file_type: FileType },
    /// A symlink read met an inode that is not a symbolic link.
    NotASymlink { ino: InodeNo, file_type: FileType },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { offset, len, error } => {
                write!(f, "I/O error reading {len} bytes at byte {offset}: {error}")
            }
            Error::TooSmall { len } => write!(
                f,
                "the device is too small to be an ext2 file system ({len} bytes)"
            ),
            Error::NotExt2 { magic } => write!(
                f,
                "not an ext2 file system (bad superblock magic {magic:#06x}, expected 0xef53)"
            ),
            Error::Truncated {
                fs_bytes,
                device_len,
            } => write!(
                f,
                "truncated file system: the superblock says it is {fs_bytes} bytes, but the \
                 device holds only {device_len}"
            ),
            Error::Unsupported(what) => write!(f, "unsupported file system: {what}"),
            Error::Corrupt(what) => write!(f, "corrupt ext2 file system: {what}"),
            Error::NotAbsolute => f.write_str("not an absolute path"),
            Error::NameTooLong => f.write_str("a name is longer than 255 bytes"),
            Error::NotFound => f.write_str("no such file or directory"),
            Error::NotADirectory { ino } => write!(f, "inode {ino} is not a directory"),
            Error::NotARegularFile { ino, file_type } => {
                write!(f, "inode {ino} is a {file_type}, not a regular file")
            }
            Error::NotASymlink { ino, file_type } => {
                write!(f, "inode {ino} is a {file_type}, not a symbolic link")
            }
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<Corrupt> for Error {
    fn from(what: Corrupt) -> Self {
        Error::Corrupt(what)
    }
}

impl From<Unsupported> for Error {
    fn from(what: Unsupported) -> Self {
        Error::Unsupported(what)
    }
}
