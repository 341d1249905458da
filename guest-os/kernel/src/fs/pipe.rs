//! Pipes: a 64 KiB ring between a read end and a write end.
//!
//! Blocking and O_NONBLOCK (EAGAIN) on both ends; EOF once every write end is closed and the
//! ring is empty; EPIPE and SIGPIPE for a write with no read end left; writes of at most
//! `PIPE_BUF` (4096) bytes are atomic (they wait for room for all of it); poll readiness
//! (POLLIN / POLLOUT when at least `PIPE_BUF` bytes are free, POLLHUP on the read end once the
//! writers are gone, POLLERR on the write end once the readers are).
//!
//! The ring is a [`PageRing`]: its pages are taken when data first reaches them and recycled
//! when the pipe goes (a fresh 64 KiB buffer would cost ~3 ms of ring-0 zeroing per pipe here,
//! and a shell makes a pipe per `|`).
//!
//! Each end is its own inode ([`PipeEnd`]) held by exactly one open file (shared by dup and
//! fork): when the open file goes, the end's drop updates the reader or writer count.
//!
//! Owns: pipe buffers and their ends.

use super::iobuf::PAGE;
use super::poll::Pollee;
use super::ring::PageRing;
use super::{
    FileKind, Inode, InodeId, InodeRef, Io, OpenFile, READY_IN, READY_OUT, ReadBuf, WriteBuf,
};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::io::{POLLERR, POLLHUP};
use noa_linux_abi::stat::{PIPEFS_MAGIC, Stat, Statfs, makedev};
use noa_linux_abi::tty::FIONREAD;
use spin::Mutex;

/// Ring size (Linux's default pipe capacity).
pub const PIPE_BYTES: usize = 64 * 1024;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;
/// `st_dev` of pipes (Linux's pipefs is an anonymous device too).
const DEV: u64 = makedev(0, 12);
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

struct Ring {
    data: PageRing,
    readers: usize,
    writers: usize,
}

pub struct Pipe {
    ring: Mutex<Ring>,
    pollee: Pollee,
    ino: u64,
    created: noa_linux_abi::time::Timespec,
}

/// One end of a pipe.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
}

/// A new pipe: (read end, write end), each to be held by one open file.
pub fn new_pipe() -> (InodeRef, InodeRef) {
    let pipe = Arc::new(Pipe {
        ring: Mutex::new(Ring {
            data: PageRing::new(PIPE_BYTES),
            readers: 1,
            writers: 1,
        }),
        pollee: Pollee::new(),
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        created: super::now(),
    });
    (
        Arc::new(PipeEnd {
            pipe: pipe.clone(),
            write: false,
        }),
        Arc::new(PipeEnd { pipe, write: true }),
    )
}

/// A new pipe as two open files (read end O_RDONLY, write end O_WRONLY, plus `flags`' status
/// bits such as O_NONBLOCK).
pub fn new_pipe_files(flags: u32) -> (super::FileRef, super::FileRef) {
    use noa_linux_abi::fcntl::{O_NONBLOCK, O_RDONLY, O_WRONLY};
    let (reader, writer) = new_pipe();
    let status = flags & O_NONBLOCK;
    (
        OpenFile::new(reader, O_RDONLY | status, alloc::vec::Vec::new()),
        OpenFile::new(writer, O_WRONLY | status, alloc::vec::Vec::new()),
    )
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        {
            let mut ring = self.pipe.ring.lock();
            if self.write {
                ring.writers -= 1;
            } else {
                ring.readers -= 1;
            }
        }
        self.pipe.pollee.notify();
    }
}

enum Step {
    Done(usize),
    Wait,
}

impl PipeEnd {
    fn try_read(&self, buf: &mut ReadBuf<'_>, io: Io) -> SysResult<Step> {
        let mut ring = self.pipe.ring.lock();
        if !ring.data.is_empty() {
            return ring.data.read_into(buf, false).map(Step::Done);
        }
        if ring.writers == 0 {
            return Ok(Step::Done(0));
        }
        if io.nonblock {
            return Err(Errno::EAGAIN);
        }
        Ok(Step::Wait)
    }

    /// One attempt to write the part of `buf` from `at`: Done(n) when it wrote n > 0 bytes (or
    /// must stop), Wait when there is no room yet.
    fn try_write(&self, buf: &WriteBuf<'_>, at: usize, io: Io) -> SysResult<Step> {
        let mut ring = self.pipe.ring.lock();
        if ring.readers == 0 {
            return Err(Errno::EPIPE);
        }
        let left = buf.len() - at;
        let free = ring.data.free();
        // Atomic writes need room for all of it; larger ones take what fits.
        let need = if buf.len() <= PIPE_BUF { left } else { 1 };
        if free >= need {
            return ring.data.write_from(buf, at, left).map(Step::Done);
        }
        if io.nonblock {
            return Err(Errno::EAGAIN);
        }
        Ok(Step::Wait)
    }
}

impl Inode for PipeEnd {
    fn id(&self) -> InodeId {
        (DEV, self.pipe.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::Fifo
    }

    fn stat(&self) -> SysResult<Stat> {
        let len = self.pipe.ring.lock().data.len();
        Ok(Stat {
            dev: DEV,
            ino: self.pipe.ino,
            nlink: 1,
            mode: FileKind::Fifo.mode_bits() | 0o600,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: len as i64,
            blksize: PAGE as i64,
            blocks: 0,
            atime: self.pipe.created,
            mtime: self.pipe.created,
            ctime: self.pipe.created,
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(Statfs {
            f_type: PIPEFS_MAGIC,
            bsize: PAGE as i64,
            namelen: 255,
            frsize: PAGE as i64,
            ..Statfs::default()
        })
    }

    fn read_at(&self, _offset: u64, buf: &mut ReadBuf<'_>, io: Io) -> SysResult<usize> {
        if self.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        // Try first: a wait needs a current thread, and most reads find data.
        let n = match self.try_read(buf, io)? {
            Step::Done(n) => n,
            Step::Wait => {
                self.pipe
                    .pollee
                    .queue()
                    .wait_until(|| match self.try_read(buf, io) {
                        Ok(Step::Done(n)) => Some(Ok(n)),
                        Ok(Step::Wait) => None,
                        Err(e) => Some(Err(e)),
                    })??
            }
        };
        if n > 0 {
            self.pipe.pollee.notify();
        }
        Ok(n)
    }

    fn write_at(&self, _offset: u64, buf: &WriteBuf<'_>, io: Io) -> SysResult<usize> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        let total = buf.len();
        if total == 0 {
            return Ok(0);
        }
        let mut written = 0;
        while written < total {
            let step =
                match self.try_write(buf, written, io) {
                    Ok(Step::Wait) => self.pipe.pollee.queue().wait_until(|| {
                        match self.try_write(buf, written, io) {
                            Ok(Step::Wait) => None,
                            other => Some(other),
                        }
                    }),
                    other => Ok(other),
                };
            match step {
                Ok(Ok(Step::Done(n))) if n > 0 => {
                    written += n;
                    self.pipe.pollee.notify();
                    if io.nonblock {
                        // Non-blocking: what fitted now.
                        break;
                    }
                }
                Ok(Ok(_)) => break,
                Ok(Err(e)) | Err(e) => {
                    if e == Errno::EPIPE {
                        crate::task::signal::raise_current(noa_linux_abi::signal::SIGPIPE);
                    }
                    if written > 0 {
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn poll(&self) -> u32 {
        let ring = self.pipe.ring.lock();
        if self.write {
            let mut ready = 0;
            if ring.data.free() >= PIPE_BUF {
                ready |= READY_OUT;
            }
            if ring.readers == 0 {
                ready |= u32::from(POLLERR);
            }
            ready
        } else {
            let mut ready = 0;
            if !ring.data.is_empty() {
                ready |= READY_IN;
            }
            if ring.writers == 0 {
                ready |= u32::from(POLLHUP);
            }
            ready
        }
    }

    fn pollee(&self) -> Option<&Pollee> {
        Some(&self.pipe.pollee)
    }

    fn ioctl(&self, _file: &OpenFile, cmd: u32, arg: u64) -> SysResult<u64> {
        match cmd {
            FIONREAD => {
                let len = self.pipe.ring.lock().data.len() as u32;
                crate::mm::uaccess::write_u32(arg, len)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn anon_name(&self) -> Option<String> {
        Some(format!("pipe:[{}]", self.pipe.ino))
    }
}
