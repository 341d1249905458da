//! The group descriptor table, read and validated once at open and kept in memory: every inode
//! read needs its group's inode table, `statfs` sums the free counts, and the allocators find the
//! bitmaps here and keep the free and directory counts current (written back by
//! [`Ext2::sync`](crate::Ext2::sync)).
//!
//! Each group's bitmaps and inode table must lie inside the group's own blocks, as in every
//! ext2 without `flex_bg` (which we refuse) and as Linux checks at mount; a descriptor that points
//! anywhere else fails [`Ext2::open`](crate::Ext2::open).

use alloc::vec::Vec;

use crate::bytes::{le16, le32};
use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::disk::Disk;
use crate::error::Result;
use crate::superblock::{GROUP_DESC_SIZE, Geometry};

/// Descriptors read per device read.
const DESCS_PER_READ: usize = 32;

/// Byte offset of the free block count in a descriptor; the free inode count and the used
/// directory count follow, 2 bytes each.
pub(crate) const COUNTS_OFFSET: u64 = 12;

/// One block group's descriptor, validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group {
    pub(crate) block_bitmap: u32,
    pub(crate) inode_bitmap: u32,
    pub(crate) inode_table: u32,
    pub(crate) free_blocks: u16,
    pub(crate) free_inodes: u16,
    pub(crate) used_dirs: u16,
}

impl Group {
    /// The three counts as stored at [`COUNTS_OFFSET`].
    pub(crate) fn counts_bytes(&self) -> [u8; 6] {
        let [a, b] = self.free_blocks.to_le_bytes();
        let [c, d] = self.free_inodes.to_le_bytes();
        let [e, f] = self.used_dirs.to_le_bytes();
        [a, b, c, d, e, f]
    }

    /// Whether blocks `start..start + count` overlap this group's bitmaps or inode table.
    pub(crate) fn holds_metadata(&self, geo: &Geometry, start: u64, count: u64) -> bool {
        let overlaps = |first: u64, len: u64| start < first + len && first < start + count;
        overlaps(u64::from(self.block_bitmap), 1)
            || overlaps(u64::from(self.inode_bitmap), 1)
            || overlaps(u64::from(self.inode_table), geo.inode_table_blocks)
    }
}

/// Reads and validates the whole group descriptor table (at most `MAX_GROUPS` entries).
pub(crate) fn read_table<D: BlockDevice>(disk: &Disk<D>, geo: &Geometry) -> Result<Vec<Group>> {
    let count = usize::try_from(geo.group_count).unwrap_or(0);
    let mut groups = Vec::with_capacity(count);
    let mut raw = [0u8; DESCS_PER_READ * GROUP_DESC_SIZE as usize];
    while groups.len() < count {
        let n = (count - groups.len()).min(DESCS_PER_READ);
        let Some(chunk) = raw.get_mut(..n * GROUP_DESC_SIZE as usize) else {
            break;
        };
        let offset = geo.gdt_offset + groups.len() as u64 * GROUP_DESC_SIZE;
        disk.read(offset, chunk)?;
        for desc in chunk.chunks_exact(GROUP_DESC_SIZE as usize) {
            let index = groups.len() as u64;
            groups.push(parse(geo, index, desc)?);
        }
    }
    Ok(groups)
}

/// Parses descriptor `index` and checks that its bitmaps and inode table lie in its group.
fn parse(geo: &Geometry, index: u64, desc: &[u8]) -> Result<Group> {
    let group = Group {
        block_bitmap: le32(desc, 0),
        inode_bitmap: le32(desc, 4),
        inode_table: le32(desc, 8),
        free_blocks: le16(desc, 12),
        free_inodes: le16(desc, 14),
        used_dirs: le16(desc, 16),
    };
    let first = geo.first_data_block + index * geo.blocks_per_group;
    let last = if index + 1 == geo.group_count {
        geo.blocks_count - 1
    } else {
        first + geo.blocks_per_group - 1
    };
    let parts = [
        ("block bitmap", group.block_bitmap, 1),
        ("inode bitmap", group.inode_bitmap, 1),
        ("inode table", group.inode_table, geo.inode_table_blocks),
    ];
    for (what, start, blocks) in parts {
        let start = u64::from(start);
        if start < first || start + blocks - 1 > last {
            return Err(Corrupt::GroupLayout {
                // At most MAX_GROUPS groups, so the index fits.
                group: index as u32,
                what,
                start,
                blocks,
                first,
                last,
            }
            .into());
        }
    }
    Ok(group)
}
