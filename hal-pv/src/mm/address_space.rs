//! User address spaces: the lower half of a 4-level page table, the kernel half shared.
//!
//! An [`AddressSpace`] owns its page-table frames and one [`Page`] reference per mapped page, and
//! hands out only copies of user memory ([`AddressSpace::read`], [`AddressSpace::write`]) found
//! by walking the tables in software: the kernel never dereferences a user address, so a bad user
//! pointer is an `Err`, never a kernel fault, and SMAP can stay on.
//!
//! TLB coherence, lazily: every change that removes or narrows a mapping bumps the space's
//! generation; a CPU compares generations each time it enters user mode (in `user::run`) and
//! reloads CR3 when behind. A CPU that is in user mode in this space *now* is interrupted with an
//! IPI and waited for, so once a change returns no CPU can still use the old translation — only
//! then are the pages it unmapped released. CPUs in the kernel need nothing: the kernel reaches
//! user memory only through the direct map.
//!
//! Which CPU has which space loaded is tracked with reference counts ([`AddressSpace::activate`]
//! keeps an `Arc` per CPU), so page tables are never freed while loaded anywhere.

use super::copy_batch::{self, CopyBatch};
use super::frames::{self, Page};
use super::paging::{self, NO_EXECUTE, PRESENT, USER, WRITABLE};
use super::{PAGE_SIZE, PhysAddr};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// The end of user space (exclusive): the last canonical lower-half page is never mapped.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
/// A software bit: the page is shared copy-on-write; a write fault must copy it first.
const COW: u64 = 1 << 9;
/// A software bit: the page is shared writable (MAP_SHARED), kept writable across fork.
const SHARED: u64 = 1 << 10;
/// A software bit: the frame is not a counted [`Page`] (the kernel's trampoline page).
const FOREIGN: u64 = 1 << 11;
/// A software bit (52–58 are ignored by the MMU): fork copies the page at once instead of
/// sharing it copy-on-write (the kernel's per-thread save areas, which ring 3 writes from the
/// trampoline and which must never be read-only).
const COPY_ON_FORK: u64 = 1 << 52;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// How a user page may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PageFlags {
    pub write: bool,
    pub exec: bool,
    /// Shared copy-on-write: reads see the shared page; the first write must copy it.
    pub cow: bool,
    /// Shared writable mapping: fork keeps it shared and writable.
    pub shared: bool,
    /// Fork copies the page at once (it is never copy-on-write).
    pub copy_on_fork: bool,
}

impl PageFlags {
    fn to_pte(self) -> u64 {
        let mut pte = PRESENT | USER;
        if self.write && !self.cow {
            pte |= WRITABLE;
        }
        if !self.exec {
            pte |= NO_EXECUTE;
        }
        if self.cow {
            pte |= COW;
        }
        if self.shared {
            pte |= SHARED;
        }
        if self.copy_on_fork {
            pte |= COPY_ON_FORK;
        }
        pte
    }

    fn from_pte(pte: u64) -> PageFlags {
        PageFlags {
            write: pte & WRITABLE != 0 || pte & COW != 0,
            exec: pte & NO_EXECUTE == 0,
            cow: pte & COW != 0,
            shared: pte & SHARED != 0,
            copy_on_fork: pte & COPY_ON_FORK != 0,
        }
    }
}

/// A user access that the page tables do not allow, at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub addr: u64,
    pub write: bool,
    /// Something is mapped there (so this is a protection or copy-on-write fault).
    pub present: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The address is not a page-aligned user address.
    BadAddress,
    OutOfMemory,
}

pub struct AddressSpace {
    root: PhysAddr,
    generation: AtomicU64,
    tables: Mutex<()>,
}

fn table(phys: u64) -> *mut u64 {
    PhysAddr(phys).to_virt() as *mut u64
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Writes the present `entry` into `slot`, an entry of one of our tables, and marks its group of
/// 16 in the table's occupancy summary ([`frames::table_occupancy`]). Caller holds `tables` (or
/// owns the space alone).
///
/// # Safety
/// `slot` points into a page table of ours, in the direct map.
unsafe fn set_entry(slot: *mut u64, entry: u64) {
    // SAFETY: the caller's promise.
    unsafe { slot.write(entry) };
    let index = (slot as u64 & (PAGE_SIZE - 1)) / 8;
    mark_groups(slot, 1 << (index / 16));
}

/// Marks `groups` in the occupancy summary of the table that `slot` lies in.
fn mark_groups(slot: *mut u64, groups: u32) {
    if groups != 0 {
        let table = super::virt_to_phys(slot as u64 & !(PAGE_SIZE - 1));
        frames::table_occupancy(table).fetch_or(groups, Ordering::Relaxed);
    }
}

/// A table's occupancy summary (see [`frames::table_occupancy`]).
fn occupancy(phys: u64) -> u32 {
    frames::table_occupancy(PhysAddr(phys)).load(Ordering::Relaxed)
}

fn is_user_page(va: u64) -> bool {
    va.is_multiple_of(PAGE_SIZE) && va < USER_END
}

impl AddressSpace {
    /// An empty user half, the kernel half shared with every space, and the HAL's trampoline page.
    pub fn new() -> Option<Arc<AddressSpace>> {
        let root = frames::alloc_zeroed()?.leak();
        let kernel = paging::kernel_root();
        // SAFETY: both are page tables in the direct map; the new one is ours alone. Only the
        // kernel half (entries 256..512, fixed since boot) is copied.
        unsafe {
            core::ptr::copy_nonoverlapping(table(kernel.0).add(256), table(root.0).add(256), 256);
        }
        let space = Arc::new(AddressSpace {
            root,
            generation: AtomicU64::new(0),
            tables: Mutex::new(()),
        });
        let trampoline = crate::user::vector::trampoline_phys();
        let _guard = space.tables.lock();
        let slot = space.leaf_slot(crate::user::TRAMPOLINE_VA, true)?;
        // SAFETY: a fresh leaf slot of our own tables.
        unsafe { set_entry(slot, trampoline.0 | PRESENT | USER | FOREIGN) };
        drop(_guard);
        Some(space)
    }

    /// The slot of the 4 KiB leaf entry for `va`, creating the tables on the way if `create`.
    /// Caller holds `tables`.
    fn leaf_slot(&self, va: u64, create: bool) -> Option<*mut u64> {
        let mut phys = self.root.0;
        for level in (1..4).rev() {
            // SAFETY: `phys` is one of our page tables; index < 512.
            let slot = unsafe { table(phys).add(index(va, level)) };
            // SAFETY: as above.
            let entry = unsafe { slot.read() };
            if entry & PRESENT != 0 {
                phys = entry & ADDR_MASK;
                continue;
            }
            if !create {
                return None;
            }
            let child = frames::alloc_zeroed()?.leak();
            // SAFETY: as above; intermediate entries allow everything, the leaf decides.
            unsafe { set_entry(slot, child.0 | PRESENT | WRITABLE | USER) };
            phys = child.0;
        }
        // SAFETY: a leaf table of ours.
        Some(unsafe { table(phys).add(index(va, 0)) })
    }

    /// Maps `page` at `va`. A page already there is replaced (and released once no CPU can still
    /// reach it).
    pub fn map(&self, va: u64, page: Page, flags: PageFlags) -> Result<(), MapError> {
        if !is_user_page(va) || va == crate::user::TRAMPOLINE_VA {
            return Err(MapError::BadAddress);
        }
        let guard = self.tables.lock();
        let slot = self.leaf_slot(va, true).ok_or(MapError::OutOfMemory)?;
        // SAFETY: our leaf slot; the page's reference moves into the table.
        let old = unsafe { slot.read() };
        // SAFETY: as above.
        unsafe { set_entry(slot, page.into_raw().0 | flags.to_pte()) };
        drop(guard);
        if old & PRESENT != 0 {
            let mut released = Vec::new();
            released.extend(release(old));
            self.shoot_down();
            drop(released);
        }
        Ok(())
    }

    /// Breaks copy-on-write for the page at `va` and the copy-on-write pages right after it in
    /// the same leaf table, up to `max` pages (a write fault's run): each gets a private copy
    /// (or keeps its page, writable, when no one else holds it). The copies are made together,
    /// by the host where ring 0 is emulated, before any entry changes. Returns how many pages
    /// became writable: 0 when `va`'s page is not copy-on-write (any more: the caller retries
    /// the access), fewer than asked when memory ran short.
    pub fn break_cow_run(&self, va: u64, max: usize) -> usize {
        const RUN: usize = 16;
        if !is_user_page(va) || va == crate::user::TRAMPOLINE_VA {
            return 0;
        }
        let guard = self.tables.lock();
        let Some(first) = self.leaf_slot(va & !(PAGE_SIZE - 1), false) else {
            return 0;
        };
        let limit = max.clamp(1, RUN).min(512 - index(va, 0));
        // (old entry, new entry) per page of the run.
        let mut run = [(0u64, 0u64); RUN];
        let mut count = 0;
        let mut copied = false;
        let mut batch = CopyBatch::for_pages();
        while count < limit {
            // SAFETY: entries of one leaf table of ours (`limit` stops at its end), under the
            // tables lock.
            let old = unsafe { first.add(count).read() };
            if old & (PRESENT | COW | FOREIGN) != PRESENT | COW {
                break;
            }
            let flags = PageFlags {
                cow: false,
                ..PageFlags::from_pte(old)
            };
            let phys = PhysAddr(old & ADDR_MASK);
            let target = if frames::is_sole_reference(phys) {
                phys
            } else {
                let Some(frame) = frames::alloc() else {
                    break;
                };
                // SAFETY: the old page stays mapped (and referenced) until after the batch is
                // finished; the new frame is ours alone until its entry is written, after that.
                unsafe { frames::copy_page(batch.as_mut(), frame.phys(), phys) };
                copied = true;
                Page::from_frame(frame).into_raw()
            };
            run[count] = (old, target.0 | flags.to_pte());
            count += 1;
        }
        if let Some(batch) = batch {
            batch.finish();
        }
        let mut released = Vec::new();
        for (i, &(old, new)) in run[..count].iter().enumerate() {
            // SAFETY: as above; a copy's reference moves into the table, and the old page's
            // reference of this entry is released below, once no CPU can reach it.
            unsafe { first.add(i).write(new) };
            if old & ADDR_MASK != new & ADDR_MASK {
                released.extend(release(old));
            }
        }
        drop(guard);
        // Entries made writable in place need no flush: a stale read-only entry only faults
        // again, and finds the page writable. Replaced pages must leave every TLB first.
        if copied {
            self.shoot_down();
        }
        drop(released);
        count
    }

    /// Maps `pages` one after another from `va` on, while the slots there are empty: stops at
    /// the first page already mapped (or at the end of the user half); returns how many were
    /// mapped. One walk per leaf table, not per page (a fault's neighbours).
    pub fn map_absent(
        &self,
        va: u64,
        pages: impl IntoIterator<Item = Page>,
        flags: PageFlags,
    ) -> Result<usize, MapError> {
        let _guard = self.tables.lock();
        let pte_flags = flags.to_pte();
        let mut mapped = 0;
        let mut slot: Option<*mut u64> = None;
        // The occupancy groups written in the current leaf table, marked once per table.
        let mut groups = 0u32;
        for page in pages {
            let at = va + mapped as u64 * PAGE_SIZE;
            if !is_user_page(at) || at == crate::user::TRAMPOLINE_VA {
                break;
            }
            // A new leaf table every 512 pages; within one, the next slot is the next entry.
            let here = match slot {
                Some(previous) if index(at, 0) != 0 => {
                    // SAFETY: the entry after `previous` in the same leaf table (index != 0).
                    unsafe { previous.add(1) }
                }
                _ => {
                    if let Some(previous) = slot {
                        mark_groups(previous, groups);
                        groups = 0;
                    }
                    self.leaf_slot(at, true).ok_or(MapError::OutOfMemory)?
                }
            };
            slot = Some(here);
            // SAFETY: our leaf slot, under the tables lock.
            if unsafe { here.read() } & PRESENT != 0 {
                break;
            }
            // SAFETY: as above; the page's reference moves into the table (its group is marked
            // below, before the lock is released).
            unsafe { here.write(page.into_raw().0 | pte_flags) };
            groups |= 1 << (index(at, 0) / 16);
            mapped += 1;
        }
        if let Some(last) = slot {
            mark_groups(last, groups);
        }
        Ok(mapped)
    }

    /// Removes every mapping in `[start, end)`; returns how many pages were mapped there.
    pub fn unmap(&self, start: u64, end: u64) -> usize {
        let mut released = Vec::new();
        let guard = self.tables.lock();
        self.for_each_present(start, end, |_, slot| {
            // SAFETY: a present leaf slot of ours.
            let old = unsafe { slot.read() };
            // SAFETY: as above.
            unsafe { slot.write(0) };
            released.extend(release(old));
        });
        drop(guard);
        let count = released.len();
        if count != 0 {
            self.shoot_down();
        }
        drop(released);
        count
    }

    /// Changes the flags of every page mapped in `[start, end)` with `change`.
    pub fn protect(&self, start: u64, end: u64, change: impl Fn(PageFlags) -> PageFlags) {
        let mut narrowed = false;
        let guard = self.tables.lock();
        self.for_each_present(start, end, |_, slot| {
            // SAFETY: a present leaf slot of ours.
            let old = unsafe { slot.read() };
            let new =
                (old & ADDR_MASK) | (old & FOREIGN) | change(PageFlags::from_pte(old)).to_pte();
            if new != old {
                narrowed |= (old & WRITABLE != 0 && new & WRITABLE == 0)
                    || (old & NO_EXECUTE == 0 && new & NO_EXECUTE != 0);
                // SAFETY: as above.
                unsafe { slot.write(new) };
            }
        });
        drop(guard);
        if narrowed {
            self.shoot_down();
        } else {
            self.flush_local();
        }
    }

    /// Whether a page is mapped at the page of `va` (what [`Self::query`] would find, without
    /// taking a reference to it).
    pub fn is_mapped(&self, va: u64) -> bool {
        if va >= USER_END {
            return false;
        }
        let _guard = self.tables.lock();
        self.leaf_slot(va & !(PAGE_SIZE - 1), false)
            // SAFETY: our leaf slot, under the tables lock.
            .map(|slot| unsafe { slot.read() })
            .is_some_and(|entry| entry & PRESENT != 0 && entry & FOREIGN == 0)
    }

    /// What is mapped at the page of `va`: the page and its flags.
    pub fn query(&self, va: u64) -> Option<(Page, PageFlags)> {
        if va >= USER_END {
            return None;
        }
        let _guard = self.tables.lock();
        let slot = self.leaf_slot(va & !(PAGE_SIZE - 1), false)?;
        // SAFETY: our leaf slot.
        let entry = unsafe { slot.read() };
        if entry & PRESENT == 0 || entry & FOREIGN != 0 {
            return None;
        }
        // SAFETY: the table holds one reference; we hand out a new one.
        let page = unsafe { Page::from_raw(PhysAddr(entry & ADDR_MASK)) };
        let copy = page.clone();
        let _ = page.into_raw();
        Some((copy, PageFlags::from_pte(entry)))
    }

    /// A copy-on-write copy of all user mappings (fork): private writable pages become read-only
    /// and copy-on-write in both spaces; shared and read-only pages are shared as they are.
    pub fn fork(&self) -> Option<Arc<AddressSpace>> {
        let child = AddressSpace::new()?;
        let mut narrowed = false;
        let mut out_of_memory = false;
        {
            let _parent = self.tables.lock();
            let _child = child.tables.lock();
            // The child's leaf table of the last 2 MiB region copied: leaves come in address
            // order, so one walk of the child's tables per leaf table rather than per page.
            let mut child_leaves: Option<(u64, *mut u64)> = None;
            let mut child_slot_of = |va: u64| -> Option<*mut u64> {
                let region = va >> 21;
                let table = match child_leaves {
                    Some((at, table)) if at == region => table,
                    _ => {
                        let slot = child.leaf_slot(va, true)?;
                        // SAFETY: back from the slot to the start of its leaf table.
                        let table = unsafe { slot.sub(index(va, 0)) };
                        child_leaves = Some((region, table));
                        table
                    }
                };
                // SAFETY: index < 512, inside that leaf table.
                Some(unsafe { table.add(index(va, 0)) })
            };
            self.for_each_present(0, USER_END, |va, slot| {
                if out_of_memory {
                    return;
                }
                // SAFETY: a present leaf slot of ours.
                let mut entry = unsafe { slot.read() };
                if entry & FOREIGN != 0 {
                    return;
                }
                if entry & COPY_ON_FORK != 0 {
                    // SAFETY: the table holds one reference; we only read through it.
                    let page = unsafe { Page::from_raw(PhysAddr(entry & ADDR_MASK)) };
                    let copy = page.duplicate();
                    let _ = page.into_raw();
                    let (Some(copy), Some(child_slot)) = (copy, child_slot_of(va)) else {
                        out_of_memory = true;
                        return;
                    };
                    // SAFETY: the child's fresh leaf slot takes the copy's reference.
                    unsafe { set_entry(child_slot, copy.into_raw().0 | (entry & !ADDR_MASK)) };
                    return;
                }
                if entry & WRITABLE != 0 && entry & SHARED == 0 {
                    entry = (entry & !WRITABLE) | COW;
                    // SAFETY: as above.
                    unsafe { slot.write(entry) };
                    narrowed = true;
                }
                let Some(child_slot) = child_slot_of(va) else {
                    out_of_memory = true;
                    return;
                };
                // SAFETY: the new reference goes into the child's table.
                let page = unsafe { Page::from_raw(PhysAddr(entry & ADDR_MASK)) };
                let extra = page.clone();
                let _ = page.into_raw();
                // SAFETY: the child's fresh leaf slot.
                unsafe { set_entry(child_slot, extra.into_raw().0 | (entry & !ADDR_MASK)) };
            });
        }
        if narrowed {
            self.shoot_down();
        }
        (!out_of_memory).then_some(child)
    }

    /// Calls `f(va, slot)` for every present 4 KiB leaf in `[start, end)`, descending only into
    /// present tables and scanning each table's entries in one tight loop (every instruction
    /// counts in emulated ring 0). Caller holds `tables`.
    fn for_each_present(&self, start: u64, end: u64, mut f: impl FnMut(u64, *mut u64)) {
        let end = end.min(USER_END);
        if start >= end {
            return;
        }
        walk(self.root.0, 3, 0, start & !(PAGE_SIZE - 1), end, &mut f);
    }

    /// Copies user memory at `va` into `buf`; fails at the first page user mode could not read.
    /// Large copies are made by the host where ring 0 is emulated ([`CopyBatch`]).
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let dst = buf.as_mut_ptr();
        let batch = CopyBatch::for_copy(buf.len(), dst);
        self.copy(va, buf.len(), false, batch, |batch, phys, done, len| {
            // SAFETY: `phys..phys+len` lies inside one mapped user page (direct map), kept
            // mapped while `copy` holds the tables (its batch is done before it lets go); a
            // racing user write only changes which bytes we copy. `buf` is ours meanwhile.
            unsafe { copy_batch::copy(batch, dst.add(done), PhysAddr(phys).to_virt(), len) }
        })
    }

    /// Copies `bytes` to user memory at `va`; fails at the first page user mode could not write.
    pub fn write(&self, va: u64, bytes: &[u8]) -> Result<(), Fault> {
        let src = bytes.as_ptr();
        let batch = CopyBatch::for_copy(bytes.len(), src);
        self.copy(va, bytes.len(), true, batch, |batch, phys, done, len| {
            // SAFETY: as in `read`, into a page user mode may write.
            unsafe { copy_batch::copy(batch, PhysAddr(phys).to_virt(), src.add(done), len) }
        })
    }

    fn copy(
        &self,
        va: u64,
        len: usize,
        write: bool,
        batch: Option<CopyBatch>,
        mut each: impl FnMut(Option<&mut CopyBatch>, u64, usize, usize),
    ) -> Result<(), Fault> {
        let _guard = self.tables.lock();
        // Declared after the guard, so dropped before it, also on a fault: every piece is
        // copied while the pages stay mapped.
        let mut batch = batch;
        let mut done = 0;
        while done < len {
            let addr = va.checked_add(done as u64).ok_or(Fault {
                addr: u64::MAX,
                write,
                present: false,
            })?;
            let fault = Fault {
                addr,
                write,
                present: false,
            };
            if addr >= USER_END {
                return Err(fault);
            }
            let slot = self
                .leaf_slot(addr & !(PAGE_SIZE - 1), false)
                .ok_or(fault)?;
            // SAFETY: our leaf slot.
            let entry = unsafe { slot.read() };
            if entry & PRESENT == 0 {
                return Err(fault);
            }
            if write && entry & WRITABLE == 0 {
                return Err(Fault {
                    present: true,
                    ..fault
                });
            }
            let offset = (addr % PAGE_SIZE) as usize;
            let chunk = (PAGE_SIZE as usize - offset).min(len - done);
            each(
                batch.as_mut(),
                (entry & ADDR_MASK) + offset as u64,
                done,
                chunk,
            );
            done += chunk;
        }
        if let Some(batch) = batch {
            batch.finish();
        }
        Ok(())
    }

    /// Makes this the address space of this CPU (loads CR3 unless it is loaded already).
    pub fn activate(self: &Arc<AddressSpace>) {
        let state = &crate::cpu::this_cpu().user;
        // SAFETY: this CPU's own slot, interrupts off in the kernel.
        let loaded = unsafe { &mut *state.loaded.get() };
        if loaded.as_ref().is_some_and(|s| Arc::ptr_eq(s, self)) {
            return;
        }
        // Read the generation before the switch: a change racing with it is caught at user entry.
        state
            .loaded_generation
            .store(self.generation.load(Ordering::SeqCst), Ordering::SeqCst);
        // SAFETY: a complete page table whose kernel half equals the kernel's.
        unsafe { x86::controlregs::cr3_write(self.root.0) };
        // The previous space may be freed here, now that it is no longer loaded.
        *loaded = Some(self.clone());
    }

    /// Reloads CR3 if this CPU has this space loaded.
    fn flush_local(&self) {
        let state = &crate::cpu::this_cpu().user;
        // SAFETY: this CPU's own slot.
        let loaded = unsafe { &*state.loaded.get() };
        if loaded
            .as_ref()
            .is_some_and(|s| core::ptr::eq(Arc::as_ptr(s), self))
        {
            state
                .loaded_generation
                .store(self.generation.load(Ordering::SeqCst), Ordering::SeqCst);
            // SAFETY: reloading the current CR3 only flushes the TLB.
            unsafe { x86::controlregs::cr3_write(self.root.0) };
        }
    }

    /// Makes every CPU drop translations of this space older than now (see the module doc).
    fn shoot_down(&self) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.flush_local();
        let me = crate::cpu::cpu_index();
        for cpu in crate::cpu::percpu::all_cpus().filter(|c| c.index != me) {
            let state = &cpu.user;
            if state.in_user.load(Ordering::SeqCst) != self.root.0 {
                continue;
            }
            crate::irq::apic::send_ipi(
                cpu.apic_id.load(Ordering::Relaxed),
                crate::user::FLUSH_VECTOR,
            );
            while state.in_user.load(Ordering::SeqCst) == self.root.0
                && state.loaded_generation.load(Ordering::SeqCst) < generation
            {
                core::hint::spin_loop();
            }
        }
    }

    /// Marks this CPU as in user mode in this (loaded) space and catches up with page-table
    /// changes it has not flushed yet.
    pub(crate) fn enter_user_mode(&self, state: &crate::user::CpuUserState) {
        state.in_user.store(self.root.0, Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        if state.loaded_generation.load(Ordering::SeqCst) != generation {
            state.loaded_generation.store(generation, Ordering::SeqCst);
            // SAFETY: reloading the current CR3 only flushes the TLB.
            unsafe { x86::controlregs::cr3_write(self.root.0) };
        }
    }
}

/// Visits the present leaves under the table at `phys` (of `level`, covering virtual addresses
/// from `base`) that lie in `[start, end)`.
fn walk(phys: u64, level: u32, base: u64, start: u64, end: u64, f: &mut impl FnMut(u64, *mut u64)) {
    let span = 1u64 << (12 + 9 * level);
    let first = if start > base {
        ((start - base) / span) as usize
    } else {
        0
    };
    let last = (end.saturating_sub(base).div_ceil(span) as usize).min(512);
    let table_ptr = table(phys);
    // SAFETY: one of our tables, 512 entries; read through a shared view, leaves written only
    // through their slot pointers by `f`.
    let entries = unsafe { core::slice::from_raw_parts(table_ptr as *const u64, 512) };
    for_present(
        entries,
        occupancy(phys),
        first..last.max(first),
        |i, entry| {
            let va = base + i as u64 * span;
            if level == 0 {
                // SAFETY: i < 512.
                f(va, unsafe { table_ptr.add(i) });
            } else {
                walk(entry & ADDR_MASK, level - 1, va, start, end, f);
            }
        },
    );
}

/// Calls `f(index, entry)` for each present entry of `entries[range]`, looking only at the groups
/// of 16 that the table's `occupied` summary marks: tables are mostly empty, and every ring-0
/// instruction is emulated on PVM hosts.
fn for_present(
    entries: &[u64],
    occupied: u32,
    range: core::ops::Range<usize>,
    mut f: impl FnMut(usize, u64),
) {
    if range.start >= range.end {
        return;
    }
    let (first, last) = (range.start / 16, (range.end - 1) / 16);
    // Groups first..=last (last <= 31).
    let in_range = (u32::MAX >> (31 - last)) & (u32::MAX << first);
    let mut groups = occupied & in_range;
    while groups != 0 {
        let group = groups.trailing_zeros() as usize;
        groups &= groups - 1;
        for i in (group * 16).max(range.start)..(group * 16 + 16).min(range.end) {
            let entry = entries[i];
            if entry & PRESENT != 0 {
                f(i, entry);
            }
        }
    }
}

/// The page reference a leaf entry held (none for the trampoline).
fn release(entry: u64) -> Option<Page> {
    // SAFETY: a present, non-foreign leaf holds exactly one reference, removed with the entry.
    (entry & PRESENT != 0 && entry & FOREIGN == 0)
        .then(|| unsafe { Page::from_raw(PhysAddr(entry & ADDR_MASK)) })
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // No CPU has us loaded (each loaded space is held by an Arc), so nothing is in flight.
        fn free_level(
            phys: u64,
            level: u32,
            range: core::ops::Range<usize>,
            batch: &mut frames::FreeBatch,
        ) {
            // SAFETY: one of our tables, being torn down; nothing else uses it.
            let entries = unsafe { core::slice::from_raw_parts(table(phys) as *const u64, 512) };
            for_present(entries, occupancy(phys), range, |_, entry| {
                if level == 0 {
                    if let Some(page) = release(entry) {
                        page.release_into(batch);
                    }
                } else {
                    free_level(entry & ADDR_MASK, level - 1, 0..512, batch);
                    frames::clear_table_occupancy(PhysAddr(entry & ADDR_MASK));
                    frames::free_raw(PhysAddr(entry & ADDR_MASK));
                }
            });
        }
        // Freed frames go back to the allocator together when the batch drops, at the end.
        let mut batch = frames::FreeBatch::default();
        free_level(self.root.0, 3, 0..256, &mut batch);
        frames::clear_table_occupancy(self.root);
        frames::free_raw(self.root);
    }
}

/// Switches this CPU to the kernel's own tables (an idle CPU, or before an address space dies).
pub fn activate_kernel_space() {
    let state = &crate::cpu::this_cpu().user;
    // SAFETY: this CPU's own slot.
    let loaded = unsafe { &mut *state.loaded.get() };
    if loaded.is_some() {
        // SAFETY: the kernel's tables map everything the kernel uses.
        unsafe { x86::controlregs::cr3_write(paging::kernel_root().0) };
        *loaded = None;
    }
}
