//! Opening for writing: the superblock's state and mount count, what is refused (unknown
//! read-only compatible features, recorded errors), ext3 written as ext2, and files with an
//! extended attribute block freed.

use std::string::ToString;

use super::file::boot;
use super::fixture::read_all;
use super::write_file::{REG, T0, image};
use crate::bytes::{le16, le32};
use crate::{Error, Ext2, InodeNo, MemDisk, Unsupported};

#[test]
fn open_rw_marks_the_superblock_and_unmount_restores_it() {
    let f = image(&["-t", "ext2", "-b", "1024"], 4);
    let bytes = f.bytes();
    let sb = |b: &[u8], at: usize| le16(b, 1024 + at);
    assert_eq!(sb(&bytes, 58), 1, "clean after mke2fs");
    let mounts = sb(&bytes, 52);
    let mut fs = Ext2::open_rw_at(MemDisk::new(bytes), Some(T0)).unwrap();
    assert!(fs.writable());
    let now = fs.device().to_vec();
    assert_eq!(sb(&now, 58), 0, "not clean while mounted");
    assert_eq!(sb(&now, 52), mounts + 1);
    assert_eq!(le32(&now, 1024 + 44), T0, "mount time");
    fs.create(InodeNo::ROOT, b"f", REG, 0, 0, 0, T0 + 7)
        .unwrap();
    fs.unmount().unwrap();
    assert!(!fs.writable());
    assert_eq!(
        fs.create(InodeNo::ROOT, b"g", REG, 0, 0, 0, T0)
            .unwrap_err(),
        Error::ReadOnly
    );
    let after = fs.into_device().into_inner();
    assert_eq!(sb(&after, 58), 1);
    assert_eq!(le32(&after, 1024 + 48), T0 + 7, "write time");
    // Without a clock the mount time is the last write time.
    let fs = Ext2::open_rw(MemDisk::new(after)).unwrap();
    assert_eq!(le32(&fs.device().to_vec(), 1024 + 44), T0 + 7);
}

#[test]
fn refuses_what_it_cannot_write() {
    let f = image(&["-t", "ext2", "-b", "1024"], 4);
    let good = f.bytes();
    // An unknown read-only compatible feature (huge_file): readable, not writable.
    let mut bytes = good.clone();
    let ro_compat = le32(&bytes, 1024 + 100) | 0x8;
    bytes[1024 + 100..1024 + 104].copy_from_slice(&ro_compat.to_le_bytes());
    assert!(Ext2::open(MemDisk::new(bytes.clone())).is_ok());
    let err = Ext2::open_rw(MemDisk::new(bytes)).unwrap_err();
    assert_eq!(err, Error::Unsupported(Unsupported::RoCompat(0x8)));
    assert_eq!(err.errno(), 95);
    assert!(err.to_string().contains("can only be read"), "{err}");
    // Errors recorded in the superblock.
    let mut bytes = good.clone();
    bytes[1024 + 58] = 3;
    let err = Ext2::open_rw(MemDisk::new(bytes)).unwrap_err();
    assert_eq!(err, Error::NeedsCheck { state: 3 });
    assert!(err.to_string().contains("e2fsck"), "{err}");
    // A read-only device: the first write fails.
    let err = Ext2::open_rw(good.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WriteIo {
                error: crate::IoError::ReadOnly,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.errno(), 30);
}

#[test]
fn writes_ext3_as_ext2() {
    let f = boot();
    f.mkfs(&["-t", "ext3", "-b", "1024"], 8192);
    let mut fs = f.open_rw(T0);
    let ino = fs
        .create(InodeNo::ROOT, b"new", REG, 0, 0, 0, T0)
        .unwrap()
        .ino();
    fs.write(ino, 0, b"journal untouched", T0).unwrap();
    f.finish(fs);
    assert_eq!(
        read_all(&f.open().unwrap(), "/new").unwrap(),
        b"journal untouched"
    );
}

#[test]
fn frees_a_file_with_an_attribute_block() {
    let f = boot();
    // 128-byte inodes: the attribute goes to a block of its own.
    f.mkfs(&["-t", "ext2", "-b", "1024", "-I", "128"], 4096);
    f.debugfs("ea_set /boot/cmdline user.test some-value\n");
    f.fsck();
    let mut fs = f.open_rw(T0);
    let boot = fs.lookup_path(b"/boot").unwrap();
    let before = fs.statfs();
    let gone = fs.unlink(boot, b"cmdline", T0).unwrap();
    assert_eq!(gone.blocks(), 2 * 2, "a data block and the attribute block");
    fs.free_inode(gone.ino(), T0).unwrap();
    assert_eq!(fs.statfs().free_blocks, before.free_blocks + 2);
    f.finish(fs);
}

#[test]
fn a_file_system_can_sit_behind_a_reader_writer_lock() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Ext2<std::vec::Vec<u8>>>();
}

#[test]
fn a_clock_at_zero_still_frees_cleanly() {
    let f = image(&["-t", "ext2", "-b", "1024"], 4);
    let mut fs = f.open_rw(0);
    let ino = fs
        .create(InodeNo::ROOT, b"f", REG, 0, 0, 0, 0)
        .unwrap()
        .ino();
    fs.write(ino, 0, b"x", 0).unwrap();
    fs.unlink(InodeNo::ROOT, b"f", 0).unwrap();
    fs.free_inode(ino, 0).unwrap();
    assert!(fs.inode_any_links(ino).is_err(), "freed, not just unlinked");
    f.finish(fs);
}
