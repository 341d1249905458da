//! Tests against real images: each fixture is a directory tree turned into an image by
//! `mke2fs -t ext2 -d` (e2fsprogs) and checked clean by `e2fsck -fn` before the reader sees it,
//! so the reader is tested on what the tools produce, then on targeted and random corruption.

mod corrupt;
mod dir;
mod file;
mod fixture;
mod fuzz;
mod inode;
mod open;
mod write_crash;
mod write_file;
mod write_full;
mod write_model;
mod write_mount;
mod write_names;
