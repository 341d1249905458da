//! The superblock: [`Geometry`], the validated numbers every other read is steered by.
//!
//! Everything here is checked against everything else and against the device size before the
//! first read past the superblock, so later code can multiply block numbers by the block size
//! without overflow (block counts are 32-bit, block sizes at most 64 KiB) and trust the group and
//! inode counts.

use crate::bytes::{le16, le32};
use crate::corrupt::Corrupt;
use crate::error::{Error, Result};
use crate::features::{
    COMPAT_RESIZE_INODE, INCOMPAT_FILETYPE, RO_COMPAT_SPARSE_SUPER, Unsupported,
};

/// The superblock always lives at byte 1024, whatever the block size.
pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;
const EXT2_MAGIC: u16 = 0xef53;
/// The part of an inode we read; every inode is at least this big.
pub(crate) const INODE_CORE_SIZE: usize = 128;
/// Size of one ext2 group descriptor (64-byte descriptors come with the ext4 `64bit` feature).
pub(crate) const GROUP_DESC_SIZE: u64 = 32;
/// The most block groups we cache descriptors for: an 8 TiB file system at 4 KiB blocks, 512 GiB
/// at 1 KiB. The cap bounds what a hostile (say, sparse and huge) image makes us read and hold.
pub(crate) const MAX_GROUPS: u64 = 1 << 16;

/// The superblock fields we use, all validated by [`Geometry::parse`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) revision: u32,
    pub(crate) block_size: u64,
    pub(crate) blocks_count: u64,
    pub(crate) first_data_block: u64,
    pub(crate) blocks_per_group: u64,
    pub(crate) reserved_blocks: u64,
    pub(crate) inodes_count: u32,
    pub(crate) inodes_per_group: u64,
    pub(crate) inode_size: u64,
    /// Directory entries carry a file-type byte (`filetype`).
    pub(crate) dir_file_type: bool,
    /// Bytes the file system covers (`blocks_count * block_size`); no read goes past it.
    pub(crate) fs_bytes: u64,
    pub(crate) group_count: u64,
    /// Byte offset of the group descriptor table.
    pub(crate) gdt_offset: u64,
    /// Blocks one group's inode table takes.
    pub(crate) inode_table_blocks: u64,
    /// Blocks the group descriptor table takes (in every group with a superblock copy).
    pub(crate) gdt_blocks: u64,
    /// Blocks reserved after each descriptor table copy for growth (`resize_inode`).
    pub(crate) reserved_gdt_blocks: u64,
    /// Where superblock copies are: every group, or (`sparse_super`) groups 0, 1 and powers of
    /// 3, 5 and 7, or (`sparse_super2`) group 0 and the two groups the superblock names.
    pub(crate) backups: Backups,
}

/// Which groups hold a copy of the superblock and the descriptor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backups {
    Every,
    Sparse,
    Two([u64; 2]),
}

/// `s_feature_compat`: superblock copies only in the two groups `s_backup_bgs` names.
const COMPAT_SPARSE_SUPER2: u32 = 0x200;

impl Geometry {
    /// Validates the superblock `sb` of a device `device_len` bytes long.
    pub(crate) fn parse(sb: &[u8; SUPERBLOCK_SIZE], device_len: u64) -> Result<Self> {
        let revision = check_format(sb)?;

        let log_block_size = le32(sb, 24);
        if log_block_size > 6 {
            return Err(Corrupt::BlockSize {
                log: log_block_size,
            }
            .into());
        }
        let block_size = 1024u64 << log_block_size;

        let blocks_count = u64::from(le32(sb, 4));
        let first_data_block = u64::from(le32(sb, 20));
        // The superblock at byte 1024 is in block 1 with 1 KiB blocks, in block 0 otherwise, and
        // the first data block is the superblock's block.
        let superblock_block = SUPERBLOCK_OFFSET / block_size;
        if first_data_block != superblock_block {
            return Err(Corrupt::FirstDataBlock {
                found: first_data_block,
                expected: superblock_block,
                block_size,
            }
            .into());
        }
        if blocks_count <= first_data_block {
            return Err(Corrupt::BlockCount {
                count: blocks_count,
            }
            .into());
        }

        // At most 2^32 blocks of 2^16 bytes: no overflow.
        let fs_bytes = blocks_count * block_size;
        if fs_bytes > device_len {
            return Err(Error::Truncated {
                fs_bytes,
                device_len,
            });
        }

        // A group's block and inode bitmaps are one block each, which caps the group sizes.
        let bits_per_block = 8 * block_size;
        let blocks_per_group = u64::from(le32(sb, 32));
        if !(1..=bits_per_block).contains(&blocks_per_group) {
            return Err(Corrupt::BlocksPerGroup {
                value: blocks_per_group,
                max: bits_per_block,
            }
            .into());
        }
        let inodes_per_group = u64::from(le32(sb, 40));
        if !(1..=bits_per_block).contains(&inodes_per_group) {
            return Err(Corrupt::InodesPerGroup {
                value: inodes_per_group,
                max: bits_per_block,
            }
            .into());
        }

        let inode_size = if revision == 0 {
            INODE_CORE_SIZE as u64
        } else {
            u64::from(le16(sb, 88))
        };
        if inode_size < INODE_CORE_SIZE as u64
            || !inode_size.is_power_of_two()
            || inode_size > block_size
        {
            return Err(Corrupt::InodeSize {
                size: inode_size,
                max: block_size,
            }
            .into());
        }

        let group_count = (blocks_count - first_data_block).div_ceil(blocks_per_group);
        let inodes_count = le32(sb, 0);
        // At most 2^32 groups of 2^19 inodes: no overflow.
        if u64::from(inodes_count) != group_count * inodes_per_group {
            return Err(Corrupt::InodeCount {
                count: inodes_count,
                groups: group_count,
                per_group: inodes_per_group,
            }
            .into());
        }

        // The group descriptor table starts in the block after the superblock's.
        let gdt_offset = (superblock_block + 1) * block_size;
        if gdt_offset + group_count * GROUP_DESC_SIZE > fs_bytes {
            return Err(Corrupt::GroupTable {
                groups: group_count,
            }
            .into());
        }
        if group_count > MAX_GROUPS {
            return Err(Unsupported::TooManyGroups {
                groups: group_count,
                max: MAX_GROUPS,
            }
            .into());
        }

        let (compat, ro_compat) = if revision >= 1 {
            (le32(sb, 92), le32(sb, 100))
        } else {
            (0, 0)
        };
        let backups = if compat & COMPAT_SPARSE_SUPER2 != 0 {
            Backups::Two([u64::from(le32(sb, 0x24c)), u64::from(le32(sb, 0x250))])
        } else if ro_compat & RO_COMPAT_SPARSE_SUPER != 0 {
            Backups::Sparse
        } else {
            Backups::Every
        };
        let reserved_gdt_blocks = if compat & COMPAT_RESIZE_INODE != 0 {
            u64::from(le16(sb, 206))
        } else {
            0
        };

        Ok(Geometry {
            revision,
            block_size,
            blocks_count,
            first_data_block,
            blocks_per_group,
            // Reported, never trusted for a read: clamp to the file system.
            reserved_blocks: u64::from(le32(sb, 8)).min(blocks_count),
            inodes_count,
            inodes_per_group,
            inode_size,
            dir_file_type: revision >= 1 && le32(sb, 96) & INCOMPAT_FILETYPE != 0,
            fs_bytes,
            group_count,
            gdt_offset,
            inode_table_blocks: (inodes_per_group * inode_size).div_ceil(block_size),
            gdt_blocks: (group_count * GROUP_DESC_SIZE).div_ceil(block_size),
            reserved_gdt_blocks,
            backups,
        })
    }

    /// The first block of `group`.
    pub(crate) fn group_first_block(&self, group: u64) -> u64 {
        self.first_data_block + group * self.blocks_per_group
    }

    /// Blocks in `group` (the last group may be short).
    pub(crate) fn blocks_in_group(&self, group: u64) -> u64 {
        let first = self.group_first_block(group);
        self.blocks_count
            .saturating_sub(first)
            .min(self.blocks_per_group)
    }

    /// The group holding `block` (a block past the superblock's).
    pub(crate) fn group_of_block(&self, block: u64) -> u64 {
        block.saturating_sub(self.first_data_block) / self.blocks_per_group
    }

    /// Whether `group` holds a copy of the superblock and the descriptor table.
    pub(crate) fn has_super(&self, group: u64) -> bool {
        let power_of = |base: u64| {
            let mut n = 1u64;
            // At most 41 multiplications for base 3 below 2^64.
            while n < group {
                n = n.saturating_mul(base);
            }
            n == group
        };
        match self.backups {
            _ if group == 0 => true,
            Backups::Every => true,
            Backups::Sparse => group == 1 || power_of(3) || power_of(5) || power_of(7),
            Backups::Two(groups) => groups.contains(&group),
        }
    }

    /// Blocks at the start of `group` taken by the superblock copy, the descriptor table and its
    /// reserved blocks (0 for a group without a copy), capped to the group.
    pub(crate) fn super_blocks_in_group(&self, group: u64) -> u64 {
        if self.has_super(group) {
            (1 + self.gdt_blocks + self.reserved_gdt_blocks).min(self.blocks_in_group(group))
        } else {
            0
        }
    }

    /// Block pointers in one indirect block (256..=16384).
    pub(crate) fn pointers_per_block(&self) -> u64 {
        self.block_size / 4
    }

    /// Block size as a buffer length (at most 64 KiB).
    pub(crate) fn block_len(&self) -> usize {
        self.block_size as usize
    }
}

/// Checks that `sb` is an ext2 superblock this reader understands: the magic, the revision and
/// the incompatible features. Returns the revision.
fn check_format(sb: &[u8; SUPERBLOCK_SIZE]) -> Result<u32> {
    let magic = le16(sb, 56);
    if magic != EXT2_MAGIC {
        return Err(Error::NotExt2 { magic });
    }
    let revision = le32(sb, 76);
    if revision > 1 {
        return Err(Unsupported::Revision(revision).into());
    }
    // Revision 0 predates feature flags; its feature fields are not meaningful.
    if revision == 1 {
        let unknown = le32(sb, 96) & !INCOMPAT_FILETYPE;
        if unknown != 0 {
            return Err(Unsupported::Incompat(unknown).into());
        }
    }
    Ok(revision)
}
