//! [`Ext2::rename`]: rename(2) and renameat2(2) (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
//!
//! A rename adds (or repoints) the new entry before removing the old one, so a crash leaves the
//! inode named twice (which `e2fsck` fixes by the link count) rather than not at all. A moved
//! directory gets its `..` repointed and both parents' link counts adjusted after the entries.
//! A directory cannot move into its own subtree: `..` is followed up from the new parent
//! (bounded, so a corrupt `..` cycle is an error, not a hang).

use crate::device::BlockDevice;
use crate::dir_write::Search;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{Inode, InodeNo, LINK_MAX};
use crate::name::check_name;
use crate::raw_inode::RawInode;

/// renameat2 flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// Fail with [`Error::Exists`] rather than replace (`RENAME_NOREPLACE`).
    pub noreplace: bool,
    /// Swap the two names, both of which must exist (`RENAME_EXCHANGE`).
    pub exchange: bool,
}

/// The one or two parent directories of a rename.
struct Parents {
    old: RawInode,
    /// `None` when the new parent is the old one.
    new: Option<RawInode>,
    old_delta: i32,
    new_delta: i32,
}

impl Parents {
    fn new_dir(&self) -> &RawInode {
        self.new.as_ref().unwrap_or(&self.old)
    }

    fn new_dir_mut(&mut self) -> &mut RawInode {
        self.new.as_mut().unwrap_or(&mut self.old)
    }
}

impl<D: BlockDevice> Ext2<D> {
    /// Renames `old_name` in `old_dir` to `new_name` in `new_dir`, with rename(2) semantics:
    /// a file replaces a file, a directory replaces an empty directory, other pairings fail
    /// ([`Error::NotADirectory`], [`Error::IsADirectory`], [`Error::NotEmpty`]); a directory
    /// cannot move into itself ([`Error::InvalidArgument`]); renaming a name to itself, or to
    /// another name of the same inode, does nothing. Returns the replaced inode, its link count
    /// already lowered: the caller frees it ([`Self::free_inode`]) at 0 links once unused.
    #[allow(clippy::too_many_arguments)]
    pub fn rename(
        &mut self,
        old_dir: InodeNo,
        old_name: &[u8],
        new_dir: InodeNo,
        new_name: &[u8],
        flags: RenameFlags,
        now: u32,
    ) -> Result<Option<Inode>> {
        self.writer(now)?;
        if flags.noreplace && flags.exchange {
            return Err(Error::InvalidArgument(
                "RENAME_NOREPLACE and RENAME_EXCHANGE together",
            ));
        }
        check_name(old_name)?;
        check_name(new_name)?;
        let old_parent = self.dir_for_change(old_dir)?;
        let new_parent = if new_dir == old_dir {
            None
        } else {
            Some(self.dir_for_change(new_dir)?)
        };
        let mut parents = Parents {
            old: old_parent,
            new: new_parent,
            old_delta: 0,
            new_delta: 0,
        };
        if new_dir == old_dir && new_name == old_name {
            self.find_entry(&self.to_inode(&parents.old)?, old_name)?
                .ok_or(Error::NotFound)?;
            return Ok(None);
        }
        // One pass over each directory: the new name and room for it, with the old name when
        // both are in one directory.
        let (mut old_entry, new_entry, room) = if new_dir == old_dir {
            let search = Search::names(old_name, Some(new_name)).with_room_for(new_name);
            let search = self.search_dir(&self.to_inode(&parents.old)?, search)?;
            let [old, new] = search.found;
            (old.ok_or(Error::NotFound)?, new, search.room)
        } else {
            let old = self
                .find_entry(&self.to_inode(&parents.old)?, old_name)?
                .ok_or(Error::NotFound)?;
            let search = Search::names(new_name, None).with_room_for(new_name);
            let search = self.search_dir(&self.to_inode(parents.new_dir())?, search)?;
            let [new, _] = search.found;
            (old, new, search.room)
        };
        if new_entry.is_some_and(|e| e.ino == old_entry.ino) {
            return Ok(None);
        }
        self.check_changeable(old_entry.ino)?;
        let mut src = self.read_raw(old_entry.ino)?;
        let mut dst = match new_entry {
            Some(entry) => {
                self.check_changeable(entry.ino)?;
                Some(self.read_raw(entry.ino)?)
            }
            None => None,
        };
        let moves = new_dir != old_dir;

        if flags.exchange {
            let (Some(new_entry), Some(dst)) = (new_entry, dst.as_mut()) else {
                return Err(Error::NotFound);
            };
            if moves {
                if src.is_dir() && self.is_within(new_dir, src.ino)? {
                    return Err(Error::InvalidArgument(
                        "a directory cannot move into itself",
                    ));
                }
                if dst.is_dir() && self.is_within(old_dir, dst.ino)? {
                    return Err(Error::InvalidArgument(
                        "a directory cannot move into itself",
                    ));
                }
                let gain_new = i32::from(src.is_dir()) - i32::from(dst.is_dir());
                check_links(parents.new_dir(), gain_new)?;
                check_links(&parents.old, -gain_new)?;
            }
            self.retarget_entry(&new_entry, src.ino, src.file_type())?;
            self.retarget_entry(&old_entry, dst.ino, dst.file_type())?;
            if moves {
                if src.is_dir() {
                    self.move_dir(&src, new_dir)?;
                    parents.old_delta -= 1;
                    parents.new_delta += 1;
                }
                if dst.is_dir() {
                    self.move_dir(dst, old_dir)?;
                    parents.new_delta -= 1;
                    parents.old_delta += 1;
                }
            }
            dst.set_ctime(now);
            self.write_raw(dst)?;
        } else {
            if let Some(dst) = &dst {
                if flags.noreplace {
                    return Err(Error::Exists);
                }
                match (src.is_dir(), dst.is_dir()) {
                    (true, false) => return Err(Error::NotADirectory { ino: dst.ino }),
                    (false, true) => return Err(Error::IsADirectory { ino: dst.ino }),
                    (true, true) if !self.dir_is_empty(&self.to_inode(dst)?)? => {
                        return Err(Error::NotEmpty);
                    }
                    _ => {}
                }
            }
            if src.is_dir() && moves {
                if self.is_within(new_dir, src.ino)? {
                    return Err(Error::InvalidArgument(
                        "a directory cannot move into itself",
                    ));
                }
                if dst.is_none() {
                    check_links(parents.new_dir(), 1)?;
                }
            }
            // The new name first, then the old one goes. Nothing changed the new directory's
            // entries since the search, so its room still holds.
            match new_entry {
                Some(entry) => self.retarget_entry(&entry, src.ino, src.file_type())?,
                None => {
                    let room = self.room_or_grow(parents.new_dir_mut(), room)?;
                    self.write_entry(room, new_name, src.ino, src.file_type())?;
                    // An entry added to the same directory may have split the old entry or
                    // the one before it.
                    if !moves {
                        old_entry = old_entry.after_insert(room);
                    }
                }
            }
            self.remove_entry(&old_entry)?;
            if src.is_dir() && moves {
                self.move_dir(&src, new_dir)?;
                parents.old_delta -= 1;
                parents.new_delta += 1;
            }
            if let Some(dst) = dst.as_mut() {
                if dst.is_dir() {
                    dst.set_links(0);
                    parents.new_delta -= 1;
                } else {
                    dst.set_links(dst.links().saturating_sub(1));
                }
                dst.set_ctime(now);
                self.write_raw(dst)?;
            }
        }
        src.set_ctime(now);
        self.write_raw(&src)?;
        self.finish_parents(&mut parents, now)?;
        self.flush_bitmaps()?;
        dst.filter(|_| !flags.exchange)
            .map(|dst| self.to_inode(&dst))
            .transpose()
    }

    /// Points directory `dir`'s `..` at `parent`.
    fn move_dir(&mut self, dir: &RawInode, parent: InodeNo) -> Result<()> {
        let inode = self.to_inode(dir)?;
        let dotdot = self.dotdot(&inode)?;
        self.retarget_entry(&dotdot, parent, crate::FileType::Directory)
    }

    /// Applies the link count changes and times to the parents and writes them.
    fn finish_parents(&self, parents: &mut Parents, now: u32) -> Result<()> {
        match parents.new.as_mut() {
            Some(new) => {
                self.dir_changed(&mut parents.old, parents.old_delta, now)?;
                self.dir_changed(new, parents.new_delta, now)
            }
            None => {
                let delta = parents.old_delta + parents.new_delta;
                self.dir_changed(&mut parents.old, delta, now)
            }
        }
    }
}

/// Checks that directory `dir` can gain `gain` links.
fn check_links(dir: &RawInode, gain: i32) -> Result<()> {
    if gain > 0 && i32::from(dir.links()) + gain > i32::from(LINK_MAX) {
        return Err(Error::TooManyLinks);
    }
    Ok(())
}
