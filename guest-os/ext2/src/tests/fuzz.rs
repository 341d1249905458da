//! Random corruption of a real image, thousands of times, in memory: opening, every read and,
//! opened for writing, every change must only ever return `Ok` or `Err`, never panic, hang or
//! allocate wildly.

use core::ops::ControlFlow;
use std::println;
use std::vec;

use super::file::boot;
use super::fixture::XorShift;
use crate::{BlockDevice, Ext2, FileType, InodeNo, MemDisk, RenameFlags, SetAttr};

/// Everything a caller can ask of `fs`; counts the answers that were `Ok`.
fn exercise<D: BlockDevice>(fs: &Ext2<D>) -> (u32, u32) {
    let (mut ok, mut err) = (0, 0);
    let mut tally = |good: bool| if good { ok += 1 } else { err += 1 };
    let _ = fs.statfs();
    for path in [
        "/boot/kernel",
        "/boot/cmdline",
        "/boot/dir/nested",
        "/boot/dir/../link",
        "/boot/link",
        "/etc",
        "/missing",
    ] {
        let Ok(ino) = fs.lookup_path(path.as_bytes()) else {
            tally(false);
            continue;
        };
        let Ok(inode) = fs.inode(ino) else {
            tally(false);
            continue;
        };
        let _ = inode.rdev();
        match inode.file_type() {
            FileType::Regular => {
                // Bounded by the caller's buffer whatever the size says.
                let mut buf = std::vec![0u8; 64 * 1024];
                tally(fs.read(&inode, 0, &mut buf).is_ok());
                tally(
                    fs.read(&inode, inode.size().saturating_sub(100), &mut buf)
                        .is_ok(),
                );
            }
            FileType::Directory => {
                tally(fs.read_dir(&inode).is_ok());
                tally(fs.read_dir_at(&inode, 13).is_ok());
                let mut n = 0;
                let streamed = fs.read_dir_from(&inode, 0, |_| {
                    n += 1;
                    if n < 5 {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                });
                tally(streamed.is_ok());
            }
            FileType::Symlink => tally(fs.read_link(&inode).is_ok()),
            _ => tally(true),
        }
    }
    for ino in [1, 11, 12, 13, 20, 31, 32, 33] {
        tally(fs.inode(InodeNo::new(ino)).is_ok());
    }
    (ok, err)
}

/// Every kind of change on `fs`, on names the fixture has and new ones; counts the answers that
/// were `Ok`.
fn exercise_writes(fs: &mut Ext2<MemDisk>) -> (u32, u32) {
    let (mut ok, mut err) = (0, 0);
    let mut tally = |good: bool| if good { ok += 1 } else { err += 1 };
    let now = 1_700_000_000;
    let root = InodeNo::ROOT;
    let boot = fs.lookup_path(b"/boot").unwrap_or(InodeNo::new(12));
    let kernel = fs.lookup_path(b"/boot/kernel").unwrap_or(InodeNo::new(13));
    tally(fs.write(kernel, 70_000, &[7u8; 9000], now).is_ok());
    tally(fs.truncate(kernel, 20_000, now).is_ok());
    tally(fs.allocate(kernel, 0, 40_000, true, now).is_ok());
    let new = fs.create(boot, b"new", 0o100_644, 0, 0, 0, now);
    tally(new.is_ok());
    if let Ok(new) = new {
        tally(fs.write(new.ino(), 3000, &[1u8; 20_000], now).is_ok());
        tally(fs.link(root, b"hard", new.ino(), now).is_ok());
    }
    tally(fs.create(root, b"dir", 0o40_755, 0, 0, 0, now).is_ok());
    tally(fs.symlink(root, b"sym", &[b's'; 300], 0, 0, now).is_ok());
    tally(
        fs.rename(boot, b"cmdline", root, b"dir", RenameFlags::default(), now)
            .is_ok(),
    );
    tally(
        fs.rename(root, b"boot", root, b"etc", RenameFlags::default(), now)
            .is_ok(),
    );
    let exchange = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    tally(fs.rename(root, b"etc", root, b"dir", exchange, now).is_ok());
    let attr = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    tally(fs.set_attr(kernel, attr).is_ok());
    for (dir, name) in [
        (boot, &b"link"[..]),
        (root, b"hard"),
        (boot, b"new"),
        (root, b"sym"),
    ] {
        if let Ok(gone) = fs.unlink(dir, name, now) {
            tally(true);
            if gone.links() == 0 {
                tally(fs.free_inode(gone.ino(), now).is_ok());
            }
        } else {
            tally(false);
        }
    }
    for (dir, name) in [(boot, &b"dir"[..]), (root, b"dir"), (root, b"etc")] {
        match fs.rmdir(dir, name, now) {
            Ok(gone) => {
                tally(true);
                tally(fs.free_inode(gone.ino(), now).is_ok());
            }
            Err(_) => tally(false),
        }
    }
    tally(fs.free_inode(kernel, now).is_ok());
    tally(fs.sync().is_ok());
    tally(fs.unmount().is_ok());
    (ok, err)
}

#[test]
fn corruption_fuzz_of_writes_never_panics() {
    let f = boot();
    f.file("etc/hostname", b"noa\n");
    f.file("boot/dir/nested", b"nested\n");
    f.symlink("boot/link", &"l".repeat(100));
    f.mkfs(&["-t", "ext2", "-b", "1024", "-N", "32"], 256);
    let original = f.bytes();
    // Clean, every change works and the result is clean.
    let mut fs = Ext2::open_rw(MemDisk::new(original.clone())).unwrap();
    let (ok, err) = exercise_writes(&mut fs);
    assert!(ok > 20 && err < 6, "clean image: ok {ok}, err {err}");
    std::fs::write(&f.img, fs.into_device().into_inner()).unwrap();
    f.fsck();

    let fuzzed_len = 64 * 1024;
    let env = |name, default| std::env::var(name).map_or(default, |v| v.parse().unwrap());
    let iterations = env("EXT2_FUZZ_ITERATIONS", 3000);
    let mut rng = XorShift(env("EXT2_FUZZ_SEED", 0x5eed_0f57_17e5) | 1);
    let (mut ok, mut err, mut unopened) = (0u64, 0u64, 0u64);
    for _ in 0..iterations {
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(fuzzed_len) as usize;
            bytes[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                _ => bytes[at] ^ (1 + rng.below(255) as u8),
            };
        }
        let Ok(mut fs) = Ext2::open_rw(MemDisk::new(bytes)) else {
            unopened += 1;
            continue;
        };
        let (o, e) = exercise_writes(&mut fs);
        ok += u64::from(o);
        err += u64::from(e);
    }
    println!("write fuzz: ok {ok}, err {err}, not opened {unopened}");
    assert!(
        ok > iterations && err > iterations / 10,
        "ok {ok}, err {err}"
    );
    assert!(unopened < iterations / 2, "not opened {unopened}");
}

#[test]
fn corruption_fuzz_never_panics() {
    // 128 KiB with few inodes: superblock, descriptors, bitmaps, inode table, directories and
    // the kernel's indirect block all sit in the first ~64 KiB.
    fuzz(
        &["-t", "ext2", "-b", "1024", "-N", "32"],
        128,
        0x5eed_1234_abcd_ef01,
    );
}

#[test]
fn corruption_fuzz_never_panics_with_several_groups() {
    // Four groups of 256 blocks, 16 inodes each: descriptors of several groups to damage.
    fuzz(
        &["-t", "ext2", "-b", "1024", "-g", "256", "-N", "64"],
        1024,
        0x0dd_ba11_cafe_f00d,
    );
}

/// Builds a small image with `args`, then flips bytes of its metadata `EXT2_FUZZ_ITERATIONS`
/// times (default 5000; `EXT2_FUZZ_SEED` picks another sequence), exercising every read.
fn fuzz(args: &[&str], blocks: u64, seed: u64) {
    let f = boot();
    f.file("etc/hostname", b"noa\n");
    f.file("boot/dir/nested", b"nested\n");
    f.symlink("boot/link", &"l".repeat(100));
    f.symlink("boot/dir/fast", "../link");
    f.mkfs(args, blocks);
    let original = f.bytes();

    // Most flips go to the blocks that steer the reader; the rest land anywhere in the first
    // 64 KiB or the hot blocks.
    let fs = f.open().unwrap();
    let mut hot = vec![1, 2]; // the superblock and the group descriptors
    for group in &fs.groups {
        let table = u64::from(group.inode_table);
        hot.extend(table..table + fs.geo.inode_table_blocks);
    }
    for dir in ["/", "/boot", "/boot/dir"] {
        let inode = fs.inode(fs.lookup_path(dir.as_bytes()).unwrap()).unwrap();
        hot.push(u64::from(inode.block_words()[0]));
    }
    let kernel = fs.inode(fs.lookup_path(b"/boot/kernel").unwrap()).unwrap();
    hot.push(u64::from(kernel.block_words()[12]));
    let fuzzed_len = hot
        .iter()
        .map(|b| (b + 1) * 1024)
        .max()
        .unwrap()
        .max(64 * 1024);
    assert!(fuzzed_len as usize <= original.len(), "{hot:?}");
    drop(fs);

    let env = |name, default| std::env::var(name).map_or(default, |v| v.parse().unwrap());
    let iterations = env("EXT2_FUZZ_ITERATIONS", 5000);
    let mut rng = XorShift(env("EXT2_FUZZ_SEED", seed) | 1);
    let (mut ok, mut err, mut unopened) = (0u64, 0u64, 0u64);
    let mut bytes = original.clone();
    for _ in 0..iterations {
        bytes[..fuzzed_len as usize].copy_from_slice(&original[..fuzzed_len as usize]);
        for _ in 0..1 + rng.below(4) {
            let at = if rng.below(4) == 0 {
                rng.below(fuzzed_len)
            } else {
                hot[rng.below(hot.len() as u64) as usize] * 1024 + rng.below(1024)
            } as usize;
            bytes[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                _ => bytes[at] ^ (1 + rng.below(255) as u8),
            };
        }
        let Ok(fs) = Ext2::open(bytes.as_slice()) else {
            unopened += 1;
            continue;
        };
        let (o, e) = exercise(&fs);
        ok += u64::from(o);
        err += u64::from(e);
    }
    // Both outcomes must occur, or the fuzzer is not exercising anything.
    println!("fuzz {args:?}: ok {ok}, err {err}, not opened {unopened}");
    assert!(
        ok > iterations && err > iterations / 5,
        "ok {ok}, err {err}"
    );
    assert!(
        unopened > 0 && unopened < iterations / 2,
        "not opened {unopened}"
    );
}
