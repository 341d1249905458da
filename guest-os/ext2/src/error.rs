//! [`Error`]: every way reading or writing the file system can fail, as data (no allocation), so
//! that the guest kernel can take the errno from [`Error::errno`] and the VMM a one-line message.

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
    /// The device failed to write `len` bytes at byte `offset`.
    WriteIo {
        offset: u64,
        len: usize,
        error: IoError,
    },
    /// The device failed to make its writes durable.
    Flush(IoError),
    /// The device is too small to hold an ext2 superblock.
    TooSmall { len: u64 },
    /// The superblock magic is not ext2's.
    NotExt2 { magic: u16 },
    /// The superblock describes a file system larger than the device.
    Truncated { fs_bytes: u64, device_len: u64 },
    /// A valid file system this crate does not handle (ext4 features, a huge group count), or
    /// one it can read but not write.
    Unsupported(Unsupported),
    /// The file system contradicts itself; it needs `e2fsck`.
    Corrupt(Corrupt),
    /// The superblock records errors (`s_state` has `EXT2_ERROR_FS`): it must be checked with
    /// `e2fsck` before it is written.
    NeedsCheck { state: u16 },
    /// A change to a file system opened read-only ([`Ext2::open`](crate::Ext2::open), or after
    /// [`Ext2::unmount`](crate::Ext2::unmount)).
    ReadOnly,
    /// A path given to [`Ext2::lookup_path`](crate::Ext2::lookup_path) does not start with `/`.
    NotAbsolute,
    /// A name (a path component) is longer than [`NAME_MAX`](crate::NAME_MAX) bytes.
    NameTooLong,
    /// A name no entry can be created or removed with: empty, holding `/` or NUL, `.` or `..`.
    InvalidName,
    /// A path component or directory entry does not exist.
    NotFound,
    /// The name to create exists.
    Exists,
    /// A directory to remove or replace holds entries besides `.` and `..`.
    NotEmpty,
    /// No free block or inode is left.
    NoSpace,
    /// A file would grow past the largest size this file system stores.
    FileTooBig,
    /// An inode would get more than [`LINK_MAX`](crate::LINK_MAX) links.
    TooManyLinks,
    /// An argument that makes no sense for this operation (the text says why).
    InvalidArgument(&'static str),
    /// An operation Linux refuses with `EPERM` (a hard link to a directory, changing a reserved
    /// inode).
    NotPermitted(&'static str),
    /// A directory operation met an inode that is not a directory.
    NotADirectory { ino: InodeNo },
    /// A non-directory operation (unlink, link, write) met a directory.
    IsADirectory { ino: InodeNo },
    /// A file read met an inode that is not a regular file.
    NotARegularFile { ino: InodeNo, file_type: FileType },
    /// A symlink read met an inode that is not a symbolic link.
    NotASymlink { ino: InodeNo, file_type: FileType },
}

/// Linux errno values (asm-generic/errno-base.h, errno.h).
mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const EEXIST: i32 = 17;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const EFBIG: i32 = 27;
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const EMLINK: i32 = 31;
    pub const ENAMETOOLONG: i32 = 36;
    pub const ENOTEMPTY: i32 = 39;
    pub const EOPNOTSUPP: i32 = 95;
}

impl Error {
    /// The Linux errno a system call failing with this error returns. Corruption and device
    /// failures are `EIO` (a device error that carries its own errno passes it on); unsupported
    /// file systems `EOPNOTSUPP`; what is not an ext2 file system at all `EINVAL`, as mount says.
    pub fn errno(&self) -> i32 {
        use errno::*;
        match self {
            Error::Io { error, .. } | Error::WriteIo { error, .. } | Error::Flush(error) => {
                match *error {
                    IoError::Errno(e) if e > 0 => e,
                    IoError::ReadOnly => EROFS,
                    _ => EIO,
                }
            }
            Error::TooSmall { .. }
            | Error::NotExt2 { .. }
            | Error::Truncated { .. }
            | Error::NotAbsolute
            | Error::InvalidName
            | Error::InvalidArgument(_)
            | Error::NotASymlink { .. } => EINVAL,
            Error::Unsupported(_) => EOPNOTSUPP,
            Error::Corrupt(_) | Error::NeedsCheck { .. } => EIO,
            Error::ReadOnly => EROFS,
            Error::NameTooLong => ENAMETOOLONG,
            Error::NotFound => ENOENT,
            Error::Exists => EEXIST,
            Error::NotEmpty => ENOTEMPTY,
            Error::NoSpace => ENOSPC,
            Error::FileTooBig => EFBIG,
            Error::TooManyLinks => EMLINK,
            Error::NotPermitted(_) => EPERM,
            Error::NotADirectory { .. } => ENOTDIR,
            Error::IsADirectory { .. } => EISDIR,
            Error::NotARegularFile { file_type, .. } => {
                if *file_type == FileType::Directory {
                    EISDIR
                } else {
                    EINVAL
                }
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { offset, len, error } => {
                write!(f, "I/O error reading {len} bytes at byte {offset}: {error}")
            }
            Error::WriteIo { offset, len, error } => {
                write!(f, "I/O error writing {len} bytes at byte {offset}: {error}")
            }
            Error::Flush(error) => write!(f, "I/O error flushing the device: {error}"),
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
            Error::NeedsCheck { state } => write!(
                f,
                "the file system records errors (state {state:#x}): run e2fsck before writing it"
            ),
            Error::ReadOnly => f.write_str("the file system is open read-only"),
            Error::NotAbsolute => f.write_str("not an absolute path"),
            Error::NameTooLong => f.write_str("a name is longer than 255 bytes"),
            Error::InvalidName => {
                f.write_str("invalid name (empty, '.', '..', or holding '/' or NUL)")
            }
            Error::NotFound => f.write_str("no such file or directory"),
            Error::Exists => f.write_str("the name exists"),
            Error::NotEmpty => f.write_str("the directory is not empty"),
            Error::NoSpace => f.write_str("no space left on the file system"),
            Error::FileTooBig => f.write_str("the file would be larger than ext2 allows"),
            Error::TooManyLinks => f.write_str("too many links"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::NotPermitted(why) => write!(f, "operation not permitted: {why}"),
            Error::NotADirectory { ino } => write!(f, "inode {ino} is not a directory"),
            Error::IsADirectory { ino } => write!(f, "inode {ino} is a directory"),
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
            Error::Io { error, .. } | Error::WriteIo { error, .. } | Error::Flush(error) => {
                Some(error)
            }
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
