//! virtio-blk (virtio 1.2 §5.2): a disk, read and written in 512-byte sectors.
//!
//! Our own driver over [`Ring`], not the crate's `VirtIOBlk`: on PVM hosts each ring-0 instruction
//! is emulated, and the crate's general queue cost ~700 of them per request (see `ring`'s module
//! doc). Here each request slot owns three descriptors, chained once at start — its header, the
//! data, its status byte — and the headers and status bytes live in one shared page at fixed
//! places. Submitting a request writes its header, one descriptor and one ring entry; a batch is
//! published with one notification (if the device wants one) and completes with one interrupt.
//!
//! Requests go in batches ([`Block::batch`]: submit them all, sleep until the device has answered
//! them all; the single-request calls are batches of one) or in a stream ([`Block::stream`]: each
//! answered request's slot is refilled at once, so the queue stays full).

use super::dma::Dma;
use super::ring::{DESC_NEXT, DESC_WRITE, Ring};
use super::{Device, Error, Kind, Mmio, wait_until};
use crate::mm::virt_to_phys;
use virtio_drivers::transport::{DeviceStatus, Transport};

/// Bytes in a sector, the unit of offsets and lengths.
pub const SECTOR_BYTES: usize = 512;

/// Feature bits (§5.2.3, §6).
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_EVENT_IDX: u64 = 1 << 29;
const F_VERSION_1: u64 = 1 << 32;

/// Request types and the status of success (§5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;

/// The request queue, and the most descriptors we ask for in it.
const QUEUE: u16 = 0;
const MAX_QUEUE_SIZE: u16 = 256;
/// Descriptors per request: header, data, status.
const CHAIN: u16 = 3;
/// Most requests in flight at once (the status bytes live after 64 headers of 16 bytes).
const MAX_SLOTS: usize = 64;
/// `struct virtio_blk_req` up to the data: type u32, reserved u32, sector u64.
const HEADER_BYTES: usize = 16;
/// Where the status bytes begin in the shared page.
const STATUS_AT: usize = MAX_SLOTS * HEADER_BYTES;
/// What a status byte holds until the device answers.
const NO_ANSWER: u8 = 0xff;

/// An open disk.
pub struct Block {
    transport: Mmio,
    ring: Ring,
    /// Request headers (slot `i` at `i * 16`) and status bytes (at `STATUS_AT + i`).
    slots: Dma,
    /// Requests that fit in the queue at once.
    slot_count: usize,
    capacity: u64,
    read_only: bool,
    can_flush: bool,
    /// The device's interrupt slot.
    slot: usize,
    /// Bit `i`: slot `i` has a request in flight.
    busy: u64,
}

/// One request of a batch.
pub enum Request<'a> {
    Read { sector: u64, buf: &'a mut [u8] },
    Write { sector: u64, buf: &'a [u8] },
}

impl Request<'_> {
    fn len(&self) -> usize {
        match self {
            Request::Read { buf, .. } => buf.len(),
            Request::Write { buf, .. } => buf.len(),
        }
    }
}

impl Block {
    /// Starts the driver of a block device.
    pub fn open(device: Device) -> Result<Block, Error> {
        assert_eq!(device.kind, Kind::Block, "{device:?} is not a disk");
        let mut transport = device.transport;
        // §3.1.1: reset, acknowledge, negotiate, set up the queue, go.
        transport.set_status(DeviceStatus::empty());
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let features =
            transport.read_device_features() & (F_RO | F_FLUSH | F_EVENT_IDX | F_VERSION_1);
        transport.write_driver_features(features);
        let negotiated =
            DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
        transport.set_status(negotiated);
        if features & F_VERSION_1 != 0
            && !transport.get_status().contains(DeviceStatus::FEATURES_OK)
        {
            transport.set_status(DeviceStatus::FAILED);
            return Err(Error(virtio_drivers::Error::Unsupported));
        }
        transport.set_guest_page_size(crate::mm::PAGE_SIZE as u32); // legacy devices only
        let capacity = transport.read_consistent(|| {
            let low: u32 = transport.read_config_space(0)?;
            let high: u32 = transport.read_config_space(4)?;
            Ok(u64::from(low) | (u64::from(high) << 32))
        })?;
        let mut ring = Ring::new(
            &mut transport,
            QUEUE,
            MAX_QUEUE_SIZE,
            features & F_EVENT_IDX != 0,
        )?;
        let slot_count = usize::from(ring.size() / CHAIN).min(MAX_SLOTS);
        if slot_count == 0 {
            transport.set_status(DeviceStatus::FAILED);
            return Err(Error(virtio_drivers::Error::InvalidParam));
        }
        let slots = Dma::new(1);
        for i in 0..slot_count {
            let head = i as u16 * CHAIN;
            let header = slots.phys(i * HEADER_BYTES);
            let status = slots.phys(STATUS_AT + i);
            ring.set_descriptor(head, header, HEADER_BYTES as u32, DESC_NEXT, head + 1);
            ring.set_descriptor(head + 1, 0, 0, DESC_NEXT, head + 2);
            ring.set_descriptor(head + 2, status, 1, DESC_WRITE, 0);
        }
        transport.set_status(negotiated | DeviceStatus::DRIVER_OK);
        Ok(Block {
            transport,
            ring,
            slots,
            slot_count,
            capacity,
            read_only: features & F_RO != 0,
            can_flush: features & F_FLUSH != 0,
            slot: device.slot,
            busy: 0,
        })
    }

    /// Size in sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Interrupts this disk has raised so far (requests complete on interrupts, not polling).
    pub fn interrupts(&self) -> u32 {
        super::interrupts_seen(self.slot)
    }

    /// Reads `buf.len()` bytes (a multiple of 512) from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.batch(&mut [Request::Read { sector, buf }])
    }

    /// Writes `buf` (a multiple of 512 bytes) at `sector`.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        self.batch(&mut [Request::Write { sector, buf }])
    }

    /// Makes every completed write durable (the VMM fsyncs). A device without FLUSH writes
    /// through, so there is nothing to do.
    pub fn flush(&mut self) -> Result<(), Error> {
        if !self.can_flush {
            return Ok(());
        }
        // Slot 0's header goes straight to its status: a flush carries no data.
        self.fill_slot(0, T_FLUSH, 0);
        let header = self.slots.phys(0);
        self.ring
            .set_descriptor(0, header, HEADER_BYTES as u32, DESC_NEXT, 2);
        self.ring.push(0);
        self.busy |= 1;
        self.wait_for(1);
        let answer = self.take_used();
        self.ring
            .set_descriptor(0, header, HEADER_BYTES as u32, DESC_NEXT, 1);
        match answer {
            Some((_, true)) => Ok(()),
            Some((_, false)) => Err(Error(virtio_drivers::Error::IoError)),
            None => Err(Error(virtio_drivers::Error::WrongToken)),
        }
    }

    /// Submits all `requests` (as many as the queue holds at a time), waits for all, and checks
    /// every status.
    pub fn batch(&mut self, requests: &mut [Request<'_>]) -> Result<(), Error> {
        for request in requests.iter() {
            let write = matches!(request, Request::Write { .. });
            self.check(request.len(), write)?;
        }
        for chunk in requests.chunks(self.slot_count) {
            for (i, request) in chunk.iter().enumerate() {
                match request {
                    Request::Read { sector, buf } => self.submit(i, false, *sector, buf),
                    Request::Write { sector, buf } => self.submit(i, true, *sector, buf),
                }
            }
            self.wait_for(chunk.len());
            let mut failed = false;
            while self.busy != 0 {
                match self.take_used() {
                    Some((_, ok)) => failed |= !ok,
                    // Not all answered after all (a device bug): stop rather than spin.
                    None => return Err(Error(virtio_drivers::Error::WrongToken)),
                }
            }
            if failed {
                return Err(Error(virtio_drivers::Error::IoError));
            }
        }
        Ok(())
    }

    /// Keeps a request in flight on every buffer of `buffers` (as many as the queue holds at
    /// once) until `next` has no more: `next(buffer)` gives the sector of the buffer's next
    /// request (a writer fills the buffer first), and `done(sector, buffer)` sees each answered
    /// request before its buffer is used again. The device works on some while the CPU handles
    /// others: this sleeps until half the requests in flight are answered. Stops at the first
    /// failed request, with an error.
    pub fn stream(
        &mut self,
        write: bool,
        buffers: &mut [&mut [u8]],
        mut next: impl FnMut(&mut [u8]) -> Option<u64>,
        mut done: impl FnMut(u64, &[u8]),
    ) -> Result<(), Error> {
        let count = buffers.len().min(self.slot_count);
        let buffers = &mut buffers[..count];
        for buf in buffers.iter() {
            self.check(buf.len(), write)?;
        }
        let mut sectors = [0u64; MAX_SLOTS];
        let mut more = true;
        let mut failed = false;
        for (i, buf) in buffers.iter_mut().enumerate() {
            let Some(sector) = next(buf) else {
                more = false;
                break;
            };
            sectors[i] = sector;
            self.submit(i, write, sector, buf);
        }
        while self.busy != 0 {
            let in_flight = self.busy.count_ones() as usize;
            self.wait_for(if more {
                in_flight.div_ceil(2)
            } else {
                in_flight
            });
            let mut took = false;
            while let Some((i, ok)) = self.take_used() {
                took = true;
                if !ok {
                    failed = true;
                    more = false;
                    continue;
                }
                done(sectors[i], buffers[i]);
                if more {
                    match next(buffers[i]) {
                        Some(sector) => {
                            sectors[i] = sector;
                            self.submit(i, write, sector, buffers[i]);
                        }
                        None => more = false,
                    }
                }
            }
            if !took {
                // Woken with nothing answered: a device bug. Stop rather than spin.
                return Err(Error(virtio_drivers::Error::WrongToken));
            }
        }
        if failed {
            return Err(Error(virtio_drivers::Error::IoError));
        }
        Ok(())
    }

    /// Checks a request of `len` bytes before anything is queued.
    fn check(&self, len: usize, write: bool) -> Result<(), Error> {
        if len == 0 || !len.is_multiple_of(SECTOR_BYTES) || u32::try_from(len).is_err() {
            return Err(Error(virtio_drivers::Error::InvalidParam));
        }
        if write && self.read_only {
            return Err(Error(virtio_drivers::Error::Unsupported));
        }
        Ok(())
    }

    /// Writes slot `i`'s header and marks its status unanswered.
    fn fill_slot(&mut self, i: usize, kind: u32, sector: u64) {
        assert!(i < self.slot_count, "block slot {i} out of range");
        let at = i * HEADER_BYTES;
        // SAFETY: `i < slot_count <= MAX_SLOTS`: the header and the status byte lie in the page.
        unsafe {
            self.slots.write_unchecked(at, u64::from(kind)); // type, then the reserved word (zero)
            self.slots.write_unchecked(at + 8, sector);
            self.slots.write_unchecked(STATUS_AT + i, NO_ANSWER);
        }
    }

    /// Queues a checked request in free slot `i` (not yet shown to the device).
    fn submit(&mut self, i: usize, write: bool, sector: u64, buf: &[u8]) {
        self.fill_slot(i, if write { T_OUT } else { T_IN }, sector);
        let flags = if write {
            DESC_NEXT
        } else {
            DESC_NEXT | DESC_WRITE
        };
        let head = i as u16 * CHAIN;
        let addr = virt_to_phys(buf.as_ptr() as u64).0;
        self.ring
            .set_descriptor(head + 1, addr, buf.len() as u32, flags, head + 2);
        self.ring.push(head);
        self.busy |= 1 << i;
    }

    /// Shows the device what was queued, and sleeps until at least `count` requests in flight
    /// are answered.
    fn wait_for(&mut self, count: usize) {
        self.ring.interrupt_after(count as u16);
        if self.ring.publish() {
            self.transport.notify(QUEUE);
        }
        let ring = &self.ring;
        wait_until(|| usize::from(ring.used_pending()) >= count);
        self.transport.ack_interrupt();
    }

    /// The next answered request: its slot, and whether it succeeded. Answers that name no
    /// request in flight (a device bug) are skipped.
    fn take_used(&mut self) -> Option<(usize, bool)> {
        loop {
            let head = self.ring.pop_used()?;
            let i = (head / u32::from(CHAIN)) as usize;
            if !head.is_multiple_of(u32::from(CHAIN)) || i >= MAX_SLOTS || self.busy & 1 << i == 0 {
                continue;
            }
            self.busy &= !(1 << i);
            // SAFETY: `i < MAX_SLOTS`: the status byte lies in the page.
            let status: u8 = unsafe { self.slots.read_unchecked(STATUS_AT + i) };
            return Some((i, status == S_OK));
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // Reset the device before its rings and buffers go back to the allocator.
        self.transport.set_status(DeviceStatus::empty());
    }
}
