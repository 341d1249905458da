//! The guest image as the VMM reads it before the guest runs: open `guest.img` and read
//! `/boot/kernel` and `/boot/cmdline` out of it.
//!
//! The ext2 format, and every rule for reading it as hostile input (validated superblock, group
//! descriptors, inodes, block pointers and directory entries; bounded reads, allocations and
//! loops; no panics), lives in the shared `noa-ext2` crate (`guest-os/ext2`), which the guest
//! kernel uses for its root file system too. This module owns what is the VMM's own: the image
//! file (over [`FileDevice`]), the path rules of [`Ext2Image::read_file`] (absolute, normalized,
//! no `.` or `..`, no symlinks followed), the caller's size cap, which is checked before anything
//! is allocated for the file, and [`ImageError`], one-line messages that name the image.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use noa_ext2::{Ext2, FileType, Inode};

use super::file_device::{FileDevice, io_error};

/// Why reading the guest image failed. Each message is one line that names the image first, so it
/// reads well after a `vmm: ` prefix.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: cannot open disk image: {error}", .image.display())]
    Open { image: PathBuf, error: io::Error },
    #[error("{}: I/O error reading {len} bytes at byte {offset}: {error}", .image.display())]
    Io {
        image: PathBuf,
        offset: u64,
        len: usize,
        error: io::Error,
    },
    #[error("{}: image is empty (0 bytes)", .image.display())]
    Empty { image: PathBuf },
    #[error("{}: image is too small to be an ext2 file system ({len} bytes)", .image.display())]
    TooSmall { image: PathBuf, len: u64 },
    #[error("{}: image is truncated: {detail}", .image.display())]
    Truncated { image: PathBuf, detail: String },
    #[error(
        "{}: not an ext2 file system (bad superblock magic {magic:#06x}, expected 0xef53)",
        .image.display()
    )]
    NotExt2 { image: PathBuf, magic: u16 },
    #[error("{}: unsupported file system: {detail}", .image.display())]
    Unsupported { image: PathBuf, detail: String },
    #[error("{}: corrupt ext2 file system: {detail}", .image.display())]
    Corrupt { image: PathBuf, detail: String },
    #[error("{}: {file}: bad path: {detail}", .image.display())]
    BadPath {
        image: PathBuf,
        file: String,
        detail: &'static str,
    },
    #[error("{}: {file}: no such file in the image", .image.display())]
    NotFound { image: PathBuf, file: String },
    #[error("{}: {file}: {parent} is not a directory", .image.display())]
    NotADirectory {
        image: PathBuf,
        file: String,
        parent: String,
    },
    #[error("{}: {file}: not a regular file (it is a {kind})", .image.display())]
    NotRegularFile {
        image: PathBuf,
        file: String,
        kind: &'static str,
    },
    #[error(
        "{}: {file}: file is too large ({size} bytes, the limit is {max_len} bytes)",
        .image.display()
    )]
    TooLarge {
        image: PathBuf,
        file: String,
        size: u64,
        max_len: u64,
    },
}

/// An open ext2 image: the validated file system over the image file. Reads go straight to the
/// file, so the image must not change while it is open.
#[derive(Debug)]
pub struct Ext2Image {
    fs: Ext2<FileDevice>,
    path: PathBuf,
}

impl Ext2Image {
    /// Opens `path` and validates its superblock, group descriptors and root directory.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let open_error = |error| ImageError::Open {
            image: path.to_owned(),
            error,
        };
        let file = File::open(path).map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        if !meta.is_file() {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(open_error(error));
        }
        let fs = Ext2::open(FileDevice::new(file, meta.len()))
            .map_err(|error| image_error(path, error))?;
        Ok(Ext2Image {
            fs,
            path: path.to_owned(),
        })
    }

    /// Reads a whole regular file; refuses files larger than `max_len` bytes with
    /// [`ImageError::TooLarge`]. `path` is absolute (`/boot/kernel`); symlinks are not followed.
    pub fn read_file(&self, path: &str, max_len: u64) -> Result<Vec<u8>, ImageError> {
        let inode = self.lookup(path)?;
        if inode.file_type() != FileType::Regular {
            return Err(ImageError::NotRegularFile {
                image: self.path.clone(),
                file: path.to_owned(),
                kind: inode.file_type().name(),
            });
        }
        let too_large = || ImageError::TooLarge {
            image: self.path.clone(),
            file: path.to_owned(),
            size: inode.size(),
            max_len,
        };
        if inode.size() > max_len {
            return Err(too_large());
        }
        // The reader checked the size against what the block map can address; the cap keeps
        // the allocation to what the caller accepts. Holes are zero-filled by the reader.
        let len = usize::try_from(inode.size()).map_err(|_| too_large())?;
        let mut data = vec![0u8; len];
        let read = self
            .fs
            .read(&inode, 0, &mut data)
            .map_err(|e| self.error(e))?;
        data.truncate(read);
        Ok(data)
    }

    /// Resolves an absolute path to its inode, one directory lookup per component.
    fn lookup(&self, path: &str) -> Result<Inode, ImageError> {
        let components = self.split_path(path)?;
        let mut inode = self.fs.inode(self.fs.root()).map_err(|e| self.error(e))?;
        let mut walked = String::new();
        for name in components {
            if inode.file_type() != FileType::Directory {
                return Err(ImageError::NotADirectory {
                    image: self.path.clone(),
                    file: path.to_owned(),
                    parent: walked,
                });
            }
            let found = self.fs.lookup(&inode, name.as_bytes());
            let Some(ino) = found.map_err(|e| self.error(e))? else {
                return Err(ImageError::NotFound {
                    image: self.path.clone(),
                    file: path.to_owned(),
                });
            };
            inode = self.fs.inode(ino).map_err(|e| self.error(e))?;
            walked.push('/');
            walked.push_str(name);
        }
        Ok(inode)
    }

    /// Splits `/a/b` into `["a", "b"]`. Only absolute, normalized paths are accepted: refusing
    /// `.` and `..` keeps lookups a plain walk down the tree.
    fn split_path<'p>(&self, path: &'p str) -> Result<Vec<&'p str>, ImageError> {
        let bad = |detail| ImageError::BadPath {
            image: self.path.clone(),
            file: path.to_owned(),
            detail,
        };
        if !path.starts_with('/') {
            return Err(bad("not an absolute path"));
        }
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if components.iter().any(|c| *c == "." || *c == "..") {
            return Err(bad("`.` and `..` are not allowed"));
        }
        if components.iter().any(|c| c.len() > noa_ext2::NAME_MAX) {
            return Err(bad("a component is longer than 255 bytes"));
        }
        Ok(components)
    }

    fn error(&self, error: noa_ext2::Error) -> ImageError {
        image_error(&self.path, error)
    }
}

/// The message for a reader error, naming `image`.
fn image_error(image: &Path, error: noa_ext2::Error) -> ImageError {
    use noa_ext2::Error;
    let image = image.to_owned();
    match error {
        Error::Io { offset, len, error } => ImageError::Io {
            image,
            offset,
            len,
            error: io_error(error),
        },
        Error::TooSmall { len: 0 } => ImageError::Empty { image },
        Error::TooSmall { len } => ImageError::TooSmall { image, len },
        Error::NotExt2 { magic } => ImageError::NotExt2 { image, magic },
        Error::Truncated {
            fs_bytes,
            device_len,
        } => ImageError::Truncated {
            image,
            detail: format!(
                "the superblock says the file system is {fs_bytes} bytes, but the image holds \
                 only {device_len}"
            ),
        },
        Error::Unsupported(what) => ImageError::Unsupported {
            image,
            detail: what.to_string(),
        },
        Error::Corrupt(what) => ImageError::Corrupt {
            image,
            detail: what.to_string(),
        },
        // Path and file-type errors: `read_file` checks paths and types itself, so the reader
        // does not raise these for it; should one come, it is still a problem with the image.
        other => ImageError::Corrupt {
            image,
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
