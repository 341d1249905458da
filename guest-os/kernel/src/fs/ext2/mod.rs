//! ext2 file systems on virtio disks — the root on the first, `--volume` disks on the others —
//! read-write over `noa-ext2`, which owns the on-disk format and the order of its writes.
//!
//! [`Ext2Fs`] is one mounted file system: the `noa_ext2::Ext2` behind a reader-writer lock
//! (reads share it, every change takes it alone: a change touches bitmaps, inodes and directory
//! blocks that must move together), a name cache, and the table of live inode objects. The
//! [`disk::Disk`] under it caches blocks and writes them back at fsync, sync and unmount.
//!
//! Inode objects ([`inode::Ext2Inode`]) are unique per inode while alive (the `live` table), so
//! every open file, mapping and cwd of one inode sees one copy of its on-disk fields, updated
//! under the write lock after each change. A small direct-mapped table keeps recently used ones
//! alive between system calls. An inode whose last name is removed stays allocated while an
//! object refers to it (an open file, a mapping, a cwd); the object's drop queues it as an
//! orphan, freed at the next change, sync or unmount — unlink of open files, as POSIX wants.
//!
//! The name cache maps (directory, name) → inode number, negative entries included; every change
//! of a directory updates the names it touched, so it never needs a flush.
//!
//! Locks: the file system lock is never held while user memory is touched (user data moves
//! through kernel bounce buffers first: a page fault taken under the lock could need the lock).
//! Order: the file system lock, then an inode's fields, then the small tables.
//!
//! Owns: the mounted ext2 file systems, their caches, [`sync_all`] and [`unmount_all`].

mod disk;
mod inode;

pub use inode::Ext2Inode;

use super::InodeRef;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use disk::Disk;
use hal_pv::virtio::Device;
use hal_pv::virtio::block::Block;
use noa_ext2::{Ext2, InodeNo};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::makedev;
use spin::{Mutex, RwLock};

/// `st_dev` of the root file system: vda is 254:0 on Linux; vdb 254:16, and so on.
pub const ROOT_DEV: u64 = makedev(254, 0);
/// Name cache slots (direct-mapped).
const NAME_SLOTS: usize = 1024;
/// Recently used inodes kept alive (direct-mapped).
const RECENT_SLOTS: usize = 512;

/// Every mounted ext2, for sync and unmount.
static MOUNTED: Mutex<Vec<Arc<Ext2Fs>>> = Mutex::new(Vec::new());

struct NameEntry {
    dir: u32,
    name: alloc::boxed::Box<[u8]>,
    ino: Option<u32>,
}

/// A mounted ext2 file system.
pub struct Ext2Fs {
    fs: RwLock<Ext2<Disk>>,
    dev: u64,
    writable: bool,
    block_size: u64,
    names: Mutex<Vec<Option<NameEntry>>>,
    recent: Mutex<Vec<Option<Arc<Ext2Inode>>>>,
    live: Mutex<BTreeMap<u32, Weak<Ext2Inode>>>,
    /// Inodes without names whose last object is gone: to be freed.
    orphans: Mutex<Vec<InodeNo>>,
}

/// The errno for a file system error.
pub(crate) fn errno(e: noa_ext2::Error) -> Errno {
    Errno(e.errno())
}

/// Seconds since the epoch, as ext2 stores times.
fn now_secs() -> u32 {
    (hal_pv::time::realtime_ns() / 1_000_000_000) as u32
}

fn name_hash(dir: u32, name: &[u8]) -> usize {
    // FNV-1a: a few instructions per byte.
    let mut h: u32 = 0x811c_9dc5 ^ dir;
    for &b in name {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h as usize) % NAME_SLOTS
}

impl Ext2Fs {
    /// Opens the disk and the file system on it as device number `dev`: read-write unless
    /// `read_only` or the disk is, or the file system is one we cannot write safely (unknown
    /// features, errors recorded): that one is mounted read-only, with a console line why.
    pub fn mount(device: Device, dev: u64, read_only: bool) -> Result<Arc<Ext2Fs>, String> {
        let block = Block::open(device).map_err(|e| format!("{e}"))?;
        let disk = Disk::new(block);
        let (fs, writable) = if read_only || disk.read_only() {
            (Ext2::open(disk).map_err(|e| format!("{e}"))?, false)
        } else {
            match Ext2::open_rw_at(disk.clone(), Some(now_secs())) {
                Ok(fs) => (fs, true),
                Err(why) => {
                    hal_pv::println!("ext2: {why}: mounted read-only");
                    (Ext2::open(disk).map_err(|e| format!("{e}"))?, false)
                }
            }
        };
        let block_size = fs.block_size();
        let mounted = Arc::new(Ext2Fs {
            fs: RwLock::new(fs),
            dev,
            writable,
            block_size,
            names: Mutex::new((0..NAME_SLOTS).map(|_| None).collect()),
            recent: Mutex::new((0..RECENT_SLOTS).map(|_| None).collect()),
            live: Mutex::new(BTreeMap::new()),
            orphans: Mutex::new(Vec::new()),
        });
        MOUNTED.lock().push(mounted.clone());
        Ok(mounted)
    }

    /// The root directory (an empty tmpfs if it cannot be read any more).
    pub fn root(self: &Arc<Self>) -> InodeRef {
        match self.inode(InodeNo::ROOT) {
            Ok(root) => root,
            Err(_) => super::tmpfs::TmpFs::new().root(),
        }
    }

    /// The object of inode `ino`: the live one, or read now.
    fn inode(self: &Arc<Self>, ino: InodeNo) -> SysResult<InodeRef> {
        Ok(self.inode_object(ino)?)
    }

    fn inode_object(self: &Arc<Self>, ino: InodeNo) -> SysResult<Arc<Ext2Inode>> {
        let slot = ino.get() as usize % RECENT_SLOTS;
        if let Some(cached) = self.recent.lock()[slot].as_ref().filter(|i| i.ino() == ino) {
            return Ok(cached.clone());
        }
        let object = {
            // Under the file system lock, so no change runs between the read and the table.
            let fs = self.fs.read();
            let mut live = self.live.lock();
            match live.get(&ino.get()).and_then(Weak::upgrade) {
                Some(object) => object,
                None => {
                    let raw = fs.inode(ino).map_err(errno)?;
                    let object = Ext2Inode::new(self.clone(), raw);
                    if live.len() >= 4 * RECENT_SLOTS {
                        live.retain(|_, weak| weak.strong_count() > 0);
                    }
                    live.insert(ino.get(), Arc::downgrade(&object));
                    object
                }
            }
        };
        // The replaced entry may be the last reference of an unlinked inode: drop it outside
        // the table's lock (its drop queues an orphan).
        let replaced = self.recent.lock()[slot].replace(object.clone());
        drop(replaced);
        Ok(object)
    }

    /// The live object of `ino`, if any.
    fn live_object(&self, ino: InodeNo) -> Option<Arc<Ext2Inode>> {
        self.live.lock().get(&ino.get()).and_then(Weak::upgrade)
    }

    /// Looks `name` up in `dir`, through the name cache.
    fn lookup(&self, dir: &noa_ext2::Inode, name: &[u8]) -> SysResult<Option<InodeNo>> {
        let dir_no = dir.ino().get();
        let slot = name_hash(dir_no, name);
        if let Some(entry) = self.names.lock()[slot]
            .as_ref()
            .filter(|e| e.dir == dir_no && *e.name == *name)
        {
            return Ok(entry.ino.map(InodeNo::new));
        }
        let found = self.fs.read().lookup(dir, name).map_err(errno)?;
        self.set_name(dir.ino(), name, found);
        Ok(found)
    }

    /// Records what `name` in `dir` now names.
    fn set_name(&self, dir: InodeNo, name: &[u8], ino: Option<InodeNo>) {
        let slot = name_hash(dir.get(), name);
        self.names.lock()[slot] = Some(NameEntry {
            dir: dir.get(),
            name: name.into(),
            ino: ino.map(InodeNo::get),
        });
    }

    /// Runs a change under the write lock, after freeing queued orphans.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Ext2<Disk>, u32) -> noa_ext2::Result<T>,
    ) -> SysResult<T> {
        if !self.writable {
            return Err(Errno::EROFS);
        }
        let mut fs = self.fs.write();
        self.free_orphans(&mut fs);
        f(&mut fs, now_secs()).map_err(errno)
    }

    /// Gives the on-disk fields of `raw` to its live object, if any.
    fn publish(&self, raw: &noa_ext2::Inode) {
        if let Some(object) = self.live_object(raw.ino()) {
            object.set_raw(raw.clone());
        }
    }

    /// Re-reads `ino` (a directory whose size, times or links a change moved) for its object.
    fn refresh(&self, fs: &Ext2<Disk>, ino: InodeNo) {
        if let Some(object) = self.live_object(ino)
            && let Ok(raw) = fs.inode(ino)
        {
            object.set_raw(raw);
        }
    }

    /// `ino` lost its last name: it leaves the recent table so that its last object can go; if
    /// none is left it is freed now, else when the last one drops.
    fn unlinked(&self, fs: &mut Ext2<Disk>, ino: InodeNo) {
        let slot = ino.get() as usize % RECENT_SLOTS;
        let evicted = {
            let mut recent = self.recent.lock();
            if recent[slot].as_ref().is_some_and(|i| i.ino() == ino) {
                recent[slot].take()
            } else {
                None
            }
        };
        drop(evicted);
        if self.live_object(ino).is_none() {
            self.orphans.lock().push(ino);
        }
        self.free_orphans(fs);
    }

    fn free_orphans(&self, fs: &mut Ext2<Disk>) {
        let mut orphans = core::mem::take(&mut *self.orphans.lock());
        // An inode can be queued twice: by `unlinked` and by the drop of an object it evicted.
        orphans.sort_unstable();
        orphans.dedup();
        for ino in orphans {
            // A new object may have appeared only through a name, and these have none.
            if let Err(why) = fs.free_inode(ino, now_secs()) {
                hal_pv::println!("ext2: cannot free inode {ino}: {why}");
            }
            crate::mm::page_cache::forget((self.dev, u64::from(ino.get())));
        }
    }

    /// Writes back everything this file system holds in memory and flushes the disk.
    pub fn sync(&self) -> SysResult<()> {
        if !self.writable {
            return Ok(());
        }
        let mut fs = self.fs.write();
        self.free_orphans(&mut fs);
        fs.sync().map_err(errno)
    }

    /// Frees inodes that lost their names (no one may use them after this: the machine stops),
    /// writes everything back and marks the file system clean.
    fn unmount(&self) -> SysResult<()> {
        if !self.writable {
            return Ok(());
        }
        let mut fs = self.fs.write();
        let unnamed: Vec<InodeNo> = self
            .live
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .filter(|object| object.links() == 0)
            .map(|object| object.ino())
            .collect();
        self.orphans.lock().extend(unnamed);
        self.free_orphans(&mut fs);
        fs.unmount().map_err(errno)
    }
}

/// `sync(2)`: every dirty-mapped page, then every file system, to stable storage.
pub fn sync_all() -> SysResult<()> {
    let mut result = crate::mm::page_cache::write_back_all();
    let mounted: Vec<Arc<Ext2Fs>> = MOUNTED.lock().clone();
    for fs in mounted {
        if let Err(e) = fs.sync() {
            result = Err(e);
        }
    }
    result
}

/// Power-off: [`sync_all`], then each file system is marked clean (e2fsck finds nothing to do).
pub fn unmount_all() {
    if let Err(e) = crate::mm::page_cache::write_back_all() {
        hal_pv::println!("ext2: writing mapped pages back failed: {e:?}");
    }
    let mounted: Vec<Arc<Ext2Fs>> = MOUNTED.lock().clone();
    for fs in mounted {
        if let Err(e) = fs.unmount() {
            hal_pv::println!("ext2: unmount of {:#x} failed: {e:?}", fs.dev);
        }
    }
}
