//! virtio-blk: a disk, read and written in 512-byte sectors.
//!
//! Requests go through the crate's non-blocking calls: submit every request of a batch, sleep
//! until the device has answered them all, then collect. A batch is how the kernel keeps many
//! requests in flight; the single-request calls are batches of one.

use super::hal::VirtioHal;
use super::{Device, Error, Kind, Mmio, wait_until};
use alloc::vec::Vec;
use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};

pub use virtio_drivers::device::blk::SECTOR_SIZE as SECTOR_BYTES;

/// An open disk.
pub struct Block {
    driver: VirtIOBlk<VirtioHal, Mmio>,
    slot: usize,
}

/// One request of a batch.
pub enum Request<'a> {
    Read { sector: u64, buf: &'a mut [u8] },
    Write { sector: u64, buf: &'a [u8] },
}

struct InFlight {
    token: u16,
    req: BlkReq,
    resp: BlkResp,
    done: bool,
}

impl Block {
    /// Starts the driver of a block device.
    pub fn open(device: Device) -> Result<Block, Error> {
        assert_eq!(device.kind, Kind::Block, "{device:?} is not a disk");
        let driver = VirtIOBlk::new(device.transport)?;
        Ok(Block {
            driver,
            slot: device.slot,
        })
    }

    /// Size in sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.driver.capacity()
    }

    pub fn read_only(&self) -> bool {
        self.driver.readonly()
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

    /// Makes every completed write durable (the VMM fsyncs).
    pub fn flush(&mut self) -> Result<(), Error> {
        // The crate has no non-blocking flush; a flush is rare and the device answers at once.
        Ok(self.driver.flush()?)
    }

    /// Submits all `requests` (as many as the queue holds), waits for all, and collects them.
    pub fn batch(&mut self, requests: &mut [Request<'_>]) -> Result<(), Error> {
        let room = usize::from(self.driver.virt_queue_size()) / 3; // header, data, status
        for chunk in requests.chunks_mut(room.max(1)) {
            self.batch_in_queue(chunk)?;
        }
        Ok(())
    }

    fn batch_in_queue(&mut self, requests: &mut [Request<'_>]) -> Result<(), Error> {
        for request in requests.iter() {
            let len = match request {
                Request::Read { buf, .. } => buf.len(),
                Request::Write { buf, .. } => buf.len(),
            };
            if len == 0 || len % SECTOR_SIZE != 0 {
                return Err(Error(virtio_drivers::Error::InvalidParam));
            }
        }
        // Every request's header and status live here, in place, until the device has answered:
        // the Vec is filled before anything is submitted and never grows afterwards.
        let mut in_flight: Vec<InFlight> = requests
            .iter()
            .map(|_| InFlight {
                token: 0,
                req: BlkReq::default(),
                resp: BlkResp::default(),
                done: false,
            })
            .collect();
        let mut submitted = 0;
        let mut first_error = None;
        for (request, slot) in requests.iter_mut().zip(in_flight.iter_mut()) {
            // SAFETY: `slot.req`, `slot.resp` and the buffer stay in place and borrowed until the
            // request is completed below.
            let result = unsafe {
                match request {
                    Request::Read { sector, buf } => self.driver.read_blocks_nb(
                        *sector as usize,
                        &mut slot.req,
                        buf,
                        &mut slot.resp,
                    ),
                    Request::Write { sector, buf } => self.driver.write_blocks_nb(
                        *sector as usize,
                        &mut slot.req,
                        buf,
                        &mut slot.resp,
                    ),
                }
            };
            match result {
                Ok(token) => {
                    slot.token = token;
                    submitted += 1;
                }
                Err(e) => {
                    first_error = Some(Error(e));
                    break;
                }
            }
        }
        in_flight.truncate(submitted);
        // Collect in the order the device finishes them (it may reorder).
        let mut pending = in_flight.len();
        while pending > 0 {
            let mut next = None;
            let driver = &mut self.driver;
            wait_until(|| {
                next = driver.peek_used();
                next.is_some()
            });
            self.driver.ack_interrupt();
            let token = next.expect("wait_until returned");
            let Some(index) = in_flight
                .iter()
                .position(|slot| slot.token == token && !slot.done)
            else {
                // Not one of ours: a device bug. Stop rather than complete a stranger's buffer.
                first_error.get_or_insert(Error(virtio_drivers::Error::WrongToken));
                break;
            };
            let slot = &mut in_flight[index];
            // SAFETY: the same buffers and request/response as at submission.
            let done = unsafe {
                match &mut requests[index] {
                    Request::Read { buf, .. } => {
                        self.driver
                            .complete_read_blocks(token, &slot.req, buf, &mut slot.resp)
                    }
                    Request::Write { buf, .. } => {
                        self.driver
                            .complete_write_blocks(token, &slot.req, buf, &mut slot.resp)
                    }
                }
            };
            slot.done = true;
            if let Err(e) = done {
                first_error.get_or_insert(Error(e));
            }
            pending -= 1;
        }
        first_error.map_or(Ok(()), Err)
    }
}
