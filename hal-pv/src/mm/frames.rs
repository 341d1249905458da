//! The physical frame allocator, built from the PVH memory map.
//!
//! Frames are handed out from the RAM regions by a bump pointer, and freed frames go on a free
//! stack (a linked list threaded through the frames themselves, via the direct map). The bump part
//! matters on PVM hosts: memory the VMM handed over is already zero, and zeroing a 4 KiB page in
//! ring 0 costs ~195 µs there — so `alloc_zeroed` prefers pristine frames and zeroes only recycled
//! ones. Set-up is O(regions), with no bitmap to clear.

use super::copy_batch::CopyBatch;
use super::{PAGE_SIZE, PhysAddr};
use crate::boot::start_info::{MEMMAP_RAM, MemmapEntry};
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use spin::Mutex;

const MAX_REGIONS: usize = 16;

#[derive(Clone, Copy, Default)]
struct Region {
    next: u64,
    end: u64,
}

struct Frames {
    regions: [Region; MAX_REGIONS],
    count: usize,
    /// Head of the free stack (physical address, 0 = empty).
    free_head: u64,
    free_frames: u64,
    total_bytes: u64,
    /// End of the highest RAM region (sizes the page reference counts).
    max_end: u64,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    regions: [Region { next: 0, end: 0 }; MAX_REGIONS],
    count: 0,
    free_head: 0,
    free_frames: 0,
    total_bytes: 0,
    max_end: 0,
});

/// Usable RAM the memory map reported, in bytes (what the boot line calls `mem_mib`).
static USABLE_RAM: spin::Once<u64> = spin::Once::new();

/// Builds the allocator from the memory map, leaving out everything below `reserved_end` (the low
/// megabyte, boot structures and the kernel image).
pub(crate) fn init(memmap: &[MemmapEntry], reserved_end: PhysAddr) {
    let mut frames = FRAMES.lock();
    let mut usable = 0;
    for entry in memmap.iter().filter(|e| e.kind == MEMMAP_RAM) {
        let start = align_up(entry.addr);
        let end = (entry.addr.saturating_add(entry.size)) & !(PAGE_SIZE - 1);
        if end <= start {
            continue;
        }
        usable += end - start;
        frames.max_end = frames.max_end.max(end);
        let start = start.max(align_up(reserved_end.0));
        if end <= start || frames.count == MAX_REGIONS {
            continue;
        }
        let i = frames.count;
        frames.regions[i] = Region { next: start, end };
        frames.count += 1;
        frames.total_bytes += end - start;
    }
    USABLE_RAM.call_once(|| usable);
}

fn align_up(addr: u64) -> u64 {
    addr.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// Usable RAM in bytes, as the memory map reported it.
pub fn usable_ram_bytes() -> u64 {
    USABLE_RAM.get().copied().unwrap_or(0)
}

/// Bytes the allocator can still hand out.
pub fn free_bytes() -> u64 {
    let frames = FRAMES.lock();
    let bump: u64 = frames.regions[..frames.count]
        .iter()
        .map(|r| r.end - r.next)
        .sum();
    bump + frames.free_frames * PAGE_SIZE
}

/// One physical frame, owned: the only way to its memory (through the direct map). Dropping it
/// gives the frame back.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame(PhysAddr);

impl Frame {
    /// Its physical address.
    pub fn phys(&self) -> PhysAddr {
        self.0
    }

    /// Its content as 512 words.
    pub fn words(&self) -> &[u64; 512] {
        // SAFETY: the frame is ours alone (see `Frame`), aligned, and the direct map covers it.
        unsafe { &*(self.0.to_virt() as *const [u64; 512]) }
    }

    /// Its content as 512 words, writable.
    pub fn words_mut(&mut self) -> &mut [u64; 512] {
        // SAFETY: as in `words`, and `&mut self` makes the access exclusive.
        unsafe { &mut *(self.0.to_virt() as *mut [u64; 512]) }
    }

    /// Its content as bytes, writable (e.g. for a device to fill before the page is shared).
    pub fn bytes_mut(&mut self) -> &mut [u8; PAGE_SIZE as usize] {
        // SAFETY: as in `words_mut`.
        unsafe { &mut *(self.0.to_virt() as *mut [u8; PAGE_SIZE as usize]) }
    }

    /// Keeps the frame allocated for good and returns its address (page tables, stacks).
    pub fn leak(self) -> PhysAddr {
        let phys = self.0;
        core::mem::forget(self);
        phys
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        free_raw(self.0);
    }
}

/// Physically contiguous frames, owned, for a device to fill with one request (a page-cache
/// read-ahead) before they go their own ways as single [`Frame`]s. Taken from the pristine
/// (bump) part of RAM only: the free stack holds no runs.
#[derive(Debug)]
pub struct FrameRun {
    start: PhysAddr,
    count: u64,
}

impl FrameRun {
    /// `count` contiguous frames of unspecified content, or None when no RAM region has that
    /// much pristine room left (allocate frame by frame then).
    pub fn alloc(count: u64) -> Option<FrameRun> {
        let start = FRAMES.lock().bump(count)?;
        Some(FrameRun { start, count })
    }

    /// All of the run's memory, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the frames are ours alone (taken from the allocator, not yet given out),
        // contiguous in physical memory and so in the direct map, which covers them.
        unsafe {
            core::slice::from_raw_parts_mut(self.start.to_virt(), (self.count * PAGE_SIZE) as usize)
        }
    }

    /// `count` contiguous frames filled with zeros: pristine ones, which the VMM handed over
    /// zeroed (nothing to clear in ring 0), or None when no RAM region has that much pristine
    /// room left.
    pub fn alloc_zeroed(count: u64) -> Option<FrameRun> {
        Self::alloc(count)
    }

    /// The run as single frames, in order; those not taken go back to the allocator when the
    /// iterator is dropped.
    pub fn into_frames(self) -> RunFrames {
        let (start, count) = (self.start.0, self.count);
        core::mem::forget(self);
        RunFrames {
            next: start,
            end: start + count * PAGE_SIZE,
        }
    }
}

/// The frames of a [`FrameRun`], one by one.
#[derive(Debug)]
pub struct RunFrames {
    next: u64,
    end: u64,
}

impl Iterator for RunFrames {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        (self.next < self.end).then(|| {
            let frame = Frame(PhysAddr(self.next));
            self.next += PAGE_SIZE;
            frame
        })
    }
}

impl Drop for RunFrames {
    fn drop(&mut self) {
        for frame in self.by_ref() {
            drop(frame);
        }
    }
}

impl Drop for FrameRun {
    fn drop(&mut self) {
        for i in 0..self.count {
            free_raw(PhysAddr(self.start.0 + i * PAGE_SIZE));
        }
    }
}

/// Allocates one frame whose content is unspecified.
pub fn alloc() -> Option<Frame> {
    alloc_raw().map(Frame)
}

/// Allocates one frame that a device or the host will fill (a DMA destination): its content is
/// unspecified, but it is never a frame the host may still hold write-protected as one of our
/// old page tables ([`was_table`]): such a frame is zeroed by the CPU first, which makes the
/// host let go of it. Otherwise a later ring-3 store into it that the host cannot emulate
/// (`xsave`, AVX) would kill the VM.
pub fn alloc_for_device() -> Option<Frame> {
    let frame = alloc_raw()?;
    if was_table(frame) {
        // SAFETY: we own the frame; the direct map covers it. `write_bytes` becomes `rep stosq`.
        unsafe { core::ptr::write_bytes(frame.to_virt(), 0, PAGE_SIZE as usize) };
        refcount(frame).store(0, Ordering::Relaxed);
    }
    Some(Frame(frame))
}

/// Allocates one frame filled with zeros: pristine if possible, else a recycled frame zeroed here.
pub fn alloc_zeroed() -> Option<Frame> {
    alloc_zeroed_raw().map(Frame)
}

pub(crate) fn alloc_raw() -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    if frames.free_head != 0 {
        let frame = frames.free_head;
        // SAFETY: a frame on the free stack holds the next link in its first word.
        frames.free_head = unsafe { (PhysAddr(frame).to_virt() as *const u64).read() };
        frames.free_frames -= 1;
        return Some(PhysAddr(frame));
    }
    frames.bump(1)
}

pub(crate) fn alloc_zeroed_raw() -> Option<PhysAddr> {
    if let Some(frame) = FRAMES.lock().bump(1) {
        return Some(frame);
    }
    let frame = alloc_raw()?;
    // SAFETY: we own the frame; the direct map covers it. `write_bytes` becomes `rep stosq`.
    unsafe { core::ptr::write_bytes(frame.to_virt(), 0, PAGE_SIZE as usize) };
    Some(frame)
}

/// Allocates `count` physically contiguous, pristine (zeroed) frames, for good.
pub(crate) fn alloc_contiguous(count: u64) -> Option<PhysAddr> {
    FRAMES.lock().bump(count)
}

pub(crate) fn free_raw(frame: PhysAddr) {
    let mut frames = FRAMES.lock();
    // SAFETY: the frame is given up; we store the link in its first word.
    unsafe { (frame.to_virt() as *mut u64).write(frames.free_head) };
    frames.free_head = frame.0;
    frames.free_frames += 1;
}

impl Frames {
    fn bump(&mut self, count: u64) -> Option<PhysAddr> {
        let bytes = count.checked_mul(PAGE_SIZE)?;
        let count = self.count;
        let region = self.regions[..count]
            .iter_mut()
            .find(|r| r.end - r.next >= bytes)?;
        let frame = region.next;
        region.next += bytes;
        Some(PhysAddr(frame))
    }
}

/// Reference counts of shared pages ([`Page`]), one per frame of RAM: [`init_refcounts`] makes
/// the table from pristine frames (all counts start at zero) at boot, once the direct map covers
/// all RAM and before any page or page table exists. Two plain words rather than a `Once`: a
/// count is touched for every page mapped, copied or freed, and in emulated ring 0 the `Once`
/// check and the call around it were most of the cost (17 instructions for a clone, now 6).
static REFCOUNT_TABLE: AtomicPtr<AtomicU32> = AtomicPtr::new(core::ptr::null_mut());
static REFCOUNT_SLOTS: AtomicUsize = AtomicUsize::new(0);

/// Makes the reference-count table (boot CPU, once, after `paging::init`).
pub(crate) fn init_refcounts() {
    let frames_of_ram = (FRAMES.lock().max_end / PAGE_SIZE) as usize;
    let bytes = (frames_of_ram * 4) as u64;
    let table = alloc_contiguous(bytes.div_ceil(PAGE_SIZE))
        .unwrap_or_else(|| crate::crash::early_panic("no memory for page reference counts"));
    // The frames are ours for good, pristine (zero = a valid count of 0), and the direct map
    // covers them; AtomicU32 has the layout of u32.
    REFCOUNT_TABLE.store(table.to_virt() as *mut AtomicU32, Ordering::Release);
    REFCOUNT_SLOTS.store(frames_of_ram, Ordering::Release);
}

#[inline]
fn refcount(phys: PhysAddr) -> &'static AtomicU32 {
    let index = (phys.0 / PAGE_SIZE) as usize;
    if index >= REFCOUNT_SLOTS.load(Ordering::Relaxed) {
        refcount_out_of_range(phys);
    }
    // SAFETY: the table has REFCOUNT_SLOTS slots (set after the table, which lives forever), and
    // `index` is below that count.
    unsafe { &*REFCOUNT_TABLE.load(Ordering::Relaxed).add(index) }
}

/// Whether the page at `phys` has one reference (held by the caller's page-table entry).
pub(crate) fn is_sole_reference(phys: PhysAddr) -> bool {
    refcount(phys).load(Ordering::Acquire) == 1
}

#[cold]
#[inline(never)]
fn refcount_out_of_range(phys: PhysAddr) -> ! {
    panic!("reference count of {:#x}: not a frame of RAM", phys.0)
}

/// The occupancy summary of a page-table frame, kept in the frame's reference-count slot (a table
/// is never a counted [`Page`], so the slot is free while the frame is a table): bit `k` set means
/// entries `16k..16k+16` may hold something. Teardown, fork and unmap then look only at those
/// groups instead of all 512 entries — in emulated ring 0 a full scan of a mostly empty table costs
/// more than a thousand instructions. The owner must [`clear_table_occupancy`] before freeing.
pub(crate) fn table_occupancy(table: PhysAddr) -> &'static AtomicU32 {
    refcount(table)
}

/// Gives a page-table frame's slot back to the reference count, before the frame is freed, with
/// the mark [`was_table`] reads.
pub(crate) fn clear_table_occupancy(table: PhysAddr) {
    refcount(table).store(WAS_TABLE, Ordering::Relaxed);
}

/// The slot of a freed page-table frame until it becomes a counted page (never a count: a free
/// frame's is zero, and a page's is far below).
const WAS_TABLE: u32 = 1 << 31;

/// Whether the frame at `phys` (free, or allocated but not yet a [`Page`]) was a page table and
/// has not been a page since. Hosts that shadow the guest's page tables (PVM's KVM does) may still
/// write-protect it, and only writes the CPU makes, trapped and emulated, make them let go. Such a
/// frame must not be filled behind their back by the VMM ([`super::copy_batch`]): a later ring-3
/// store they cannot emulate into it (the vector trampoline's `xsave`) would kill the VM.
pub(crate) fn was_table(phys: PhysAddr) -> bool {
    refcount(phys).load(Ordering::Relaxed) == WAS_TABLE
}

/// Copies the page at `from` into the fresh frame `to`: through `batch` (by the host) unless
/// `to` was a page table ([`was_table`]: the CPU's trapped stores must reach it), else now.
///
/// # Safety
/// Both are whole frames of RAM; `from` stays readable and `to` is the caller's alone until the
/// batch is finished.
pub(crate) unsafe fn copy_page(batch: Option<&mut CopyBatch>, to: PhysAddr, from: PhysAddr) {
    let batch = batch.filter(|_| !was_table(to));
    // SAFETY: the caller's promise; the direct map covers both frames.
    unsafe {
        super::copy_batch::copy(
            batch,
            to.to_virt(),
            from.to_virt().cast_const(),
            PAGE_SIZE as usize,
        )
    };
}

/// A page of RAM that may be shared (mapped in several address spaces, copy-on-write): a counted
/// reference to a frame. The frame goes back to the allocator with the last reference.
///
/// Its bytes are reached only through copies (`read`, `write`, `copy_from`): user threads may
/// change a mapped page at any moment, so no Rust reference to its content ever exists.
#[derive(Debug, PartialEq, Eq)]
pub struct Page(PhysAddr);

impl Page {
    /// A new page of zeros (pristine when possible: no zeroing in ring 0).
    pub fn new_zeroed() -> Option<Page> {
        Some(Page::from_frame(alloc_zeroed()?))
    }

    /// Turns an owned frame into the first reference of a page.
    #[inline]
    pub fn from_frame(frame: Frame) -> Page {
        let phys = frame.leak();
        refcount(phys).store(1, Ordering::Relaxed);
        Page(phys)
    }

    pub fn phys(&self) -> PhysAddr {
        self.0
    }

    /// Copies bytes out of the page at `offset` (the range must lie inside the page).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(
            offset + buf.len() <= PAGE_SIZE as usize,
            "read past the page"
        );
        // SAFETY: inside the page, reached through the direct map; a racing user write only
        // changes which bytes we copy.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.0.to_virt().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
    }

    /// Copies `bytes` into the page at `offset` (the range must lie inside the page).
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(
            offset + bytes.len() <= PAGE_SIZE as usize,
            "write past the page"
        );
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.0.to_virt().add(offset),
                bytes.len(),
            )
        };
    }

    /// Fills `[offset, offset + len)` with zeros.
    pub fn zero(&self, offset: usize, len: usize) {
        assert!(offset + len <= PAGE_SIZE as usize, "zero past the page");
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_bytes(self.0.to_virt().add(offset), 0, len) };
    }

    /// A new private page with the same content (a copy-on-write break). Where ring 0 is
    /// emulated the VMM copies it (one port write instead of ~323 µs of `rep movsq`).
    pub fn duplicate(&self) -> Option<Page> {
        let copy = alloc()?;
        let mut batch = CopyBatch::for_pages();
        // SAFETY: whole frames in the direct map; `copy` is ours alone until it becomes a page,
        // after the batch is finished.
        unsafe { copy_page(batch.as_mut(), copy.0, self.0) };
        if let Some(batch) = batch {
            batch.finish();
        }
        Some(Page::from_frame(copy))
    }

    /// Private copies of `pages`, in order, made together (by the host where ring 0 is
    /// emulated: one port write for up to 16 pages); fewer when memory runs short.
    pub fn duplicate_all(pages: &[Page]) -> alloc::vec::Vec<Page> {
        let mut copies: alloc::vec::Vec<Frame> = alloc::vec::Vec::with_capacity(pages.len());
        let mut batch = CopyBatch::for_pages();
        for page in pages {
            let Some(copy) = alloc() else {
                break;
            };
            // SAFETY: whole frames in the direct map; each copy is ours alone until it becomes
            // a page others can see, after the batch is finished below.
            unsafe { copy_page(batch.as_mut(), copy.0, page.0) };
            copies.push(copy);
        }
        if let Some(batch) = batch {
            batch.finish();
        }
        copies.into_iter().map(Page::from_frame).collect()
    }

    /// Gives up this reference without dropping it (the page tables hold it as a raw address).
    pub(crate) fn into_raw(self) -> PhysAddr {
        let phys = self.0;
        core::mem::forget(self);
        phys
    }

    /// Takes back a reference given up with `into_raw`.
    ///
    /// # Safety
    /// `phys` came from `into_raw`, and this reference is taken back once.
    pub(crate) unsafe fn from_raw(phys: PhysAddr) -> Page {
        Page(phys)
    }
}

impl Clone for Page {
    #[inline]
    fn clone(&self) -> Page {
        refcount(self.0).fetch_add(1, Ordering::Relaxed);
        Page(self.0)
    }
}

/// Frames freed together, as when an address space is torn down: linked through their first
/// words as the free stack is, and handed to the allocator under one lock when the batch is
/// dropped, rather than one lock round per page (each a few emulated instructions more).
#[derive(Debug, Default)]
pub(crate) struct FreeBatch {
    head: u64,
    tail: u64,
    count: u64,
}

impl FreeBatch {
    fn push(&mut self, frame: PhysAddr) {
        // SAFETY: the frame is given up (its last reference is gone); its first word holds the
        // link, as on the free stack.
        unsafe { (frame.to_virt() as *mut u64).write(self.head) };
        if self.count == 0 {
            self.tail = frame.0;
        }
        self.head = frame.0;
        self.count += 1;
    }
}

impl Drop for FreeBatch {
    fn drop(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut frames = FRAMES.lock();
        // SAFETY: the batch's last frame is ours; its link now continues into the free stack.
        unsafe { (PhysAddr(self.tail).to_virt() as *mut u64).write(frames.free_head) };
        frames.free_head = self.head;
        frames.free_frames += self.count;
    }
}

impl Page {
    /// Drops this reference; the frame goes into `batch` if it was the last.
    pub(crate) fn release_into(self, batch: &mut FreeBatch) {
        let phys = self.into_raw();
        if refcount(phys).fetch_sub(1, Ordering::AcqRel) == 1 {
            batch.push(phys);
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if refcount(self.0).fetch_sub(1, Ordering::AcqRel) == 1 {
            free_raw(self.0);
        }
    }
}
