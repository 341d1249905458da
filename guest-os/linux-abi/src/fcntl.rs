//! File-descriptor and path constants: `open` flags, `fcntl` commands and locks, the `*at`
//! flags (`AT_FDCWD`, `AT_EMPTY_PATH`, …), `access` modes, `lseek` whence, `renameat2`,
//! `close_range`, and the `struct flock` / `struct open_how` layouts
//! (`include/uapi/asm-generic/fcntl.h`, `include/uapi/linux/fcntl.h`, `linux/openat2.h`).
//!
//! Note the two `AT_*` families: these are path flags; the auxiliary-vector keys of the same
//! prefix live in [`crate::stack`].

use crate::bytes::*;
use crate::errno::Errno;

pub const O_ACCMODE: u32 = 0o3;
pub const O_RDONLY: u32 = 0o0;
pub const O_WRONLY: u32 = 0o1;
pub const O_RDWR: u32 = 0o2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_NOCTTY: u32 = 0o400;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_NDELAY: u32 = O_NONBLOCK;
pub const O_DSYNC: u32 = 0o10000;
pub const FASYNC: u32 = 0o20000;
pub const O_DIRECT: u32 = 0o40000;
pub const O_LARGEFILE: u32 = 0o100000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_NOATIME: u32 = 0o1000000;
pub const O_CLOEXEC: u32 = 0o2000000;
/// The raw `__O_SYNC` bit; `O_SYNC` also sets `O_DSYNC`.
pub const __O_SYNC: u32 = 0o4000000;
pub const O_SYNC: u32 = __O_SYNC | O_DSYNC;
pub const O_PATH: u32 = 0o10000000;
pub const __O_TMPFILE: u32 = 0o20000000;
pub const O_TMPFILE: u32 = __O_TMPFILE | O_DIRECTORY;
/// Flags `F_SETFL` may change (Linux `SETFL_MASK`).
pub const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK | O_NDELAY | FASYNC | O_DIRECT | O_NOATIME;

pub const F_DUPFD: u32 = 0;
pub const F_GETFD: u32 = 1;
pub const F_SETFD: u32 = 2;
pub const F_GETFL: u32 = 3;
pub const F_SETFL: u32 = 4;
pub const F_GETLK: u32 = 5;
pub const F_SETLK: u32 = 6;
pub const F_SETLKW: u32 = 7;
pub const F_SETOWN: u32 = 8;
pub const F_GETOWN: u32 = 9;
pub const F_SETSIG: u32 = 10;
pub const F_GETSIG: u32 = 11;
pub const F_SETOWN_EX: u32 = 15;
pub const F_GETOWN_EX: u32 = 16;
pub const F_GETOWNER_UIDS: u32 = 17;
pub const F_OFD_GETLK: u32 = 36;
pub const F_OFD_SETLK: u32 = 37;
pub const F_OFD_SETLKW: u32 = 38;
pub const F_SETLEASE: u32 = 1024;
pub const F_GETLEASE: u32 = 1025;
pub const F_NOTIFY: u32 = 1026;
pub const F_DUPFD_CLOEXEC: u32 = 1030;
pub const F_SETPIPE_SZ: u32 = 1031;
pub const F_GETPIPE_SZ: u32 = 1032;
pub const F_ADD_SEALS: u32 = 1033;
pub const F_GET_SEALS: u32 = 1034;
pub const FD_CLOEXEC: u32 = 1;
pub const F_RDLCK: i16 = 0;
pub const F_WRLCK: i16 = 1;
pub const F_UNLCK: i16 = 2;
pub const F_SEAL_SEAL: u32 = 0x1;
pub const F_SEAL_SHRINK: u32 = 0x2;
pub const F_SEAL_GROW: u32 = 0x4;
pub const F_SEAL_WRITE: u32 = 0x8;
pub const F_SEAL_FUTURE_WRITE: u32 = 0x10;

/// `dirfd` meaning "the current directory".
pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
/// `unlinkat`: remove a directory.
pub const AT_REMOVEDIR: u32 = 0x200;
/// `faccessat`: use the effective ids (same bit as `AT_REMOVEDIR`).
pub const AT_EACCESS: u32 = 0x200;
pub const AT_SYMLINK_FOLLOW: u32 = 0x400;
pub const AT_NO_AUTOMOUNT: u32 = 0x800;
pub const AT_EMPTY_PATH: u32 = 0x1000;
pub const AT_STATX_SYNC_TYPE: u32 = 0x6000;
pub const AT_STATX_SYNC_AS_STAT: u32 = 0x0000;
pub const AT_STATX_FORCE_SYNC: u32 = 0x2000;
pub const AT_STATX_DONT_SYNC: u32 = 0x4000;
pub const AT_RECURSIVE: u32 = 0x8000;

pub const F_OK: u32 = 0;
pub const X_OK: u32 = 1;
pub const W_OK: u32 = 2;
pub const R_OK: u32 = 4;

pub const SEEK_SET: u32 = 0;
pub const SEEK_CUR: u32 = 1;
pub const SEEK_END: u32 = 2;
pub const SEEK_DATA: u32 = 3;
pub const SEEK_HOLE: u32 = 4;

pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
pub const RENAME_WHITEOUT: u32 = 4;

pub const CLOSE_RANGE_UNSHARE: u32 = 1 << 1;
pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;

/// `struct flock` on x86-64 (32 bytes): `l_type` (i16), `l_whence` (i16), `l_start` (i64 at
/// 8), `l_len` (i64 at 16), `l_pid` (i32 at 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flock {
    pub l_type: i16,
    pub l_whence: i16,
    pub l_start: i64,
    pub l_len: i64,
    pub l_pid: i32,
}

impl Flock {
    pub const SIZE: usize = 32;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i16(&mut b, 0, self.l_type);
        put_i16(&mut b, 2, self.l_whence);
        put_i64(&mut b, 8, self.l_start);
        put_i64(&mut b, 16, self.l_len);
        put_i32(&mut b, 24, self.l_pid);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Flock {
            l_type: i16_at(b, 0),
            l_whence: i16_at(b, 2),
            l_start: i64_at(b, 8),
            l_len: i64_at(b, 16),
            l_pid: i32_at(b, 24),
        })
    }
}

/// `struct open_how` for `openat2` (24 bytes: `flags`, `mode`, `resolve`, all u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenHow {
    pub flags: u64,
    pub mode: u64,
    pub resolve: u64,
}

impl OpenHow {
    pub const SIZE_VER0: usize = 24;

    /// Decodes with Linux's extensible-struct rules (`copy_struct_from_user`): `size` (the
    /// syscall argument) below 24 is `EINVAL`, above a page `E2BIG`; bytes past the ones known
    /// must be zero (else `E2BIG`). `b` holds the `size` bytes read from user memory.
    pub fn decode(b: &[u8], size: usize) -> Result<Self, Errno> {
        let b = versioned(b, size, Self::SIZE_VER0, Self::SIZE_VER0)?;
        Ok(OpenHow {
            flags: u64_at(b, 0),
            mode: u64_at(b, 8),
            resolve: u64_at(b, 16),
        })
    }
}

/// Common checks of Linux's extensible structs (`openat2`, `clone3`, …): `size` in
/// `min..=4096`, `b.len() >= size`, bytes past `known` zero (`E2BIG`/`EINVAL`/`EFAULT`
/// otherwise). Callers must read fields past `size` as zero (older, shorter versions).
pub(crate) fn versioned(b: &[u8], size: usize, min: usize, known: usize) -> Result<&[u8], Errno> {
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    if size < min {
        return Err(Errno::EINVAL);
    }
    if b.len() < size {
        return Err(Errno::EFAULT);
    }
    if size > known && b[known..size].iter().any(|&x| x != 0) {
        return Err(Errno::E2BIG);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flock_roundtrip() {
        let f = Flock {
            l_type: F_WRLCK,
            l_whence: SEEK_CUR as i16,
            l_start: -5,
            l_len: 100,
            l_pid: 77,
        };
        let b = f.encode();
        assert_eq!(&b[0..2], &1i16.to_le_bytes());
        assert_eq!(&b[8..16], &(-5i64).to_le_bytes());
        assert_eq!(&b[24..28], &77i32.to_le_bytes());
        assert_eq!(Flock::decode(&b), Some(f));
    }

    #[test]
    fn open_how_versioning() {
        let mut b = [0u8; 40];
        b[0] = O_CLOEXEC as u8;
        b[8] = 0o44;
        b[16] = RESOLVE_BENEATH as u8;
        let h = OpenHow::decode(&b, 24).unwrap();
        assert_eq!(h.mode, 0o44);
        assert_eq!(h.resolve, RESOLVE_BENEATH);
        assert_eq!(OpenHow::decode(&b, 40).unwrap(), h);
        assert_eq!(OpenHow::decode(&b, 16), Err(Errno::EINVAL));
        assert_eq!(OpenHow::decode(&b, 5000), Err(Errno::E2BIG));
        assert_eq!(OpenHow::decode(&b[..20], 24), Err(Errno::EFAULT));
        b[30] = 1;
        assert_eq!(OpenHow::decode(&b, 40), Err(Errno::E2BIG));
    }
}
