//! The backing file of a virtio-blk device: opening and locking it, its size in sectors, and the
//! `--snapshot` copy-on-write overlay.
//!
//! This file owns every host file operation of the device and knows nothing of virtqueues or guest
//! memory. It never writes the base file of a read-only or snapshot disk: those are opened
//! `O_RDONLY`, so the kernel enforces it as well.
//!
//! Locking follows QEMU: a read-write open takes an exclusive `flock`, read-only and snapshot
//! opens a shared one, both non-blocking, held for as long as the [`Disk`] lives (the lock belongs
//! to the open file description, so it goes away with the fd, even if the VMM is killed).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Bytes per virtio-blk sector (fixed by the spec, whatever `blk_size` says).
pub const SECTOR_BYTES: u64 = 512;

/// Granularity of the snapshot overlay: a write copies whole chunks of the base file up first.
const CHUNK_BYTES: u64 = 4096;

/// Why a disk could not be attached. Each message is one line that starts with the path.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("{path}: cannot open: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "{path}: not writable ({reason}); add :ro to attach it read-only, or use --snapshot for a private copy"
    )]
    NotWritable { path: String, reason: String },
    #[error("{path}: not a disk image ({what}); give a regular file or a block device")]
    NotADisk { path: String, what: &'static str },
    #[error("{path}: is in use by another process ({holder}); {advice}")]
    InUse {
        path: String,
        holder: &'static str,
        advice: &'static str,
    },
    #[error("{path}: cannot lock: {reason}")]
    Lock { path: String, reason: String },
    #[error("{path}: cannot read its size: {reason}")]
    Size { path: String, reason: String },
    #[error("{path}: cannot create the --snapshot overlay in {dir}: {reason}")]
    Overlay {
        path: String,
        dir: String,
        reason: String,
    },
}

/// An open disk image.
#[derive(Debug)]
pub struct Disk {
    /// The path as the user gave it, for messages.
    name: String,
    base: File,
    /// Bytes the guest sees: the file size rounded down to whole sectors.
    len: u64,
    read_only: bool,
    overlay: Option<Overlay>,
}

/// Writes of a `--snapshot` disk: a private, already-unlinked sparse file as large as the disk,
/// and one bit per chunk saying whether that chunk lives there rather than in the base file.
#[derive(Debug)]
struct Overlay {
    file: File,
    present: Vec<u64>,
}

impl Disk {
    /// Opens and locks `path`. `read_only`: the guest may not write. `snapshot`: the guest's writes
    /// go to a private overlay that disappears with the process.
    pub fn open(path: &Path, read_only: bool, snapshot: bool) -> Result<Disk, BlockError> {
        let name = path.display().to_string();
        // Look before opening: opening a FIFO read-only would block until a writer appears.
        let metadata = std::fs::metadata(path).map_err(|e| BlockError::Open {
            path: name.clone(),
            reason: reason(&e),
        })?;
        check_kind(&name, &metadata)?;

        let write_base = !read_only && !snapshot;
        let base = OpenOptions::new()
            .read(true)
            .write(write_base)
            .open(path)
            .map_err(|e| open_error(&name, write_base, &e))?;
        // The path may have been replaced between the two looks.
        let metadata = base.metadata().map_err(|e| BlockError::Open {
            path: name.clone(),
            reason: reason(&e),
        })?;
        check_kind(&name, &metadata)?;

        lock(&name, &base, write_base)?;

        // Seeking to the end works for block devices too, whose metadata says 0 bytes.
        let size = (&base)
            .seek(SeekFrom::End(0))
            .map_err(|e| BlockError::Size {
                path: name.clone(),
                reason: reason(&e),
            })?;
        let len = size - size % SECTOR_BYTES;
        if len != size {
            tracing::debug!(
                "{name}: {size} bytes is not a whole number of {SECTOR_BYTES}-byte sectors; the guest sees {len} bytes"
            );
        }

        let overlay = if snapshot && !read_only {
            Some(Overlay::create(&name, len)?)
        } else {
            None
        };
        tracing::debug!(
            "{name}: {} sectors, {}{}",
            len / SECTOR_BYTES,
            if read_only { "read-only" } else { "read-write" },
            if snapshot { ", snapshot" } else { "" }
        );
        Ok(Disk {
            name,
            base,
            len,
            read_only,
            overlay,
        })
    }

    /// The path as the user gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes the guest sees (a whole number of sectors).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The guest may not write.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Reads `len` bytes at byte `offset` through `read(file, position, at, n)`, which must read
    /// `n` bytes of `file` at `position` into bytes `at..at + n` of the caller's buffer: the
    /// buffer may be guest memory, read into with no copy in between.
    pub fn read_with(
        &self,
        offset: u64,
        len: usize,
        mut read: impl FnMut(&File, u64, usize, usize) -> io::Result<()>,
    ) -> io::Result<()> {
        self.check_range(offset, len)?;
        let Some(overlay) = &self.overlay else {
            return if len == 0 {
                Ok(())
            } else {
                read(&self.base, offset, 0, len)
            };
        };
        // Runs of chunks that live in the same file are read with one call.
        let mut done = 0;
        while done < len {
            let pos = offset + done as u64;
            let in_overlay = overlay.has(pos / CHUNK_BYTES);
            let mut end = (pos / CHUNK_BYTES + 1) * CHUNK_BYTES;
            let stop = offset + len as u64;
            while end < stop && overlay.has(end / CHUNK_BYTES) == in_overlay {
                end += CHUNK_BYTES;
            }
            let run = (end.min(stop) - pos) as usize;
            let file = if in_overlay {
                &overlay.file
            } else {
                &self.base
            };
            read(file, pos, done, run)?;
            done += run;
        }
        Ok(())
    }

    /// Writes `len` bytes at byte `offset` through `write(file, position, at, n)`, which must
    /// write bytes `at..at + n` of the caller's buffer (which may be guest memory) to `file` at
    /// `position`.
    pub fn write_with(
        &mut self,
        offset: u64,
        len: usize,
        mut write: impl FnMut(&File, u64, usize, usize) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the disk is read-only",
            ));
        }
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let Some(overlay) = &mut self.overlay else {
            return write(&self.base, offset, 0, len);
        };
        let end = offset + len as u64;
        let first = offset / CHUNK_BYTES;
        let last = (end - 1) / CHUNK_BYTES;
        // Only the two edge chunks can be partly covered; they need the base's bytes first.
        for chunk in [first, last] {
            let chunk_start = chunk * CHUNK_BYTES;
            let chunk_end = (chunk_start + CHUNK_BYTES).min(self.len);
            let covered = offset <= chunk_start && chunk_end <= end;
            if !covered && !overlay.has(chunk) {
                let mut bytes = [0u8; CHUNK_BYTES as usize];
                let bytes = &mut bytes[..(chunk_end - chunk_start) as usize];
                self.base.read_exact_at(bytes, chunk_start)?;
                overlay.file.write_all_at(bytes, chunk_start)?;
                overlay.set(chunk);
            }
        }
        write(&overlay.file, offset, 0, len)?;
        // Marked only now: after a failed write, reads still see the base's bytes.
        for chunk in first..=last {
            overlay.set(chunk);
        }
        Ok(())
    }

    /// Makes completed writes durable. Nothing to do for read-only and snapshot disks: the first
    /// never changes, and the overlay is thrown away at exit anyway.
    pub fn flush(&self) -> io::Result<()> {
        if self.read_only || self.overlay.is_some() {
            return Ok(());
        }
        self.base.sync_data()
    }

    fn check_range(&self, offset: u64, bytes: usize) -> io::Result<()> {
        match offset.checked_add(bytes as u64) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "beyond the end of the disk",
            )),
        }
    }
}

impl Overlay {
    fn create(name: &str, len: u64) -> Result<Overlay, BlockError> {
        let dir = std::env::temp_dir();
        let error = |e: io::Error| BlockError::Overlay {
            path: name.to_string(),
            dir: dir.display().to_string(),
            reason: reason(&e),
        };
        let file = create_unlinked(&dir).map_err(error)?;
        // Sparse: nothing is allocated until a chunk is written.
        file.set_len(len).map_err(error)?;
        let chunks = len.div_ceil(CHUNK_BYTES);
        let words = usize::try_from(chunks.div_ceil(64))
            .map_err(|_| error(io::Error::other("disk too large")))?;
        Ok(Overlay {
            file,
            present: vec![0; words],
        })
    }

    fn has(&self, chunk: u64) -> bool {
        self.present
            .get((chunk / 64) as usize)
            .is_some_and(|word| word & (1 << (chunk % 64)) != 0)
    }

    fn set(&mut self, chunk: u64) {
        if let Some(word) = self.present.get_mut((chunk / 64) as usize) {
            *word |= 1 << (chunk % 64);
        }
    }
}

/// A new file in `dir` that has no name: `O_TMPFILE` where the filesystem supports it, otherwise
/// a file created exclusively and unlinked at once.
pub fn create_unlinked(dir: &Path) -> io::Result<File> {
    let tmpfile = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match tmpfile {
        Ok(file) => Ok(file),
        // Filesystems without O_TMPFILE say EOPNOTSUPP; kernels that predate it, EISDIR.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            create_then_unlink(dir)
        }
        Err(e) => Err(e),
    }
}

/// The fallback of [`create_unlinked`]: the name exists only between `open` and `unlink`.
pub fn create_then_unlink(dir: &Path) -> io::Result<File> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..16u32 {
        let path = dir.join(format!(
            ".noa-vmm-snapshot-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    ))
}

/// Only regular files and block devices are disks.
fn check_kind(name: &str, metadata: &std::fs::Metadata) -> Result<(), BlockError> {
    let kind = metadata.file_type();
    if kind.is_file() || kind.is_block_device() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(BlockError::NotADisk {
        path: name.to_string(),
        what,
    })
}

fn open_error(name: &str, write: bool, e: &io::Error) -> BlockError {
    let path = name.to_string();
    match e.raw_os_error() {
        Some(libc::EISDIR) => BlockError::NotADisk {
            path,
            what: "a directory",
        },
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY) if write => {
            BlockError::NotWritable {
                path,
                reason: reason(e),
            }
        }
        _ => BlockError::Open {
            path,
            reason: reason(e),
        },
    }
}

/// Takes the lock for the lifetime of `file`: exclusive for a read-write disk, shared otherwise.
fn lock(name: &str, file: &File, exclusive: bool) -> Result<(), BlockError> {
    match try_lock(file, exclusive) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let path = name.to_string();
            // Say who holds it: if a shared lock is free, the holders are read-only or snapshot
            // users, and a snapshot of our own would work. (Our fd is closed on return, which
            // drops this probe lock again.)
            if exclusive && try_lock(file, false).is_ok() {
                Err(BlockError::InUse {
                    path,
                    holder: "attached read-only or with --snapshot",
                    advice: "use --snapshot for a private copy, or :ro",
                })
            } else if exclusive {
                Err(BlockError::InUse {
                    path,
                    holder: "locked read-write",
                    advice: "a disk has one read-write user at a time",
                })
            } else {
                Err(BlockError::InUse {
                    path,
                    holder: "locked read-write",
                    advice: "read-only and --snapshot users must wait until it ends",
                })
            }
        }
        // Filesystems without flock: go on unlocked, as QEMU does.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS)
            ) =>
        {
            tracing::warn!(
                "{name}: cannot lock ({}); attached without a lock",
                reason(&e)
            );
            Ok(())
        }
        Err(e) => Err(BlockError::Lock {
            path: name.to_string(),
            reason: reason(&e),
        }),
    }
}

/// A non-blocking `flock`, through std (which uses `flock` on Linux, the lock QEMU takes too).
fn try_lock(file: &File, exclusive: bool) -> io::Result<()> {
    let result = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    result.map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
        std::fs::TryLockError::Error(e) => e,
    })
}

/// The error's text without Rust's " (os error N)" suffix: "No such file or directory".
fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}
