//! [`Ext2`]: an open file system. Opening validates the superblock, caches the group descriptor
//! table and checks the root directory, so that a broken image fails at open rather than at the
//! first lookup; afterwards it hands out inodes. File data, directories, paths, symlinks,
//! `statfs`, and every change (see `mount` for opening for writing) live in their own modules as
//! further `impl Ext2` blocks.

use alloc::vec::Vec;
use core::fmt;

use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::disk::{Disk, read_device};
use crate::error::{Error, Result};
use crate::group::{self, Group};
use crate::inode::{FileType, Inode, InodeNo};
use crate::mount::Writer;
use crate::superblock::{Geometry, INODE_CORE_SIZE, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};

/// An open ext2 file system on a device `D`. Reads go to the device (only the group descriptors
/// are cached), so nothing else may change the device while it is open. Reads take `&self`,
/// changes `&mut self`; changes need a file system opened with [`Ext2::open_rw`] and fail with
/// [`Error::ReadOnly`] otherwise.
pub struct Ext2<D> {
    pub(crate) disk: Disk<D>,
    pub(crate) geo: Geometry,
    pub(crate) groups: Vec<Group>,
    /// The writer's state; `None` when read-only.
    pub(crate) rw: Option<Writer>,
}

impl<D: fmt::Debug> fmt::Debug for Ext2<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The geometry and the group count, not up to 65536 descriptors.
        f.debug_struct("Ext2")
            .field("device", &self.disk.dev)
            .field("geometry", &self.geo)
            .field("groups", &self.groups.len())
            .field("writable", &self.rw.is_some())
            .finish()
    }
}

impl<D: BlockDevice> Ext2<D> {
    /// Opens the file system on `dev`, read-only: validates the superblock against the device size, reads
    /// and validates the group descriptor table and checks that the root is a directory.
    pub fn open(dev: D) -> Result<Self> {
        let device_len = dev.len();
        if device_len < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Err(Error::TooSmall { len: device_len });
        }
        let mut sb = [0u8; SUPERBLOCK_SIZE];
        read_device(&dev, SUPERBLOCK_OFFSET, &mut sb)?;
        let geo = Geometry::parse(&sb, device_len)?;
        let disk = Disk {
            dev,
            fs_bytes: geo.fs_bytes,
        };
        let groups = group::read_table(&disk, &geo)?;
        let fs = Ext2 {
            disk,
            geo,
            groups,
            rw: None,
        };
        if fs.inode(InodeNo::ROOT)?.file_type() != FileType::Directory {
            return Err(Corrupt::RootNotDirectory.into());
        }
        Ok(fs)
    }

    /// The root directory.
    pub fn root(&self) -> InodeNo {
        InodeNo::ROOT
    }

    /// Reads and validates inode `ino`. A file, directory or symlink whose size is more than its
    /// block map can address fails here, so no caller sizes a buffer by it.
    pub fn inode(&self, ino: InodeNo) -> Result<Inode> {
        let offset = self.inode_offset(ino)?;
        let mut raw = [0u8; INODE_CORE_SIZE];
        self.disk.read(offset, &mut raw)?;
        let inode = Inode::parse(ino, &raw, self.geo.revision)?;
        if matches!(
            inode.file_type(),
            FileType::Regular | FileType::Directory | FileType::Symlink
        ) {
            self.check_size(&inode)?;
        }
        Ok(inode)
    }

    /// Block size in bytes (1024..=65536).
    pub fn block_size(&self) -> u64 {
        self.geo.block_size
    }

    /// The device the file system reads.
    pub fn device(&self) -> &D {
        &self.disk.dev
    }

    /// Closes the file system, giving the device back.
    pub fn into_device(self) -> D {
        self.disk.dev
    }

    /// Byte offset of inode `ino` on the device, after checking the number.
    pub(crate) fn inode_offset(&self, ino: InodeNo) -> Result<u64> {
        let count = self.geo.inodes_count;
        if ino.get() == 0 || ino.get() > count {
            return Err(Corrupt::InodeNumber { ino, count }.into());
        }
        let index = u64::from(ino.get() - 1);
        let group = index / self.geo.inodes_per_group;
        let slot = index % self.geo.inodes_per_group;
        // The inode count matches the group count, so the group exists; its table was validated.
        let group = usize::try_from(group)
            .ok()
            .and_then(|g| self.groups.get(g))
            .ok_or(Corrupt::InodeNumber { ino, count })?;
        Ok(u64::from(group.inode_table) * self.geo.block_size + slot * self.geo.inode_size)
    }
}
