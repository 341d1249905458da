//! Targeted corruption of real images: each damaged field gives its own [`Corrupt`] (or
//! [`Unsupported`]) error, never a panic or a wrong answer.

use std::fmt::Debug;
use std::string::ToString;

use super::file::boot;
use super::fixture::{FileDevice, Fixture, MIB, inode_at, read_all};
use crate::bytes::{le16, le32};
use crate::features::EXT4_EXTENTS_FL;
use crate::{Corrupt, DirEntryProblem, Error, Ext2, InodeNo, Unsupported};

/// The standard boot image at 1 KiB blocks, open.
fn corruptible() -> (Fixture, Ext2<FileDevice>) {
    let f = boot();
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    (f, fs)
}

/// Asserts `result` failed as corrupt, the way `matches` says.
#[track_caller]
fn assert_corrupt<T: Debug>(result: Result<T, Error>, matches: impl Fn(&Corrupt) -> bool) {
    match result {
        Err(Error::Corrupt(c)) if matches(&c) => {
            // Every message is one line that names the problem.
            let msg = Error::Corrupt(c).to_string();
            assert!(!msg.contains('\n') && msg.starts_with("corrupt ext2 file system: "));
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn patch_superblock(field: u64, bytes: &[u8]) -> Result<Ext2<FileDevice>, Error> {
    let (f, _) = corruptible();
    f.patch(1024 + field, bytes);
    f.open()
}

#[test]
fn corrupt_superblock_fields() {
    use Corrupt::*;
    let sb = |field, value: u32| patch_superblock(field, &value.to_le_bytes());
    assert_corrupt(sb(24, 7), |c| matches!(c, BlockSize { log: 7 }));
    assert_corrupt(sb(24, u32::MAX), |c| matches!(c, BlockSize { .. }));
    assert_corrupt(sb(20, 0), |c| {
        matches!(
            c,
            FirstDataBlock {
                found: 0,
                expected: 1,
                ..
            }
        )
    });
    assert_corrupt(sb(4, 1), |c| matches!(c, BlockCount { count: 1 }));
    assert_corrupt(sb(32, 0), |c| matches!(c, BlocksPerGroup { value: 0, .. }));
    assert_corrupt(sb(32, 100_000), |c| {
        matches!(c, BlocksPerGroup { value: 100_000, .. })
    });
    assert_corrupt(sb(40, 0), |c| matches!(c, InodesPerGroup { value: 0, .. }));
    assert_corrupt(sb(0, 12345), |c| {
        matches!(c, InodeCount { count: 12345, .. })
    });
    let inode_size = |size: u16| patch_superblock(88, &size.to_le_bytes());
    assert_corrupt(inode_size(100), |c| {
        matches!(c, InodeSize { size: 100, .. })
    });
    assert_corrupt(inode_size(2048), |c| {
        matches!(c, InodeSize { size: 2048, .. })
    });
    assert_corrupt(inode_size(384), |c| {
        matches!(c, InodeSize { size: 384, .. })
    });
    let err = sb(4, u32::MAX).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    let err = sb(76, 5).unwrap_err();
    assert_eq!(err, Error::Unsupported(Unsupported::Revision(5)));
    let err = sb(96, 0x0100_0002).unwrap_err();
    assert!(err.to_string().contains("unknown 0x1000000"), "{err}");
    let err = sb(96, 0x0000_0006).unwrap_err();
    assert!(err.to_string().contains("needs_recovery"), "{err}");
    let err = sb(56, 0x1234).unwrap_err();
    assert_eq!(err, Error::NotExt2 { magic: 0x1234 });
}

#[test]
fn corrupt_group_descriptor() {
    let (f, fs) = corruptible();
    let gdt = fs.geo.gdt_offset;
    let table = u64::from(le32(&f.bytes(), gdt as usize + 8));
    let in_group = |what: &'static str| move |c: &Corrupt| matches!(c, Corrupt::GroupLayout { group: 0, what: w, .. } if *w == what);
    // Group 0's inode table, past the end of the file system, at block 0, or running off the
    // end of its group.
    for bad in [5000, 0, 8190] {
        f.patch(gdt + 8, &(bad as u32).to_le_bytes());
        assert_corrupt(f.open(), in_group("inode table"));
    }
    f.patch(gdt + 8, &(table as u32).to_le_bytes());
    assert!(f.open().is_ok());
    f.patch(gdt, &9999u32.to_le_bytes());
    assert_corrupt(f.open(), in_group("block bitmap"));
}

#[test]
fn corrupt_root_inode() {
    let (f, fs) = corruptible();
    let root = fs.inode_offset(InodeNo::ROOT).unwrap();
    f.patch(root, &0x8000u16.to_le_bytes());
    assert_corrupt(f.open(), |c| *c == Corrupt::RootNotDirectory);
    f.patch(root, &0u16.to_le_bytes());
    assert_corrupt(f.open(), |c| matches!(c, Corrupt::InodeNotInUse { .. }));
    f.patch(root, &0o755u16.to_le_bytes());
    assert_corrupt(f.open(), |c| {
        matches!(c, Corrupt::InodeType { mode: 0o755, .. })
    });
    f.patch(root, &(0x4000u16 | 0o755).to_le_bytes());
    // A directory size that is not a whole number of blocks, then one that is too large.
    f.patch(root + 4, &1000u32.to_le_bytes());
    let fs = f.open().unwrap();
    assert_corrupt(read_all(&fs, "/boot/kernel"), |c| {
        matches!(c, Corrupt::DirectorySize { size: 1000, .. })
    });
    f.patch(root + 4, &u32::MAX.to_le_bytes());
    let fs = f.open().unwrap();
    assert_corrupt(read_all(&fs, "/boot/kernel"), |c| {
        matches!(c, Corrupt::DirectoryTooLarge { .. })
    });
}

#[test]
fn corrupt_directory_entries() {
    let (f, fs) = corruptible();
    let root_block = u64::from(fs.inode(InodeNo::ROOT).unwrap().block_words()[0]);
    let at = root_block * 1024;
    let problem = |want: DirEntryProblem| move |c: &Corrupt| matches!(c, Corrupt::DirEntry { problem, .. } if *problem == want);
    let read = |f: &Fixture| read_all(&f.open().unwrap(), "/boot/kernel");
    // The first entry is ".": rec_len 12, name_len 1.
    f.patch(at + 4, &0u16.to_le_bytes());
    assert_corrupt(read(&f), problem(DirEntryProblem::BadRecLen { rec_len: 0 }));
    f.patch(at + 4, &13u16.to_le_bytes());
    assert_corrupt(
        read(&f),
        problem(DirEntryProblem::BadRecLen { rec_len: 13 }),
    );
    f.patch(at + 4, &2048u16.to_le_bytes());
    assert_corrupt(
        read(&f),
        problem(DirEntryProblem::RecLenPastEnd { rec_len: 2048 }),
    );
    f.patch(at + 4, &12u16.to_le_bytes());
    f.patch(at + 6, &[200]);
    let name_len = DirEntryProblem::NameLen {
        name_len: 200,
        rec_len: 12,
    };
    assert_corrupt(read(&f), problem(name_len));
    f.patch(at + 6, &[1]);
    // A bad name fails whatever hands names out; lookups compare the name they were given and
    // pass it by (as Linux does), but never find it.
    let listing = |f: &Fixture| {
        let fs = f.open().unwrap();
        fs.read_dir(&fs.inode(InodeNo::ROOT).unwrap())
    };
    for bad in [b"/", b"\0"] {
        f.patch(at + 8, bad);
        assert_corrupt(listing(&f), problem(DirEntryProblem::BadName));
        assert!(read(&f).is_ok());
        let fs = f.open().unwrap();
        let root = fs.inode(InodeNo::ROOT).unwrap();
        assert_eq!(fs.lookup(&root, bad), Ok(None));
        let streamed = fs.read_dir_from(&root, 0, |_| core::ops::ControlFlow::Continue(()));
        assert_corrupt(streamed, problem(DirEntryProblem::BadName));
        // "." is the first entry: a single entry from the start is the bad one.
        assert_corrupt(fs.read_dir_at(&root, 0), problem(DirEntryProblem::BadName));
    }
    f.patch(at + 8, b".");
    assert!(read(&f).is_ok());
    assert!(listing(&f).is_ok());

    // The last entry of the block leaves 4 bytes after it: too few for a header.
    let block = f.bytes()[at as usize..at as usize + 1024].to_vec();
    let mut last = 0;
    while last + usize::from(le16(&block, last + 4)) < 1024 {
        last += usize::from(le16(&block, last + 4));
    }
    let last_len = le16(&block, last + 4);
    f.patch(at + last as u64 + 4, &(last_len - 4).to_le_bytes());
    assert_corrupt(listing(&f), problem(DirEntryProblem::CutOff));
    f.patch(at + last as u64 + 4, &last_len.to_le_bytes());
    assert!(listing(&f).is_ok());

    // Point the "boot" entry at inode 0xffff_fff0, then at an unused inode.
    let boot = fs.lookup_path(b"/boot").unwrap().get();
    let block = f.bytes()[at as usize..at as usize + 1024].to_vec();
    let entry = (0..1020)
        .find(|&i| le32(&block, i) == boot && &block[i + 8..i + 12] == b"boot")
        .expect("boot entry");
    f.patch(at + entry as u64, &0xffff_fff0u32.to_le_bytes());
    let out_of_range = DirEntryProblem::InodeOutOfRange { ino: 0xffff_fff0 };
    assert_corrupt(read(&f), problem(out_of_range));
    f.patch(at + entry as u64, &1000u32.to_le_bytes());
    assert_corrupt(read(&f), |c| matches!(c, Corrupt::InodeNotInUse { .. }));
    // Inode 0 is a deleted entry: "boot" is gone, not corrupt.
    f.patch(at + entry as u64, &0u32.to_le_bytes());
    assert_eq!(read(&f), Err(Error::NotFound));
}

#[test]
fn corrupt_block_pointers() {
    let (f, fs) = corruptible();
    let kernel = inode_at(&fs, "/boot/kernel").unwrap();
    let words = *kernel.block_words();
    let inode = fs.inode_offset(kernel.ino()).unwrap();
    let read = |f: &Fixture| read_all(&f.open().unwrap(), "/boot/kernel");
    // A direct pointer outside the file system.
    f.patch(inode + 40, &4096u32.to_le_bytes());
    assert_corrupt(read(&f), |c| {
        matches!(c, Corrupt::BlockPointer { block: 4096, .. })
    });
    f.patch(inode + 40, &words[0].to_le_bytes());
    // A data pointer inside the indirect block, outside the file system.
    let ind = u64::from(words[12]);
    let third = f.bytes()[ind as usize * 1024 + 8..ind as usize * 1024 + 12].to_vec();
    f.patch(ind * 1024 + 8, &u32::MAX.to_le_bytes());
    assert_corrupt(read(&f), |c| {
        matches!(
            c,
            Corrupt::BlockPointer {
                block: 0xffff_ffff,
                ..
            }
        )
    });
    f.patch(ind * 1024 + 8, &third);
    assert!(read(&f).is_ok());
    // An indirect block that points at itself is read as data, not followed forever.
    f.patch(ind * 1024, &words[12].to_le_bytes());
    assert_eq!(read(&f).unwrap().len(), 50_000);
    // A double indirect pointer that points at the single indirect block: a size that needs
    // double indirect blocks then walks into data pointers used as pointer blocks.
    f.patch(inode + 40 + 13 * 4, &words[12].to_le_bytes());
    f.patch(inode + 4, &(MIB as u32).to_le_bytes());
    let _ = read(&f);
    // A size larger than the block map can address.
    f.patch(inode + 108, &u32::MAX.to_le_bytes());
    assert_corrupt(read(&f), |c| matches!(c, Corrupt::FileTooLarge { .. }));
    // The ext4 extents flag on an ext2 inode.
    f.patch(inode + 32, &EXT4_EXTENTS_FL.to_le_bytes());
    let err = read(&f).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(Unsupported::InodeFlags { .. })),
        "{err:?}"
    );
}

#[test]
fn corrupt_symlinks() {
    let f = boot();
    f.symlink("fast", "boot/cmdline");
    f.symlink("slow", &"x".repeat(300));
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let offset = |path: &[u8]| fs.inode_offset(fs.lookup_path(path).unwrap()).unwrap();
    let (fast, slow) = (offset(b"/fast"), offset(b"/slow"));
    let link = |f: &Fixture, path: &str| {
        let fs = f.open().unwrap();
        let inode = inode_at(&fs, path).unwrap();
        fs.read_link(&inode)
    };
    f.patch(fast + 4, &61u32.to_le_bytes());
    assert_corrupt(link(&f, "/fast"), |c| {
        matches!(
            c,
            Corrupt::SymlinkSize {
                size: 61,
                max: 60,
                ..
            }
        )
    });
    f.patch(slow + 4, &1024u32.to_le_bytes());
    assert_corrupt(link(&f, "/slow"), |c| {
        matches!(
            c,
            Corrupt::SymlinkSize {
                size: 1024,
                max: 1023,
                ..
            }
        )
    });
    // A slow symlink whose data block pointer is out of range.
    f.patch(slow + 4, &300u32.to_le_bytes());
    f.patch(slow + 40, &u32::MAX.to_le_bytes());
    assert_corrupt(link(&f, "/slow"), |c| {
        matches!(c, Corrupt::BlockPointer { .. })
    });
}

#[test]
fn inode_numbers_are_checked() {
    let (_f, fs) = corruptible();
    let count = fs.geo.inodes_count;
    for ino in [0, count + 1, u32::MAX] {
        let err = fs.inode(InodeNo::new(ino)).unwrap_err();
        assert_eq!(
            err,
            Error::Corrupt(Corrupt::InodeNumber {
                ino: InodeNo::new(ino),
                count
            })
        );
    }
    // Inode 1 (bad blocks) is reserved and empty.
    assert!(matches!(
        fs.inode(InodeNo::new(1)),
        Err(Error::Corrupt(Corrupt::InodeNotInUse { .. }))
    ));
}
