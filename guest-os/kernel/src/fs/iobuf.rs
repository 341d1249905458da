//! Buffers that file operations read into and write from: user memory or a kernel slice.
//!
//! Every byte copied in ring 0 costs (~12 MB/s here), so a file system copies straight between
//! its own storage and the user's buffer where it can (tmpfs pages, pipe rings, tty input) —
//! [`ReadBuf::put`] and [`WriteBuf::get`] are the only copies. Data a device must fill (ext2) goes
//! through a kernel slice: for user buffers, a pooled bounce buffer ([`with_bounce`]) that is
//! reused rather than allocated, because a fresh heap buffer is zeroed (~195 µs per 4 KiB here).
//!
//! Owns: the buffer views and the bounce and page pools. Touches no file system state.

use crate::mm::uaccess;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::io::Iovec;
use spin::Mutex;

/// Size of one bounce buffer: the most one device request of a user read or write carries.
pub const BOUNCE_BYTES: usize = 64 * 1024;
/// Bounce buffers kept for reuse.
const BOUNCE_POOL: usize = 8;
/// 4 KiB pages (pipe rings) kept for reuse.
const PAGE_POOL: usize = 64;
pub const PAGE: usize = 4096;

/// Zeros to copy out for /dev/zero and holes (read-only data: no ring-0 zeroing per read). As
/// large as a bounce buffer: each user copy has a fixed cost of its own.
static ZEROS: [u8; BOUNCE_BYTES] = [0; BOUNCE_BYTES];

static BOUNCE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static PAGES: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// Where read data goes: `len` bytes of the current process's memory at `addr`, or a kernel
/// slice.
pub enum ReadBuf<'a> {
    User {
        addr: u64,
        len: usize,
    },
    /// Several user buffers in turn (readv, recvmsg): one read fills them as one, so a stream
    /// read never blocks for a later buffer once an earlier one got data.
    UserVec {
        iov: &'a [Iovec],
        len: usize,
    },
    Kernel(&'a mut [u8]),
}

/// Where written data comes from.
pub enum WriteBuf<'a> {
    User {
        addr: u64,
        len: usize,
    },
    /// Several user buffers in turn (writev, sendmsg), written as one.
    UserVec {
        iov: &'a [Iovec],
        len: usize,
    },
    Kernel(&'a [u8]),
}

/// The total length of `iov`, clamped to `MAX_RW_COUNT` as Linux clamps one transfer.
fn iov_len(iov: &[Iovec]) -> usize {
    let total = iov.iter().fold(0u64, |t, v| t.saturating_add(v.len));
    total.min(noa_linux_abi::io::MAX_RW_COUNT) as usize
}

/// Runs `each(user_address, offset_in_chunk, length)` over the parts of `iov` that the byte
/// range `[at, at + len)` of their concatenation covers.
fn iov_walk(
    iov: &[Iovec],
    at: usize,
    len: usize,
    mut each: impl FnMut(u64, usize, usize) -> SysResult<()>,
) -> SysResult<()> {
    let (mut skip, mut done) = (at as u64, 0usize);
    for v in iov {
        if done == len {
            break;
        }
        if skip >= v.len {
            skip -= v.len;
            continue;
        }
        let n = ((v.len - skip) as usize).min(len - done);
        let addr = v.base.checked_add(skip).ok_or(Errno::EFAULT)?;
        each(addr, done, n)?;
        done += n;
        skip = 0;
    }
    Ok(())
}

impl<'a> ReadBuf<'a> {
    pub fn user(addr: u64, len: usize) -> ReadBuf<'static> {
        ReadBuf::User { addr, len }
    }

    /// The user buffers of `iov`, read into as one.
    pub fn user_vec(iov: &'a [Iovec]) -> ReadBuf<'a> {
        ReadBuf::UserVec {
            iov,
            len: iov_len(iov),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ReadBuf::User { len, .. } | ReadBuf::UserVec { len, .. } => *len,
            ReadBuf::Kernel(slice) => slice.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `bytes` to offset `at` of the buffer (EFAULT for a bad user address; the range
    /// must lie inside the buffer, else EINVAL).
    pub fn put(&mut self, at: usize, bytes: &[u8]) -> SysResult<()> {
        let end = at.checked_add(bytes.len()).ok_or(Errno::EINVAL)?;
        if end > self.len() {
            return Err(Errno::EINVAL);
        }
        match self {
            ReadBuf::User { addr, .. } => {
                let to = addr.checked_add(at as u64).ok_or(Errno::EFAULT)?;
                uaccess::copy_to_user(to, bytes)
            }
            ReadBuf::UserVec { iov, .. } => iov_walk(iov, at, bytes.len(), |to, from, n| {
                uaccess::copy_to_user(to, &bytes[from..from + n])
            }),
            ReadBuf::Kernel(slice) => {
                slice[at..end].copy_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Fills `len` bytes at `at` with zeros.
    pub fn zero(&mut self, at: usize, len: usize) -> SysResult<()> {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len());
            self.put(at + done, &ZEROS[..n])?;
            done += n;
        }
        Ok(())
    }

    /// Fills the buffer (up to its length) through a kernel slice: `fill` gets a slice of at
    /// most [`BOUNCE_BYTES`] and returns how many bytes it produced. A kernel buffer is handed
    /// over directly; a user one goes through a bounce buffer, chunk by chunk, until `fill`
    /// returns fewer bytes than asked. Returns the bytes produced.
    pub fn fill_via_kernel(
        &mut self,
        mut fill: impl FnMut(u64, &mut [u8]) -> SysResult<usize>,
    ) -> SysResult<usize> {
        if let ReadBuf::Kernel(slice) = self {
            return fill(0, slice);
        }
        let total = self.len();
        let mut done = 0;
        while done < total {
            let want = (total - done).min(BOUNCE_BYTES);
            let got = with_bounce(want, |bounce| -> SysResult<usize> {
                let got = fill(done as u64, bounce)?.min(want);
                self.put(done, &bounce[..got])?;
                Ok(got)
            });
            match got {
                Ok(got) => {
                    done += got;
                    if got < want {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }
}

impl<'a> WriteBuf<'a> {
    pub fn user(addr: u64, len: usize) -> WriteBuf<'static> {
        WriteBuf::User { addr, len }
    }

    /// The user buffers of `iov`, written from as one.
    pub fn user_vec(iov: &'a [Iovec]) -> WriteBuf<'a> {
        WriteBuf::UserVec {
            iov,
            len: iov_len(iov),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            WriteBuf::User { len, .. } | WriteBuf::UserVec { len, .. } => *len,
            WriteBuf::Kernel(slice) => slice.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `dst.len()` bytes from offset `at` of the buffer into `dst`.
    pub fn get(&self, at: usize, dst: &mut [u8]) -> SysResult<()> {
        let end = at.checked_add(dst.len()).ok_or(Errno::EINVAL)?;
        if end > self.len() {
            return Err(Errno::EINVAL);
        }
        match self {
            WriteBuf::User { addr, .. } => {
                let from = addr.checked_add(at as u64).ok_or(Errno::EFAULT)?;
                uaccess::copy_from_user(from, dst)
            }
            WriteBuf::UserVec { iov, .. } => iov_walk(iov, at, dst.len(), |from, to, n| {
                uaccess::copy_from_user(from, &mut dst[to..to + n])
            }),
            WriteBuf::Kernel(slice) => {
                dst.copy_from_slice(&slice[at..end]);
                Ok(())
            }
        }
    }

    /// Drains the buffer through kernel slices of at most [`BOUNCE_BYTES`]: `sink` gets each
    /// chunk and returns how many bytes it took; stops at the first short take. Returns the
    /// bytes taken.
    pub fn drain_via_kernel(
        &self,
        mut sink: impl FnMut(&[u8]) -> SysResult<usize>,
    ) -> SysResult<usize> {
        if let WriteBuf::Kernel(slice) = self {
            return sink(slice);
        }
        let total = self.len();
        let mut done = 0;
        while done < total {
            let want = (total - done).min(BOUNCE_BYTES);
            let taken = with_bounce(want, |bounce| -> SysResult<usize> {
                self.get(done, bounce)?;
                Ok(sink(bounce)?.min(want))
            });
            match taken {
                Ok(taken) => {
                    done += taken;
                    if taken < want {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }
}

/// Runs `f` with a kernel buffer of `len` bytes (at most [`BOUNCE_BYTES`]) whose content is
/// unspecified. The buffer comes from a pool: only the first use of each pays for zeroing.
pub fn with_bounce<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    let len = len.min(BOUNCE_BYTES);
    let mut buffer = BOUNCE
        .lock()
        .pop()
        .unwrap_or_else(|| vec![0u8; BOUNCE_BYTES]);
    let result = f(&mut buffer[..len]);
    let mut pool = BOUNCE.lock();
    if pool.len() < BOUNCE_POOL {
        pool.push(buffer);
    }
    result
}

/// A 4 KiB page of unspecified content (recycled when possible).
pub fn take_page() -> Box<[u8]> {
    PAGES
        .lock()
        .pop()
        .unwrap_or_else(|| vec![0u8; PAGE].into_boxed_slice())
}

/// Gives a page from [`take_page`] back for reuse.
pub fn give_page(page: Box<[u8]>) {
    if page.len() == PAGE {
        let mut pool = PAGES.lock();
        if pool.len() < PAGE_POOL {
            pool.push(page);
        }
    }
}
