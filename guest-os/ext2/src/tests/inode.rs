//! Inode metadata against the source tree and debugfs, device numbers, symlinks fast and slow,
//! and statfs against dumpe2fs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::string::String;
use std::{format, vec};

use super::file::boot;
use super::fixture::{inode_at, tool};
use crate::{DeviceNumber, Error, FileType};

#[test]
fn inode_metadata_matches_the_source_tree() {
    let f = boot();
    f.file("bin/tool", b"#!/bin/sh\n");
    let tool_path = f.tree.join("bin/tool");
    fs::set_permissions(&tool_path, fs::Permissions::from_mode(0o4755)).unwrap();
    let old = fs::File::options().write(true).open(&tool_path).unwrap();
    old.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(981_173_106))
        .unwrap();
    drop(old);
    let fs = f.build(&["-t", "ext2"], 4096);
    for path in ["bin/tool", "boot/kernel", "boot", "bin"] {
        let meta = fs::symlink_metadata(f.tree.join(path)).unwrap();
        let inode = inode_at(&fs, &format!("/{path}")).unwrap();
        assert_eq!(u32::from(inode.mode()), meta.mode(), "{path}");
        assert_eq!(
            u32::from(inode.permissions()),
            meta.mode() & 0o7777,
            "{path}"
        );
        assert_eq!(inode.uid(), meta.uid(), "{path}");
        assert_eq!(inode.gid(), meta.gid(), "{path}");
        assert_eq!(inode.mtime(), meta.mtime(), "{path}");
        // mke2fs copies the access time before it reads the file, and its read may move the
        // source's (relatime): the image's can only be the same or older.
        assert!(inode.atime() <= meta.atime(), "{path}");
        if meta.is_file() {
            assert_eq!(inode.size(), meta.len(), "{path}");
            assert_eq!(inode.links(), 1);
            assert_eq!(inode.file_type(), FileType::Regular);
        } else {
            assert_eq!(inode.file_type(), FileType::Directory);
            assert!(inode.links() >= 2);
        }
        assert_eq!(inode.rdev(), None);
    }
    let tool = inode_at(&fs, "/bin/tool").unwrap();
    assert_eq!(tool.permissions(), 0o4755);
    assert_eq!(tool.mtime(), 981_173_106);
    // One data block of 1 KiB (mke2fs's default block size for a 4 MiB image).
    assert_eq!(tool.blocks(), fs.block_size() / 512);
}

#[test]
fn owner_ids_use_their_high_16_bits() {
    let f = boot();
    f.mkfs(&["-t", "ext2"], 4096);
    f.debugfs("sif /boot/kernel uid 0x12345\nsif /boot/kernel gid 0xabcdef\n");
    let fs = f.open().unwrap();
    let kernel = inode_at(&fs, "/boot/kernel").unwrap();
    assert_eq!(kernel.uid(), 0x12345);
    assert_eq!(kernel.gid(), 0xabcdef);
}

#[test]
fn device_nodes_fifos_and_their_numbers() {
    let f = boot();
    f.file("dev/.keep", b"");
    f.mkfs(&["-t", "ext2"], 4096);
    // Old-style (8:8 in i_block[0]) and new-style (12:20 in i_block[1]) numbers.
    f.debugfs(
        "cd /dev\nmknod null c 1 3\nmknod nvme b 259 1000\nmknod big b 300 5\nmknod fifo p\n",
    );
    f.fsck();
    let fs = f.open().unwrap();
    let cases = [
        ("null", FileType::CharDevice, Some((1, 3))),
        ("nvme", FileType::BlockDevice, Some((259, 1000))),
        ("big", FileType::BlockDevice, Some((300, 5))),
        ("fifo", FileType::Fifo, None),
    ];
    let dev = inode_at(&fs, "/dev").unwrap();
    let entries = fs.read_dir(&dev).unwrap();
    for (name, file_type, number) in cases {
        let inode = inode_at(&fs, &format!("/dev/{name}")).unwrap();
        assert_eq!(inode.file_type(), file_type, "{name}");
        let number = number.map(|(major, minor)| DeviceNumber { major, minor });
        assert_eq!(inode.rdev(), number, "{name}");
        let entry = entries.iter().find(|e| e.name == name.as_bytes()).unwrap();
        assert_eq!(entry.file_type, file_type);
    }
    // st_rdev as Linux encodes it: makedev(259, 1000).
    let nvme = DeviceNumber {
        major: 259,
        minor: 1000,
    };
    assert_eq!(
        nvme.encode(),
        (259 << 8) | (1000 & 0xff) | ((1000 & !0xff) << 12)
    );
    assert_eq!(FileType::CharDevice.dirent_type(), 2);
    assert_eq!(FileType::Regular.dirent_type(), 8);
    assert_eq!(FileType::Symlink.dirent_type(), 10);
}

#[test]
fn symlinks_fast_and_slow() {
    let f = boot();
    let slow = format!("/usr/lib/{}/target", "d".repeat(200));
    let fast = "../boot/cmdline";
    let sixty = "s".repeat(59);
    f.symlink("etc/fast", fast);
    f.symlink("etc/slow", &slow);
    f.symlink("etc/sixty", &sixty);
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    for (name, target) in [("fast", fast), ("slow", slow.as_str()), ("sixty", &sixty)] {
        let inode = inode_at(&fs, &format!("/etc/{name}")).unwrap();
        assert_eq!(inode.file_type(), FileType::Symlink);
        assert_eq!(inode.size(), target.len() as u64);
        assert_eq!(fs.read_link(&inode).unwrap(), target.as_bytes(), "{name}");
    }
    assert_eq!(inode_at(&fs, "/etc/fast").unwrap().blocks(), 0);
    assert_ne!(inode_at(&fs, "/etc/slow").unwrap().blocks(), 0);
    let kernel = inode_at(&fs, "/boot/kernel").unwrap();
    assert_eq!(
        fs.read_link(&kernel),
        Err(Error::NotASymlink {
            ino: kernel.ino(),
            file_type: FileType::Regular
        })
    );
}

/// A number from `dumpe2fs -h` output.
fn dumpe2fs_field(out: &str, field: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} not in dumpe2fs output"));
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn statfs_matches_dumpe2fs() {
    for bs in ["1024", "4096"] {
        let f = boot();
        f.file("big", &vec![1u8; 300_000]);
        f.mkfs(
            &["-t", "ext2", "-b", bs, "-m", "10"],
            16 * 1024 * 1024 / bs.parse::<u64>().unwrap(),
        );
        let out = Command::new(tool("dumpe2fs"))
            .arg("-h")
            .arg(&f.img)
            .output()
            .unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        let fs = f.open().unwrap();
        let st = fs.statfs();
        assert_eq!(st.block_size, dumpe2fs_field(&out, "Block size"));
        assert_eq!(st.blocks, dumpe2fs_field(&out, "Block count"));
        assert_eq!(st.free_blocks, dumpe2fs_field(&out, "Free blocks"));
        let reserved = dumpe2fs_field(&out, "Reserved block count");
        assert_eq!(st.available_blocks, st.free_blocks - reserved);
        assert_eq!(st.inodes, dumpe2fs_field(&out, "Inode count"));
        assert_eq!(st.free_inodes, dumpe2fs_field(&out, "Free inodes"));
        assert_eq!(st.name_max, 255);
    }
}
