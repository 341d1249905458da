//! Where a file's bytes lie on the device: [`Ext2::extents`], for a caller that moves file data
//! with device requests of its own — the guest kernel reads page-cache pages straight into
//! their frames, many requests in one batch, instead of through a buffer it would have to copy.

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::Ext2;
use crate::inode::{FileType, Inode};
use alloc::vec::Vec;

/// A stretch of a file: `len` bytes at file offset `offset`, stored from device byte `device`
/// on (`None`: a hole, which reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
    pub device: Option<u64>,
}

impl<D: BlockDevice> Ext2<D> {
    /// The extents of regular file `inode` over `[offset, offset + len)`, clipped to its size,
    /// in file order; physically contiguous blocks make one extent. At most `max` extents: the
    /// rest of the range is left out (the caller asks again from where the last one ends).
    pub fn extents(&self, inode: &Inode, offset: u64, len: u64, max: usize) -> Result<Vec<Extent>> {
        if inode.file_type() != FileType::Regular {
            return Err(Error::NotARegularFile {
                ino: inode.ino(),
                file_type: inode.file_type(),
            });
        }
        self.check_size(inode)?;
        let end = offset.saturating_add(len).min(inode.size());
        let bs = self.geo.block_size;
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        // Each pass covers at least one block of the range.
        while pos < end && out.len() <= max {
            let (block, in_block) = (pos / bs, pos % bs);
            let run = self.map_run(inode, block, (in_block + (end - pos)).div_ceil(bs))?;
            let bytes = (run.blocks * bs - in_block).min(end - pos);
            let device = run.start.map(|start| start * bs + in_block);
            match out.last_mut() {
                Some(last)
                    if last.offset + last.len == pos
                        && match (last.device, device) {
                            (None, None) => true,
                            (Some(a), Some(b)) => a + last.len == b,
                            _ => false,
                        } =>
                {
                    last.len += bytes
                }
                _ => out.push(Extent {
                    offset: pos,
                    len: bytes,
                    device,
                }),
            }
            pos += bytes;
        }
        out.truncate(max);
        Ok(out)
    }
}
