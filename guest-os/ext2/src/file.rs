//! Reading file data: [`Ext2::read`], straight from the device into the caller's buffer.
//!
//! A read maps its blocks in runs ([`Ext2::map_run`]) and issues one device read per stretch of
//! physically contiguous bytes, however many blocks and runs it spans, partial first and last
//! blocks included; holes (sparse files, or a zero pointer at any level) are zero-filled in place.
//! Nothing is staged in a bounce buffer: in ring 0 every copied byte costs.

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{FileType, Inode};

/// A device read not yet issued: `len` bytes at device byte `offset` into the buffer at `at`.
#[derive(Debug, Clone, Copy)]
struct Pending {
    offset: u64,
    at: usize,
    len: usize,
}

impl<D: BlockDevice> Ext2<D> {
    /// Reads regular file `inode` from byte `offset` into `buf`; returns the bytes read, fewer
    /// than `buf.len()` only at the end of the file (0 at or past it).
    pub fn read(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if inode.file_type() != FileType::Regular {
            return Err(Error::NotARegularFile {
                ino: inode.ino(),
                file_type: inode.file_type(),
            });
        }
        self.read_data(inode, offset, buf)
    }

    /// [`Self::read`] for any inode with a block map (directories and slow symlinks too).
    pub(crate) fn read_data(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.check_size(inode)?;
        let left_in_file = inode.size().saturating_sub(offset);
        let len = usize::try_from(left_in_file).map_or(buf.len(), |left| left.min(buf.len()));
        let Some(buf) = buf.get_mut(..len) else {
            return Ok(0);
        };
        let bs = self.geo.block_size;
        let mut pending: Option<Pending> = None;
        let mut done = 0usize;
        // Each pass covers at least one byte (runs are at least one block), and at most one pass
        // per block of the range.
        while done < len {
            let pos = offset + done as u64;
            let (block, in_block) = (pos / bs, pos % bs);
            let left = (len - done) as u64;
            let run = self.map_run(inode, block, (in_block + left).div_ceil(bs))?;
            let bytes = (run.blocks * bs - in_block).min(left) as usize;
            match run.start {
                Some(start) => {
                    let at_device = start * bs + in_block;
                    match &mut pending {
                        Some(p) if p.offset + p.len as u64 == at_device => p.len += bytes,
                        _ => {
                            self.flush(buf, pending.take())?;
                            pending = Some(Pending {
                                offset: at_device,
                                at: done,
                                len: bytes,
                            });
                        }
                    }
                }
                None => {
                    self.flush(buf, pending.take())?;
                    if let Some(hole) = buf.get_mut(done..done + bytes) {
                        hole.fill(0);
                    }
                }
            }
            done += bytes;
        }
        self.flush(buf, pending)?;
        Ok(len)
    }

    /// Issues a pending device read.
    fn flush(&self, buf: &mut [u8], pending: Option<Pending>) -> Result<()> {
        let Some(p) = pending else {
            return Ok(());
        };
        match buf.get_mut(p.at..p.at + p.len) {
            Some(dst) => self.disk.read(p.offset, dst),
            None => Ok(()),
        }
    }
}
