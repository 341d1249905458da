//! Guest memory (one of the two rooms of the VMM allowed `unsafe`, through vm-memory): anonymous,
//! private, lazily backed host memory, split around the 3..4 GiB MMIO hole; and file I/O straight
//! into and out of it, for the block device.
//!
//! Fresh anonymous memory reads as zero, which the guest relies on: it never zeroes its `.bss` or
//! the frames it gets first (zeroing costs ~195 µs per page in ring 0 on PVM hosts).

use anyhow::Context;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

/// Start of the MMIO hole (IOAPIC, local APIC, virtio-mmio devices live above it).
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// RAM resumes here above the hole.
pub const HIGH_RAM_START: u64 = 1 << 32;

/// The RAM ranges for `bytes` of guest memory: below the hole, then above 4 GiB.
pub fn ram_ranges(bytes: u64) -> Vec<(GuestAddress, u64)> {
    let low = bytes.min(MMIO_HOLE_START);
    let mut ranges = vec![(GuestAddress(0), low)];
    if bytes > low {
        ranges.push((GuestAddress(HIGH_RAM_START), bytes - low));
    }
    ranges
}

/// Allocates guest memory of `bytes`.
pub fn create(bytes: u64) -> anyhow::Result<GuestMemoryMmap> {
    let _ = GUEST_SIZES.set(ram_ranges(bytes).iter().map(|r| r.1).collect());
    let ranges: Vec<(GuestAddress, usize)> = ram_ranges(bytes)
        .into_iter()
        .map(|(addr, len)| (addr, len as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges)
        .with_context(|| format!("cannot map {} MiB of guest memory", bytes >> 20))
}

/// Guest memory resident on the host, in KiB: the `Rss` of the guest mappings in
/// `/proc/self/smaps` (anonymous mappings whose size matches a guest range).
pub fn guest_resident_kib() -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let guest_sizes_kib: Vec<u64> = GUEST_SIZES.get()?.iter().map(|b| b >> 10).collect();
    let (mut total, mut in_guest) = (0, false);
    for line in smaps.lines() {
        if let Some(size) = line.strip_prefix("Size:") {
            let kib = size
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
            in_guest = guest_sizes_kib.contains(&kib);
        } else if let Some(rss) = line.strip_prefix("Rss:")
            && in_guest
        {
            total += rss
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    Some(total)
}

/// Reads exactly `len` bytes of `file` at `pos` into guest memory at `addr`, with no copy in
/// between: the host kernel writes straight into the guest's pages (virtio-blk reads would
/// otherwise copy every byte twice).
pub fn read_file_into(
    mem: &GuestMemoryMmap,
    addr: GuestAddress,
    len: usize,
    file: &File,
    pos: u64,
) -> io::Result<()> {
    transfer(mem, addr, len, pos, |slice, at| {
        let guard = slice.ptr_guard_mut();
        // SAFETY: `guard` keeps the slice's `len()` bytes of guest memory mapped and writable
        // for this call; pread only stores bytes there. The guest may change them at the same
        // time, which is the guest's own race and harms nothing of ours.
        unsafe {
            libc::pread(
                file.as_raw_fd(),
                guard.as_ptr().cast(),
                slice.len(),
                at as libc::off_t,
            )
        }
    })
}

/// Writes `len` bytes of guest memory at `addr` to `file` at `pos`, with no copy in between.
pub fn write_file_from(
    mem: &GuestMemoryMmap,
    addr: GuestAddress,
    len: usize,
    file: &File,
    pos: u64,
) -> io::Result<()> {
    transfer(mem, addr, len, pos, |slice, at| {
        let guard = slice.ptr_guard();
        // SAFETY: `guard` keeps the slice's `len()` bytes of guest memory mapped for this call;
        // pwrite only loads from them. If the guest changes them meanwhile, the file gets some
        // mix of its bytes, as on real hardware.
        unsafe {
            libc::pwrite(
                file.as_raw_fd(),
                guard.as_ptr().cast(),
                slice.len(),
                at as libc::off_t,
            )
        }
    })
}

/// Runs `call` (a pread or pwrite of one host-contiguous slice at a file position, returning
/// what the syscall returned) over `len` bytes at `addr`, until all are done: short transfers
/// continue where they stopped, EINTR retries, and a transfer of 0 bytes is an unexpected end.
fn transfer(
    mem: &GuestMemoryMmap,
    addr: GuestAddress,
    len: usize,
    pos: u64,
    mut call: impl FnMut(&VolatileSlice<'_>, u64) -> isize,
) -> io::Result<()> {
    let mut at = pos;
    for slice in GuestMemoryBackend::get_slices(mem, addr, len) {
        let mut slice = slice.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        while !slice.is_empty() {
            let n = call(&slice, at);
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = n as usize;
            slice = slice
                .offset(n)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            at += n as u64;
        }
    }
    Ok(())
}

/// Sizes of the guest memory ranges, recorded by [`create`].
static GUEST_SIZES: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_memory_is_one_range() {
        assert_eq!(ram_ranges(512 << 20), vec![(GuestAddress(0), 512 << 20)]);
    }

    #[test]
    fn large_memory_skips_the_mmio_hole() {
        let ranges = ram_ranges(4 << 30);
        assert_eq!(
            ranges,
            vec![(GuestAddress(0), 3 << 30), (GuestAddress(4 << 30), 1 << 30)]
        );
    }
}
