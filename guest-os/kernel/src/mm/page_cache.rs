//! The page cache: file pages shared by every mapping of a file that cannot change (the
//! read-only ext2 root), so the second exec of a program maps its pages instead of reading and
//! copying them. A page is read straight into a fresh frame by the device (no ring-0 copy, no
//! zeroing but of the tail past the end of file).
//!
//! Files that can change (tmpfs) are read into a private page on every fault. Pages stay cached
//! for the life of the machine (the root image is small); eviction comes with the read-write file
//! system.

use crate::fs::FileRef;
use alloc::collections::BTreeMap;
use hal_pv::mm::PAGE_SIZE;
use hal_pv::mm::frames::{self, Page};
use noa_linux_abi::errno::{Errno, SysResult};
use spin::Mutex;

/// (inode, page index) → page, for files of the read-only root.
static CACHE: Mutex<BTreeMap<(u64, u64), Page>> = Mutex::new(BTreeMap::new());

/// Which file's pages may be cached: its inode number, if the file cannot change (it lives on
/// the read-only root). Asked once per fault, not per page.
pub fn cache_id(file: &FileRef) -> Option<u64> {
    let stat = file.inode().stat().ok()?;
    (stat.dev == crate::fs::ext2::DEV).then_some(stat.ino)
}

/// The cached page at `offset` of the file with cache id `id`, without reading.
pub fn cached(id: u64, offset: u64) -> Option<Page> {
    CACHE.lock().get(&(id, offset / PAGE_SIZE)).cloned()
}

/// The page at `offset` (page aligned) of `file`: cached, or read now (and cached if the file
/// has a cache id, see [`cache_id`]).
pub fn get_or_read(file: &FileRef, id: Option<u64>, offset: u64) -> SysResult<Page> {
    let key = id.map(|id| (id, offset / PAGE_SIZE));
    if let Some(key) = key
        && let Some(page) = CACHE.lock().get(&key)
    {
        return Ok(page.clone());
    }
    let mut frame = frames::alloc().ok_or(Errno::ENOMEM)?;
    let bytes = frame.bytes_mut();
    let mut filled = 0;
    while filled < bytes.len() {
        let n = file.read_at(offset + filled as u64, &mut bytes[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    bytes[filled..].fill(0);
    let page = Page::from_frame(frame);
    if let Some(key) = key {
        CACHE.lock().entry(key).or_insert_with(|| page.clone());
    }
    Ok(page)
}
