//! The page cache: the pages of files whose inode has a cache key ([`Inode::cache_key`]: ext2
//! and tmpfs files), shared by every mapping of the file. The second exec of a program maps its pages
//! instead of reading them again, and every `MAP_SHARED` mapping of a file sees the same page,
//! so a store through one is seen by the others at once.
//!
//! A page is read straight into a fresh frame by the device (no ring-0 copy, no zeroing but of
//! the tail past the end of file). Files without a key (devices, procfs) are read into a
//! private page on every fault.
//!
//! Coherence with `read`/`write`, which go to the file system directly (a device request into
//! or out of the user's buffer costs less here than a ring-0 copy through a cached page):
//! - a `write` updates the pages cached for its range ([`update`]), so mappings see it;
//! - pages mapped shared and writable may hold stores the disk has not seen: such a file is
//!   *dirty-mapped*, and its `read`s take those pages from here ([`cached`]); `msync`, `fsync`,
//!   `sync` and the unmount at power-off write them back ([`write_back`], [`write_back_all`]).
//!   A page stays dirty-mapped while mapped: we cannot see stores, so each write-back writes every
//!   such page of the range (the dirty bit in the page tables would spare that; not yet).
//! - truncation drops the pages past the new end ([`truncate`]), freeing an inode drops all of
//!   them ([`forget`]): its number will name another file.
//!
//! Pages stay cached until the file is freed or truncated; eviction under memory pressure is
//! not done yet.

use crate::fs::{FileRef, InodeId, InodeRef};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use hal_pv::mm::PAGE_SIZE;
use hal_pv::mm::frames::{self, FrameRun, Page};
use noa_linux_abi::errno::{Errno, SysResult};
use spin::Mutex;

/// Pages a cache miss reads at once (64 KiB): a program's faults walk its file mostly forward,
/// and a batch of device requests costs little more than one.
const READ_AHEAD: u64 = 16;

/// Pages per chunk of a file's table.
const CHUNK: u64 = 64;

/// A file's cached pages: chunks of [`CHUNK`] consecutive page slots, by chunk number. Two
/// levels, so that a fault finds its file once (tuple compares cost tens of emulated
/// instructions each) and its page and neighbours by indexing; sparse files stay small.
#[derive(Default)]
struct FilePages {
    chunks: BTreeMap<u64, Box<[Option<Page>; CHUNK as usize]>>,
}

impl FilePages {
    fn get(&self, index: u64) -> Option<&Page> {
        self.chunks.get(&(index / CHUNK))?[(index % CHUNK) as usize].as_ref()
    }

    /// The page at `index`: the one cached, else `page`, now cached.
    fn insert(&mut self, index: u64, page: Page) -> Page {
        let chunk = self
            .chunks
            .entry(index / CHUNK)
            .or_insert_with(|| Box::new([const { None }; CHUNK as usize]));
        let slot = &mut chunk[(index % CHUNK) as usize];
        if slot.is_none() {
            CACHED_PAGES.fetch_add(1, Ordering::Relaxed);
        }
        slot.get_or_insert(page).clone()
    }

    /// Drops every page from `index` on.
    fn cut(&mut self, index: u64) {
        let mut dropped = 0;
        for (&number, chunk) in self.chunks.range_mut(index / CHUNK..) {
            let from = index.saturating_sub(number * CHUNK) as usize;
            for slot in &mut chunk[from..] {
                dropped += u64::from(slot.take().is_some());
            }
        }
        self.chunks
            .retain(|_, chunk| chunk.iter().any(Option::is_some));
        CACHED_PAGES.fetch_sub(dropped, Ordering::Relaxed);
    }
}

/// Every cached file's pages, by file.
static CACHE: Mutex<BTreeMap<InodeId, FilePages>> = Mutex::new(BTreeMap::new());
/// Pages held, for /proc/meminfo.
static CACHED_PAGES: AtomicU64 = AtomicU64::new(0);

/// Dirty-mapped files: their pages mapped shared and writable (by page index), and the inode to
/// write them back through.
static DIRTY: Mutex<BTreeMap<InodeId, DirtyFile>> = Mutex::new(BTreeMap::new());

struct DirtyFile {
    inode: Weak<dyn crate::fs::Inode>,
    pages: BTreeSet<u64>,
}

/// The key of `file`'s pages, if its file system shares them. Asked once per fault.
pub fn cache_id(file: &FileRef) -> Option<InodeId> {
    file.inode().cache_key()
}

/// The cached page at `offset` of the file with key `key`, without reading.
pub fn cached(key: InodeId, offset: u64) -> Option<Page> {
    CACHE.lock().get(&key)?.get(offset / PAGE_SIZE).cloned()
}

/// Hands `take` the cached pages from `offset` on (their number from 0, and the page), up to
/// `max`, the first one not cached, or the first `take` refuses — a fault's neighbours, found
/// under one lock and one lookup per chunk.
pub fn for_cached_run(
    key: InodeId,
    offset: u64,
    max: u64,
    mut take: impl FnMut(u64, &Page) -> bool,
) {
    let cache = CACHE.lock();
    let Some(file) = cache.get(&key) else {
        return;
    };
    let first = offset / PAGE_SIZE;
    let mut index = first;
    while index < first + max {
        let Some(chunk) = file.chunks.get(&(index / CHUNK)) else {
            return;
        };
        for slot in &chunk[(index % CHUNK) as usize..] {
            let Some(page) = slot else {
                return;
            };
            if index >= first + max || !take(index - first, page) {
                return;
            }
            index += 1;
        }
    }
}

/// Bytes the cache holds (the `Cached:` line of /proc/meminfo).
pub fn cached_bytes() -> u64 {
    CACHED_PAGES.load(Ordering::Relaxed) * PAGE_SIZE
}

/// The page at `offset` (page aligned) of `file`: cached, or read now (and cached if the file
/// has a key, see [`cache_id`]). `shared_write`: the page is being mapped shared and writable,
/// so the file becomes dirty-mapped.
pub fn get_or_read(
    file: &FileRef,
    key: Option<InodeId>,
    offset: u64,
    shared_write: bool,
) -> SysResult<Page> {
    let index = offset / PAGE_SIZE;
    let page = match key {
        None => read_page(file, offset)?,
        Some(key) => match cached(key, offset) {
            Some(page) => page,
            None => read_ahead(file, key, offset)?,
        },
    };
    if shared_write && let Some(key) = key {
        DIRTY
            .lock()
            .entry(key)
            .or_insert_with(|| DirtyFile {
                inode: Arc::downgrade(file.inode()),
                pages: BTreeSet::new(),
            })
            .pages
            .insert(index);
    }
    Ok(page)
}

/// Reads the page at `offset` and up to [`READ_AHEAD`] - 1 pages after it (inside the file, up
/// to the first one already cached) into the cache, in one call of the file system (ext2 makes
/// it one batch of device requests straight into the frames); returns the first.
fn read_ahead(file: &FileRef, key: InodeId, offset: u64) -> SysResult<Page> {
    let first = offset / PAGE_SIZE;
    let end = file.inode().size().div_ceil(PAGE_SIZE).max(first + 1);
    let mut count = 1;
    {
        let cache = CACHE.lock();
        let file = cache.get(&key);
        while count < READ_AHEAD
            && first + count < end
            && file.is_none_or(|f| f.get(first + count).is_none())
        {
            count += 1;
        }
    }
    // One run of contiguous frames takes the whole read in as few device requests as the file
    // is in pieces on the disk; without one (no pristine room left), a single page.
    let frames: Vec<frames::Frame> = match FrameRun::alloc(count) {
        Some(mut run) => {
            file.inode().read_pages(offset, run.bytes_mut())?;
            run.into_frames().collect()
        }
        None => {
            let mut frame = frames::alloc().ok_or(Errno::ENOMEM)?;
            file.inode().read_pages(offset, frame.bytes_mut())?;
            alloc::vec![frame]
        }
    };
    let mut cache = CACHE.lock();
    let file = cache.entry(key).or_default();
    let mut result = None;
    for (i, frame) in frames.into_iter().enumerate() {
        let page = file.insert(first + i as u64, Page::from_frame(frame));
        result.get_or_insert(page);
    }
    result.ok_or(Errno::EIO)
}

/// A fresh page holding the file's bytes at `offset`, zeros past the end of file.
fn read_page(file: &FileRef, offset: u64) -> SysResult<Page> {
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
    Ok(Page::from_frame(frame))
}

/// Whether any page of `key`'s file is cached (its writes must update them).
pub fn has_pages(key: InodeId) -> bool {
    CACHE.lock().contains_key(&key)
}

/// Whether `key`'s file has pages mapped shared and writable (its reads must look here first).
pub fn dirty_mapped(key: InodeId) -> bool {
    DIRTY.lock().contains_key(&key)
}

/// A `write` of `data` at `offset` reached the file: cached pages of the range take the bytes.
pub fn update(key: InodeId, offset: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let first = offset / PAGE_SIZE;
    let last = (offset + data.len() as u64 - 1) / PAGE_SIZE;
    let cache = CACHE.lock();
    let Some(file) = cache.get(&key) else {
        return;
    };
    for index in first..=last {
        let Some(page) = file.get(index) else {
            continue;
        };
        let page_start = index * PAGE_SIZE;
        let from = offset.max(page_start);
        let to = (offset + data.len() as u64).min(page_start + PAGE_SIZE);
        let src = &data[(from - offset) as usize..(to - offset) as usize];
        page.write((from - page_start) as usize, src);
    }
}

/// Writes `key`'s dirty-mapped pages in `[start, end)` back through its inode (`msync`,
/// `fsync`). Pages past the file's size are skipped, the last one clipped.
pub fn write_back(key: InodeId, start: u64, end: u64) -> SysResult<()> {
    let (inode, indices) = {
        let dirty = DIRTY.lock();
        let Some(file) = dirty.get(&key) else {
            return Ok(());
        };
        let Some(inode) = file.inode.upgrade() else {
            return Ok(());
        };
        let indices: Vec<u64> = file
            .pages
            .range(start / PAGE_SIZE..end.div_ceil(PAGE_SIZE))
            .copied()
            .collect();
        (inode, indices)
    };
    write_pages(key, &inode, &indices)
}

fn write_pages(key: InodeId, inode: &InodeRef, indices: &[u64]) -> SysResult<()> {
    let size = inode.size();
    let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
    for &index in indices {
        let offset = index * PAGE_SIZE;
        if offset >= size {
            break;
        }
        let Some(page) = cached(key, offset) else {
            continue;
        };
        let len = (size - offset).min(PAGE_SIZE) as usize;
        page.read(0, &mut buf[..len]);
        inode.write_back(offset, &buf[..len])?;
    }
    Ok(())
}

/// Writes back every dirty-mapped page of every file (`sync`, power-off). Files whose inode is
/// gone are dropped from the list.
pub fn write_back_all() -> SysResult<()> {
    let files: Vec<(InodeId, Option<InodeRef>, Vec<u64>)> = {
        let dirty = DIRTY.lock();
        dirty
            .iter()
            .map(|(&key, file)| {
                (
                    key,
                    file.inode.upgrade(),
                    file.pages.iter().copied().collect(),
                )
            })
            .collect()
    };
    let mut result = Ok(());
    for (key, inode, indices) in files {
        match inode {
            Some(inode) => {
                if let Err(e) = write_pages(key, &inode, &indices) {
                    result = Err(e);
                }
            }
            None => {
                DIRTY.lock().remove(&key);
            }
        }
    }
    result
}

/// The file was cut to `size`: pages wholly past it are dropped, the tail of a partial last
/// page is zeroed (a later extension must read zeros there).
pub fn truncate(key: InodeId, size: u64) {
    let first_gone = size.div_ceil(PAGE_SIZE);
    let mut cache = CACHE.lock();
    if let Some(file) = cache.get_mut(&key) {
        file.cut(first_gone);
        if !size.is_multiple_of(PAGE_SIZE)
            && let Some(page) = file.get(size / PAGE_SIZE)
        {
            let at = (size % PAGE_SIZE) as usize;
            page.zero(at, PAGE_SIZE as usize - at);
        }
        if file.chunks.is_empty() {
            cache.remove(&key);
        }
    }
    drop(cache);
    if let Some(file) = DIRTY.lock().get_mut(&key) {
        file.pages.retain(|&index| index < first_gone);
    }
}

/// The file was freed: every page goes (its inode number will name another file).
pub fn forget(key: InodeId) {
    truncate(key, 0);
    DIRTY.lock().remove(&key);
}
