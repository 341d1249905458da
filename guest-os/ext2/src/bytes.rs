//! Little-endian fields out of on-disk structures, read without any way to panic.
//!
//! Callers pass offsets inside fixed-size buffers (a superblock, an inode, a directory entry
//! header whose length was checked). Should one ever be out of range, the field reads as 0, which
//! every caller treats as invalid or empty, instead of panicking in the kernel.

/// The little-endian `u16` at `at`, or 0 if `bytes` is too short.
pub(crate) fn le16(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..)
        .and_then(|rest| rest.first_chunk::<2>())
        .map_or(0, |b| u16::from_le_bytes(*b))
}

/// The little-endian `u32` at `at`, or 0 if `bytes` is too short.
pub(crate) fn le32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..)
        .and_then(|rest| rest.first_chunk::<4>())
        .map_or(0, |b| u32::from_le_bytes(*b))
}
