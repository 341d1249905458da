//! [`Disk`]: a virtio-blk disk as the `noa_ext2::BlockDevice` under a mounted ext2, with a
//! write-back block cache.
//!
//! The file system reads and writes in small pieces (a 128-byte inode, a few block pointers, a
//! directory entry, a bitmap word) and in large ones (file data). Small pieces go through the
//! cache: 4 KiB lines, 2-way set-associative, 128 sets (1 MiB) — a lookup is a few instructions
//! where an LRU list would cost a scan. A written line is marked dirty and reaches the device
//! when it is evicted or at [`BlockDevice::flush`] (fsync, sync, unmount), which writes every
//! dirty line in one batch of requests and then sends the device's FLUSH.
//!
//! Large sector-aligned pieces go straight between the device and the caller's buffer: on
//! these hosts the device moves memory at host speed, while copying the same bytes through a
//! cache in ring 0 costs ~320 µs per 4 KiB. A direct write also updates any cached line it
//! overlaps, and a direct read takes the bytes of overlapping dirty lines from the cache, so the
//! cache and the device never disagree about what the file system last wrote.
//!
//! Ordering: between two flushes, dirty lines reach the device in no particular order. ext2 has
//! no journal; what fsync promises (everything written before it is on stable storage when it
//! returns) holds, and `e2fsck -fy` repairs whatever a crash leaves between flushes.
//!
//! Owns: the cache and the device handle. The format is `noa-ext2`'s.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use hal_pv::virtio::block::{Block, Request};
use noa_ext2::{BlockDevice, IoError};
use noa_linux_abi::errno::Errno;
use spin::Mutex;

const SECTOR: u64 = 512;
const LINE: usize = 4096;
const SETS: usize = 128;
const WAYS: usize = 2;
/// Sector-aligned reads and writes at least this long bypass the cache.
const DIRECT_MIN: usize = 4096;
/// Lines of a direct read looked up one by one for dirty bytes; longer reads scan the cache.
const OVERLAY_LOOKUPS: usize = 16;

struct Line {
    /// Device line number (byte offset / 4096); u64::MAX: empty.
    tag: u64,
    /// Valid bytes (less than a line only at the end of the device).
    len: usize,
    /// Written since it was last written to the device.
    dirty: bool,
    data: Box<[u8]>,
}

struct DiskInner {
    block: Block,
    lines: Vec<Line>,
    /// Per set: the way used last (the other is the victim).
    recent: [u8; SETS],
    /// Lines marked dirty: with none, a direct read has nothing to lay over what the device
    /// returned (the common case while a big file is read: no lookup per 4 KiB).
    dirty: usize,
}

/// A disk holding an ext2 file system. Clones share the device and the cache (a failed
/// read-write open hands its clone back to a read-only one).
#[derive(Clone)]
pub struct Disk {
    inner: Arc<Mutex<DiskInner>>,
    len: u64,
    read_only: bool,
}

fn eio<T>(_: T) -> IoError {
    IoError::Errno(Errno::EIO.0)
}

impl Disk {
    pub fn new(block: Block) -> Disk {
        let len = block.capacity_sectors().saturating_mul(SECTOR);
        let read_only = block.read_only();
        let lines = (0..SETS * WAYS)
            .map(|_| Line {
                tag: u64::MAX,
                len: 0,
                dirty: false,
                data: Box::default(),
            })
            .collect();
        Disk {
            inner: Arc::new(Mutex::new(DiskInner {
                block,
                lines,
                recent: [0; SETS],
                dirty: 0,
            })),
            len,
            read_only,
        }
    }

    /// Whether the device refuses writes (`--volume FILE:PATH:ro`).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Splits `[offset, offset + len)` into an unaligned head, a sector-aligned middle and an
    /// unaligned tail; the middle is empty when shorter than [`DIRECT_MIN`].
    fn split(offset: u64, len: usize) -> (usize, usize, usize) {
        let head = ((SECTOR - offset % SECTOR) % SECTOR).min(len as u64) as usize;
        let end = offset + len as u64;
        let tail = ((end % SECTOR) as usize).min(len - head);
        let middle = len - head - tail;
        if middle < DIRECT_MIN {
            (len, 0, 0)
        } else {
            (head, middle, tail)
        }
    }

    /// Reads many sector-aligned pieces straight from the device in one batch of requests (one
    /// wait for all of them), each `(device offset, buffer)`; bytes of dirty cached lines are
    /// laid over what the device returned.
    pub fn read_batch(&self, reads: &mut [(u64, &mut [u8])]) -> Result<(), IoError> {
        for (offset, buf) in reads.iter() {
            self.check_range(*offset, buf.len())?;
            if !offset.is_multiple_of(SECTOR) || !(buf.len() as u64).is_multiple_of(SECTOR) {
                return Err(IoError::OutOfRange);
            }
        }
        let mut inner = self.inner.lock();
        let mut requests: Vec<Request<'_>> = reads
            .iter_mut()
            .map(|(offset, buf)| Request::Read {
                sector: *offset / SECTOR,
                buf,
            })
            .collect();
        inner.block.batch(&mut requests).map_err(eio)?;
        drop(requests);
        for (offset, buf) in reads.iter_mut() {
            inner.overlay_dirty(*offset, buf);
        }
        Ok(())
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<u64, IoError> {
        offset
            .checked_add(len as u64)
            .filter(|&end| end <= self.len)
            .ok_or(IoError::OutOfRange)
    }
}

impl DiskInner {
    /// The index of the cache line holding device line `line`, if cached.
    fn find(&self, line: u64) -> Option<usize> {
        let base = (line % SETS as u64) as usize * WAYS;
        (base..base + WAYS).find(|&i| self.lines[i].tag == line)
    }

    /// The index of the cache line holding device line `line`, filling it on a miss (unless
    /// `whole`: the caller overwrites all of it). A dirty victim is written out first.
    fn line(&mut self, line: u64, device_len: u64, whole: bool) -> Result<usize, IoError> {
        let set = (line % SETS as u64) as usize;
        if let Some(index) = self.find(line) {
            self.recent[set] = (index % WAYS) as u8;
            return Ok(index);
        }
        let way = (usize::from(self.recent[set]) + 1) % WAYS;
        let index = set * WAYS + way;
        self.write_out(index)?;
        // Clean now (written out above); the bytes are about to be replaced.
        self.mark_clean(index);
        let start = line * LINE as u64;
        let len = device_len.saturating_sub(start).min(LINE as u64) as usize;
        if len == 0 {
            return Err(IoError::OutOfRange);
        }
        let slot = &mut self.lines[index];
        if slot.data.len() != LINE {
            slot.data = vec![0u8; LINE].into_boxed_slice();
        }
        slot.tag = u64::MAX;
        // The device length is whole sectors, so `len` is too.
        if !whole {
            self.block
                .read(start / SECTOR, &mut self.lines[index].data[..len])
                .map_err(eio)?;
        }
        let slot = &mut self.lines[index];
        slot.tag = line;
        slot.len = len;
        self.recent[set] = way as u8;
        Ok(index)
    }

    /// Writes line `index` to the device if it is dirty.
    fn write_out(&mut self, index: usize) -> Result<(), IoError> {
        let line = &mut self.lines[index];
        if !line.dirty || line.tag == u64::MAX {
            return Ok(());
        }
        self.block
            .write(line.tag * LINE as u64 / SECTOR, &line.data[..line.len])
            .map_err(eio)?;
        self.mark_clean(index);
        Ok(())
    }

    fn mark_dirty(&mut self, index: usize) {
        let line = &mut self.lines[index];
        if !line.dirty {
            line.dirty = true;
            self.dirty += 1;
        }
    }

    fn mark_clean(&mut self, index: usize) {
        let line = &mut self.lines[index];
        if line.dirty {
            line.dirty = false;
            self.dirty -= 1;
        }
    }

    /// Lays the bytes of dirty cached lines over `buf`, just read from the device at `offset`
    /// (written but not yet on the device, they are newer). Nothing to do without dirty lines;
    /// a range of more than [`OVERLAY_LOOKUPS`] lines walks the cache's lines (a few
    /// instructions each) rather than looking each line of the range up (tens).
    fn overlay_dirty(&mut self, offset: u64, buf: &mut [u8]) {
        if self.dirty == 0 {
            return;
        }
        if buf.len() / LINE <= OVERLAY_LOOKUPS {
            self.overlapping(offset, buf.len(), |line, in_line, in_buf| {
                if line.dirty {
                    buf[in_buf].copy_from_slice(&line.data[in_line]);
                }
            });
            return;
        }
        let end = offset + buf.len() as u64;
        for line in self.lines.iter().filter(|l| l.dirty && l.tag != u64::MAX) {
            let line_start = line.tag * LINE as u64;
            let from = offset.max(line_start);
            let to = end.min(line_start + line.len as u64);
            if from < to {
                let in_line = (from - line_start) as usize..(to - line_start) as usize;
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&line.data[in_line]);
            }
        }
    }

    /// Copies `buf.len()` bytes at `offset` out of the cache.
    fn cached_read(&mut self, offset: u64, buf: &mut [u8], device_len: u64) -> Result<(), IoError> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let index = self.line(at / LINE as u64, device_len, false)?;
            let line = &self.lines[index];
            let in_line = (at % LINE as u64) as usize;
            let n = (line.len.saturating_sub(in_line)).min(buf.len() - done);
            if n == 0 {
                return Err(IoError::OutOfRange);
            }
            buf[done..done + n].copy_from_slice(&line.data[in_line..in_line + n]);
            done += n;
        }
        Ok(())
    }

    /// Copies `buf` into the cache at `offset`, marking the lines dirty.
    fn cached_write(&mut self, offset: u64, buf: &[u8], device_len: u64) -> Result<(), IoError> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let in_line = (at % LINE as u64) as usize;
            let line_no = at / LINE as u64;
            let line_len = device_len
                .saturating_sub(line_no * LINE as u64)
                .min(LINE as u64) as usize;
            let n = line_len.saturating_sub(in_line).min(buf.len() - done);
            if n == 0 {
                return Err(IoError::OutOfRange);
            }
            let whole = in_line == 0 && n == line_len;
            let index = self.line(line_no, device_len, whole)?;
            let line = &mut self.lines[index];
            line.data[in_line..in_line + n].copy_from_slice(&buf[done..done + n]);
            self.mark_dirty(index);
            done += n;
        }
        Ok(())
    }

    /// For each cached line overlapping `[offset, offset + len)`, calls `f(line, range in the
    /// line, range in the buffer)`.
    fn overlapping(
        &mut self,
        offset: u64,
        len: usize,
        mut f: impl FnMut(&mut Line, core::ops::Range<usize>, core::ops::Range<usize>),
    ) {
        let end = offset + len as u64;
        let mut line_no = offset / LINE as u64;
        while line_no * (LINE as u64) < end {
            if let Some(index) = self.find(line_no) {
                let line_start = line_no * LINE as u64;
                let from = offset.max(line_start);
                let to = end.min(line_start + self.lines[index].len as u64);
                if from < to {
                    let in_line = (from - line_start) as usize..(to - line_start) as usize;
                    let in_buf = (from - offset) as usize..(to - offset) as usize;
                    f(&mut self.lines[index], in_line, in_buf);
                }
            }
            line_no += 1;
        }
    }
}

impl BlockDevice for Disk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let end = self.check_range(offset, buf.len())?;
        let mut inner = self.inner.lock();
        let (head, middle, tail) = Disk::split(offset, buf.len());
        if middle == 0 {
            return inner.cached_read(offset, buf, self.len);
        }
        let (head_buf, rest) = buf.split_at_mut(head);
        let (middle_buf, tail_buf) = rest.split_at_mut(middle);
        if head > 0 {
            inner.cached_read(offset, head_buf, self.len)?;
        }
        let middle_at = offset + head as u64;
        inner
            .block
            .read(middle_at / SECTOR, middle_buf)
            .map_err(eio)?;
        // Bytes written but not yet on the device come from the cache.
        inner.overlay_dirty(middle_at, middle_buf);
        if tail > 0 {
            inner.cached_read(end - tail as u64, tail_buf, self.len)?;
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        if self.read_only {
            return Err(IoError::ReadOnly);
        }
        let end = self.check_range(offset, buf.len())?;
        let mut inner = self.inner.lock();
        let (head, middle, tail) = Disk::split(offset, buf.len());
        if middle == 0 {
            return inner.cached_write(offset, buf, self.len);
        }
        if head > 0 {
            inner.cached_write(offset, &buf[..head], self.len)?;
        }
        let middle_at = offset + head as u64;
        let middle_buf = &buf[head..head + middle];
        inner
            .block
            .write(middle_at / SECTOR, middle_buf)
            .map_err(eio)?;
        // Cached copies of those bytes take the new ones (their other bytes stay as they are).
        inner.overlapping(middle_at, middle, |line, in_line, in_buf| {
            line.data[in_line].copy_from_slice(&middle_buf[in_buf]);
        });
        if tail > 0 {
            inner.cached_write(end - tail as u64, &buf[head + middle..], self.len)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), IoError> {
        if self.read_only {
            return Ok(());
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut dirty: Vec<usize> = (0..inner.lines.len())
            .filter(|&i| inner.lines[i].dirty && inner.lines[i].tag != u64::MAX)
            .collect();
        if !dirty.is_empty() {
            dirty.sort_unstable_by_key(|&i| inner.lines[i].tag);
            let mut requests: Vec<Request<'_>> = dirty
                .iter()
                .map(|&i| {
                    let line = &inner.lines[i];
                    Request::Write {
                        sector: line.tag * LINE as u64 / SECTOR,
                        buf: &line.data[..line.len],
                    }
                })
                .collect();
            inner.block.batch(&mut requests).map_err(eio)?;
            drop(requests);
            for i in dirty {
                inner.mark_clean(i);
            }
        }
        inner.block.flush().map_err(eio)
    }

    fn len(&self) -> u64 {
        self.len
    }
}
