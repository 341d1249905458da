//! A split virtqueue (virtio 1.2 §2.7) for drivers that lay out their own descriptor chains.
//!
//! Why not the crate's `VirtQueue`: it is general — a free list, shadow descriptors, indirect
//! tables allocated per request, a token search on completion — and on PVM hosts every ring-0
//! instruction is emulated. Measured there, its `add` and `pop_used` cost ~415 emulated
//! instructions per block request. A driver that knows its chains can do far less: the block
//! driver gives each request slot three descriptors chained once at start, so submitting a
//! request rewrites one descriptor and one ring entry.
//!
//! The layout is the legacy one (§2.7.2: descriptors, then the driver area, then the device area
//! on the next page), which modern devices take as well — QEMU's virtio-mmio is legacy unless
//! told otherwise. With VIRTIO_F_EVENT_IDX the driver asks for one interrupt per batch
//! ([`Ring::interrupt_after`]) and notifies only when the device asked ([`Ring::publish`]).
//!
//! Every index into the rings is masked with `size - 1` (the size is a power of two), so the
//! accesses below stay inside the shared pages without a check per access.

use super::dma::Dma;
use super::{Error, Mmio};
use crate::mm::PAGE_SIZE;
use core::sync::atomic::{Ordering, compiler_fence, fence};
use virtio_drivers::transport::Transport;

/// Descriptor flags (§2.7.5).
pub const DESC_NEXT: u16 = 1;
/// The device writes this buffer.
pub const DESC_WRITE: u16 = 2;

const DESC_BYTES: usize = 16;

/// One virtqueue's rings in memory shared with the device.
pub struct Ring {
    mem: Dma,
    /// `size - 1`; the size is a power of two.
    mask: u16,
    /// Offset of the driver (available) area.
    avail: usize,
    /// Offset of the device (used) area.
    used: usize,
    /// The next available-ring entry to fill.
    next_avail: u16,
    /// The available index the device was last shown.
    published: u16,
    /// The used entries taken so far.
    last_used: u16,
    event_idx: bool,
}

impl Ring {
    /// Sets up queue `queue` of the device with the largest power-of-two size up to `max`
    /// the device allows.
    pub fn new(transport: &mut Mmio, queue: u16, max: u16, event_idx: bool) -> Result<Ring, Error> {
        if transport.queue_used(queue) {
            return Err(Error(virtio_drivers::Error::AlreadyUsed));
        }
        let limit = transport.max_queue_size(queue).min(u32::from(max));
        if limit == 0 {
            return Err(Error(virtio_drivers::Error::InvalidParam));
        }
        let size = 1u16 << (31 - limit.leading_zeros());
        let n = usize::from(size);
        let page = PAGE_SIZE as usize;
        let avail = n * DESC_BYTES;
        // flags, idx, ring[n], used_event
        let used = (avail + 2 * (n + 3)).next_multiple_of(page);
        // flags, idx, ring[n] of (id u32, len u32), avail_event
        let bytes = used + 4 + 8 * n + 2;
        let mem = Dma::new(bytes.div_ceil(page));
        transport.queue_set(
            queue,
            u32::from(size),
            mem.phys(0) as virtio_drivers::PhysAddr,
            mem.phys(avail) as virtio_drivers::PhysAddr,
            mem.phys(used) as virtio_drivers::PhysAddr,
        );
        Ok(Ring {
            mem,
            mask: size - 1,
            avail,
            used,
            next_avail: 0,
            published: 0,
            last_used: 0,
            event_idx,
        })
    }

    pub fn size(&self) -> u16 {
        self.mask + 1
    }

    /// Writes descriptor `index` (masked): its buffer, flags and `next`.
    pub fn set_descriptor(&mut self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = usize::from(index & self.mask) * DESC_BYTES;
        let rest = u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48;
        // SAFETY: a masked index is below the size: the descriptor lies in the table.
        unsafe {
            self.mem.write_unchecked(at, addr);
            self.mem.write_unchecked(at + 8, rest);
        }
    }

    /// Queues the chain starting at `head`; the device sees it at the next [`Ring::publish`].
    pub fn push(&mut self, head: u16) {
        let at = self.avail + 4 + 2 * usize::from(self.next_avail & self.mask);
        // SAFETY: a masked entry of the available ring, inside the driver area.
        unsafe { self.mem.write_unchecked(at, head) };
        self.next_avail = self.next_avail.wrapping_add(1);
    }

    /// Asks for an interrupt once `count` more chains are used (with EVENT_IDX; without it the
    /// device interrupts for every one).
    pub fn interrupt_after(&mut self, count: u16) {
        if self.event_idx {
            let event = self.last_used.wrapping_add(count.max(1) - 1);
            let at = self.avail + 4 + 2 * usize::from(self.size());
            self.mem.write(at, event);
        }
    }

    /// Shows the device every pushed chain; true if it wants to be notified (§2.7.10, §2.7.7.2).
    pub fn publish(&mut self) -> bool {
        // Descriptors and ring entries before the index: x86 keeps stores in order, so only the
        // compiler must not reorder them.
        compiler_fence(Ordering::Release);
        self.mem.write(self.avail + 2, self.next_avail);
        let (old, new) = (self.published, self.next_avail);
        self.published = new;
        // The index must be visible before we read whether the device wants a notification
        // (a store then a load: the one reordering x86 does).
        fence(Ordering::SeqCst);
        if self.event_idx {
            let event: u16 = self.mem.read(self.used + 4 + 8 * usize::from(self.size()));
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            self.mem.read::<u16>(self.used) & 1 == 0
        }
    }

    /// Chains the device has used and the driver not yet taken.
    pub fn used_pending(&self) -> u16 {
        // SAFETY: the used index, at a fixed place inside the device area.
        let idx: u16 = unsafe { self.mem.read_unchecked(self.used + 2) };
        idx.wrapping_sub(self.last_used)
    }

    /// Takes the next used chain's head descriptor, if the device has used one.
    pub fn pop_used(&mut self) -> Option<u32> {
        if self.used_pending() == 0 {
            return None;
        }
        // The entry after the index: x86 keeps loads in order.
        compiler_fence(Ordering::Acquire);
        let at = self.used + 4 + 8 * usize::from(self.last_used & self.mask);
        // SAFETY: a masked entry of the used ring, inside the device area.
        let id: u32 = unsafe { self.mem.read_unchecked(at) };
        self.last_used = self.last_used.wrapping_add(1);
        Some(id)
    }
}
