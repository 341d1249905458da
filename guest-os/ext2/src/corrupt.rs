//! [`Corrupt`]: each way an image can contradict itself, with the numbers that show it, so that a
//! message names the field and the guest kernel allocates nothing to report it.

use core::fmt;

use crate::inode::InodeNo;

/// What is wrong with a corrupt file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corrupt {
    /// `s_log_block_size` gives a block size outside 1024..=65536.
    BlockSize { log: u32 },
    /// `s_first_data_block` is not the superblock's block.
    FirstDataBlock {
        found: u64,
        expected: u64,
        block_size: u64,
    },
    /// `s_blocks_count` leaves no room past the superblock.
    BlockCount { count: u64 },
    /// `s_blocks_per_group` is 0 or more than a bitmap block can track.
    BlocksPerGroup { value: u64, max: u64 },
    /// `s_inodes_per_group` is 0 or more than a bitmap block can track.
    InodesPerGroup { value: u64, max: u64 },
    /// `s_inode_size` is not a power of two in 128..=block size.
    InodeSize { size: u64, max: u64 },
    /// `s_inodes_count` disagrees with the group count times inodes per group.
    InodeCount {
        count: u32,
        groups: u64,
        per_group: u64,
    },
    /// The group descriptor table runs past the end of the file system.
    GroupTable { groups: u64 },
    /// A group's bitmap or inode table (`what`, blocks `start..start + blocks`) lies outside the
    /// group's blocks `first..=last`.
    GroupLayout {
        group: u32,
        what: &'static str,
        start: u64,
        blocks: u64,
        first: u64,
        last: u64,
    },
    /// Inode 2, the root, is not a directory.
    RootNotDirectory,
    /// An inode number outside 1..=`count`.
    InodeNumber { ino: InodeNo, count: u32 },
    /// A directory entry points at a free inode (mode 0 or no links).
    InodeNotInUse { ino: InodeNo },
    /// An inode's mode has no valid file type.
    InodeType { ino: InodeNo, mode: u16 },
    /// A directory larger than the 32 MiB this reader scans.
    DirectoryTooLarge { ino: InodeNo, size: u64, max: u64 },
    /// A directory whose size is not a whole number of blocks.
    DirectorySize {
        ino: InodeNo,
        size: u64,
        block_size: u64,
    },
    /// A bad directory entry at byte `offset` of directory `dir`.
    DirEntry {
        dir: InodeNo,
        offset: u64,
        problem: DirEntryProblem,
    },
    /// A block pointer of inode `ino` outside the file system's `blocks`.
    BlockPointer {
        ino: InodeNo,
        block: u64,
        blocks: u64,
    },
    /// A size larger than an ext2 block map can address.
    FileTooLarge { ino: InodeNo, size: u64 },
    /// A symlink whose size does not fit where its target is stored.
    SymlinkSize { ino: InodeNo, size: u64, max: u64 },
    /// A file that ended before its size (seen while reading a symlink).
    ShortRead { ino: InodeNo, size: u64, read: u64 },
    /// A block pointer of inode `ino` at the superblock, a group descriptor, a bitmap or an inode
    /// table: writing through it would destroy metadata.
    PointsAtMetadata { ino: InodeNo, block: u64 },
    /// A block bitmap marks metadata (`block`, in `group`) as free.
    MetadataMarkedFree { group: u32, block: u64 },
    /// An inode bitmap marks a reserved inode as free.
    ReservedInodeMarkedFree { ino: InodeNo },
    /// `s_first_ino` (the first non-reserved inode) is out of range.
    FirstInode { first_ino: u32, count: u32 },
    /// Inode `ino` maps more blocks than its `i_blocks` counts (or the file system holds).
    BlockCountExceeded { ino: InodeNo, blocks: u64 },
    /// A directory's first block does not start with its `.` and `..` entries.
    DotEntries { dir: InodeNo },
    /// Following `..` from directory `dir` does not reach the root.
    DirectoryLoop { dir: InodeNo },
    /// Inode `ino`'s extended attribute block is not one (bad magic or reference count).
    AttributeBlock { ino: InodeNo, block: u64 },
    /// An inode to free is not marked in use in its bitmap.
    InodeAlreadyFree { ino: InodeNo },
    /// An access outside the file system (a bug guard: every pointer is checked before this).
    OutsideFileSystem {
        offset: u64,
        len: usize,
        fs_bytes: u64,
    },
}

/// What is wrong with one directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirEntryProblem {
    /// Fewer than the 8 header bytes are left in the block.
    CutOff,
    /// `rec_len` is below 8 or not a multiple of 4.
    BadRecLen { rec_len: usize },
    /// `rec_len` runs past the end of the block.
    RecLenPastEnd { rec_len: usize },
    /// The name does not fit in the record.
    NameLen { name_len: usize, rec_len: usize },
    /// A live entry with an inode number outside the file system.
    InodeOutOfRange { ino: u32 },
    /// A live entry whose name is empty or holds `/` or NUL.
    BadName,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corrupt::BlockSize { log } => {
                write!(f, "block size 1024 << {log} is out of range (1024..=65536)")
            }
            Corrupt::FirstDataBlock {
                found,
                expected,
                block_size,
            } => write!(
                f,
                "first data block is {found}, expected {expected} for {block_size}-byte blocks"
            ),
            Corrupt::BlockCount { count } => write!(f, "block count {count} is too small"),
            Corrupt::BlocksPerGroup { value, max } => {
                write!(f, "blocks per group {value} is out of range (1..={max})")
            }
            Corrupt::InodesPerGroup { value, max } => {
                write!(f, "inodes per group {value} is out of range (1..={max})")
            }
            Corrupt::InodeSize { size, max } => write!(
                f,
                "inode size {size} is invalid (a power of two, 128..={max})"
            ),
            Corrupt::InodeCount {
                count,
                groups,
                per_group,
            } => write!(
                f,
                "inode count {count} does not match {groups} groups of {per_group} inodes"
            ),
            Corrupt::GroupTable { groups } => write!(
                f,
                "the group descriptor table ({groups} groups) does not fit in the file system"
            ),
            Corrupt::GroupLayout {
                group,
                what,
                start,
                blocks,
                first,
                last,
            } => write!(
                f,
                "group {group}: the {what} at block {start} ({blocks} blocks) lies outside the \
                 group (blocks {first}..={last})"
            ),
            Corrupt::RootNotDirectory => f.write_str("root inode 2 is not a directory"),
            Corrupt::InodeNumber { ino, count } => {
                write!(f, "inode number {ino} is out of range (1..={count})")
            }
            Corrupt::InodeNotInUse { ino } => write!(
                f,
                "inode {ino} is not in use, but a directory entry points at it"
            ),
            Corrupt::InodeType { ino, mode } => {
                write!(f, "inode {ino} has mode {mode:#o}, which is no file type")
            }
            Corrupt::DirectoryTooLarge { ino, size, max } => write!(
                f,
                "directory inode {ino} is {size} bytes, more than the {max} this reader accepts"
            ),
            Corrupt::DirectorySize {
                ino,
                size,
                block_size,
            } => write!(
                f,
                "directory inode {ino} has size {size}, not a multiple of the block size \
                 {block_size}"
            ),
            Corrupt::DirEntry {
                dir,
                offset,
                problem,
            } => write!(
                f,
                "directory inode {dir}: the entry at byte {offset} {problem}"
            ),
            Corrupt::BlockPointer { ino, block, blocks } => write!(
                f,
                "inode {ino}: block pointer {block} is outside the file system ({blocks} blocks)"
            ),
            Corrupt::FileTooLarge { ino, size } => write!(
                f,
                "inode {ino} is {size} bytes, more than an ext2 block map can address"
            ),
            Corrupt::SymlinkSize { ino, size, max } => write!(
                f,
                "symlink inode {ino} has size {size}, more than the {max} bytes its target can \
                 take"
            ),
            Corrupt::ShortRead { ino, size, read } => {
                write!(f, "inode {ino}: read {read} of its {size} bytes")
            }
            Corrupt::PointsAtMetadata { ino, block } => write!(
                f,
                "inode {ino}: block pointer {block} points at file system metadata"
            ),
            Corrupt::MetadataMarkedFree { group, block } => write!(
                f,
                "group {group}: the block bitmap marks metadata block {block} as free"
            ),
            Corrupt::ReservedInodeMarkedFree { ino } => {
                write!(f, "the inode bitmap marks reserved inode {ino} as free")
            }
            Corrupt::FirstInode { first_ino, count } => write!(
                f,
                "the first non-reserved inode {first_ino} is out of range (11..={count})"
            ),
            Corrupt::BlockCountExceeded { ino, blocks } => write!(
                f,
                "inode {ino} maps more blocks than the {blocks} it counts"
            ),
            Corrupt::DotEntries { dir } => write!(
                f,
                "directory inode {dir} does not start with its '.' and '..' entries"
            ),
            Corrupt::DirectoryLoop { dir } => write!(
                f,
                "following '..' from directory inode {dir} does not reach the root"
            ),
            Corrupt::AttributeBlock { ino, block } => write!(
                f,
                "inode {ino}: block {block} is not an extended attribute block"
            ),
            Corrupt::InodeAlreadyFree { ino } => {
                write!(f, "inode {ino} is already free in the inode bitmap")
            }
            Corrupt::OutsideFileSystem {
                offset,
                len,
                fs_bytes,
            } => write!(
                f,
                "an access of {len} bytes at byte {offset} lies outside the file system \
                 ({fs_bytes} bytes)"
            ),
        }
    }
}

impl fmt::Display for DirEntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DirEntryProblem::CutOff => f.write_str("is cut off by the end of the block"),
            DirEntryProblem::BadRecLen { rec_len } => write!(f, "has bad rec_len {rec_len}"),
            DirEntryProblem::RecLenPastEnd { rec_len } => {
                write!(f, "has rec_len {rec_len} running past the end of the block")
            }
            DirEntryProblem::NameLen { name_len, rec_len } => write!(
                f,
                "has name_len {name_len} that does not fit in rec_len {rec_len}"
            ),
            DirEntryProblem::InodeOutOfRange { ino } => {
                write!(f, "points at inode {ino}, which is out of range")
            }
            DirEntryProblem::BadName => f.write_str("has an empty name or one holding '/' or NUL"),
        }
    }
}
