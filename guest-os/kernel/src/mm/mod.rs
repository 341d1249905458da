//! A process's memory: its address space (`hal_pv::mm::address_space`), the VMAs that say what
//! may be mapped where, demand paging and copy-on-write, and the mmap family's semantics.
//!
//! Layout of user space (top down): the vector save areas of the threads (one slot per thread,
//! `VECTOR_BASE..`), the main stack below `STACK_TOP`, the mmap area growing down below the stack
//! gap, and the program and its brk heap at the bottom. Nothing is mapped at or above
//! `MMAP_END` except by the kernel.
//!
//! Faults are expensive here (a user page fault is ~100 µs round trip on PVM hosts), so private
//! anonymous faults map a small run of neighbouring pages at once (pristine frames cost nothing
//! to zero), and small anonymous mappings are populated when they are made.

pub mod page_cache;
pub mod uaccess;

use crate::fs::FileRef;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use hal_pv::mm::PAGE_SIZE;
use hal_pv::mm::address_space::{AddressSpace, PageFlags};
use hal_pv::mm::frames::{FrameRun, Page};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use spin::Mutex;

/// First address of the vector save areas (above everything user mappings may use).
pub const VECTOR_BASE: u64 = 0x7fff_e000_0000;
/// End of the vector save areas.
const VECTOR_END: u64 = 0x7fff_f000_0000;
/// User mappings end here.
pub const MMAP_END: u64 = VECTOR_BASE;
/// Top of the main thread's stack.
pub const STACK_TOP: u64 = 0x7fff_c000_0000;
/// The main stack's reservation (grown on demand).
pub const STACK_BYTES: u64 = 8 << 20;
/// The mmap area starts below the stack reservation and a guard gap.
const MMAP_TOP: u64 = STACK_TOP - STACK_BYTES - (64 << 20);
/// Lowest address mmap hands out without MAP_FIXED.
const MMAP_BOTTOM: u64 = 0x1_0000;
/// Pages an anonymous fault maps together (fresh memory: only a few beyond the one touched).
const FAULT_AROUND: u64 = 16;
/// Pages a fault in a file mapping maps together (256 KiB; read ahead if not cached). Cached
/// pages cost no memory to map, and a big program's text is faulted in four times less often.
const FILE_FAULT_AROUND: u64 = 64;
/// Pages a write fault in copy-on-write memory copies together where the host makes the copies
/// (a fault costs ~1.4 ms on PVM hosts, a page copied by the host microseconds); one where the
/// kernel copies itself, a page at a time as it is written.
const COW_AROUND: u64 = 16;

fn cow_run() -> u64 {
    if hal_pv::pvport::host_copy_available() {
        COW_AROUND
    } else {
        1
    }
}

/// Pages an anonymous fault maps when it continues a mapped stretch (512 KiB): filling a big
/// buffer then costs a fault per 512 KiB rather than per 64 KiB, while sparse use of a big
/// mapping still maps only [`FAULT_AROUND`] pages per touch.
const SEQUENTIAL_ANON_AROUND: u64 = 128;
/// Pages a populate maps (and reads, for a file) per fault: one page-cache read-ahead's worth.
const POPULATE_RUN: u64 = page_cache::READ_AHEAD_MAX;
/// Anonymous private mappings up to this size are populated at once.
pub const POPULATE_SMALL: u64 = 64 * 1024;

pub fn page_align_down(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

pub fn page_align_up(addr: u64) -> Option<u64> {
    addr.checked_add(PAGE_SIZE - 1)
        .map(|a| a & !(PAGE_SIZE - 1))
}

#[derive(Clone)]
pub enum Backing {
    Anon,
    /// File content from `offset` (page aligned) at the VMA's start, through the page cache:
    /// shared with the file (`Vma::shared`) or private (copied on write).
    File {
        file: FileRef,
        offset: u64,
    },
}

#[derive(Clone)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub shared: bool,
    pub backing: Backing,
}

impl Vma {
    fn flags(&self) -> PageFlags {
        PageFlags {
            write: self.prot & PROT_WRITE != 0,
            exec: self.prot & PROT_EXEC != 0,
            cow: false,
            shared: self.shared,
            copy_on_fork: false,
        }
    }

    /// Whether `high` continues this VMA seamlessly: adjacent, with the same protection and
    /// sharing, both anonymous or both the same file at contiguous offsets.
    pub fn continues(&self, high: &Vma) -> bool {
        if self.end != high.start || self.prot != high.prot || self.shared != high.shared {
            return false;
        }
        match (&self.backing, &high.backing) {
            (Backing::Anon, Backing::Anon) => true,
            (
                Backing::File { file, offset },
                Backing::File {
                    file: high_file,
                    offset: high_offset,
                },
            ) => {
                file.inode().id() == high_file.inode().id()
                    && offset + (self.end - self.start) == *high_offset
            }
            _ => false,
        }
    }

    fn split_at(&mut self, at: u64) -> Vma {
        let mut high = self.clone();
        high.start = at;
        if let Backing::File { offset, .. } = &mut high.backing {
            *offset += at - self.start;
        }
        self.end = at;
        high
    }
}

pub struct MmState {
    pub vmas: BTreeMap<u64, Vma>,
    pub brk_start: u64,
    pub brk: u64,
    vector_slots: Vec<bool>,
    /// What exec recorded about the program (for /proc/<pid>/{exe,cmdline,environ,stat}).
    pub exec: ExecInfo,
}

/// What exec leaves in the memory map for procfs, as Linux keeps it in `mm_struct`.
#[derive(Clone, Default)]
pub struct ExecInfo {
    /// The executable (`mm->exe_file`): /proc/<pid>/exe names its path.
    pub exe: Option<FileRef>,
    /// `[arg_start, arg_end)`: the argv strings in user memory (/proc/<pid>/cmdline).
    pub arg_start: u64,
    pub arg_end: u64,
    /// `[env_start, env_end)`: the envp strings (/proc/<pid>/environ).
    pub env_start: u64,
    pub env_end: u64,
    /// The initial stack pointer (`start_stack` of /proc/<pid>/stat).
    pub start_stack: u64,
}

pub struct Mm {
    pub space: Arc<AddressSpace>,
    pub state: Mutex<MmState>,
}

impl Mm {
    pub fn new() -> SysResult<Arc<Mm>> {
        Ok(Arc::new(Mm {
            space: AddressSpace::new().ok_or(Errno::ENOMEM)?,
            state: Mutex::new(MmState {
                vmas: BTreeMap::new(),
                brk_start: 0,
                brk: 0,
                vector_slots: Vec::new(),
                exec: ExecInfo::default(),
            }),
        }))
    }

    /// fork: the same VMAs over a copy-on-write copy of the pages.
    pub fn fork(&self) -> SysResult<Arc<Mm>> {
        let state = self.state.lock();
        let space = self.space.fork().ok_or(Errno::ENOMEM)?;
        Ok(Arc::new(Mm {
            space,
            state: Mutex::new(MmState {
                vmas: state.vmas.clone(),
                brk_start: state.brk_start,
                brk: state.brk,
                vector_slots: state.vector_slots.clone(),
                exec: state.exec.clone(),
            }),
        }))
    }

    /// A save area for a new thread's vector registers, initialised to the reset state.
    pub fn alloc_vector_area(&self) -> SysResult<u64> {
        let slot_bytes =
            page_align_up(hal_pv::user::vector::area_bytes() as u64).unwrap_or(PAGE_SIZE);
        let slot = {
            let mut state = self.state.lock();
            let free = state.vector_slots.iter().position(|used| !used);
            let slot = free.unwrap_or(state.vector_slots.len());
            if VECTOR_BASE + (slot as u64 + 1) * slot_bytes > VECTOR_END {
                return Err(Errno::EAGAIN);
            }
            if slot == state.vector_slots.len() {
                state.vector_slots.push(true);
            } else {
                state.vector_slots[slot] = true;
            }
            slot
        };
        let area = VECTOR_BASE + slot as u64 * slot_bytes;
        let flags = PageFlags {
            write: true,
            copy_on_fork: true,
            ..PageFlags::default()
        };
        for page_va in (area..area + slot_bytes).step_by(PAGE_SIZE as usize) {
            let page = Page::new_zeroed().ok_or(Errno::ENOMEM)?;
            if page_va == area {
                page.write(0, &hal_pv::user::vector::initial_area_prefix());
            }
            self.space
                .map(page_va, page, flags)
                .map_err(|_| Errno::ENOMEM)?;
        }
        Ok(area)
    }

    /// Gives back a thread's save area slot (the pages stay for reuse by the next thread).
    pub fn free_vector_area(&self, area: u64) {
        let slot_bytes =
            page_align_up(hal_pv::user::vector::area_bytes() as u64).unwrap_or(PAGE_SIZE);
        if area < VECTOR_BASE {
            return;
        }
        let slot = ((area - VECTOR_BASE) / slot_bytes) as usize;
        if let Some(used) = self.state.lock().vector_slots.get_mut(slot) {
            *used = false;
        }
    }

    /// Handles a user page fault at `addr`. Err(present) when the access is not allowed (the
    /// caller raises SIGSEGV; `present` tells ACCERR from MAPERR).
    pub fn handle_fault(&self, addr: u64, write: bool, exec: bool) -> Result<(), bool> {
        self.fault_in(addr, write, exec, None).map(|_| ())
    }

    /// [`Self::handle_fault`], mapping up to `around` pages from `addr` on where it can
    /// (anonymous zeros, cached file pages; a file's read-ahead reads that many); None: as many
    /// as a demand fault maps. Returns how many pages from `addr` on are now present (at least 1).
    fn fault_in(
        &self,
        addr: u64,
        write: bool,
        exec: bool,
        around: Option<u64>,
    ) -> Result<u64, bool> {
        let state = self.state.lock();
        let vma = find(&state.vmas, addr).ok_or(false)?;
        let allowed = if write {
            vma.prot & PROT_WRITE != 0
        } else if exec {
            vma.prot & PROT_EXEC != 0
        } else {
            vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0
        };
        if !allowed {
            return Err(true);
        }
        let page_va = page_align_down(addr);
        if let Some((page, flags)) = self.space.query(page_va) {
            drop(page);
            if write && flags.cow {
                // This page and the copy-on-write ones after it: a write fault is rarely alone.
                let run = cow_run().min((vma.end - page_va) / PAGE_SIZE);
                let made = self.space.break_cow_run(page_va, run as usize);
                if made == 0 && self.space.query(page_va).is_some_and(|(_, f)| f.cow) {
                    return Err(true); // out of memory
                }
                return Ok(made.max(1) as u64);
            }
            // Otherwise another CPU resolved it first, or the TLB was stale: retry.
            return Ok(1);
        }
        let around = match (around, &vma.backing) {
            (Some(around), _) => around.max(1),
            (None, Backing::File { .. }) => FILE_FAULT_AROUND,
            // An anonymous fault right after a mapped page walks the memory forward (a big
            // buffer being filled or cleared): take a longer run at once.
            (None, Backing::Anon)
                if page_va > vma.start && self.space.is_mapped(page_va - PAGE_SIZE) =>
            {
                SEQUENTIAL_ANON_AROUND
            }
            (None, Backing::Anon) => FAULT_AROUND,
        };
        let last = page_va.saturating_add(around * PAGE_SIZE).min(vma.end);
        match &vma.backing {
            Backing::Anon => {
                // Fresh zeroed pages, one walk of the page tables per leaf table; stops at the
                // first page mapped already (or when memory runs out, after the first).
                let count = (last - page_va) / PAGE_SIZE;
                let mapped = match FrameRun::alloc_zeroed(count) {
                    // One allocation for the run (pages it does not map go back).
                    Some(run) => self.space.map_absent(
                        page_va,
                        run.into_frames().map(Page::from_frame),
                        vma.flags(),
                    ),
                    None => self.space.map_absent(
                        page_va,
                        core::iter::from_fn(Page::new_zeroed).take(count as usize),
                        vma.flags(),
                    ),
                }
                .map_err(|_| false)?;
                if mapped == 0 {
                    // Out of memory, unless the page got mapped meanwhile.
                    return if self.space.is_mapped(page_va) {
                        Ok(1)
                    } else {
                        Err(false)
                    };
                }
                Ok(mapped as u64)
            }
            Backing::File { file, offset } => {
                let id = page_cache::cache_id(file);
                let file_offset = offset + (page_va - vma.start);
                let mut flags = vma.flags();
                let shared_write = vma.shared && flags.write;
                let wanted = (last - page_va) / PAGE_SIZE;
                let page = page_cache::get_or_read(file, id, file_offset, wanted, shared_write)
                    .map_err(|_| false)?;
                // Cached pages are shared by every mapper: private writable mappings get them
                // read-only and copy on the first write. A write fault copies at once.
                if !vma.shared && flags.write {
                    flags.cow = true;
                }
                if write && flags.cow {
                    // Private copies of this page and of the cached ones after it (a data
                    // segment being written: relocations, statics), made together.
                    let mut sources = alloc::vec![page];
                    let run = cow_run().min(wanted);
                    if let Some(id) = id.filter(|_| run > 1) {
                        page_cache::with_cached_run(
                            id,
                            file_offset + PAGE_SIZE,
                            run - 1,
                            |pages| sources.extend(pages),
                        );
                    }
                    let copies = Page::duplicate_all(&sources);
                    drop(sources);
                    if copies.is_empty() {
                        return Err(true); // out of memory
                    }
                    let writable = PageFlags {
                        cow: false,
                        ..flags
                    };
                    let mapped = self
                        .space
                        .map_absent(page_va, copies, writable)
                        .map_err(|_| false)?;
                    return Ok(mapped.max(1) as u64);
                }
                self.space.map(page_va, page, flags).map_err(|_| false)?;
                // Fault-around: neighbours already in the page cache cost no I/O, only a map.
                // (Not for shared writable maps: each page mapped there is marked dirty-mapped
                // by its own fault.)
                let Some(id) = id.filter(|_| !shared_write) else {
                    return Ok(1);
                };
                let next = file_offset + PAGE_SIZE;
                let mapped = page_cache::with_cached_run(id, next, wanted - 1, |pages| {
                    self.space.map_absent(page_va + PAGE_SIZE, pages, flags)
                })
                .map_err(|_| false)?;
                Ok(1 + mapped as u64)
            }
        }
    }

    /// Makes `[start, end)` present now (MAP_POPULATE, exec's segments, the initial stack): a
    /// fault per run of up to [`POPULATE_RUN`] pages, each mapping (and for a file, reading) its
    /// whole run, rather than a fault or a page-table lookup per page.
    pub fn populate(&self, start: u64, end: u64, write: bool) -> SysResult<()> {
        let mut va = page_align_down(start);
        while va < end {
            let mut present = 1;
            if write || !self.space.is_mapped(va) {
                let around = (end - va).div_ceil(PAGE_SIZE).min(POPULATE_RUN);
                present = self
                    .fault_in(va, write, false, Some(around))
                    .map_err(|_| Errno::ENOMEM)?;
            }
            va = va.saturating_add(present.max(1) * PAGE_SIZE);
        }
        Ok(())
    }

    /// Adds a VMA at `[start, end)`, replacing what was there (the caller checked MAP_FIXED).
    /// The VMA change and the page-table change happen under one lock, so no fault or other
    /// mapping call sees one without the other.
    pub fn insert(&self, vma: Vma) {
        let mut state = self.state.lock();
        let (start, end) = (vma.start, vma.end);
        remove_vmas(&mut state.vmas, start, end);
        self.space.unmap(start, end);
        state.vmas.insert(start, vma);
        // brk's growth and neighbouring anonymous maps join the VMA they continue.
        merge_around(&mut state.vmas, start, end);
    }

    /// Maps `vma` (its length) at a free place — `hint` if that is free, else top down in the
    /// mmap area — choosing and inserting under one lock; returns the start.
    pub fn insert_anywhere(&self, mut vma: Vma, hint: u64) -> SysResult<u64> {
        let len = vma.end - vma.start;
        let mut state = self.state.lock();
        let start = find_free(&state, len, hint)?;
        vma.start = start;
        vma.end = start + len;
        state.vmas.insert(start, vma);
        Ok(start)
    }

    /// Removes mappings in `[start, end)` (splitting VMAs at the edges).
    pub fn unmap(&self, start: u64, end: u64) {
        let mut state = self.state.lock();
        remove_vmas(&mut state.vmas, start, end);
        self.space.unmap(start, end);
    }

    /// mprotect: new protection for `[start, end)`, which must be fully mapped.
    pub fn protect(&self, start: u64, end: u64, prot: u32) -> SysResult<()> {
        let mut state = self.state.lock();
        let mut at = start;
        while at < end {
            let vma = find(&state.vmas, at).ok_or(Errno::ENOMEM)?;
            at = vma.end;
        }
        split(&mut state.vmas, start);
        split(&mut state.vmas, end);
        // Shared file pages that become writable are unmapped, so that each is marked
        // dirty-mapped in the page cache by its next fault (it stays in the cache).
        let mut refault = Vec::new();
        for (_, vma) in state.vmas.range_mut(start..end) {
            if vma.shared
                && prot & PROT_WRITE != 0
                && vma.prot & PROT_WRITE == 0
                && matches!(vma.backing, Backing::File { .. })
            {
                refault.push((vma.start, vma.end));
            }
            vma.prot = prot;
        }
        for (from, to) in refault {
            self.space.unmap(from, to);
        }
        // Page tables change under the same lock as the VMAs (faults take it too).
        self.space.protect(start, end, |flags| PageFlags {
            write: prot & PROT_WRITE != 0,
            exec: prot & PROT_EXEC != 0,
            ..flags
        });
        if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
            // PROT_NONE: x86 user pages are always readable, so nothing may stay mapped. The
            // content is dropped (partial: a later mprotect back to readable sees zeros or the
            // file again); guard pages and reservations, the common uses, hold nothing.
            self.space.unmap(start, end);
        }
        let small_anon = prot & (PROT_READ | PROT_WRITE) != 0
            && end - start <= POPULATE_SMALL
            && state
                .vmas
                .range(start..end)
                .all(|(_, v)| !v.shared && matches!(v.backing, Backing::Anon));
        merge_around(&mut state.vmas, start, end);
        drop(state);
        // glibc grows a thread's malloc arena a page or a few at a time with mprotect and then
        // writes there at once: map such a small private stretch now rather than by a fault
        // per page (the fault-around stops at the arena's end).
        if small_anon {
            let _ = self.populate(start, end, prot & PROT_WRITE != 0);
        }
        Ok(())
    }

    /// A copy of the VMAs in address order (for /proc/<pid>/maps: formatted without the lock).
    pub fn vmas(&self) -> Vec<Vma> {
        self.state.lock().vmas.values().cloned().collect()
    }

    /// `(brk_start, brk)`: where the heap starts and its current end.
    pub fn brk_range(&self) -> (u64, u64) {
        let state = self.state.lock();
        (state.brk_start, state.brk)
    }

    /// A copy of what exec recorded (see [`ExecInfo`]).
    pub fn exec_info(&self) -> ExecInfo {
        self.state.lock().exec.clone()
    }

    /// madvise(DONTNEED): private anonymous pages read back as zeros.
    pub fn discard(&self, start: u64, end: u64) {
        let _state = self.state.lock();
        self.space.unmap(start, end);
    }
}

/// A free range of `len` bytes in the mmap area, top down, or at `hint` if that is free.
fn find_free(state: &MmState, len: u64, hint: u64) -> SysResult<u64> {
    let free = |start: u64| {
        let end = start + len;
        end <= MMAP_END
            && start >= MMAP_BOTTOM
            && !state.vmas.values().any(|v| v.start < end && start < v.end)
    };
    if hint != 0 && hint.is_multiple_of(PAGE_SIZE) && hint.checked_add(len).is_some() && free(hint)
    {
        return Ok(hint);
    }
    let mut candidate = MMAP_TOP.checked_sub(len).ok_or(Errno::ENOMEM)?;
    // Walk the VMAs from the top down, sliding below each one that overlaps.
    for vma in state.vmas.values().rev() {
        if vma.start >= candidate + len {
            continue;
        }
        if vma.end <= candidate {
            break;
        }
        candidate = vma.start.checked_sub(len).ok_or(Errno::ENOMEM)?;
    }
    if candidate < MMAP_BOTTOM {
        return Err(Errno::ENOMEM);
    }
    Ok(candidate)
}

/// Removes the VMAs in `[start, end)`, splitting those that cross the edges.
fn remove_vmas(vmas: &mut BTreeMap<u64, Vma>, start: u64, end: u64) {
    split(vmas, start);
    split(vmas, end);
    let keys: Vec<u64> = vmas
        .range(..end)
        .filter(|(_, v)| v.end > start)
        .map(|(k, _)| *k)
        .collect();
    for key in keys {
        vmas.remove(&key);
    }
}

/// Merges the VMAs that touch `[start, end)` (the one just before and the one just after
/// included) with their neighbours where one continues the other, as Linux's `vma_merge`:
/// mprotect would otherwise leave a VMA per call — glibc grows a thread's arena one mprotect at
/// a time, thousands for a big program — and every lookup walks them.
fn merge_around(vmas: &mut BTreeMap<u64, Vma>, start: u64, end: u64) {
    let first = vmas
        .range(..start)
        .next_back()
        .map_or(start, |(key, _)| *key);
    let mut keys: Vec<u64> = vmas.range(first..=end).map(|(key, _)| *key).collect();
    keys.reverse();
    // From the top down: each VMA that continues the one below it is folded into that one.
    for pair in keys.windows(2) {
        let (high_key, low_key) = (pair[0], pair[1]);
        let mergeable = match (vmas.get(&low_key), vmas.get(&high_key)) {
            (Some(low), Some(high)) => low.continues(high),
            _ => false,
        };
        if mergeable && let Some(high) = vmas.remove(&high_key) {
            if let Some(low) = vmas.get_mut(&low_key) {
                low.end = high.end;
            }
        }
    }
}

/// The VMA containing `addr`.
pub fn find(vmas: &BTreeMap<u64, Vma>, addr: u64) -> Option<&Vma> {
    vmas.range(..=addr)
        .next_back()
        .map(|(_, v)| v)
        .filter(|v| addr < v.end)
}

/// Splits the VMA containing `at` (if any) into two at `at`.
fn split(vmas: &mut BTreeMap<u64, Vma>, at: u64) {
    let Some(key) = vmas
        .range(..at)
        .next_back()
        .filter(|(_, v)| at < v.end)
        .map(|(k, _)| *k)
    else {
        return;
    };
    if let Some(vma) = vmas.get_mut(&key) {
        let high = vma.split_at(at);
        vmas.insert(at, high);
    }
}
