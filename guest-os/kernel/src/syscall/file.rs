//! File-descriptor system calls: read, write, readv, writev, pread64, pwrite64, preadv,
//! pwritev, lseek, close, close_range, dup, dup2, dup3, fcntl, ioctl, pipe, pipe2, sendfile,
//! fsync, fdatasync, flock, fadvise64. The files themselves are `crate::fs`'s.
//!
//! Every argument is hostile: descriptors are checked against the table (EBADF), counts are
//! clamped to Linux's `MAX_RW_COUNT`, iovec counts to `IOV_MAX` (EINVAL), and user buffers are
//! only touched through `mm::uaccess` (EFAULT).
//!
//! Partial: fcntl record locks (F_GETLK/F_SETLK/F_SETLKW and the OFD forms) and flock succeed
//! without locking anything (one machine, and the programs we run use them as advisory);
//! F_SETPIPE_SZ keeps pipes at 64 KiB; sendfile copies through a kernel buffer.

use super::Caller;
use crate::fs::fd::NOFILE_MAX;
use crate::fs::iobuf::{BOUNCE_BYTES, with_bounce};
use crate::fs::{FileKind, FileRef, ReadBuf, WriteBuf, pipe};
use crate::mm::uaccess;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::fcntl::{
    F_ADD_SEALS, F_DUPFD, F_DUPFD_CLOEXEC, F_GET_SEALS, F_GETFD, F_GETFL, F_GETLK, F_GETOWN,
    F_GETPIPE_SZ, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_SETFD, F_SETFL, F_SETLK, F_SETLKW,
    F_SETOWN, F_SETPIPE_SZ, F_UNLCK, FD_CLOEXEC, Flock, O_CLOEXEC, O_DIRECT, O_NONBLOCK,
};
use noa_linux_abi::io::{IOV_MAX, Iovec, MAX_RW_COUNT, decode_iovecs};
use noa_linux_abi::syscalls as nr;
use noa_linux_abi::tty::{FIOASYNC, FIOCLEX, FIONBIO, FIONCLEX, FIONREAD};
use spin::Mutex;

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_READ, read),
    (nr::SYS_WRITE, write),
    (nr::SYS_READV, readv),
    (nr::SYS_WRITEV, writev),
    (nr::SYS_PREAD64, pread64),
    (nr::SYS_PWRITE64, pwrite64),
    (nr::SYS_PREADV, preadv),
    (nr::SYS_PWRITEV, pwritev),
    (nr::SYS_LSEEK, lseek),
    (nr::SYS_CLOSE, close),
    (nr::SYS_CLOSE_RANGE, close_range),
    (nr::SYS_DUP, dup),
    (nr::SYS_DUP2, dup2),
    (nr::SYS_DUP3, dup3),
    (nr::SYS_FCNTL, fcntl),
    (nr::SYS_IOCTL, ioctl),
    (nr::SYS_PIPE, pipe),
    (nr::SYS_PIPE2, pipe2),
    (nr::SYS_SENDFILE, sendfile),
    (nr::SYS_FSYNC, fsync),
    (nr::SYS_FDATASYNC, fsync),
    (nr::SYS_FLOCK, flock),
    (nr::SYS_SYNC, sync),
    (nr::SYS_SYNCFS, syncfs),
    (nr::SYS_SYNC_FILE_RANGE, sync_file_range),
    (nr::SYS_FALLOCATE, fallocate),
    (nr::SYS_FADVISE64, fadvise64),
];

/// RLIMIT_NOFILE's index.
const RLIMIT_NOFILE: usize = 7;

/// The current process's descriptor table.
pub fn files() -> Arc<Mutex<crate::fs::FdTable>> {
    crate::task::current().process.files.clone()
}

/// The open file behind descriptor `fd` (the low 32 bits of the argument, as Linux reads an
/// `int`).
pub fn file(me: &Caller, fd: u64) -> SysResult<FileRef> {
    me.process.files.lock().get(fd as i32)
}

/// [`file`] for helpers that are not handed the calling thread.
pub fn current_file(fd: u64) -> SysResult<FileRef> {
    file(&crate::task::current(), fd)
}

/// The current RLIMIT_NOFILE (soft), capped at what a table can hold.
pub fn nofile_limit() -> usize {
    let limit = crate::task::current().process.rlimit(RLIMIT_NOFILE);
    usize::try_from(limit).unwrap_or(usize::MAX).min(NOFILE_MAX)
}

/// Installs `file` at the lowest free descriptor.
pub fn install(file: FileRef, cloexec: bool) -> SysResult<u64> {
    let limit = nofile_limit();
    let fd = files().lock().insert_from(0, file, cloexec, limit)?;
    Ok(fd as u64)
}

/// A byte count as read/write take it: at most `MAX_RW_COUNT`.
fn count(arg: u64) -> usize {
    arg.min(MAX_RW_COUNT) as usize
}

/// A file offset argument: negative is EINVAL.
fn offset(arg: u64) -> SysResult<u64> {
    if (arg as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(arg)
}

fn read(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    let n = file.read(&mut ReadBuf::user(a[1], count(a[2])))?;
    Ok(n as u64)
}

fn write(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    let len = fsize_clamp(me, &file, None, count(a[2]))?;
    let n = file.write(&WriteBuf::user(a[1], len))?;
    Ok(n as u64)
}

/// RLIMIT_FSIZE's index.
const RLIMIT_FSIZE: usize = 1;

/// RLIMIT_FSIZE for a write of `len` bytes to a regular file at `at` (None: the file position,
/// or its end with O_APPEND): the bytes that may be written, or EFBIG with SIGXFSZ when none may.
fn fsize_clamp(me: &Caller, file: &FileRef, at: Option<u64>, len: usize) -> SysResult<usize> {
    let limit = me.process.rlimit(RLIMIT_FSIZE);
    if limit == u64::MAX || len == 0 || file.inode().kind() != crate::fs::FileKind::Regular {
        return Ok(len);
    }
    let at = match at {
        Some(at) => at,
        None if file.status_flags() & noa_linux_abi::fcntl::O_APPEND != 0 => {
            file.inode().stat()?.size as u64
        }
        None => file.position(),
    };
    if at >= limit {
        crate::task::signal::raise_current(noa_linux_abi::signal::SIGXFSZ);
        return Err(Errno::EFBIG);
    }
    Ok(len.min((limit - at) as usize))
}

/// The iovec array at `addr` (`count` entries).
pub fn iovecs(addr: u64, count: u64) -> SysResult<Vec<Iovec>> {
    let count = usize::try_from(count).map_err(|_| Errno::EINVAL)?;
    if count > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; count * Iovec::SIZE];
    uaccess::copy_from_user(addr, &mut raw)?;
    decode_iovecs(&raw, count)
}

/// Runs `one` over each iovec in turn (clamped so the total stays within `MAX_RW_COUNT`) until
/// one transfers less than its length; returns the total, or the first error if nothing moved.
fn vectored(
    iovecs: &[Iovec],
    mut one: impl FnMut(u64, usize) -> SysResult<usize>,
) -> SysResult<u64> {
    let mut total = 0usize;
    for iov in iovecs {
        let len = (iov.len as usize).min(MAX_RW_COUNT as usize - total);
        if len == 0 {
            if total == MAX_RW_COUNT as usize {
                break;
            }
            continue;
        }
        match one(iov.base, len) {
            Ok(n) => {
                total += n;
                if n < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total as u64)
}

fn readv(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    if !file.readable() {
        return Err(Errno::EBADF);
    }
    let iovecs = iovecs(a[1], a[2])?;
    if !file.inode().seekable() {
        // Pipes, sockets, ttys: one read over all the buffers, which never waits for the later
        // ones once the first got data.
        return Ok(file.read(&mut ReadBuf::user_vec(&iovecs))? as u64);
    }
    vectored(&iovecs, |base, len| {
        file.read(&mut ReadBuf::user(base, len))
    })
}

fn writev(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    if !file.writable() {
        return Err(Errno::EBADF);
    }
    let iovecs = iovecs(a[1], a[2])?;
    if !file.inode().seekable() {
        // One write: a datagram socket sends it as one message, a pipe keeps it atomic.
        return Ok(file.write(&WriteBuf::user_vec(&iovecs))? as u64);
    }
    vectored(&iovecs, |base, len| {
        let len = fsize_clamp(me, &file, None, len)?;
        file.write(&WriteBuf::user(base, len))
    })
}

fn pread64(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    let at = offset(a[3])?;
    Ok(file.pread(at, &mut ReadBuf::user(a[1], count(a[2])))? as u64)
}

fn pwrite64(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    let at = offset(a[3])?;
    let len = fsize_clamp(me, &file, Some(at), count(a[2]))?;
    Ok(file.pwrite(at, &WriteBuf::user(a[1], len))? as u64)
}

fn preadv(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    let mut at = offset(a[3])?;
    let iovecs = iovecs(a[1], a[2])?;
    vectored(&iovecs, |base, len| {
        let n = file.pread(at, &mut ReadBuf::user(base, len))?;
        at += n as u64;
        Ok(n)
    })
}

fn pwritev(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    let mut at = offset(a[3])?;
    let iovecs = iovecs(a[1], a[2])?;
    vectored(&iovecs, |base, len| {
        let n = file.pwrite(at, &WriteBuf::user(base, len))?;
        at += n as u64;
        Ok(n)
    })
}

fn lseek(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    file(me, a[0])?.seek(a[1] as i64, a[2] as u32)
}

fn close(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let closed = files().lock().remove(a[0] as i32)?;
    // The last reference may wake a pipe's peer: dropped outside the table's lock.
    drop(closed);
    Ok(0)
}

fn close_range(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    use noa_linux_abi::fcntl::{CLOSE_RANGE_CLOEXEC, CLOSE_RANGE_UNSHARE};
    let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2] as u32);
    if flags & !(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    // CLOSE_RANGE_UNSHARE: the table is shared only by CLONE_FILES threads, which then see the
    // closes too (accepted as a simplification).
    let closed = files()
        .lock()
        .close_range(first, last, flags & CLOSE_RANGE_CLOEXEC != 0);
    drop(closed);
    Ok(0)
}

fn dup(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    install(file, false)
}

/// dup2/dup3's common part.
fn dup_to(old: u64, new: u64, cloexec: bool) -> SysResult<u64> {
    let new_fd = new as i32;
    if new_fd < 0 || new_fd as usize >= nofile_limit() {
        return Err(Errno::EBADF);
    }
    let table = files();
    let replaced = {
        let mut table = table.lock();
        let file = table.get(old as i32)?;
        table.insert_at(new_fd, file, cloexec)?
    };
    drop(replaced);
    Ok(new_fd as u64)
}

fn dup2(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if a[0] as i32 == a[1] as i32 {
        file(me, a[0])?;
        return Ok(a[1] as i32 as u64);
    }
    dup_to(a[0], a[1], false)
}

fn dup3(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let flags = a[2] as u32;
    if flags & !O_CLOEXEC != 0 || a[0] as i32 == a[1] as i32 {
        return Err(Errno::EINVAL);
    }
    dup_to(a[0], a[1], flags & O_CLOEXEC != 0)
}

fn fcntl(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let fd = a[0] as i32;
    let (cmd, arg) = (a[1] as u32, a[2]);
    let table = files();
    let file = table.lock().get(fd)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = usize::try_from(arg as i32).map_err(|_| Errno::EINVAL)?;
            let limit = nofile_limit();
            let fd = table
                .lock()
                .insert_from(min, file, cmd == F_DUPFD_CLOEXEC, limit)?;
            Ok(fd as u64)
        }
        F_GETFD => Ok(if table.lock().cloexec(fd)? {
            u64::from(FD_CLOEXEC)
        } else {
            0
        }),
        F_SETFD => {
            table.lock().set_cloexec(fd, arg as u32 & FD_CLOEXEC != 0)?;
            Ok(0)
        }
        F_GETFL => Ok(u64::from(file.status_flags())),
        F_SETFL => {
            if file.is_path_only() {
                return Err(Errno::EBADF);
            }
            file.set_status_flags(arg as u32);
            Ok(0)
        }
        F_GETLK | F_OFD_GETLK => {
            // Nothing is ever locked: report the range free.
            let mut raw = [0u8; Flock::SIZE];
            uaccess::copy_from_user(arg, &mut raw)?;
            let mut lock = Flock::decode(&raw).ok_or(Errno::EFAULT)?;
            lock.l_type = F_UNLCK;
            uaccess::copy_to_user(arg, &lock.encode())?;
            Ok(0)
        }
        F_SETLK | F_SETLKW | F_OFD_SETLK | F_OFD_SETLKW => {
            let mut raw = [0u8; Flock::SIZE];
            uaccess::copy_from_user(arg, &mut raw)?;
            Ok(0)
        }
        F_GETOWN | F_SETOWN => Ok(0),
        F_GETPIPE_SZ | F_SETPIPE_SZ => {
            if file.inode().kind() != FileKind::Fifo {
                return Err(Errno::EBADF);
            }
            Ok(pipe::PIPE_BYTES as u64)
        }
        F_ADD_SEALS | F_GET_SEALS => Err(Errno::EINVAL),
        _ => Err(Errno::EINVAL),
    }
}

fn ioctl(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let fd = a[0] as i32;
    let (cmd, arg) = (a[1] as u32, a[2]);
    let file = files().lock().get(fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    match cmd {
        FIONBIO => {
            let on = uaccess::read_u32(arg)? != 0;
            file.set_nonblocking(on);
            Ok(0)
        }
        FIOCLEX | FIONCLEX => {
            files().lock().set_cloexec(fd, cmd == FIOCLEX)?;
            Ok(0)
        }
        FIOASYNC => Ok(0),
        FIONREAD if file.inode().kind() == FileKind::Regular && file.inode().seekable() => {
            let left = file.inode().size().saturating_sub(file.position());
            uaccess::write_u32(arg, left.min(i32::MAX as u64) as u32)?;
            Ok(0)
        }
        _ => file.inode().ioctl(&file, cmd, arg),
    }
}

fn make_pipe(fds_addr: u64, flags: u32) -> SysResult<u64> {
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let cloexec = flags & O_CLOEXEC != 0;
    let (reader, writer) = pipe::new_pipe_files(flags);
    let table = files();
    let limit = nofile_limit();
    let (read_fd, write_fd) = {
        let mut table = table.lock();
        let read_fd = table.insert_from(0, reader, cloexec, limit)?;
        match table.insert_from(0, writer, cloexec, limit) {
            Ok(write_fd) => (read_fd, write_fd),
            Err(e) => {
                let _ = table.remove(read_fd);
                return Err(e);
            }
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&read_fd.to_le_bytes());
    out[4..].copy_from_slice(&write_fd.to_le_bytes());
    if let Err(e) = uaccess::copy_to_user(fds_addr, &out) {
        let mut table = table.lock();
        let closed = (table.remove(read_fd), table.remove(write_fd));
        drop(table);
        drop(closed);
        return Err(e);
    }
    Ok(0)
}

fn pipe(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    make_pipe(a[0], 0)
}

fn pipe2(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    make_pipe(a[0], a[1] as u32)
}

/// sendfile(out_fd, in_fd, offset*, count): through a kernel buffer, chunk by chunk.
fn sendfile(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let out = file(me, a[0])?;
    let input = file(me, a[1])?;
    if !input.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    // As in Linux: the input must be a file with a position (not a pipe, tty or socket).
    if input.inode().kind() != FileKind::Regular || !input.inode().seekable() {
        return Err(Errno::EINVAL);
    }
    let offset_addr = a[2];
    let mut position = if offset_addr != 0 {
        Some(offset(uaccess::read_u64(offset_addr)?)?)
    } else {
        None
    };
    let total_wanted = count(a[3]);
    let mut total = 0usize;
    let mut failure = None;
    while total < total_wanted {
        let want = (total_wanted - total).min(BOUNCE_BYTES);
        let step = with_bounce(want, |chunk| -> SysResult<(usize, usize)> {
            let got = match position {
                Some(at) => input.pread(at, &mut ReadBuf::Kernel(chunk))?,
                None => input.read(&mut ReadBuf::Kernel(chunk))?,
            };
            let mut sent = 0;
            while sent < got {
                let n = out.write(&WriteBuf::Kernel(&chunk[sent..got]))?;
                if n == 0 {
                    break;
                }
                sent += n;
            }
            Ok((got, sent))
        });
        match step {
            Ok((got, sent)) => {
                total += sent;
                if let Some(at) = position.as_mut() {
                    *at += sent as u64;
                } else if sent < got {
                    // Give back what was read but not written.
                    let _ = input.seek(-((got - sent) as i64), noa_linux_abi::fcntl::SEEK_CUR);
                }
                if got < want || sent < got {
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(at) = position {
        uaccess::write_u64(offset_addr, at)?;
    }
    match failure {
        Some(e) if total == 0 => Err(e),
        _ => Ok(total as u64),
    }
}

fn fsync(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    file.inode().sync()?;
    Ok(0)
}

/// sync: never fails (Linux's returns nothing); a failure is on the console.
fn sync(_: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    if let Err(e) = crate::fs::sync_all() {
        crate::klog!("sync: {e:?}");
    }
    Ok(0)
}

/// syncfs: the file system of `fd`; every file system is synced (there are few, and one sync
/// of a clean one costs a device flush).
fn syncfs(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    file(me, a[0])?;
    crate::fs::sync_all()?;
    Ok(0)
}

/// sync_file_range: the whole file, whatever the range and flags (a superset of what is asked).
fn sync_file_range(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    const VALID: u64 = 1 | 2 | 4;
    if (a[1] as i64) < 0 || (a[2] as i64) < 0 || a[3] & !VALID != 0 {
        return Err(Errno::EINVAL);
    }
    let file = file(me, a[0])?;
    if file.inode().kind() == FileKind::Fifo {
        return Err(Errno::ESPIPE);
    }
    file.inode().sync()?;
    Ok(0)
}

/// fallocate: mode 0 (extend) and FALLOC_FL_KEEP_SIZE; the file system decides how (see
/// `Inode::allocate`). Punching and zeroing ranges: EOPNOTSUPP.
fn fallocate(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    const FALLOC_FL_KEEP_SIZE: u64 = 1;
    let (mode, offset, len) = (a[1], a[2] as i64, a[3] as i64);
    if offset < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let file = file(me, a[0])?;
    if !file.writable() {
        return Err(Errno::EBADF);
    }
    match file.inode().kind() {
        FileKind::Regular => {}
        FileKind::Directory => return Err(Errno::EISDIR),
        FileKind::Fifo => return Err(Errno::ESPIPE),
        _ => return Err(Errno::ENODEV),
    }
    if mode & !FALLOC_FL_KEEP_SIZE != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let end = (offset as u64)
        .checked_add(len as u64)
        .ok_or(Errno::EFBIG)?;
    if end > i64::MAX as u64 {
        return Err(Errno::EFBIG);
    }
    let inode = file.inode();
    match inode.allocate(offset as u64, len as u64, mode & FALLOC_FL_KEEP_SIZE != 0) {
        // A file system that cannot reserve space still extends the file as asked.
        Err(Errno::EOPNOTSUPP) => {
            if mode & FALLOC_FL_KEEP_SIZE == 0 && end > inode.size() {
                inode.truncate(end)?;
            }
            Ok(0)
        }
        result => result.map(|()| 0),
    }
}

fn flock(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    use crate::fs::flock::Request;
    const LOCK_SH: u32 = 1;
    const LOCK_EX: u32 = 2;
    const LOCK_NB: u32 = 4;
    const LOCK_UN: u32 = 8;
    let op = a[1] as u32;
    let request = match op & !LOCK_NB {
        LOCK_SH => Request::Shared,
        LOCK_EX => Request::Exclusive,
        LOCK_UN => Request::Unlock,
        _ => return Err(Errno::EINVAL),
    };
    let file = file(me, a[0])?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    file.flock(request, op & LOCK_NB != 0)?;
    Ok(0)
}

fn fadvise64(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    if file.inode().kind() == FileKind::Fifo {
        return Err(Errno::ESPIPE);
    }
    // POSIX_FADV_NORMAL..=POSIX_FADV_NOREUSE.
    if a[3] > 5 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
