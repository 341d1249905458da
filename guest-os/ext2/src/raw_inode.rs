//! [`RawInode`]: the 128-byte core of an on-disk inode as the write path edits it, field by field,
//! before writing it back whole (one 128-byte device write). [`Inode`] is the validated, read-only
//! view handed to callers; a raw inode becomes one with [`Ext2::to_inode`].
//!
//! Reading a raw inode checks what every write relies on: the number is in range, the inode is
//! in use (a mode with a file type, and not freed: an unlinked inode that is still open has 0
//! links but no deletion time), and its blocks are an ext2 block map.

use crate::bytes::{le16, le32};
use crate::corrupt::Corrupt;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::features::{EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL, Unsupported};
use crate::fs::Ext2;
use crate::inode::{BLOCK_POINTERS, FileType, Inode, InodeNo};
use crate::superblock::INODE_CORE_SIZE;

// Byte offsets of the fields in the inode core.
const MODE: usize = 0;
const UID: usize = 2;
const SIZE: usize = 4;
const ATIME: usize = 8;
const CTIME: usize = 12;
const MTIME: usize = 16;
const DTIME: usize = 20;
const GID: usize = 24;
const LINKS: usize = 26;
const BLOCKS: usize = 28;
const FLAGS: usize = 32;
const BLOCK: usize = 40;
const FILE_ACL: usize = 104;
const SIZE_HIGH: usize = 108;
const UID_HIGH: usize = 120;
const GID_HIGH: usize = 122;

/// The core of an on-disk inode, being edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawInode {
    pub(crate) ino: InodeNo,
    pub(crate) bytes: [u8; INODE_CORE_SIZE],
}

impl RawInode {
    /// A zeroed inode `ino` (a fresh allocation).
    pub(crate) fn zeroed(ino: InodeNo) -> Self {
        RawInode {
            ino,
            bytes: [0; INODE_CORE_SIZE],
        }
    }

    fn put16(&mut self, at: usize, value: u16) {
        if let Some(field) = self.bytes.get_mut(at..at + 2) {
            field.copy_from_slice(&value.to_le_bytes());
        }
    }

    fn put32(&mut self, at: usize, value: u32) {
        if let Some(field) = self.bytes.get_mut(at..at + 4) {
            field.copy_from_slice(&value.to_le_bytes());
        }
    }

    pub(crate) fn mode(&self) -> u16 {
        le16(&self.bytes, MODE)
    }

    pub(crate) fn set_mode(&mut self, mode: u16) {
        self.put16(MODE, mode);
    }

    /// The file type of the mode (reading a raw inode checked that it has one).
    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode()).unwrap_or(FileType::Unknown)
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    pub(crate) fn links(&self) -> u16 {
        le16(&self.bytes, LINKS)
    }

    pub(crate) fn set_links(&mut self, links: u16) {
        self.put16(LINKS, links);
    }

    /// The size: 64-bit for regular files of revision 1 file systems, else 32-bit.
    pub(crate) fn size(&self, revision: u32) -> u64 {
        let low = u64::from(le32(&self.bytes, SIZE));
        if revision >= 1 && self.file_type() == FileType::Regular {
            low | u64::from(le32(&self.bytes, SIZE_HIGH)) << 32
        } else {
            low
        }
    }

    /// Sets the size; the caller keeps it within what the file type and revision store.
    pub(crate) fn set_size(&mut self, size: u64, revision: u32) {
        self.put32(SIZE, size as u32);
        if revision >= 1 && self.file_type() == FileType::Regular {
            self.put32(SIZE_HIGH, (size >> 32) as u32);
        }
    }

    /// `i_blocks`: 512-byte sectors in use, metadata included.
    pub(crate) fn sectors(&self) -> u32 {
        le32(&self.bytes, BLOCKS)
    }

    pub(crate) fn set_sectors(&mut self, sectors: u32) {
        self.put32(BLOCKS, sectors);
    }

    pub(crate) fn flags(&self) -> u32 {
        le32(&self.bytes, FLAGS)
    }

    pub(crate) fn set_flags(&mut self, flags: u32) {
        self.put32(FLAGS, flags);
    }

    /// `i_block[index]` (0 past the end).
    pub(crate) fn block(&self, index: usize) -> u32 {
        if index < BLOCK_POINTERS {
            le32(&self.bytes, BLOCK + 4 * index)
        } else {
            0
        }
    }

    pub(crate) fn set_block(&mut self, index: usize, value: u32) {
        if index < BLOCK_POINTERS {
            self.put32(BLOCK + 4 * index, value);
        }
    }

    /// All of `i_block` as bytes (a fast symlink's target).
    pub(crate) fn block_bytes_mut(&mut self) -> &mut [u8] {
        self.bytes
            .get_mut(BLOCK..BLOCK + 4 * BLOCK_POINTERS)
            .unwrap_or_default()
    }

    pub(crate) fn file_acl(&self) -> u32 {
        le32(&self.bytes, FILE_ACL)
    }

    pub(crate) fn set_file_acl(&mut self, block: u32) {
        self.put32(FILE_ACL, block);
    }

    pub(crate) fn dtime(&self) -> u32 {
        le32(&self.bytes, DTIME)
    }

    pub(crate) fn set_dtime(&mut self, time: u32) {
        self.put32(DTIME, time);
    }

    pub(crate) fn set_atime(&mut self, time: u32) {
        self.put32(ATIME, time);
    }

    pub(crate) fn set_ctime(&mut self, time: u32) {
        self.put32(CTIME, time);
    }

    pub(crate) fn set_mtime(&mut self, time: u32) {
        self.put32(MTIME, time);
    }

    /// Sets the owner's low 16 bits and clears the high ones.
    pub(crate) fn set_uid(&mut self, uid: u16) {
        self.put16(UID, uid);
        self.put16(UID_HIGH, 0);
    }

    /// Sets the group's low 16 bits and clears the high ones.
    pub(crate) fn set_gid(&mut self, gid: u16) {
        self.put16(GID, gid);
        self.put16(GID_HIGH, 0);
    }

    /// Changes mtime and ctime, as a change to the contents does.
    pub(crate) fn touch(&mut self, now: u32) {
        self.set_mtime(now);
        self.set_ctime(now);
    }
}

impl<D: BlockDevice> Ext2<D> {
    /// Reads inode `ino` for a change: in use (a 0 link count is fine: an unlinked file that is
    /// still open), not freed, with an ext2 block map.
    pub(crate) fn read_raw(&self, ino: InodeNo) -> Result<RawInode> {
        let offset = self.inode_offset(ino)?;
        let mut raw = RawInode::zeroed(ino);
        self.disk.read(offset, &mut raw.bytes)?;
        let mode = raw.mode();
        if mode == 0 || (raw.links() == 0 && raw.dtime() != 0) {
            return Err(Corrupt::InodeNotInUse { ino }.into());
        }
        if FileType::from_mode(mode).is_none() {
            return Err(Corrupt::InodeType { ino, mode }.into());
        }
        let flags = raw.flags();
        if flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL) != 0 {
            return Err(Unsupported::InodeFlags { ino, flags }.into());
        }
        Ok(raw)
    }

    /// Writes the core of `raw` back.
    pub(crate) fn write_raw(&self, raw: &RawInode) -> Result<()> {
        let offset = self.inode_offset(raw.ino)?;
        self.disk.write(offset, &raw.bytes)
    }

    /// Writes a freshly allocated inode whole: the core, then zeros over the rest of its slot
    /// (extra fields and in-inode attributes a freed inode may have left), as Linux ext2 does.
    pub(crate) fn write_new_raw(&mut self, raw: &RawInode) -> Result<()> {
        let offset = self.inode_offset(raw.ino)?;
        let size = self.geo.inode_size;
        // The usual 256-byte inode in one write; larger ones core first, then zeros.
        let mut whole = [0u8; 256];
        if let Some(slot) = whole.get_mut(..size as usize) {
            slot.get_mut(..INODE_CORE_SIZE)
                .unwrap_or_default()
                .copy_from_slice(&raw.bytes);
            return self.disk.write(offset, slot);
        }
        self.write_zeros(
            offset + INODE_CORE_SIZE as u64,
            size - INODE_CORE_SIZE as u64,
        )?;
        self.disk.write(offset, &raw.bytes)
    }

    /// The validated view of `raw` (which may have 0 links).
    pub(crate) fn to_inode(&self, raw: &RawInode) -> Result<Inode> {
        Inode::parse_any_links(raw.ino, &raw.bytes, self.geo.revision)
    }

    /// Reads and validates inode `ino` like [`Self::inode`], but also when it has no links left:
    /// a file unlinked while open, before [`Self::free_inode`].
    pub fn inode_any_links(&self, ino: InodeNo) -> Result<Inode> {
        let raw = self.read_raw(ino)?;
        let inode = self.to_inode(&raw)?;
        if matches!(
            inode.file_type(),
            FileType::Regular | FileType::Directory | FileType::Symlink
        ) {
            self.check_size(&inode)?;
        }
        Ok(inode)
    }

    /// Checks that `ino` may be changed: the root or an inode past the reserved ones.
    pub(crate) fn check_changeable(&self, ino: InodeNo) -> Result<()> {
        let first = self.rw.as_ref().ok_or(Error::ReadOnly)?.first_ino;
        if ino == InodeNo::ROOT || (ino.get() >= first && ino.get() <= self.geo.inodes_count) {
            Ok(())
        } else {
            Err(Error::NotPermitted("a reserved inode cannot be changed"))
        }
    }
}
