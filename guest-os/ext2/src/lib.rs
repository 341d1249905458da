//! A validating, read-only ext2 reader, `no_std` and without `unsafe`, for the two places NOA ARK
//! OS reads its disk image: the VMM (`/boot/kernel` and `/boot/cmdline` before the guest runs) and
//! the guest kernel (its root file system on virtio-blk).
//!
//! The disk is a plain ext2 file system (`mke2fs -t ext2 -d DIR`). This crate owns the on-disk
//! format: open a [`BlockDevice`] as an [`Ext2`] file system, read inodes, look names and absolute
//! paths up, read file data (sparse files included), list directories (whole, or streamed from an
//! offset for `getdents64`), read symlink targets and report `statfs` totals. It never follows
//! symlinks and never reads the whole image into memory: every read is a bounds-checked
//! [`BlockDevice::read_at`] inside the file system. It never writes yet; the shapes here are the
//! ones the write path will extend (a device trait that gains `write_at`, a group descriptor cache
//! that gains the bitmap locations, `&self` reads beside `&mut self` writes).
//!
//! # Hostile input
//!
//! The image is hostile input: to the host (a user hands the VMM any file) and to the guest kernel
//! (a bad image must fail a system call, never the kernel). Every field we use is validated before
//! it steers a read or an allocation: superblock magic, revision, features, block size
//! (1024..=65536), block and inode counts, the group descriptor table and every group's bitmaps and
//! inode table, inode numbers, modes and sizes, block pointers, directory entry
//! `rec_len`/`name_len`/inode/name, symlink sizes, and file and directory sizes. Nothing panics on
//! any input: fields are read with checked accessors, never by indexing that can fail.
//!
//! Allocations are bounded. [`Ext2::open`] caches the group descriptor table: 8 bytes a group, at
//! most 65536 groups (a larger file system is refused as unsupported), so 512 KiB at that cap and
//! a few bytes for a real image. File data goes straight into the caller's buffer, whose size the
//! caller picks. Apart from that, nothing allocates more than a block, except [`Ext2::read_dir`], whose
//! result grows with the directory (capped at 32 MiB of directory data;
//! [`Ext2::read_dir_from`] streams the same entries without allocating) and [`Ext2::read_link`]
//! (at most 4 KiB).
//!
//! Loops cannot hang us. Block mapping has a fixed depth (direct, single, double, triple indirect)
//! and each read maps only the blocks inside the file's size (itself checked against what the
//! block map can address), so an indirect block that points at itself is read as data, not
//! followed. A directory scan reads at most the directory's size, one block at a time, and every
//! entry moves the scan forward at least 8 bytes. A path lookup does one directory scan per path
//! component; `.` and `..` are the directory's own entries on disk, so a directory that points
//! back at itself costs one scan per component, never a loop.
//!
//! # Cost in ring 0
//!
//! In the guest every ring-0 instruction may be emulated (~0.6 µs each; memcpy ~12 MB/s), so the
//! reader avoids copies: file data is read with as few device reads as the block map allows
//! (physically contiguous runs coalesce into one read, straight into the caller's buffer, partial
//! blocks included); block pointers are read only as far as a read needs them (a run of entries,
//! not the whole indirect block); the group descriptor table is read once, at open. Directory
//! blocks are read whole, one at a time, because entries are validated from the start of their
//! block. A device over sectors should cache what it reads: metadata reads are small and repeat.
//!
//! # Why our own
//!
//! Crates checked with `cargo info`: `ext2` 0.1.1 is a read-write driver that calls itself
//! early-stage ("use with caution"), transmutes with `unsafe` and has about a hundred
//! `unwrap`/`expect`/`panic!` sites. `ext4-view` 1.0.0 is the serious candidate: read-only,
//! `#![forbid(unsafe_code)]`, reads ext2/3/4, and aims never to panic or loop on bad input. We
//! still wrote this because `ext4-view` is about 10k lines that mostly serve ext4 (extents, htree,
//! journal, checksums), attack surface we do not need, and its `Ext4::read` follows symlinks and
//! allocates whatever size the inode claims. This reader accepts only what `mke2fs -t ext2`
//! produces (a clean ext3 reads too: its journal is a compatible feature), and the guest needs a
//! reader it can grow into a writer.
//!
//! Layout reference: <https://www.nongnu.org/ext2-doc/ext2.html>.
#![no_std]
#![forbid(unsafe_code)]
// No panics on hostile input: no indexing, unwrap or panic outside the tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod block_map;
mod bytes;
mod corrupt;
mod device;
mod dir;
mod disk;
mod error;
mod features;
mod file;
mod fs;
mod group;
mod inode;
mod path;
mod statfs;
mod superblock;
mod symlink;
#[cfg(test)]
mod tests;

pub use corrupt::{Corrupt, DirEntryProblem};
pub use device::{BlockDevice, IoError};
pub use dir::{DirEntry, DirEntryRef};
pub use error::{Error, Result};
pub use features::Unsupported;
pub use fs::Ext2;
pub use inode::{DeviceNumber, FileType, Inode, InodeNo};
pub use statfs::StatFs;

/// The longest name a directory entry can hold (its `name_len` is one byte).
pub const NAME_MAX: usize = 255;
