//! File metadata as user space sees it: `struct stat` (x86-64, 144 bytes), `struct statx`
//! (256 bytes), `struct statfs` (120 bytes), `linux_dirent64` records for `getdents64`, the
//! `S_IF*` mode bits, `DT_*` types, `STATX_*` masks, device number encoding and a few
//! filesystem magic numbers (`arch/x86/include/uapi/asm/stat.h`, `include/uapi/linux/stat.h`,
//! `include/uapi/asm-generic/statfs.h`, `include/linux/dirent.h`).

use crate::bytes::*;
use crate::time::Timespec;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;
pub const S_IRWXU: u32 = 0o700;
pub const S_IRUSR: u32 = 0o400;
pub const S_IWUSR: u32 = 0o200;
pub const S_IXUSR: u32 = 0o100;
pub const S_IRWXG: u32 = 0o070;
pub const S_IRWXO: u32 = 0o007;

pub const fn s_isreg(m: u32) -> bool {
    m & S_IFMT == S_IFREG
}
pub const fn s_isdir(m: u32) -> bool {
    m & S_IFMT == S_IFDIR
}
pub const fn s_islnk(m: u32) -> bool {
    m & S_IFMT == S_IFLNK
}
pub const fn s_ischr(m: u32) -> bool {
    m & S_IFMT == S_IFCHR
}
pub const fn s_isblk(m: u32) -> bool {
    m & S_IFMT == S_IFBLK
}
pub const fn s_isfifo(m: u32) -> bool {
    m & S_IFMT == S_IFIFO
}
pub const fn s_issock(m: u32) -> bool {
    m & S_IFMT == S_IFSOCK
}

/// `d_type` values of `linux_dirent64`.
pub const DT_UNKNOWN: u8 = 0;
pub const DT_FIFO: u8 = 1;
pub const DT_CHR: u8 = 2;
pub const DT_DIR: u8 = 4;
pub const DT_BLK: u8 = 6;
pub const DT_REG: u8 = 8;
pub const DT_LNK: u8 = 10;
pub const DT_SOCK: u8 = 12;

/// `d_type` for a mode: `(mode >> 12) & 15`, which is how Linux defines both.
pub const fn dt_from_mode(mode: u32) -> u8 {
    ((mode >> 12) & 15) as u8
}

/// The 64-bit `dev_t` glibc and musl use (`makedev`): 12+20 bits of major, 8+24 of minor.
pub const fn makedev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (major as u64, minor as u64);
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}
pub const fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}
pub const fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// `struct stat` for `stat`/`fstat`/`lstat`/`newfstatat` on x86-64 (144 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    /// In 512-byte units.
    pub blocks: i64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl Stat {
    pub const SIZE: usize = 144;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u64(&mut b, 0, self.dev);
        put_u64(&mut b, 8, self.ino);
        put_u64(&mut b, 16, self.nlink);
        put_u32(&mut b, 24, self.mode);
        put_u32(&mut b, 28, self.uid);
        put_u32(&mut b, 32, self.gid);
        put_u64(&mut b, 40, self.rdev);
        put_i64(&mut b, 48, self.size);
        put_i64(&mut b, 56, self.blksize);
        put_i64(&mut b, 64, self.blocks);
        put_i64(&mut b, 72, self.atime.sec);
        put_i64(&mut b, 80, self.atime.nsec);
        put_i64(&mut b, 88, self.mtime.sec);
        put_i64(&mut b, 96, self.mtime.nsec);
        put_i64(&mut b, 104, self.ctime.sec);
        put_i64(&mut b, 112, self.ctime.nsec);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let ts = |o| Timespec {
            sec: i64_at(b, o),
            nsec: i64_at(b, o + 8),
        };
        Some(Stat {
            dev: u64_at(b, 0),
            ino: u64_at(b, 8),
            nlink: u64_at(b, 16),
            mode: u32_at(b, 24),
            uid: u32_at(b, 28),
            gid: u32_at(b, 32),
            rdev: u64_at(b, 40),
            size: i64_at(b, 48),
            blksize: i64_at(b, 56),
            blocks: i64_at(b, 64),
            atime: ts(72),
            mtime: ts(88),
            ctime: ts(104),
        })
    }
}

pub const STATX_TYPE: u32 = 0x1;
pub const STATX_MODE: u32 = 0x2;
pub const STATX_NLINK: u32 = 0x4;
pub const STATX_UID: u32 = 0x8;
pub const STATX_GID: u32 = 0x10;
pub const STATX_ATIME: u32 = 0x20;
pub const STATX_MTIME: u32 = 0x40;
pub const STATX_CTIME: u32 = 0x80;
pub const STATX_INO: u32 = 0x100;
pub const STATX_SIZE: u32 = 0x200;
pub const STATX_BLOCKS: u32 = 0x400;
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_BTIME: u32 = 0x800;
pub const STATX_MNT_ID: u32 = 0x1000;
pub const STATX_DIOALIGN: u32 = 0x2000;
/// Reserved for future expansion; `statx` with it set is `EINVAL`.
pub const STATX__RESERVED: u32 = 0x8000_0000;

/// `struct statx_timestamp`: seconds and nanoseconds (16 bytes with padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatxTimestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl From<Timespec> for StatxTimestamp {
    fn from(t: Timespec) -> Self {
        StatxTimestamp {
            sec: t.sec,
            nsec: t.nsec as u32,
        }
    }
}

/// `struct statx` (256 bytes; fields up to `stx_dio_offset_align`, the rest zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statx {
    /// Which fields are filled (`STATX_*`).
    pub mask: u32,
    pub blksize: u32,
    pub attributes: u64,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub mode: u16,
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub attributes_mask: u64,
    pub atime: StatxTimestamp,
    pub btime: StatxTimestamp,
    pub ctime: StatxTimestamp,
    pub mtime: StatxTimestamp,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub mnt_id: u64,
    pub dio_mem_align: u32,
    pub dio_offset_align: u32,
}

impl Statx {
    pub const SIZE: usize = 256;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u32(&mut b, 0, self.mask);
        put_u32(&mut b, 4, self.blksize);
        put_u64(&mut b, 8, self.attributes);
        put_u32(&mut b, 16, self.nlink);
        put_u32(&mut b, 20, self.uid);
        put_u32(&mut b, 24, self.gid);
        put_u16(&mut b, 28, self.mode);
        put_u64(&mut b, 32, self.ino);
        put_u64(&mut b, 40, self.size);
        put_u64(&mut b, 48, self.blocks);
        put_u64(&mut b, 56, self.attributes_mask);
        for (i, t) in [self.atime, self.btime, self.ctime, self.mtime]
            .iter()
            .enumerate()
        {
            put_i64(&mut b, 64 + i * 16, t.sec);
            put_u32(&mut b, 72 + i * 16, t.nsec);
        }
        put_u32(&mut b, 128, self.rdev_major);
        put_u32(&mut b, 132, self.rdev_minor);
        put_u32(&mut b, 136, self.dev_major);
        put_u32(&mut b, 140, self.dev_minor);
        put_u64(&mut b, 144, self.mnt_id);
        put_u32(&mut b, 152, self.dio_mem_align);
        put_u32(&mut b, 156, self.dio_offset_align);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let ts = |o| StatxTimestamp {
            sec: i64_at(b, o),
            nsec: u32_at(b, o + 8),
        };
        Some(Statx {
            mask: u32_at(b, 0),
            blksize: u32_at(b, 4),
            attributes: u64_at(b, 8),
            nlink: u32_at(b, 16),
            uid: u32_at(b, 20),
            gid: u32_at(b, 24),
            mode: u16_at(b, 28),
            ino: u64_at(b, 32),
            size: u64_at(b, 40),
            blocks: u64_at(b, 48),
            attributes_mask: u64_at(b, 56),
            atime: ts(64),
            btime: ts(80),
            ctime: ts(96),
            mtime: ts(112),
            rdev_major: u32_at(b, 128),
            rdev_minor: u32_at(b, 132),
            dev_major: u32_at(b, 136),
            dev_minor: u32_at(b, 140),
            mnt_id: u64_at(b, 144),
            dio_mem_align: u32_at(b, 152),
            dio_offset_align: u32_at(b, 156),
        })
    }

    /// The `statx` view of a `stat` (mask = `STATX_BASIC_STATS`).
    pub fn from_stat(s: &Stat) -> Self {
        Statx {
            mask: STATX_BASIC_STATS,
            blksize: s.blksize as u32,
            nlink: s.nlink as u32,
            uid: s.uid,
            gid: s.gid,
            mode: s.mode as u16,
            ino: s.ino,
            size: s.size as u64,
            blocks: s.blocks as u64,
            atime: s.atime.into(),
            ctime: s.ctime.into(),
            mtime: s.mtime.into(),
            rdev_major: major(s.rdev),
            rdev_minor: minor(s.rdev),
            dev_major: major(s.dev),
            dev_minor: minor(s.dev),
            ..Default::default()
        }
    }
}

pub const EXT2_SUPER_MAGIC: i64 = 0xEF53;
pub const TMPFS_MAGIC: i64 = 0x0102_1994;
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
pub const SYSFS_MAGIC: i64 = 0x6265_6572;
pub const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
pub const PIPEFS_MAGIC: i64 = 0x5049_5045;
pub const SOCKFS_MAGIC: i64 = 0x534F_434B;
pub const ANON_INODE_FS_MAGIC: i64 = 0x0904_1934;

/// `struct statfs` for `statfs`/`fstatfs` on x86-64 (120 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statfs {
    pub f_type: i64,
    pub bsize: i64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub fsid: [i32; 2],
    pub namelen: i64,
    pub frsize: i64,
    /// `ST_*` mount flags (`ST_RDONLY` 1, `ST_NOSUID` 2, …).
    pub flags: i64,
}

impl Statfs {
    pub const SIZE: usize = 120;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i64(&mut b, 0, self.f_type);
        put_i64(&mut b, 8, self.bsize);
        put_u64(&mut b, 16, self.blocks);
        put_u64(&mut b, 24, self.bfree);
        put_u64(&mut b, 32, self.bavail);
        put_u64(&mut b, 40, self.files);
        put_u64(&mut b, 48, self.ffree);
        put_i32(&mut b, 56, self.fsid[0]);
        put_i32(&mut b, 60, self.fsid[1]);
        put_i64(&mut b, 64, self.namelen);
        put_i64(&mut b, 72, self.frsize);
        put_i64(&mut b, 80, self.flags);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Statfs {
            f_type: i64_at(b, 0),
            bsize: i64_at(b, 8),
            blocks: u64_at(b, 16),
            bfree: u64_at(b, 24),
            bavail: u64_at(b, 32),
            files: u64_at(b, 40),
            ffree: u64_at(b, 48),
            fsid: [i32_at(b, 56), i32_at(b, 60)],
            namelen: i64_at(b, 64),
            frsize: i64_at(b, 72),
            flags: i64_at(b, 80),
        })
    }
}

/// Offset of `d_name` in `linux_dirent64` (`d_ino` u64, `d_off` i64, `d_reclen` u16,
/// `d_type` u8).
pub const DIRENT64_NAME_OFFSET: usize = 19;

/// `d_reclen` of a `linux_dirent64` for a name of `name_len` bytes: header + name + NUL,
/// rounded up to 8.
pub const fn dirent64_reclen(name_len: usize) -> usize {
    (DIRENT64_NAME_OFFSET + name_len + 1 + 7) & !7
}

/// Writes one `linux_dirent64` record at the start of `buf` and returns its length
/// (`d_reclen`), or `None` if it does not fit (the caller then stops; `getdents64` returns
/// `EINVAL` only when not even the first record fits). Padding bytes are zeroed. `off` is
/// the `d_off` cookie that `lseek` accepts to resume after this entry.
pub fn encode_dirent64(
    buf: &mut [u8],
    ino: u64,
    off: i64,
    d_type: u8,
    name: &[u8],
) -> Option<usize> {
    let reclen = dirent64_reclen(name.len());
    if reclen > buf.len() || reclen > u16::MAX as usize {
        return None;
    }
    let b = &mut buf[..reclen];
    put_u64(b, 0, ino);
    put_i64(b, 8, off);
    put_u16(b, 16, reclen as u16);
    put_u8(b, 18, d_type);
    b[DIRENT64_NAME_OFFSET..DIRENT64_NAME_OFFSET + name.len()].copy_from_slice(name);
    b[DIRENT64_NAME_OFFSET + name.len()..].fill(0);
    Some(reclen)
}

/// One decoded `linux_dirent64` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirent64<'a> {
    pub ino: u64,
    pub off: i64,
    pub reclen: u16,
    pub d_type: u8,
    pub name: &'a [u8],
}

/// Decodes the record at the start of `buf` (tests, tools). `None` if malformed.
pub fn decode_dirent64(buf: &[u8]) -> Option<Dirent64<'_>> {
    if buf.len() < DIRENT64_NAME_OFFSET + 1 {
        return None;
    }
    let reclen = u16_at(buf, 16);
    let rec = buf.get(..reclen as usize)?;
    let name_area = rec.get(DIRENT64_NAME_OFFSET..)?;
    let n = name_area.iter().position(|&c| c == 0)?;
    Some(Dirent64 {
        ino: u64_at(buf, 0),
        off: i64_at(buf, 8),
        reclen,
        d_type: u8_at(buf, 18),
        name: &name_area[..n],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_layout() {
        let s = Stat {
            dev: 0x801,
            ino: 12,
            nlink: 2,
            mode: S_IFDIR | 0o755,
            uid: 1000,
            gid: 100,
            rdev: 0,
            size: 4096,
            blksize: 4096,
            blocks: 8,
            atime: Timespec { sec: 1, nsec: 2 },
            mtime: Timespec { sec: 3, nsec: 4 },
            ctime: Timespec { sec: 5, nsec: 6 },
        };
        let b = s.encode();
        assert_eq!(u64_at(&b, 8), 12);
        assert_eq!(u32_at(&b, 24), 0o40755);
        assert_eq!(u32_at(&b, 28), 1000);
        assert_eq!(i64_at(&b, 48), 4096);
        assert_eq!(i64_at(&b, 112), 6);
        assert!(b[120..].iter().all(|&x| x == 0));
        assert_eq!(Stat::decode(&b), Some(s));
        let x = Statx::from_stat(&s);
        let xb = x.encode();
        assert_eq!(u16_at(&xb, 28), 0o40755);
        assert_eq!(u32_at(&xb, 140), 1); // dev minor of 0x801
        assert_eq!(u32_at(&xb, 136), 8);
        assert_eq!(i64_at(&xb, 112), 3); // mtime at 112
        assert_eq!(Statx::decode(&xb), Some(x));
        let f = Statfs {
            f_type: EXT2_SUPER_MAGIC,
            bsize: 4096,
            fsid: [1, 2],
            namelen: 255,
            ..Default::default()
        };
        assert_eq!(Statfs::decode(&f.encode()), Some(f));
    }

    #[test]
    fn devnums() {
        assert_eq!(makedev(8, 1), 0x801);
        assert_eq!(makedev(136, 3), 0x8803);
        let d = makedev(0x12345, 0x6789ab);
        assert_eq!((major(d), minor(d)), (0x12345, 0x6789ab));
        assert_eq!(dt_from_mode(S_IFREG | 0o644), DT_REG);
        assert_eq!(dt_from_mode(S_IFLNK), DT_LNK);
        assert_eq!(dt_from_mode(S_IFSOCK), DT_SOCK);
        assert!(s_isdir(S_IFDIR | 0o1777));
    }

    #[test]
    fn dirent64() {
        assert_eq!(dirent64_reclen(1), 24);
        assert_eq!(dirent64_reclen(4), 24);
        assert_eq!(dirent64_reclen(5), 32);
        let mut buf = [0xffu8; 64];
        let n = encode_dirent64(&mut buf, 7, 3, DT_REG, b"hello").unwrap();
        assert_eq!(n, 32);
        assert_eq!(&buf[19..25], b"hello\0");
        assert!(buf[25..32].iter().all(|&x| x == 0));
        assert_eq!(buf[32], 0xff);
        let d = decode_dirent64(&buf).unwrap();
        assert_eq!(
            (d.ino, d.off, d.reclen, d.d_type, d.name),
            (7, 3, 32, DT_REG, &b"hello"[..])
        );
        let n2 = encode_dirent64(&mut buf[n..], 8, 4, DT_DIR, b".").unwrap();
        assert_eq!(n2, 24);
        assert_eq!(encode_dirent64(&mut buf[..20], 1, 1, 0, b"x"), None);
        assert_eq!(decode_dirent64(&[0u8; 10]), None);
    }
}
