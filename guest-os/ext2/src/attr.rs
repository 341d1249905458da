//! Inode attributes and the end of an inode's life: [`Ext2::set_attr`] (chmod, chown, utimes)
//! and [`Ext2::free_inode`], which frees an inode whose last link is gone once the caller has
//! closed it.
//!
//! Freeing writes the inode first (deletion time set, no size, no block pointers, no attribute
//! block), so a crash after it leaves blocks marked used that nothing points at, which `e2fsck`
//! reclaims; then the blocks, a shared extended attribute block's reference, and the inode's
//! bit go.

use crate::bytes::le32;
use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{FileType, Inode, InodeNo};

/// The magic of an extended attribute block header.
const XATTR_MAGIC: u32 = 0xea02_0000;

/// Attributes to change; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// Permission bits, set-id and sticky bits (`mode & 0o7777`); the file type stays.
    pub mode: Option<u16>,
    pub uid: Option<u16>,
    pub gid: Option<u16>,
    pub atime: Option<u32>,
    pub mtime: Option<u32>,
    pub ctime: Option<u32>,
}

impl<D: BlockDevice> Ext2<D> {
    /// Changes inode `ino`'s attributes; returns the updated inode.
    pub fn set_attr(&mut self, ino: InodeNo, attr: SetAttr) -> Result<Inode> {
        let latest = [attr.atime, attr.mtime, attr.ctime]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0);
        self.writer(latest)?;
        self.check_changeable(ino)?;
        let mut raw = self.read_raw(ino)?;
        if let Some(mode) = attr.mode {
            raw.set_mode((raw.mode() & !0o7777) | (mode & 0o7777));
        }
        if let Some(uid) = attr.uid {
            raw.set_uid(uid);
        }
        if let Some(gid) = attr.gid {
            raw.set_gid(gid);
        }
        if let Some(time) = attr.atime {
            raw.set_atime(time);
        }
        if let Some(time) = attr.mtime {
            raw.set_mtime(time);
        }
        if let Some(time) = attr.ctime {
            raw.set_ctime(time);
        }
        self.write_raw(&raw)?;
        self.to_inode(&raw)
    }

    /// Frees inode `ino`, which has no links left (after [`Self::unlink`], [`Self::rmdir`] or a
    /// rename replaced it, once nothing has it open): every block, its extended attribute block
    /// reference, and the inode (a directory also leaves its group's directory count).
    pub fn free_inode(&mut self, ino: InodeNo, now: u32) -> Result<()> {
        self.writer(now)?;
        self.check_changeable(ino)?;
        let mut raw = self.read_raw(ino)?;
        if raw.links() != 0 {
            return Err(Error::InvalidArgument("the inode still has links"));
        }
        let is_dir = raw.is_dir();
        let has_block_map = match raw.file_type() {
            FileType::Regular | FileType::Directory => true,
            FileType::Symlink => !self.is_fast_symlink(&self.to_inode(&raw)?),
            _ => false,
        };
        let attr_block = raw.file_acl();
        // A deletion time of 0 reads as "unlinked but open", and one below the inode count as a
        // link in the orphan list (e2fsck): a clock that says 1970 writes the inode count.
        raw.set_dtime(now.max(self.geo.inodes_count));
        raw.set_size(0, self.geo.revision);
        raw.set_file_acl(0);
        if has_block_map {
            self.release_blocks(&mut raw, 0)?;
        } else {
            self.write_raw(&raw)?;
        }
        if attr_block != 0 {
            self.release_attr_block(ino, attr_block)?;
        }
        self.free_inode_bit(ino, is_dir)?;
        self.flush_bitmaps()
    }

    /// Drops one reference to extended attribute block `block`, freeing it at the last.
    fn release_attr_block(&mut self, ino: InodeNo, block: u32) -> Result<()> {
        let block = self.check_pointer(ino, u64::from(block))?;
        let offset = block * self.geo.block_size;
        let mut header = [0u8; 8];
        self.disk.read(offset, &mut header)?;
        let refs = le32(&header, 4);
        if le32(&header, 0) != XATTR_MAGIC || refs == 0 {
            return Err(Corrupt::AttributeBlock { ino, block }.into());
        }
        if refs > 1 {
            self.disk.write(offset + 4, &(refs - 1).to_le_bytes())
        } else {
            self.free_blocks(ino, block, 1)
        }
    }
}
