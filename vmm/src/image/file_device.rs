//! The image file as a `noa_ext2` [`BlockDevice`]: positioned reads (`read_exact_at`), so the
//! reader needs no seek state, and the conversions between `std::io::Error` and the reader's
//! [`IoError`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use noa_ext2::{BlockDevice, IoError};

/// An open image file and its length, taken once at open (the image must not change while the
/// VMM reads it).
#[derive(Debug)]
pub(crate) struct FileDevice {
    file: File,
    len: u64,
}

impl FileDevice {
    pub(crate) fn new(file: File, len: u64) -> Self {
        FileDevice { file, len }
    }
}

impl BlockDevice for FileDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|error| match error.raw_os_error() {
                Some(errno) => IoError::Errno(errno),
                None if error.kind() == io::ErrorKind::UnexpectedEof => IoError::OutOfRange,
                None => IoError::Errno(libc::EIO),
            })
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// The `std` error for a failed device read, for messages.
pub(crate) fn io_error(error: IoError) -> io::Error {
    match error {
        IoError::Errno(errno) => io::Error::from_raw_os_error(errno),
        IoError::OutOfRange => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the image ended early (did it shrink?)",
        ),
        other => io::Error::other(other.to_string()),
    }
}
