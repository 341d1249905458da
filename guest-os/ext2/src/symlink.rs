//! Symbolic links: [`Ext2::read_link`]. A short target (up to 60 bytes) lives in the inode's
//! `i_block` words (a "fast" symlink, with no data blocks); a longer one in data blocks. Targets
//! are bounded: 60 bytes fast, less than a block and at most 4095 bytes (`PATH_MAX` less the
//! NUL) slow, so a hostile size cannot make us allocate.

use alloc::vec;
use alloc::vec::Vec;

use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{BLOCK_POINTERS, FileType, Inode};

/// Bytes a fast symlink's target can take: all of `i_block`.
const FAST_SYMLINK_MAX: u64 = 4 * BLOCK_POINTERS as u64;
/// `PATH_MAX`, which counts the terminating NUL.
const PATH_MAX: u64 = 4096;

impl<D: BlockDevice> Ext2<D> {
    /// The target of symlink `inode`, as stored (not NUL-terminated, not resolved).
    pub fn read_link(&self, inode: &Inode) -> Result<Vec<u8>> {
        let ino = inode.ino();
        if inode.file_type() != FileType::Symlink {
            return Err(Error::NotASymlink {
                ino,
                file_type: inode.file_type(),
            });
        }
        let size = inode.size();
        if self.is_fast_symlink(inode) {
            if size > FAST_SYMLINK_MAX {
                return Err(Corrupt::SymlinkSize {
                    ino,
                    size,
                    max: FAST_SYMLINK_MAX,
                }
                .into());
            }
            let mut target: Vec<u8> = inode
                .block_words()
                .iter()
                .flat_map(|word| word.to_le_bytes())
                .collect();
            target.truncate(size as usize);
            return Ok(target);
        }
        let max = self.geo.block_size.min(PATH_MAX) - 1;
        if size > max {
            return Err(Corrupt::SymlinkSize { ino, size, max }.into());
        }
        let mut target = vec![0u8; size as usize];
        let read = self.read_data(inode, 0, &mut target)?;
        if read as u64 != size {
            return Err(Corrupt::ShortRead {
                ino,
                size,
                read: read as u64,
            }
            .into());
        }
        Ok(target)
    }

    /// Whether the target lives in `i_block`: Linux's test, no data blocks besides an extended
    /// attribute block.
    pub(crate) fn is_fast_symlink(&self, inode: &Inode) -> bool {
        let ea_sectors = if inode.file_acl() != 0 {
            self.geo.block_size / 512
        } else {
            0
        };
        inode.blocks() == ea_sectors
    }
}
