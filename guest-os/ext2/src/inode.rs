//! Inodes: [`InodeNo`], [`Inode`] (the validated fields of an on-disk inode), [`FileType`] and
//! [`DeviceNumber`]. Parsing checks what every later use relies on: the inode is in use, its mode
//! names a file type, and its blocks are an ext2 block map (not ext4 extents or inline data).
//! Sizes (against the block map's reach) are checked by [`Ext2::inode`](crate::Ext2::inode),
//! block pointers where they steer a read (`block_map`).

use core::fmt;

use crate::bytes::{le16, le32};
use crate::corrupt::Corrupt;
use crate::error::Result;
use crate::features::{EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL, Unsupported};
use crate::superblock::INODE_CORE_SIZE;

/// The most links an inode may have (`EXT2_LINK_MAX`); a directory's subdirectories count.
pub const LINK_MAX: u16 = 32000;

/// `i_block` holds 12 direct pointers, then single, double and triple indirect pointers.
pub(crate) const DIRECT_BLOCKS: usize = 12;
pub(crate) const BLOCK_POINTERS: usize = 15;

// Inode mode file types (`S_IFMT` bits).
const S_IFMT: u16 = 0xf000;
const S_IFIFO: u16 = 0x1000;
const S_IFCHR: u16 = 0x2000;
const S_IFDIR: u16 = 0x4000;
const S_IFBLK: u16 = 0x6000;
const S_IFREG: u16 = 0x8000;
const S_IFLNK: u16 = 0xa000;
const S_IFSOCK: u16 = 0xc000;

/// An inode number. Any `u32` can be named; [`Ext2::inode`](crate::Ext2::inode) checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InodeNo(u32);

impl InodeNo {
    /// The root directory, inode 2.
    pub const ROOT: InodeNo = InodeNo(2);

    pub const fn new(number: u32) -> Self {
        InodeNo(number)
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for InodeNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What kind of file an inode or directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// A directory entry without a type byte (revision 0, or no `filetype` feature) or with an
    /// unknown one. Never the type of an [`Inode`].
    Unknown,
}

impl FileType {
    /// The type in an inode's mode, if it is a valid one.
    pub const fn from_mode(mode: u16) -> Option<FileType> {
        Some(match mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFLNK => FileType::Symlink,
            S_IFCHR => FileType::CharDevice,
            S_IFBLK => FileType::BlockDevice,
            S_IFIFO => FileType::Fifo,
            S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }

    /// The type byte of a directory entry (`EXT2_FT_*`).
    pub(crate) const fn from_dir_entry(code: u8) -> FileType {
        match code {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::CharDevice,
            4 => FileType::BlockDevice,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => FileType::Unknown,
        }
    }

    /// The type byte of a directory entry (`EXT2_FT_*`; 0 for [`FileType::Unknown`]).
    pub(crate) const fn dir_entry_code(self) -> u8 {
        match self {
            FileType::Unknown => 0,
            FileType::Regular => 1,
            FileType::Directory => 2,
            FileType::CharDevice => 3,
            FileType::BlockDevice => 4,
            FileType::Fifo => 5,
            FileType::Socket => 6,
            FileType::Symlink => 7,
        }
    }

    /// The `S_IFMT` bits of this type (0 for [`FileType::Unknown`]).
    pub const fn mode_bits(self) -> u16 {
        match self {
            FileType::Regular => S_IFREG,
            FileType::Directory => S_IFDIR,
            FileType::Symlink => S_IFLNK,
            FileType::CharDevice => S_IFCHR,
            FileType::BlockDevice => S_IFBLK,
            FileType::Fifo => S_IFIFO,
            FileType::Socket => S_IFSOCK,
            FileType::Unknown => 0,
        }
    }

    /// The Linux `d_type` of a `getdents64` record (`DT_*`).
    pub const fn dirent_type(self) -> u8 {
        match self {
            FileType::Unknown => 0,
            other => (other.mode_bits() >> 12) as u8,
        }
    }

    /// A word for error messages ("regular file", "directory", …).
    pub const fn name(self) -> &'static str {
        match self {
            FileType::Regular => "regular file",
            FileType::Directory => "directory",
            FileType::Symlink => "symbolic link",
            FileType::CharDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::Unknown => "file of unknown type",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The device a character or block device node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

impl DeviceNumber {
    /// Decodes Linux's 32-bit device number (`new_decode_dev`: 12-bit major, 20-bit minor; the
    /// low 32 bits of glibc's `makedev`), as `mknod` passes it.
    pub const fn decode32(dev: u32) -> Self {
        DeviceNumber {
            major: (dev & 0xf_ff00) >> 8,
            minor: (dev & 0xff) | ((dev >> 12) & 0xf_ff00),
        }
    }

    /// Linux's `st_rdev` encoding (glibc `makedev`; the kernel's `new_encode_dev` for 12-bit
    /// majors and 20-bit minors).
    pub const fn encode(self) -> u64 {
        let (major, minor) = (self.major as u64, self.minor as u64);
        ((major & 0xffff_f000) << 32)
            | ((major & 0xfff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff)
    }
}

/// An inode as stored on disk, validated (see the module doc). Times are seconds since the epoch,
/// signed 32-bit on disk as Linux reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    ino: InodeNo,
    mode: u16,
    uid: u32,
    gid: u32,
    size: u64,
    atime: i64,
    ctime: i64,
    mtime: i64,
    links: u16,
    blocks: u32,
    flags: u32,
    file_acl: u32,
    block: [u32; BLOCK_POINTERS],
}

impl Inode {
    /// Parses the first 128 bytes of inode `ino` from a file system of `revision`.
    pub(crate) fn parse(ino: InodeNo, raw: &[u8; INODE_CORE_SIZE], revision: u32) -> Result<Self> {
        if le16(raw, 26) == 0 {
            return Err(Corrupt::InodeNotInUse { ino }.into());
        }
        Self::parse_any_links(ino, raw, revision)
    }

    /// [`Self::parse`], also for an inode with no links left (unlinked while open).
    pub(crate) fn parse_any_links(
        ino: InodeNo,
        raw: &[u8; INODE_CORE_SIZE],
        revision: u32,
    ) -> Result<Self> {
        let mode = le16(raw, 0);
        let links = le16(raw, 26);
        let flags = le32(raw, 32);
        if mode == 0 {
            return Err(Corrupt::InodeNotInUse { ino }.into());
        }
        let Some(file_type) = FileType::from_mode(mode) else {
            return Err(Corrupt::InodeType { ino, mode }.into());
        };
        if flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL) != 0 {
            return Err(Unsupported::InodeFlags { ino, flags }.into());
        }
        let mut block = [0u32; BLOCK_POINTERS];
        for (i, pointer) in block.iter_mut().enumerate() {
            *pointer = le32(raw, 40 + 4 * i);
        }
        // In revision 1, offset 108 holds the high 32 bits of a regular file's size
        // (`large_file`); for a directory it is an ACL block and the size is 32 bits.
        let mut size = u64::from(le32(raw, 4));
        if revision >= 1 && file_type == FileType::Regular {
            size |= u64::from(le32(raw, 108)) << 32;
        }
        // Linux keeps the high 16 bits of the owner in osd2.
        let uid = u32::from(le16(raw, 2)) | u32::from(le16(raw, 120)) << 16;
        let gid = u32::from(le16(raw, 24)) | u32::from(le16(raw, 122)) << 16;
        let time = |at| i64::from(le32(raw, at) as i32);
        Ok(Inode {
            ino,
            mode,
            uid,
            gid,
            size,
            atime: time(8),
            ctime: time(12),
            mtime: time(16),
            links,
            blocks: le32(raw, 28),
            flags,
            file_acl: le32(raw, 104),
            block,
        })
    }

    pub fn ino(&self) -> InodeNo {
        self.ino
    }

    /// The whole mode: file type and permission bits.
    pub fn mode(&self) -> u16 {
        self.mode
    }

    pub fn file_type(&self) -> FileType {
        // Parsing refused modes without a type.
        FileType::from_mode(self.mode).unwrap_or(FileType::Unknown)
    }

    /// Permission bits, set-id and sticky bits included (`mode & 0o7777`).
    pub fn permissions(&self) -> u16 {
        self.mode & 0o7777
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Size in bytes (64-bit for regular files of revision 1 file systems).
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn links(&self) -> u16 {
        self.links
    }

    pub fn atime(&self) -> i64 {
        self.atime
    }

    pub fn mtime(&self) -> i64 {
        self.mtime
    }

    pub fn ctime(&self) -> i64 {
        self.ctime
    }

    /// Storage used, in 512-byte units (`st_blocks`), metadata blocks included.
    pub fn blocks(&self) -> u64 {
        u64::from(self.blocks)
    }

    /// The inode flags (`i_flags`: immutable, append-only, …).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The device of a character or block device node; `None` for other types. Like Linux, an
    /// old-style 8:8 number in `i_block[0]` wins over a new-style 12:20 one in `i_block[1]`.
    pub fn rdev(&self) -> Option<DeviceNumber> {
        if !matches!(
            self.file_type(),
            FileType::CharDevice | FileType::BlockDevice
        ) {
            return None;
        }
        let [old, new, ..] = self.block;
        Some(if old != 0 {
            DeviceNumber {
                major: (old >> 8) & 0xff,
                minor: old & 0xff,
            }
        } else {
            DeviceNumber {
                major: (new & 0xf_ff00) >> 8,
                minor: (new & 0xff) | ((new >> 12) & 0xf_ff00),
            }
        })
    }

    /// The 15 `i_block` words: the block map, or a fast symlink's target, or a device number.
    pub(crate) fn block_words(&self) -> &[u32; BLOCK_POINTERS] {
        &self.block
    }

    /// The extended attribute block (`i_file_acl`), 0 if none.
    pub(crate) fn file_acl(&self) -> u32 {
        self.file_acl
    }
}
