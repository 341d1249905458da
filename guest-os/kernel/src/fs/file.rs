//! [`OpenFile`]: an open file description — the inode, the file position and the status flags
//! — shared by every descriptor that dup, fork or SCM_RIGHTS made from one open.
//!
//! The position is read before and updated after an I/O, not held locked across it (a device
//! read may sleep): two threads reading one descriptor at once may read the same bytes, which
//! POSIX leaves unspecified for anything but regular files and Linux avoids with `f_pos_lock`.
//!
//! Owns: positions and status flags. The I/O itself is the inode's.

use super::{FileKind, InodeRef, Io, ReadBuf, WriteBuf};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::fcntl::{
    O_ACCMODE, O_APPEND, O_DIRECT, O_NOATIME, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, O_WRONLY,
    SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET,
};
use spin::Mutex;

/// An open file, shared by the descriptors that refer to it.
pub type FileRef = Arc<OpenFile>;

/// Status flags `F_SETFL` may change here.
const SETTABLE: u32 = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;
/// Flags remembered for `F_GETFL` (the access mode, O_PATH and the settable ones; the creation
/// flags are gone after open, as in Linux).
const KEPT: u32 = O_ACCMODE | O_PATH | SETTABLE | noa_linux_abi::fcntl::O_LARGEFILE;

pub struct OpenFile {
    inode: InodeRef,
    position: Mutex<u64>,
    flags: AtomicU32,
    /// The canonical path it was opened by (empty for pipes and other anonymous files).
    path: Vec<u8>,
    /// Whether it ever took a `flock` lock (then closing it must drop the lock).
    flocked: AtomicBool,
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if self.flocked.load(Ordering::Relaxed) {
            super::flock::release_all(self);
        }
    }
}

impl OpenFile {
    /// An open file of `inode` with open flags `flags` (only the access mode and status flags
    /// are kept), reached by `path`.
    pub fn new(inode: InodeRef, flags: u32, path: Vec<u8>) -> FileRef {
        Arc::new(OpenFile {
            inode,
            position: Mutex::new(0),
            flags: AtomicU32::new(flags & KEPT),
            path,
            flocked: AtomicBool::new(false),
        })
    }

    /// flock(2) on this open file description ([`super::flock`]).
    pub fn flock(&self, request: super::flock::Request, nonblock: bool) -> SysResult<()> {
        if request != super::flock::Request::Unlock {
            self.flocked.store(true, Ordering::Relaxed);
        }
        super::flock::flock(self, request, nonblock)
    }

    pub fn inode(&self) -> &InodeRef {
        &self.inode
    }

    /// The name for /proc/self/fd and getcwd after fchdir: the path it was opened by, or the
    /// anonymous name (`pipe:[N]`).
    pub fn path(&self) -> Vec<u8> {
        if self.path.is_empty() {
            self.inode
                .anon_name()
                .map(|n| n.into_bytes())
                .unwrap_or_default()
        } else {
            self.path.clone()
        }
    }

    /// The path it was opened by (empty for anonymous files).
    pub fn opened_path(&self) -> &[u8] {
        &self.path
    }

    /// The flags as `F_GETFL` reports them.
    pub fn status_flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// `F_SETFL`: changes O_APPEND, O_NONBLOCK (and the accepted no-ops); the rest is ignored.
    pub fn set_status_flags(&self, flags: u32) {
        let _ = self
            .flags
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some((old & !SETTABLE) | (flags & SETTABLE))
            });
    }

    /// Sets or clears O_NONBLOCK alone (FIONBIO).
    pub fn set_nonblocking(&self, on: bool) {
        if on {
            self.flags.fetch_or(O_NONBLOCK, Ordering::AcqRel);
        } else {
            self.flags.fetch_and(!O_NONBLOCK, Ordering::AcqRel);
        }
    }

    pub fn is_path_only(&self) -> bool {
        self.status_flags() & O_PATH != 0
    }

    pub fn readable(&self) -> bool {
        let flags = self.status_flags();
        flags & O_PATH == 0 && matches!(flags & O_ACCMODE, O_RDONLY | O_RDWR)
    }

    pub fn writable(&self) -> bool {
        let flags = self.status_flags();
        flags & O_PATH == 0 && matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    pub fn io(&self) -> Io {
        Io {
            nonblock: self.status_flags() & O_NONBLOCK != 0,
        }
    }

    /// read(2): from the file position, which advances.
    pub fn read(&self, buf: &mut ReadBuf<'_>) -> SysResult<usize> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return self.inode.read_at(0, buf, self.io());
        }
        let at = *self.position.lock();
        let n = self.inode.read_at(at, buf, self.io())?;
        *self.position.lock() = at.saturating_add(n as u64);
        Ok(n)
    }

    /// write(2): at the file position (or the end, with O_APPEND), which advances.
    pub fn write(&self, buf: &WriteBuf<'_>) -> SysResult<usize> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return self.inode.write_at(0, buf, self.io());
        }
        if self.status_flags() & O_APPEND != 0 {
            let (n, end) = self.inode.append(buf, self.io())?;
            *self.position.lock() = end;
            return Ok(n);
        }
        let at = *self.position.lock();
        let n = self.inode.write_at(at, buf, self.io())?;
        *self.position.lock() = at.saturating_add(n as u64);
        Ok(n)
    }

    /// pread64: at `offset`, leaving the position alone.
    pub fn pread(&self, offset: u64, buf: &mut ReadBuf<'_>) -> SysResult<usize> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return Err(Errno::ESPIPE);
        }
        self.inode.read_at(offset, buf, self.io())
    }

    /// pwrite64: at `offset` (Linux appends anyway with O_APPEND), leaving the position alone.
    pub fn pwrite(&self, offset: u64, buf: &WriteBuf<'_>) -> SysResult<usize> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return Err(Errno::ESPIPE);
        }
        if self.status_flags() & O_APPEND != 0 {
            return self.inode.append(buf, self.io()).map(|(n, _)| n);
        }
        self.inode.write_at(offset, buf, self.io())
    }

    /// Reads at `offset` into a kernel buffer, for the ELF loader and file mappings: whatever the
    /// access mode, never moving the position. Returns the bytes read (0 at end of file).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> SysResult<usize> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.inode
            .read_at(offset, &mut ReadBuf::Kernel(buf), Io::default())
    }

    /// lseek(2).
    pub fn seek(&self, offset: i64, whence: u32) -> SysResult<u64> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return Err(Errno::ESPIPE);
        }
        let mut position = self.position.lock();
        let base = match whence {
            SEEK_SET => 0,
            SEEK_CUR => *position as i64,
            SEEK_END => self.inode.size() as i64,
            SEEK_DATA | SEEK_HOLE => {
                // No holes are reported: all data, one hole at the end.
                let size = self.inode.size() as i64;
                if offset < 0 || offset >= size {
                    return Err(Errno::ENXIO);
                }
                let at = if whence == SEEK_DATA { offset } else { size };
                *position = at as u64;
                return Ok(at as u64);
            }
            _ => return Err(Errno::EINVAL),
        };
        let target = base.checked_add(offset).ok_or(Errno::EOVERFLOW)?;
        // Directories take any cookie their readdir handed out; files any non-negative offset.
        if target < 0 {
            return Err(Errno::EINVAL);
        }
        *position = target as u64;
        Ok(target as u64)
    }

    pub fn position(&self) -> u64 {
        *self.position.lock()
    }

    pub fn set_position(&self, position: u64) {
        *self.position.lock() = position;
    }

    pub fn is_directory(&self) -> bool {
        self.inode.kind() == FileKind::Directory
    }
}
