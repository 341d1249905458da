//! Opening: devices that are not ext2 at all, truncated or ext4 images, the group count cap, and
//! a file system read from memory.

use std::string::ToString;
use std::vec::Vec;

use super::file::{assert_boot_files, boot};
use super::fixture::{Fixture, pattern};
use crate::{Error, Ext2, Unsupported};

#[test]
fn devices_too_small_or_not_ext2() {
    for len in [0, 1500, 2047] {
        let err = Ext2::open(vec_of(len)).unwrap_err();
        assert_eq!(err, Error::TooSmall { len: len as u64 });
    }
    let err = Ext2::open(pattern(1 << 20, 4)).unwrap_err();
    assert!(matches!(err, Error::NotExt2 { .. }), "{err:?}");
}

fn vec_of(len: usize) -> Vec<u8> {
    std::vec![0; len]
}

#[test]
fn truncated_device() {
    let f = boot();
    f.mkfs(&["-t", "ext2"], 4096);
    let mut bytes = f.bytes();
    let full = bytes.len() as u64;
    bytes.truncate(bytes.len() / 2);
    let err = Ext2::open(bytes).unwrap_err();
    assert_eq!(
        err,
        Error::Truncated {
            fs_bytes: full,
            device_len: full / 2
        }
    );
}

#[test]
fn reads_from_memory_and_gives_the_device_back() {
    let f = boot();
    f.mkfs(&["-t", "ext2", "-b", "2048"], 2048);
    let bytes = f.bytes();
    let fs = Ext2::open(bytes.clone()).unwrap();
    assert_boot_files(&fs);
    assert!(fs.into_device() == bytes);
    // Borrowed, too.
    let fs = Ext2::open(bytes.as_slice()).unwrap();
    assert_boot_files(&fs);
}

#[test]
fn ext4_image_is_rejected_as_ext4() {
    let f = boot();
    f.mkfs(&["-t", "ext4"], 8192);
    let err = f.open().unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(Unsupported::Incompat(bits)) if bits & 0x40 != 0),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("ext4") && msg.contains("extents"), "{msg}");
    assert!(msg.contains("mke2fs -t ext2"), "{msg}");
}

#[test]
fn more_groups_than_the_cache_holds_are_unsupported() {
    // 100 000 one-KiB blocks in groups of one block: a valid-looking superblock asking for about
    // 100 000 group descriptors. The image is sparse, so this costs nothing on disk.
    let f = Fixture::new();
    f.mkfs(&["-t", "ext2", "-b", "1024"], 100_000);
    let blocks = u64::from(crate::bytes::le32(&f.bytes(), 1024 + 4));
    let groups = blocks - 1;
    f.patch(1024 + 32, &1u32.to_le_bytes()); // blocks per group
    f.patch(1024 + 40, &1u32.to_le_bytes()); // inodes per group
    f.patch(1024, &(groups as u32).to_le_bytes()); // inode count
    let err = f.open().unwrap_err();
    assert_eq!(
        err,
        Error::Unsupported(Unsupported::TooManyGroups {
            groups,
            max: 65_536
        })
    );
}
