//! Absolute paths: [`Ext2::lookup_path`], one directory lookup per component, no symlinks
//! followed. `.` and `..` need no special case: they are entries on disk like any other, and the
//! walk does exactly one lookup per component, so a corrupt `..` can misdirect it but not loop it.

use crate::NAME_MAX;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{FileType, InodeNo};

impl<D: BlockDevice> Ext2<D> {
    /// Resolves an absolute path (`/boot/kernel`) to its inode. Repeated slashes are one; a
    /// trailing slash asks for a directory. A symlink anywhere but last fails with
    /// [`Error::NotADirectory`]: following it is the caller's choice (see [`Self::read_link`]).
    pub fn lookup_path(&self, path: &[u8]) -> Result<InodeNo> {
        if path.first() != Some(&b'/') {
            return Err(Error::NotAbsolute);
        }
        let components = path.split(|&b| b == b'/').filter(|c| !c.is_empty());
        if components.clone().any(|c| c.len() > NAME_MAX) {
            return Err(Error::NameTooLong);
        }
        let mut ino = self.root();
        for name in components {
            let dir = self.inode(ino)?;
            ino = self.lookup(&dir, name)?.ok_or(Error::NotFound)?;
        }
        if path.ends_with(b"/") {
            let inode = self.inode(ino)?;
            if inode.file_type() != FileType::Directory {
                return Err(Error::NotADirectory { ino });
            }
        }
        Ok(ino)
    }
}
