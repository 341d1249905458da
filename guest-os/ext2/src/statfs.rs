//! [`StatFs`]: the totals `statfs(2)` reports, from the superblock and the cached group
//! descriptors (whose free counts Linux keeps current; the superblock's lag until unmount).

use crate::NAME_MAX;
use crate::device::BlockDevice;
use crate::fs::Ext2;

/// File system totals. Counts are clamped to the file system's size, so a corrupt free count
/// cannot report more free space than there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub block_size: u64,
    /// All blocks, metadata included.
    pub blocks: u64,
    pub free_blocks: u64,
    /// Free blocks an unprivileged user may take (free less the root reserve).
    pub available_blocks: u64,
    pub inodes: u64,
    pub free_inodes: u64,
    /// The longest name (255).
    pub name_max: u64,
}

impl<D: BlockDevice> Ext2<D> {
    /// The file system's totals.
    pub fn statfs(&self) -> StatFs {
        let geo = &self.geo;
        let (free_blocks, free_inodes) = self.groups.iter().fold((0u64, 0u64), |(b, i), g| {
            (b + u64::from(g.free_blocks), i + u64::from(g.free_inodes))
        });
        let free_blocks = free_blocks.min(geo.blocks_count);
        StatFs {
            block_size: geo.block_size,
            blocks: geo.blocks_count,
            free_blocks,
            available_blocks: free_blocks.saturating_sub(geo.reserved_blocks),
            inodes: u64::from(geo.inodes_count),
            free_inodes: free_inodes.min(u64::from(geo.inodes_count)),
            name_max: NAME_MAX as u64,
        }
    }
}
