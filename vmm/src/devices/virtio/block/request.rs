//! One virtio-blk request (virtio 1.2 §5.2.6): turn a descriptor chain into header, data and
//! status, check it, run it against the [`Disk`], and write the status byte.
//!
//! This file owns the request wire format and all checking of what the driver put in the chain.
//! The layout is taken as a byte stream, not as a fixed set of descriptors (§2.6.4, message
//! framing): the device-readable bytes are the 16-byte header then any data to write; the
//! device-writable bytes are any data to read, then the status in the very last byte. So a header
//! split over two descriptors works, and data in the wrong direction shows up as readable or
//! writable bytes where the request type allows none.
//!
//! Data moves between the file and guest memory with no copy in between (`memory::read_file_into`
//! and `write_file_from`: the host kernel copies straight to or from the guest's pages), so no
//! request, however long, makes the VMM allocate anything.

use super::super::queue::Chain;
use super::disk::{Disk, SECTOR_BYTES};
use crate::memory;
use std::io;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

/// Request types (§5.2.6).
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;

/// Status values.
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// Length of the GET_ID serial.
pub const ID_BYTES: usize = 20;

/// `struct virtio_blk_req` up to the data: type u32, reserved u32, sector u64.
const HEADER_BYTES: u64 = 16;

/// Most descriptors in one chain: the header, `seg_max` data segments, the status.
pub const MAX_DESCRIPTORS: usize = 256;

/// One descriptor's buffer in guest memory.
#[derive(Clone, Copy, Debug)]
struct Segment {
    addr: GuestAddress,
    len: u32,
}

/// What went wrong with a request, for the device's one log line.
#[derive(Debug)]
pub enum Problem {
    /// The driver's chain is malformed; the message says how.
    Guest(String),
    /// The host file failed.
    Host(String),
}

/// The outcome of one chain.
pub struct Completion {
    /// Bytes written into the chain (data and status), for the used ring.
    pub used_len: u32,
    /// Something worth logging, if anything.
    pub problem: Option<Problem>,
}

/// Per-device scratch space, kept between requests so serving one allocates nothing.
pub struct Requests {
    readable: Vec<Segment>,
    writable: Vec<Segment>,
    serial: [u8; ID_BYTES],
    /// The driver did not negotiate FLUSH, so it expects every write to be durable on completion.
    write_through: bool,
}

impl Requests {
    pub fn new(serial: [u8; ID_BYTES], write_through: bool) -> Self {
        Requests {
            readable: Vec::with_capacity(MAX_DESCRIPTORS),
            writable: Vec::with_capacity(MAX_DESCRIPTORS),
            serial,
            write_through,
        }
    }

    /// Serves one chain of the queue in `mem`.
    pub fn handle(
        &mut self,
        chain: Chain<'_>,
        mem: &GuestMemoryMmap,
        disk: &mut Disk,
    ) -> Completion {
        let unused = |why: String| Completion {
            used_len: 0,
            problem: Some(Problem::Guest(why)),
        };
        if let Err(why) = self.collect(chain) {
            // Without a well-formed chain there is no status byte we could trust to write.
            return unused(why);
        }
        // The status is the last byte of the last descriptor, which must be device-writable.
        let Some(last) = self.writable.last().copied().filter(|s| s.len > 0) else {
            return unused("the chain has no device-writable status byte".into());
        };
        let Some(status_addr) = last
            .addr
            .checked_add(u64::from(last.len) - 1)
            .filter(|&a| mem.check_range(a, 1, Permissions::Write))
        else {
            return unused(format!(
                "the status byte at {:#x}+{} is outside guest memory",
                last.addr.0, last.len
            ));
        };

        let (status, data_written, problem) = match self.execute(mem, disk) {
            Ok((status, written)) => (status, written, None),
            Err((written, problem)) => (S_IOERR, written, Some(problem)),
        };
        if mem.write_obj(status, status_addr).is_err() {
            return unused("the status byte is not writable".into()); // checked above; cannot happen
        }
        Completion {
            used_len: data_written.saturating_add(1),
            problem,
        }
    }

    /// Sorts the chain's buffers into readable and writable ones, checking the chain's shape.
    fn collect(&mut self, chain: Chain<'_>) -> Result<(), String> {
        self.readable.clear();
        self.writable.clear();
        let mut count = 0;
        let mut last_has_next = false;
        for descriptor in chain {
            count += 1;
            if count > MAX_DESCRIPTORS {
                return Err(format!(
                    "the chain has more than {MAX_DESCRIPTORS} descriptors"
                ));
            }
            let (addr, len) = (descriptor.addr(), descriptor.len());
            if descriptor.is_write_only() {
                self.writable.push(Segment { addr, len });
            } else if !self.writable.is_empty() {
                return Err("a device-readable descriptor follows a device-writable one".into());
            } else {
                self.readable.push(Segment { addr, len });
            }
            last_has_next = descriptor.has_next();
        }
        if count == 0 {
            return Err("the chain is empty".into());
        }
        // virtio-queue ends a chain silently when it loops (after queue-size descriptors) or
        // when `next` is outside the table; either way the last descriptor still says "next".
        if last_has_next {
            return Err("the chain loops or its next index is outside the descriptor table".into());
        }
        Ok(())
    }

    /// Runs the request; the chain has a status byte. Returns the status and the data bytes
    /// written into the chain, or, on failure, the data bytes written so far and why.
    fn execute(
        &mut self,
        mem: &GuestMemoryMmap,
        disk: &mut Disk,
    ) -> Result<(u8, u32), (u32, Problem)> {
        let guest = |why: String| (0, Problem::Guest(why));
        let readable = self.readable.iter().map(|s| (s, Permissions::Read));
        let writable = self.writable.iter().map(|s| (s, Permissions::Write));
        for (segment, access) in readable.chain(writable) {
            if !mem.check_range(segment.addr, segment.len as usize, access) {
                return Err(guest(format!(
                    "buffer {:#x}+{} is outside guest memory",
                    segment.addr.0, segment.len
                )));
            }
        }
        let readable_bytes: u64 = self.readable.iter().map(|s| u64::from(s.len)).sum();
        let writable_bytes: u64 = self.writable.iter().map(|s| u64::from(s.len)).sum();
        let Some(data_out) = readable_bytes.checked_sub(HEADER_BYTES) else {
            return Err(guest(format!(
                "the header is {readable_bytes} bytes, not {HEADER_BYTES}"
            )));
        };
        let data_in = writable_bytes - 1; // the chain has a status byte

        let mut header = [0u8; HEADER_BYTES as usize];
        if !copy_from_guest(mem, &self.readable, 0, &mut header) {
            return Err(guest("cannot read the header".into()));
        }
        let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());

        match kind {
            T_IN => {
                if data_out != 0 {
                    return Err(guest(format!(
                        "read request with {data_out} device-readable data bytes"
                    )));
                }
                let offset = self.data_range(disk, sector, data_in).map_err(guest)?;
                self.read(mem, disk, offset, data_in)
                    .map(|written| (S_OK, written))
            }
            T_OUT => {
                if data_in != 0 {
                    return Err(guest(format!(
                        "write request with {data_in} device-writable data bytes"
                    )));
                }
                if disk.read_only() {
                    return Err(guest("write to a read-only disk".into()));
                }
                let offset = self.data_range(disk, sector, data_out).map_err(guest)?;
                self.write(mem, disk, offset, data_out).map(|()| (S_OK, 0))
            }
            T_FLUSH => match disk.flush() {
                Ok(()) => Ok((S_OK, 0)),
                Err(e) => Err((0, Problem::Host(format!("flush: {e}")))),
            },
            T_GET_ID => {
                // Like QEMU: as much of the serial as fits (NUL-padded to 20 bytes, no terminator).
                let n = self
                    .serial
                    .len()
                    .min(usize::try_from(data_in).unwrap_or(usize::MAX));
                if copy_to_guest(mem, &self.writable, 0, &self.serial[..n]) {
                    Ok((S_OK, n as u32))
                } else {
                    Err(guest("cannot write the serial".into()))
                }
            }
            _ => Ok((S_UNSUPP, 0)),
        }
    }

    /// Checks that `bytes` at `sector` are whole sectors inside the disk; returns the byte offset.
    fn data_range(&self, disk: &Disk, sector: u64, bytes: u64) -> Result<u64, String> {
        if !bytes.is_multiple_of(SECTOR_BYTES) {
            return Err(format!(
                "{bytes} data bytes is not a whole number of sectors"
            ));
        }
        let offset = sector.checked_mul(SECTOR_BYTES);
        match offset.and_then(|o| o.checked_add(bytes)) {
            Some(end) if end <= disk.len() => Ok(offset.unwrap_or_default()),
            _ => Err(format!(
                "sector {sector} + {bytes} bytes is beyond the disk's {} bytes",
                disk.len()
            )),
        }
    }

    /// Disk → the chain's writable data, read straight into guest memory.
    fn read(
        &mut self,
        mem: &GuestMemoryMmap,
        disk: &Disk,
        offset: u64,
        bytes: u64,
    ) -> Result<u32, (u32, Problem)> {
        let segments = &self.writable;
        disk.read_with(offset, bytes as usize, |file, pos, at, n| {
            for_file_pieces(segments, at, n, pos, |addr, len, pos| {
                memory::read_file_into(mem, addr, len, file, pos)
            })
        })
        .map_err(|e| (0, Problem::Host(format!("read at byte {offset}: {e}"))))?;
        // A chain is at most 4 GiB (virtio-queue stops at u32 bytes), so this fits.
        Ok(u32::try_from(bytes).unwrap_or(u32::MAX))
    }

    /// The chain's readable data (after the header) → disk, written straight from guest memory.
    fn write(
        &mut self,
        mem: &GuestMemoryMmap,
        disk: &mut Disk,
        offset: u64,
        bytes: u64,
    ) -> Result<(), (u32, Problem)> {
        let segments = &self.readable;
        disk.write_with(offset, bytes as usize, |file, pos, at, n| {
            for_file_pieces(
                segments,
                HEADER_BYTES as usize + at,
                n,
                pos,
                |addr, len, pos| memory::write_file_from(mem, addr, len, file, pos),
            )
        })
        .map_err(|e| (0, Problem::Host(format!("write at byte {offset}: {e}"))))?;
        if self.write_through
            && let Err(e) = disk.flush()
        {
            return Err((0, Problem::Host(format!("flush after write: {e}"))));
        }
        Ok(())
    }
}

/// Calls `each(address, len, file position)` for the guest pieces of bytes `offset..offset + len`
/// of the concatenation of `segments`, the file positions counted from `pos`; fails if the
/// segments end first (the caller sized `len` from them, so they do not).
fn for_file_pieces(
    segments: &[Segment],
    offset: usize,
    len: usize,
    pos: u64,
    mut each: impl FnMut(GuestAddress, usize, u64) -> io::Result<()>,
) -> io::Result<()> {
    let mut done = 0;
    for (addr, n) in pieces(segments, offset as u64, len) {
        each(addr, n, pos + done as u64)?;
        done += n;
    }
    if done == len {
        Ok(())
    } else {
        Err(io::Error::other("the chain's buffers end early"))
    }
}

/// Copies `buf.len()` bytes starting `offset` bytes into the byte stream of `segments`.
fn copy_from_guest(
    mem: &GuestMemoryMmap,
    segments: &[Segment],
    offset: u64,
    buf: &mut [u8],
) -> bool {
    let mut done = 0;
    for (addr, n) in pieces(segments, offset, buf.len()) {
        if mem.read_slice(&mut buf[done..done + n], addr).is_err() {
            return false;
        }
        done += n;
    }
    done == buf.len()
}

/// Copies `buf` to `offset` bytes into the byte stream of `segments`.
fn copy_to_guest(mem: &GuestMemoryMmap, segments: &[Segment], offset: u64, buf: &[u8]) -> bool {
    let mut done = 0;
    for (addr, n) in pieces(segments, offset, buf.len()) {
        if mem.write_slice(&buf[done..done + n], addr).is_err() {
            return false;
        }
        done += n;
    }
    done == buf.len()
}

/// The (address, length) pieces of `segments` that hold bytes `offset..offset + len` of their
/// concatenation; shorter in total if the segments end first.
fn pieces(
    segments: &[Segment],
    offset: u64,
    len: usize,
) -> impl Iterator<Item = (GuestAddress, usize)> + '_ {
    let mut skip = offset;
    let mut left = len as u64;
    segments.iter().filter_map(move |segment| {
        let seg_len = u64::from(segment.len);
        if skip >= seg_len {
            skip -= seg_len;
            return None;
        }
        if left == 0 {
            return None;
        }
        let n = (seg_len - skip).min(left);
        // Segments were checked to lie inside guest memory, so this cannot overflow.
        let addr = segment.addr.checked_add(skip)?;
        skip = 0;
        left -= n;
        Some((addr, n as usize))
    })
}
