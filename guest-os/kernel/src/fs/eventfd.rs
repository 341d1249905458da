//! eventfd: a 64-bit counter as a file. A read takes the whole count (or 1, with
//! EFD_SEMAPHORE) and waits while it is 0; a write adds and waits while the sum would pass
//! `u64::MAX - 1`. Reads and writes move exactly 8 bytes (EINVAL for less); writing
//! `u64::MAX` is EINVAL. Readable while the count is positive, writable while at least 1 more
//! fits.
//!
//! Owns: eventfd counters.

use super::poll::Pollee;
use super::{FileKind, Inode, InodeId, Io, READY_IN, READY_OUT, ReadBuf, WriteBuf};
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{ANON_INODE_FS_MAGIC, Stat, Statfs, makedev};
use spin::Mutex;

/// The largest count (`0xffff_ffff_ffff_fffe`).
const MAX_COUNT: u64 = u64::MAX - 1;
/// `st_dev` of anonymous inodes.
pub const ANON_DEV: u64 = makedev(0, 13);
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    pollee: Pollee,
    ino: u64,
}

impl EventFd {
    pub fn new(initial: u32, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(u64::from(initial)),
            semaphore,
            pollee: Pollee::new(),
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn try_take(&self) -> Option<u64> {
        let mut count = self.count.lock();
        if *count == 0 {
            return None;
        }
        let taken = if self.semaphore { 1 } else { *count };
        *count -= taken;
        Some(taken)
    }

    fn try_add(&self, value: u64) -> bool {
        let mut count = self.count.lock();
        if MAX_COUNT - *count < value {
            return false;
        }
        *count += value;
        true
    }
}

impl Inode for EventFd {
    fn id(&self) -> InodeId {
        (ANON_DEV, self.ino)
    }

    fn kind(&self) -> FileKind {
        // Linux reports anonymous inodes with no type bits; a regular file is the closest.
        FileKind::Regular
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(Stat {
            dev: ANON_DEV,
            ino: self.ino,
            nlink: 1,
            mode: 0o600,
            blksize: 4096,
            ..Stat::default()
        })
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(Statfs {
            f_type: ANON_INODE_FS_MAGIC,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..Statfs::default()
        })
    }

    fn read_at(&self, _offset: u64, buf: &mut ReadBuf<'_>, io: Io) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let value = match self.try_take() {
            Some(value) => value,
            None if io.nonblock => return Err(Errno::EAGAIN),
            None => self.pollee.queue().wait_until(|| self.try_take())?,
        };
        self.pollee.notify();
        buf.put(0, &value.to_le_bytes())?;
        Ok(8)
    }

    fn write_at(&self, _offset: u64, buf: &WriteBuf<'_>, io: Io) -> SysResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let mut bytes = [0u8; 8];
        buf.get(0, &mut bytes)?;
        let value = u64::from_le_bytes(bytes);
        if value == u64::MAX {
            return Err(Errno::EINVAL);
        }
        if !self.try_add(value) {
            if io.nonblock {
                return Err(Errno::EAGAIN);
            }
            self.pollee
                .queue()
                .wait_until(|| self.try_add(value).then_some(()))?;
        }
        self.pollee.notify();
        Ok(8)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn poll(&self) -> u32 {
        let count = *self.count.lock();
        let mut ready = 0;
        if count > 0 {
            ready |= READY_IN;
        }
        if count < MAX_COUNT {
            ready |= READY_OUT;
        }
        ready
    }

    fn pollee(&self) -> Option<&Pollee> {
        Some(&self.pollee)
    }

    fn anon_name(&self) -> Option<String> {
        Some("anon_inode:[eventfd]".into())
    }
}
