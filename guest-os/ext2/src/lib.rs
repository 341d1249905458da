//! A validating ext2 file system, reader and writer, `no_std` and without `unsafe`, for the two
//! places NOA ARK OS uses its disk image: the VMM (reads `/boot/kernel` and `/boot/cmdline`
//! before the guest runs) and the guest kernel (its root file system on virtio-blk, read-write).
//!
//! The disk is a plain ext2 file system (`mke2fs -t ext2 -d DIR`). This crate owns the on-disk
//! format: open a [`BlockDevice`] as an [`Ext2`] file system, read inodes, look names and absolute
//! paths up, read file data (sparse files included), list directories (whole, or streamed from an
//! offset for `getdents64`), read symlink targets and report `statfs` totals. It never follows
//! symlinks and never reads the whole image into memory: every access is a bounds-checked
//! [`BlockDevice::read_at`] or [`BlockDevice::write_at`] inside the file system.
//!
//! # Writing
//!
//! [`Ext2::open`] is read-only; [`Ext2::open_rw`] opens for writing (refusing what it cannot write
//! safely: unknown read-only compatible features, a superblock that records errors) and marks the
//! file system not clean until [`Ext2::unmount`]. Reads take `&self`, changes `&mut self` (the
//! kernel holds the file system in a reader-writer lock): [`Ext2::create`] (files, directories,
//! device nodes, fifos, sockets), [`Ext2::symlink`], [`Ext2::link`], [`Ext2::unlink`],
//! [`Ext2::rmdir`], [`Ext2::rename`] (with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`),
//! [`Ext2::write`], [`Ext2::truncate`], [`Ext2::allocate`], [`Ext2::set_attr`] and
//! [`Ext2::free_inode`]. An inode whose last link goes is not freed by the change that removed
//! it: the caller frees it when the last open file closes (unlink of open files). [`Ext2::sync`]
//! writes what is only in memory and flushes the device; after [`Ext2::unmount`], `e2fsck -fn`
//! finds nothing to fix. Every failure is an [`Error`] with a Linux errno ([`Error::errno`]).
//!
//! ext2 has no journal, so writes are ordered to keep every crash state one that `e2fsck -fy`
//! repairs without losing anything synced before (tested by cutting a recorded write sequence at
//! every write): bitmap bits are set before anything points at what they allocate; data, zeroed
//! indirect blocks and directory blocks are written before the pointer that makes them reachable;
//! a new inode is written before the entry that names it, and an entry is removed before the link
//! count drops; pointers are cleared before the bits of what they pointed at. A crash can leak
//! blocks or leave counts stale (which `e2fsck` fixes), never leave a pointer at a free block or
//! at stale data. The modules `map_write`, `release`, `namei`, `rename` and `mount` document
//! their parts of the order.
//!
//! Allocation keeps files contiguous (each new block goes right after the file's previous one, in
//! its inode's group), so reads stay one device request per run. New directories go to the group
//! with the most free inodes, everything else to its parent's group.
//!
//! # Hostile input
//!
//! The image is hostile input: to the host (a user hands the VMM any file) and to the guest kernel
//! (a bad image must fail a system call, never the kernel). Every field we use is validated before
//! it steers a read, a write or an allocation: superblock magic, revision, features, block size
//! (1024..=65536), block and inode counts, the group descriptor table and every group's bitmaps and
//! inode table, inode numbers, modes and sizes, block pointers, directory entry
//! `rec_len`/`name_len`/inode (every entry scanned) and name (every name handed out; a lookup
//! compares with a name it checked), symlink sizes, and file and directory sizes. Nothing panics on
//! any input: fields are read with checked accessors, never by indexing that can fail. The writer
//! adds its own fences: it never writes through a pointer at metadata (superblock copies,
//! descriptor tables, bitmaps, inode tables), never allocates a block or inode a corrupt bitmap
//! offers from metadata or the reserved inodes, never frees metadata, and never changes a
//! reserved inode; a change that meets corruption fails with [`Error::Corrupt`].
//!
//! Allocations are bounded. [`Ext2::open`] caches the group descriptor table: 20 bytes a group,
//! at most 65536 groups (a larger file system is refused as unsupported), so 1.25 MiB at that
//! cap and a few bytes for a real image (a writer adds a dirty bit per group). File data goes straight into and out of the caller's buffer,
//! whose size the caller picks. Apart from that, nothing allocates more than a block (a writer
//! keeps one bitmap block per kind, a block of zeros and a scratch block or three), except
//! [`Ext2::read_dir`], whose result grows with the directory (capped at 32 MiB of directory data;
//! [`Ext2::read_dir_from`] streams the same entries without allocating) and [`Ext2::read_link`]
//! (at most 4 KiB).
//!
//! Loops cannot hang us. Block mapping has a fixed depth (direct, single, double, triple indirect)
//! and each read maps only the blocks inside the file's size (itself checked against what the
//! block map can address), so an indirect block that points at itself is read as data, not
//! followed. Freeing a file's blocks walks its tree to the same fixed depth and at most as many
//! blocks as the inode counts. A directory scan reads at most the directory's size, one block at
//! a time, and every entry moves the scan forward at least 8 bytes. A path lookup does one
//! directory scan per path component; `.` and `..` are the directory's own entries on disk, so a
//! directory that points back at itself costs one scan per component, never a loop; the walk up
//! `..` that keeps a rename from moving a directory into itself stops after one step per inode.
//!
//! # Cost in ring 0
//!
//! In the guest every ring-0 instruction may be emulated (~0.6 µs each; memcpy ~12 MB/s), so the
//! crate avoids copies: file data is read and written with as few device requests as the block
//! map allows (physically contiguous runs coalesce into one request, straight from or into the
//! caller's buffer, partial blocks included); block pointers are read only as far as an access
//! needs them (a run of entries, not the whole indirect block); the group descriptor table is
//! read once, at open. Changes write only the bytes they change: an inode is one 128-byte write,
//! a directory entry its header and name, a `rec_len` 2 bytes, a bitmap change the bytes that
//! changed, new pointers one write per run. The bitmaps of the group being allocated from stay
//! cached; free bits are found a `u64` at a time, from where each group's first free bit may be.
//! Directory blocks are read whole, one at a time, into a buffer that is reused (a reader's on its
//! stack, the writer's scratch block), because entries are validated from the start of their
//! block; an entry costs a few dozen instructions (its header read as one word and checked, a
//! name compared only when its length and last 8 bytes match), and a change scans its directory
//! once (see `dir_scan` and `dir_write`). A device over sectors should cache what it reads:
//! metadata reads are small and repeat.
//!
//! # Why our own
//!
//! Crates checked with `cargo info`: `ext2` 0.1.1 is a read-write driver that calls itself
//! early-stage ("use with caution"), transmutes with `unsafe`, has about a hundred
//! `unwrap`/`expect`/`panic!` sites, and says nothing about write ordering or crash states.
//! `ext4-view` 1.0.0 is the serious candidate for reading: read-only, `#![forbid(unsafe_code)]`,
//! reads ext2/3/4, and aims never to panic or loop on bad input. We still wrote this because
//! `ext4-view` is about 10k lines that mostly serve ext4 (extents, htree, journal, checksums),
//! attack surface we do not need, its `Ext4::read` follows symlinks and allocates whatever size
//! the inode claims, and it cannot write: the guest needs a root file system it can write, with
//! the crash ordering above, the hostile-image fences on the write path, and ring-0 costs in mind,
//! which no crate offers. This crate accepts only what `mke2fs -t ext2` produces (a clean ext3
//! reads and writes too: its journal is a compatible feature, left untouched).
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

mod allocate;
mod attr;
mod bitmap;
mod block_map;
mod bytes;
mod corrupt;
mod device;
mod dir;
mod dir_scan;
mod dir_write;
mod disk;
mod error;
mod extents;
mod features;
mod file;
mod fs;
mod group;
mod inode;
mod map_write;
mod mount;
mod name;
mod namei;
mod path;
mod raw_inode;
mod release;
mod rename;
mod statfs;
mod superblock;
mod symlink;
#[cfg(test)]
mod tests;
mod write;

pub use attr::SetAttr;
pub use corrupt::{Corrupt, DirEntryProblem};
pub use device::{BlockDevice, IoError, MemDisk};
pub use dir::{DirEntry, DirEntryRef};
pub use error::{Error, Result};
pub use extents::Extent;
pub use features::Unsupported;
pub use fs::Ext2;
pub use inode::{DeviceNumber, FileType, Inode, InodeNo, LINK_MAX};
pub use rename::RenameFlags;
pub use statfs::StatFs;

/// The longest name a directory entry can hold (its `name_len` is one byte).
pub const NAME_MAX: usize = 255;
