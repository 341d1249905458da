//! The page cache: the pages of files whose inode has a cache key ([`Inode::cache_key`]: ext2
//! and tmpfs files), shared by every mapping of the file. The second exec of a program maps its pages
//! instead of reading them again, and every `MAP_SHARED` mapping of a file sees the same page,
//! so a store through one is seen by the others at once.
//!
//! A miss reads a run of pages at once ([`read_ahead`]) into one run of contiguous fresh frames:
//! ext2 turns each physically contiguous stretch of the file into one device request straight
//! into the frames (no ring-0 copy, no zeroing but of the tail past the end of file). The run
//! is as long as the caller is about to map (a `MAP_POPULATE` or an exec segment: up to
//! [`READ_AHEAD_MAX`], 1 MiB), and for faults it grows from [`READ_AHEAD_MIN`] while they walk
//! the file forward (each miss where the last read-ahead ended doubles it), so a big file comes
//! in as few large requests. Every per-page step here is a handful of instructions: on PVM hosts
//! each one is emulated in ring 0 (~0.5 µs), so the run is counted, allocated and inserted chunk
//! by chunk, never with a map lookup per page. Files without a key (devices, procfs) are read
//! into a private page on every fault.
//!
//! Coherence with `read`/`write`, which go to the file system directly: the device fills a
//! kernel buffer that is copied to the user's once (`rep movsq`), the one copy a read through a
//! cached page would need too — and nothing evicts cached pages yet, so a big `read` must not
//! fill the cache:
//! - a `write` updates the pages cached for its range ([`update`]), so mappings see it; a
//!   read-ahead that a write or truncation of its file overtook (the device read old bytes of
//!   pages not cached yet) reads again: each file's pages carry an epoch that both change;
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

/// Pages a cache miss reads at least (64 KiB): a fault's neighbours, mapped with it.
pub const READ_AHEAD_MIN: u64 = 16;
/// Pages one read-ahead reads at most (1 MiB): a device request costs about the same at any
/// size here, while each read-ahead costs a few thousand emulated instructions of its own.
pub const READ_AHEAD_MAX: u64 = 256;

/// Pages per chunk of a file's table.
const CHUNK: u64 = 64;

/// A file's cached pages: chunks of [`CHUNK`] consecutive page slots, by chunk number. Two
/// levels, so that a fault finds its file once (tuple compares cost tens of emulated
/// instructions each) and its page and neighbours by indexing; sparse files stay small.
#[derive(Default)]
struct FilePages {
    chunks: BTreeMap<u64, Box<[Option<Page>; CHUNK as usize]>>,
    /// The page after the last read-ahead, and that read-ahead's length: a miss there is a
    /// sequential walk, and the next read-ahead is twice as long.
    ahead_end: u64,
    ahead_len: u64,
    /// Changed by every write and truncation of the file (a fresh value from [`EPOCHS`]): a
    /// read-ahead that saw another value before it read the device may hold stale bytes.
    epoch: u64,
}

impl FilePages {
    fn get(&self, index: u64) -> Option<&Page> {
        self.chunks.get(&(index / CHUNK))?[(index % CHUNK) as usize].as_ref()
    }

    /// How many pages from `first` on are not cached, up to `max` (0 if `first` is): one map
    /// lookup per chunk.
    fn absent_run(&self, first: u64, max: u64) -> u64 {
        let mut count = 0;
        while count < max {
            let index = first + count;
            let in_chunk = index % CHUNK;
            match self.chunks.get(&(index / CHUNK)) {
                None => count += CHUNK - in_chunk,
                Some(chunk) => {
                    for slot in &chunk[in_chunk as usize..] {
                        if slot.is_some() || count >= max {
                            return count.min(max);
                        }
                        count += 1;
                    }
                }
            }
        }
        count.min(max)
    }

    /// Caches the `count` pages of `pages` at `first`, `first + 1`, … (a slot already filled
    /// keeps its page, and the new one goes); returns the page now cached at `first`. One map
    /// lookup per chunk.
    fn insert_run(
        &mut self,
        first: u64,
        count: u64,
        mut pages: impl Iterator<Item = Page>,
    ) -> Option<Page> {
        let mut index = first;
        let mut added = 0;
        while index < first + count {
            let chunk = self
                .chunks
                .entry(index / CHUNK)
                .or_insert_with(|| Box::new([const { None }; CHUNK as usize]));
            let from = (index % CHUNK) as usize;
            let n = (CHUNK - index % CHUNK).min(first + count - index) as usize;
            for (slot, page) in chunk[from..from + n].iter_mut().zip(&mut pages) {
                if slot.is_none() {
                    *slot = Some(page);
                    added += 1;
                }
            }
            index += n as u64;
        }
        CACHED_PAGES.fetch_add(added, Ordering::Relaxed);
        self.get(first).cloned()
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
/// Source of [`FilePages::epoch`] values, never repeated.
static EPOCHS: AtomicU64 = AtomicU64::new(1);
/// Times a read-ahead reads again when a write raced with it, before it caches what it read
/// anyway.
const RACE_RETRIES: u32 = 4;

fn next_epoch() -> u64 {
    EPOCHS.fetch_add(1, Ordering::Relaxed)
}

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

/// Runs `map` over the cached pages from `offset` on (new references, in order), up to `max`
/// of them, ending at the first one not cached — a fault's neighbours or a populate's run, found
/// under one lock and one lookup per chunk. The cache stays locked while `map` runs: it may
/// take page-table locks (it maps the pages) but must not call into the page cache.
pub fn with_cached_run<R>(
    key: InodeId,
    offset: u64,
    max: u64,
    map: impl FnOnce(&mut dyn Iterator<Item = Page>) -> R,
) -> R {
    let cache = CACHE.lock();
    let first = offset / PAGE_SIZE;
    let mut run = CachedRun {
        file: cache.get(&key),
        chunk: None,
        index: first,
        end: first.saturating_add(max),
    };
    map(&mut run)
}

/// The iterator of [`with_cached_run`].
struct CachedRun<'a> {
    file: Option<&'a FilePages>,
    /// The chunk holding `index`, once looked up.
    chunk: Option<&'a [Option<Page>; CHUNK as usize]>,
    index: u64,
    end: u64,
}

impl Iterator for CachedRun<'_> {
    type Item = Page;

    fn next(&mut self) -> Option<Page> {
        if self.index >= self.end {
            return None;
        }
        let in_chunk = (self.index % CHUNK) as usize;
        let chunk = match self.chunk {
            Some(chunk) if in_chunk != 0 => chunk,
            _ => {
                let chunk = self.file?.chunks.get(&(self.index / CHUNK))?;
                self.chunk = Some(chunk);
                chunk
            }
        };
        let page = chunk[in_chunk].clone()?;
        self.index += 1;
        Some(page)
    }
}

/// Bytes the cache holds (the `Cached:` line of /proc/meminfo).
pub fn cached_bytes() -> u64 {
    CACHED_PAGES.load(Ordering::Relaxed) * PAGE_SIZE
}

/// The page at `offset` (page aligned) of `file`: cached, or read now (and cached if the file
/// has a key, see [`cache_id`]). `want`: how many pages from `offset` on the caller is about to
/// map (a read-ahead reads at least that many, up to [`READ_AHEAD_MAX`]). `shared_write`: the
/// page is being mapped shared and writable, so the file becomes dirty-mapped.
pub fn get_or_read(
    file: &FileRef,
    key: Option<InodeId>,
    offset: u64,
    want: u64,
    shared_write: bool,
) -> SysResult<Page> {
    let index = offset / PAGE_SIZE;
    let page = match key {
        None => read_page(file, offset)?,
        Some(key) => match cached(key, offset) {
            Some(page) => page,
            None => read_ahead(file, key, offset, want)?,
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

/// Reads the page at `offset` and the pages after it that are not cached yet (inside the file;
/// at least `want`, or the doubled length of the last read-ahead if this one continues it, at
/// least [`READ_AHEAD_MIN`] and at most [`READ_AHEAD_MAX`]) into the cache, in one call of the
/// file system (again if a write or truncation raced with it); returns the first.
fn read_ahead(file: &FileRef, key: InodeId, offset: u64, want: u64) -> SysResult<Page> {
    let first = offset / PAGE_SIZE;
    let mut attempt = 0;
    loop {
        let end = file.inode().size().div_ceil(PAGE_SIZE).max(first + 1);
        let (count, epoch) = {
            let mut cache = CACHE.lock();
            let pages = cache.entry(key).or_insert_with(|| FilePages {
                epoch: next_epoch(),
                ..FilePages::default()
            });
            let window = if pages.ahead_end == first {
                pages.ahead_len.saturating_mul(2)
            } else {
                READ_AHEAD_MIN
            };
            let limit = window
                .max(want)
                .clamp(READ_AHEAD_MIN, READ_AHEAD_MAX)
                .min(end - first);
            (pages.absent_run(first, limit), pages.epoch)
        };
        if count == 0 {
            // Another CPU read it meanwhile.
            if let Some(page) = cached(key, offset) {
                return Ok(page);
            }
        }
        let frames = read_frames(file, offset, count.max(1))?;
        let mut cache = CACHE.lock();
        // A write or truncation of the file since `epoch` may have missed these pages (they
        // were not cached yet) while the device read the old bytes: read again. (A truncation
        // that emptied the cache removed the entry: a new one has a new epoch.)
        let pages = cache.entry(key).or_insert_with(|| FilePages {
            epoch: next_epoch(),
            ..FilePages::default()
        });
        if pages.epoch != epoch && attempt < RACE_RETRIES {
            attempt += 1;
            continue;
        }
        let inserted = match frames {
            Frames::Run(run, read) => {
                pages.ahead_end = first + read;
                pages.ahead_len = read;
                pages.insert_run(first, read, run.into_frames().map(Page::from_frame))
            }
            Frames::One(frame) => {
                pages.ahead_end = first + 1;
                pages.ahead_len = 1;
                pages.insert_run(first, 1, core::iter::once(Page::from_frame(frame)))
            }
        };
        return inserted.ok_or(Errno::EIO);
    }
}

/// What [`read_frames`] filled.
enum Frames {
    /// Contiguous frames, and how many.
    Run(FrameRun, u64),
    /// A single frame (no pristine room for a run).
    One(frames::Frame),
}

/// Fresh frames holding the file's `count` pages from `offset` on (fewer when memory is short):
/// one run of contiguous frames takes them in as few device requests as the file is in pieces
/// on the disk. Pristine room for a run may be short: a shorter run then, and without any, a
/// single frame from the free stack.
fn read_frames(file: &FileRef, offset: u64, count: u64) -> SysResult<Frames> {
    let mut len = count;
    while len > 1 {
        if let Some(mut run) = FrameRun::alloc(len) {
            file.inode().read_pages(offset, run.bytes_mut())?;
            return Ok(Frames::Run(run, len));
        }
        len /= 2;
    }
    // The device fills it (runs are pristine frames; a recycled one may have been a page table).
    let mut frame = frames::alloc_for_device().ok_or(Errno::ENOMEM)?;
    file.inode().read_pages(offset, frame.bytes_mut())?;
    Ok(Frames::One(frame))
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
    let mut cache = CACHE.lock();
    let Some(file) = cache.get_mut(&key) else {
        return;
    };
    file.epoch = next_epoch();
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
        file.epoch = next_epoch();
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
