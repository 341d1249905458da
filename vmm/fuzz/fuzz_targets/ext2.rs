//! The ext2 writer (`noa-ext2`) on hostile images: a small image made once per process by
//! `mke2fs -d` (directories, a file through indirect blocks, fast and slow symlinks), patched at
//! fuzzer-chosen bytes, opened for writing, then a short fuzzer-chosen sequence of changes —
//! create, mkdir, symlink, link, unlink, rmdir, rename (plain, NOREPLACE, EXCHANGE), write,
//! truncate, fallocate, chmod, free, sync — and unmount.
//!
//! Besides "no panic, no hang, no unbounded allocation" on any image: on an unpatched image no
//! operation may report corruption or a device error (the writer never corrupts its own file
//! system), and after unmount the image must open again and read back whole.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use noa_ext2::{Corrupt, Error, Ext2, FileType, InodeNo, MemDisk, RenameFlags, SetAttr};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Image size: 1 KiB blocks, 32 inodes.
const IMAGE_BLOCKS: u64 = 256;
const NOW: u32 = 1_700_000_000;

/// A change to the image bytes before opening.
#[derive(Arbitrary, Debug)]
struct Patch {
    /// Byte offset; most metadata lies in the first 64 KiB.
    offset: u16,
    value: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Create {
        dir: u8,
        name: u8,
        kind: u8,
    },
    Symlink {
        dir: u8,
        name: u8,
        len: u16,
    },
    Link {
        dir: u8,
        name: u8,
        target: u8,
    },
    Unlink {
        dir: u8,
        name: u8,
    },
    Rmdir {
        dir: u8,
        name: u8,
    },
    Rename {
        from: u8,
        old: u8,
        to: u8,
        new: u8,
        flags: u8,
    },
    Write {
        file: u8,
        offset: u32,
        len: u16,
        byte: u8,
    },
    Truncate {
        file: u8,
        size: u32,
    },
    Allocate {
        file: u8,
        offset: u32,
        len: u32,
        keep: bool,
    },
    Chmod {
        file: u8,
        mode: u16,
    },
    Free {
        file: u8,
    },
    Sync,
}

#[derive(Arbitrary, Debug)]
struct Input {
    patches: Vec<Patch>,
    ops: Vec<Op>,
}

/// The image every input starts from.
fn seed_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("noa-ext2-fuzz-{}", std::process::id()));
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("boot/dir")).unwrap();
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        let kernel: Vec<u8> = (0..50_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
        std::fs::write(tree.join("boot/kernel"), kernel).unwrap();
        std::fs::write(tree.join("boot/dir/nested"), b"nested\n").unwrap();
        std::fs::write(tree.join("etc/hostname"), b"noa\n").unwrap();
        std::os::unix::fs::symlink("l".repeat(100), tree.join("boot/link")).unwrap();
        std::os::unix::fs::symlink("../kernel", tree.join("boot/dir/fast")).unwrap();
        let img = dir.join("seed.img");
        let mke2fs = ["/usr/sbin/mke2fs", "/sbin/mke2fs"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("the ext2 fuzz target builds its image with mke2fs: install e2fsprogs");
        let status = Command::new(mke2fs)
            .args(["-q", "-F", "-t", "ext2", "-b", "1024", "-N", "32", "-d"])
            .arg(&tree)
            .arg(&img)
            .arg(IMAGE_BLOCKS.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "mke2fs failed");
        let bytes = std::fs::read(&img).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    })
}

fn name(n: u8) -> Vec<u8> {
    match n % 10 {
        8 => vec![b'L'; 200],
        9 => b"kernel".to_vec(),
        k => format!("n{k}").into_bytes(),
    }
}

/// Inodes an op can name: the root, everything it found or made, or (on a patched image) any
/// number at all.
fn pick(known: &[InodeNo], n: u8, clean: bool) -> InodeNo {
    if n >= 0xf0 && !clean {
        InodeNo::new(u32::from(n - 0xf0))
    } else {
        known[usize::from(n) % known.len()]
    }
}

fn run(fs: &mut Ext2<MemDisk>, ops: &[Op], clean: bool) {
    let mut known = vec![InodeNo::ROOT];
    for path in [
        "/boot",
        "/boot/kernel",
        "/boot/dir",
        "/boot/link",
        "/etc",
        "/etc/hostname",
    ] {
        if let Ok(ino) = fs.lookup_path(path.as_bytes()) {
            known.push(ino);
        }
    }
    for op in ops.iter().take(24) {
        let result: Result<(), Error> = match *op {
            Op::Create { dir, name: n, kind } => {
                let mode =
                    [0o100_644, 0o40_755, 0o10_600, 0o20_666, 0o140_777][usize::from(kind % 5)];
                fs.create(pick(&known, dir, clean), &name(n), mode, 0, 0, 0x103, NOW)
                    .map(|inode| known.push(inode.ino()))
            }
            Op::Symlink { dir, name: n, len } => {
                let target = vec![b't'; usize::from(len % 1100) + 1];
                fs.symlink(pick(&known, dir, clean), &name(n), &target, 0, 0, NOW)
                    .map(|inode| known.push(inode.ino()))
            }
            Op::Link {
                dir,
                name: n,
                target,
            } => fs
                .link(
                    pick(&known, dir, clean),
                    &name(n),
                    pick(&known, target, clean),
                    NOW,
                )
                .map(drop),
            Op::Unlink { dir, name: n } => {
                fs.unlink(pick(&known, dir, clean), &name(n), NOW).map(drop)
            }
            Op::Rmdir { dir, name: n } => {
                fs.rmdir(pick(&known, dir, clean), &name(n), NOW).map(drop)
            }
            Op::Rename {
                from,
                old,
                to,
                new,
                flags,
            } => {
                let flags = RenameFlags {
                    noreplace: flags & 1 != 0,
                    exchange: flags & 2 != 0,
                };
                fs.rename(
                    pick(&known, from, clean),
                    &name(old),
                    pick(&known, to, clean),
                    &name(new),
                    flags,
                    NOW,
                )
                .map(drop)
            }
            Op::Write {
                file,
                offset,
                len,
                byte,
            } => {
                let data = vec![byte; usize::from(len % 40_000)];
                let offset = u64::from(offset) << (offset % 4 * 8);
                fs.write(pick(&known, file, clean), offset, &data, NOW)
                    .map(drop)
            }
            Op::Truncate { file, size } => fs
                .truncate(pick(&known, file, clean), u64::from(size % 300_000), NOW)
                .map(drop),
            Op::Allocate {
                file,
                offset,
                len,
                keep,
            } => fs
                .allocate(
                    pick(&known, file, clean),
                    u64::from(offset % 200_000),
                    u64::from(len % 100_000),
                    keep,
                    NOW,
                )
                .map(drop),
            Op::Chmod { file, mode } => {
                let attr = SetAttr {
                    mode: Some(mode),
                    ..SetAttr::default()
                };
                fs.set_attr(pick(&known, file, clean), attr).map(drop)
            }
            Op::Free { file } => fs.free_inode(pick(&known, file, clean), NOW),
            Op::Sync => fs.sync(),
        };
        if clean && let Err(e) = result {
            // Naming a freed inode is the caller's mistake; any other corruption is ours.
            let ours = match e {
                Error::Corrupt(c) => !matches!(
                    c,
                    Corrupt::InodeNotInUse { .. } | Corrupt::InodeAlreadyFree { .. }
                ),
                Error::Io { .. } | Error::WriteIo { .. } => true,
                _ => false,
            };
            assert!(
                !ours,
                "the writer broke its own file system: {e} after {op:?}"
            );
        }
    }
}

/// Reads everything reachable from the root (a clean image must read back whole).
fn read_back(fs: &Ext2<MemDisk>) {
    let mut stack = vec![InodeNo::ROOT];
    let mut visited = 0;
    while let Some(dir) = stack.pop() {
        visited += 1;
        assert!(visited < 100, "a directory loop");
        let inode = fs.inode(dir).unwrap();
        for entry in fs.read_dir(&inode).unwrap() {
            if entry.name == b"." || entry.name == b".." {
                continue;
            }
            let inode = fs.inode(entry.ino).unwrap();
            match inode.file_type() {
                FileType::Directory => stack.push(entry.ino),
                FileType::Regular => {
                    let mut buf = vec![0u8; 64 * 1024];
                    fs.read(&inode, 0, &mut buf).unwrap();
                }
                FileType::Symlink => drop(fs.read_link(&inode).unwrap()),
                _ => {}
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mut bytes = seed_image().to_vec();
    for patch in input.patches.iter().take(16) {
        if let Some(byte) = bytes.get_mut(usize::from(patch.offset)) {
            *byte = patch.value;
        }
    }
    let clean = input.patches.is_empty();
    let Ok(mut fs) = Ext2::open_rw(MemDisk::new(bytes)) else {
        assert!(!clean, "the seed image must open");
        return;
    };
    run(&mut fs, &input.ops, clean);
    let unmounted = fs.unmount();
    if clean {
        unmounted.unwrap();
        let fs = Ext2::open(MemDisk::new(fs.into_device().into_inner())).unwrap();
        read_back(&fs);
    }
});
