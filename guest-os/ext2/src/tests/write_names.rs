//! Names: create of every file type, mkdir, symlinks fast and slow, hard links, unlink (of an
//! open file too), rmdir, a directory of thousands of entries, every rename case and the errors;
//! each image unmounted, checked by `e2fsck -fn` and read back by debugfs or the reader.

use std::collections::BTreeSet;
use std::vec::Vec;
use std::{format, vec};

use super::fixture::{inode_at, pattern, read_all};
use super::write_file::{DIR, KINDS, REG, T0, image};
use crate::{
    BlockDevice, DeviceNumber, Error, Ext2, FileType, Inode, InodeNo, LINK_MAX, MemDisk,
    RenameFlags,
};

fn names<D: BlockDevice>(fs: &Ext2<D>, dir: InodeNo) -> BTreeSet<Vec<u8>> {
    let dir = fs.inode(dir).unwrap();
    fs.read_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n != b"." && n != b"..")
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn mkdir(fs: &mut Ext2<MemDisk>, dir: InodeNo, name: &str) -> Inode {
    fs.create(dir, name.as_bytes(), DIR, 0, 0, 0, T0).unwrap()
}

fn touch(fs: &mut Ext2<MemDisk>, dir: InodeNo, name: &str) -> Inode {
    fs.create(dir, name.as_bytes(), REG, 0, 0, 0, T0).unwrap()
}

#[test]
fn creates_every_file_type() {
    for kind in KINDS {
        let f = image(kind, 4);
        let mut fs = f.open_rw(T0);
        let root = InodeNo::ROOT;
        let root_links = fs.inode(root).unwrap().links();
        let d = mkdir(&mut fs, root, "dir");
        assert_eq!(d.links(), 2);
        assert_eq!(fs.inode(root).unwrap().links(), root_links + 1);
        let sub = mkdir(&mut fs, d.ino(), "sub");
        touch(&mut fs, sub.ino(), "file");
        fs.create(root, b"fifo", 0o10_600, 1, 2, 0, T0).unwrap();
        fs.create(root, b"sock", 0o140_777, 0, 0, 0, T0).unwrap();
        // 1:3 fits the old 8:8 encoding, 259:70000 needs the new one.
        let null = fs.create(root, b"null", 0o20_666, 0, 0, 0x103, T0).unwrap();
        assert_eq!(null.rdev(), Some(DeviceNumber { major: 1, minor: 3 }));
        let big = DeviceNumber {
            major: 259,
            minor: 70000,
        };
        let rdev = big.encode() as u32;
        let blk = fs.create(root, b"blk", 0o60_660, 0, 6, rdev, T0).unwrap();
        assert_eq!(blk.rdev(), Some(big));
        assert_eq!(
            fs.create(root, b"dir", REG, 0, 0, 0, T0).unwrap_err(),
            Error::Exists
        );
        f.finish(fs);

        let fs = f.open().unwrap();
        assert_eq!(
            names(&fs, root),
            set(&["lost+found", "dir", "fifo", "sock", "null", "blk"])
        );
        let expect_type = |name: &str, ty| {
            let entry = fs
                .read_dir(&fs.inode(root).unwrap())
                .unwrap()
                .into_iter()
                .find(|e| e.name == name.as_bytes())
                .unwrap();
            let filetype = !kind.contains(&"^filetype") && !kind.contains(&"0");
            let want = if filetype { ty } else { FileType::Unknown };
            assert_eq!(entry.file_type, want, "{kind:?} {name}");
            assert_eq!(fs.inode(entry.ino).unwrap().file_type(), ty);
        };
        expect_type("dir", FileType::Directory);
        expect_type("fifo", FileType::Fifo);
        expect_type("sock", FileType::Socket);
        expect_type("null", FileType::CharDevice);
        expect_type("blk", FileType::BlockDevice);
        assert_eq!(inode_at(&fs, "/dir/sub/file").unwrap().size(), 0);
        assert_eq!(inode_at(&fs, "/blk").unwrap().rdev(), Some(big));
        let stat = f.debugfs_out("stat /null");
        assert!(stat.contains("Device major/minor number: 01:03"), "{stat}");
        let stat = f.debugfs_out("stat /fifo");
        assert!(
            stat.contains("Type: FIFO") && stat.contains("User:     1"),
            "{stat}"
        );
        let ls = f.debugfs_out("ls -l /dir");
        assert!(ls.contains(" sub"), "{ls}");
    }
}

#[test]
fn symlinks_fast_and_slow() {
    for kind in KINDS {
        let f = image(kind, 4);
        let mut fs = f.open_rw(T0);
        let root = InodeNo::ROOT;
        let fast_target = "a".repeat(59);
        let slow_target = format!("/{}", "b".repeat(700));
        let fast = fs
            .symlink(root, b"fast", fast_target.as_bytes(), 0, 0, T0)
            .unwrap();
        assert_eq!(fast.blocks(), 0);
        let slow = fs
            .symlink(root, b"slow", slow_target.as_bytes(), 0, 0, T0)
            .unwrap();
        assert_eq!(slow.blocks(), fs.block_size() / 512);
        let edge = fs.symlink(root, b"edge", &[b'c'; 60], 0, 0, T0).unwrap();
        assert_ne!(edge.blocks(), 0, "60 bytes do not fit with the NUL");
        assert_eq!(fs.read_link(&fast).unwrap(), fast_target.as_bytes());
        assert_eq!(fs.read_link(&slow).unwrap(), slow_target.as_bytes());
        assert_eq!(
            fs.symlink(root, b"x", b"", 0, 0, T0).unwrap_err(),
            Error::NotFound
        );
        let too_long = vec![b'x'; 4096];
        assert_eq!(
            fs.symlink(root, b"x", &too_long, 0, 0, T0).unwrap_err(),
            Error::NameTooLong
        );
        f.finish(fs);
        let fs = f.open().unwrap();
        let read = |p: &str| fs.read_link(&inode_at(&fs, p).unwrap()).unwrap();
        assert_eq!(read("/fast"), fast_target.as_bytes());
        assert_eq!(read("/slow"), slow_target.as_bytes());
        let stat = f.debugfs_out("stat /fast");
        assert!(stat.contains("Fast link dest"), "{stat}");
        // The unlink and free of both kinds of link.
        let mut fs = f.open_rw(T0);
        for name in ["fast", "slow", "edge"] {
            let gone = fs.unlink(root, name.as_bytes(), T0).unwrap();
            assert_eq!(gone.links(), 0);
            fs.free_inode(gone.ino(), T0).unwrap();
        }
        f.finish(fs);
    }
}

#[test]
fn hard_links_and_unlink() {
    for kind in KINDS {
        let f = image(kind, 4);
        let mut fs = f.open_rw(T0);
        let root = InodeNo::ROOT;
        let d = mkdir(&mut fs, root, "d");
        let file = touch(&mut fs, root, "file");
        fs.write(file.ino(), 0, b"shared", T0).unwrap();
        let linked = fs.link(d.ino(), b"again", file.ino(), T0).unwrap();
        assert_eq!(linked.links(), 2);
        assert_eq!(
            fs.link(root, b"d2", d.ino(), T0).unwrap_err(),
            Error::NotPermitted("a hard link to a directory")
        );
        assert_eq!(
            fs.link(root, b"file", file.ino(), T0).unwrap_err(),
            Error::Exists
        );
        assert_eq!(
            fs.unlink(root, b"d", T0).unwrap_err(),
            Error::IsADirectory { ino: d.ino() }
        );
        assert_eq!(fs.unlink(root, b"nope", T0).unwrap_err(), Error::NotFound);
        let after = fs.unlink(root, b"file", T0).unwrap();
        assert_eq!(after.links(), 1);
        f.finish(fs);
        let fs = f.open().unwrap();
        assert_eq!(read_all(&fs, "/d/again").unwrap(), b"shared");
        assert_eq!(inode_at(&fs, "/d/again").unwrap().links(), 1);
    }
}

#[test]
fn unlinked_open_file_reads_until_freed() {
    for kind in KINDS {
        let f = image(kind, 4);
        let mut fs = f.open_rw(T0);
        let root = InodeNo::ROOT;
        let free_before = fs.statfs();
        let file = touch(&mut fs, root, "open");
        let data = pattern(200_000, 3);
        fs.write(file.ino(), 0, &data, T0).unwrap();
        let gone = fs.unlink(root, b"open", T0).unwrap();
        assert_eq!(gone.links(), 0);
        assert_eq!(fs.lookup_path(b"/open").unwrap_err(), Error::NotFound);
        // Still readable, writable, by inode.
        let mut back = vec![0u8; data.len()];
        assert_eq!(fs.read(&gone, 0, &mut back).unwrap(), data.len());
        assert_eq!(back, data);
        let again = fs.inode_any_links(file.ino()).unwrap();
        assert_eq!(again.links(), 0);
        let grown = fs.write(file.ino(), 200_000, b"tail", T0).unwrap();
        assert_eq!(grown.size(), 200_004);
        assert_eq!(
            fs.link(root, b"back", file.ino(), T0).unwrap_err(),
            Error::NotFound
        );
        fs.free_inode(file.ino(), T0 + 5).unwrap();
        assert!(fs.inode_any_links(file.ino()).is_err());
        assert!(fs.free_inode(file.ino(), T0).is_err());
        assert_eq!(fs.statfs(), free_before, "everything given back");
        f.finish(fs);
    }
}

#[test]
fn rmdir_only_empty_directories() {
    for kind in KINDS {
        let f = image(kind, 4);
        let mut fs = f.open_rw(T0);
        let root = InodeNo::ROOT;
        let before = fs.statfs();
        let root_links = fs.inode(root).unwrap().links();
        let d = mkdir(&mut fs, root, "d");
        let e = mkdir(&mut fs, d.ino(), "e");
        touch(&mut fs, e.ino(), "f");
        assert_eq!(fs.rmdir(root, b"d", T0).unwrap_err(), Error::NotEmpty);
        assert_eq!(fs.rmdir(d.ino(), b"e", T0).unwrap_err(), Error::NotEmpty);
        assert_eq!(
            fs.rmdir(e.ino(), b"f", T0).unwrap_err(),
            Error::NotADirectory {
                ino: fs.lookup_path(b"/d/e/f").unwrap()
            }
        );
        assert_eq!(fs.rmdir(d.ino(), b"..", T0).unwrap_err(), Error::NotEmpty);
        let f_ino = fs.unlink(e.ino(), b"f", T0).unwrap().ino();
        fs.free_inode(f_ino, T0).unwrap();
        let gone = fs.rmdir(d.ino(), b"e", T0).unwrap();
        assert_eq!(gone.links(), 0);
        assert_eq!(fs.inode(d.ino()).unwrap().links(), 2);
        // A removed directory takes no new entries.
        assert_eq!(
            fs.create(e.ino(), b"x", REG, 0, 0, 0, T0).unwrap_err(),
            Error::NotFound
        );
        fs.free_inode(e.ino(), T0).unwrap();
        let gone = fs.rmdir(root, b"d", T0).unwrap();
        fs.free_inode(gone.ino(), T0).unwrap();
        assert_eq!(fs.inode(root).unwrap().links(), root_links);
        assert_eq!(fs.statfs(), before);
        f.finish(fs);
    }
}

#[test]
fn directory_with_thousands_of_entries() {
    for kind in [KINDS[0], KINDS[1], KINDS[2]] {
        let f = image(kind, 16);
        let mut fs = f.open_rw(T0);
        let d = mkdir(&mut fs, InodeNo::ROOT, "many");
        let name = |i: usize| format!("entry-{i:05}-{}", "n".repeat(i % 40));
        let n = 3000;
        for i in 0..n {
            touch(&mut fs, d.ino(), &name(i));
        }
        assert!(fs.inode(d.ino()).unwrap().size() > 12 * fs.block_size());
        for i in (0..n).step_by(2) {
            let gone = fs.unlink(d.ino(), name(i).as_bytes(), T0).unwrap();
            fs.free_inode(gone.ino(), T0).unwrap();
        }
        let expected: BTreeSet<Vec<u8>> = (1..n).step_by(2).map(|i| name(i).into_bytes()).collect();
        assert_eq!(names(&fs, d.ino()), expected);
        // Freed room is reused.
        let size = fs.inode(d.ino()).unwrap().size();
        for i in 0..200 {
            touch(&mut fs, d.ino(), &format!("again{i}"));
        }
        assert_eq!(fs.inode(d.ino()).unwrap().size(), size);
        f.finish(fs);
        let fs = f.open().unwrap();
        let listed = names(&fs, fs.lookup_path(b"/many").unwrap());
        assert_eq!(listed.len(), n / 2 + 200);
        let ls = f.debugfs_out("ls /many");
        assert!(ls.contains(&name(2999)), "debugfs lists the last entry");
    }
}

#[test]
fn rename_in_all_its_cases() {
    for kind in KINDS {
        let f = image(kind, 4);
        let mut fs = f.open_rw(T0);
        let root = InodeNo::ROOT;
        let none = RenameFlags::default();
        let a = mkdir(&mut fs, root, "a");
        let b = mkdir(&mut fs, root, "b");
        let file = touch(&mut fs, a.ino(), "file");
        fs.write(file.ino(), 0, b"contents", T0).unwrap();
        let root_links = fs.inode(root).unwrap().links();

        // Same name: nothing happens. Missing source: NotFound.
        assert_eq!(
            fs.rename(a.ino(), b"file", a.ino(), b"file", none, T0),
            Ok(None)
        );
        assert_eq!(
            fs.rename(a.ino(), b"nope", a.ino(), b"x", none, T0),
            Err(Error::NotFound)
        );
        // Within a directory, then across directories.
        assert_eq!(
            fs.rename(a.ino(), b"file", a.ino(), b"renamed", none, T0),
            Ok(None)
        );
        assert_eq!(
            fs.rename(a.ino(), b"renamed", b.ino(), b"moved", none, T0),
            Ok(None)
        );
        assert_eq!(names(&fs, a.ino()), set(&[]));
        assert_eq!(names(&fs, b.ino()), set(&["moved"]));

        // Replacing a file: the old one comes back with a link less.
        let victim = touch(&mut fs, root, "victim");
        let replaced = fs
            .rename(b.ino(), b"moved", root, b"victim", none, T0)
            .unwrap()
            .unwrap();
        assert_eq!(replaced.ino(), victim.ino());
        assert_eq!(replaced.links(), 0);
        fs.free_inode(replaced.ino(), T0).unwrap();
        assert_eq!(read_all(&fs, "/victim").unwrap(), b"contents");

        // NOREPLACE.
        touch(&mut fs, root, "other");
        let noreplace = RenameFlags {
            noreplace: true,
            exchange: false,
        };
        assert_eq!(
            fs.rename(root, b"victim", root, b"other", noreplace, T0),
            Err(Error::Exists)
        );
        // Type mismatches and non-empty targets.
        assert_eq!(
            fs.rename(root, b"victim", root, b"a", none, T0),
            Err(Error::IsADirectory { ino: a.ino() })
        );
        let other = fs.lookup_path(b"/other").unwrap();
        assert_eq!(
            fs.rename(root, b"a", root, b"other", none, T0),
            Err(Error::NotADirectory { ino: other })
        );
        let c = mkdir(&mut fs, b.ino(), "c");
        assert_eq!(
            fs.rename(root, b"a", root, b"b", none, T0),
            Err(Error::NotEmpty)
        );
        // A directory into itself or below.
        assert!(matches!(
            fs.rename(root, b"b", c.ino(), b"x", none, T0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            fs.rename(root, b"b", b.ino(), b"x", none, T0),
            Err(Error::InvalidArgument(_))
        ));

        // Moving a directory: `..` and both parents' links follow.
        assert_eq!(fs.rename(b.ino(), b"c", a.ino(), b"c", none, T0), Ok(None));
        assert_eq!(fs.lookup_path(b"/a/c/..").unwrap(), a.ino());
        assert_eq!(fs.inode(a.ino()).unwrap().links(), 3);
        assert_eq!(fs.inode(b.ino()).unwrap().links(), 2);
        // A directory replacing an empty directory.
        let empty = mkdir(&mut fs, root, "empty");
        let replaced = fs
            .rename(a.ino(), b"c", root, b"empty", none, T0)
            .unwrap()
            .unwrap();
        assert_eq!(replaced.ino(), empty.ino());
        assert_eq!(replaced.links(), 0);
        fs.free_inode(empty.ino(), T0).unwrap();
        assert_eq!(fs.lookup_path(b"/empty/..").unwrap(), root);
        assert_eq!(fs.inode(a.ino()).unwrap().links(), 2);
        assert_eq!(fs.inode(root).unwrap().links(), root_links + 1);

        // Renaming onto another name of the same inode does nothing.
        fs.link(root, b"alias", other, T0).unwrap();
        assert_eq!(
            fs.rename(root, b"other", root, b"alias", none, T0),
            Ok(None)
        );
        assert_eq!(fs.inode(other).unwrap().links(), 2);

        // EXCHANGE: a file and a directory swap places across directories.
        let exchange = RenameFlags {
            noreplace: false,
            exchange: true,
        };
        let inner = touch(&mut fs, b.ino(), "inner");
        assert_eq!(
            fs.rename(b.ino(), b"inner", root, b"empty", exchange, T0),
            Ok(None)
        );
        // The names stay, the inodes swap: /b/inner is now the directory.
        let moved_dir = fs.lookup_path(b"/b/inner").unwrap();
        assert_eq!(
            fs.inode(moved_dir).unwrap().file_type(),
            FileType::Directory
        );
        assert_eq!(fs.lookup_path(b"/empty").unwrap(), inner.ino());
        assert_eq!(fs.lookup_path(b"/b/inner/..").unwrap(), b.ino());
        assert_eq!(fs.inode(b.ino()).unwrap().links(), 3);
        assert_eq!(
            fs.rename(root, b"nope", root, b"a", exchange, T0),
            Err(Error::NotFound)
        );
        assert_eq!(
            fs.rename(root, b"a", root, b"nope", exchange, T0),
            Err(Error::NotFound)
        );
        // Exchanging a directory with something inside it.
        touch(&mut fs, moved_dir, "deep");
        assert!(matches!(
            fs.rename(root, b"b", moved_dir, b"deep", exchange, T0),
            Err(Error::InvalidArgument(_))
        ));
        f.finish(fs);
        let fs = f.open().unwrap();
        assert_eq!(read_all(&fs, "/victim").unwrap(), b"contents");
        assert_eq!(fs.lookup_path(b"/b/inner/..").unwrap(), b.ino());
        assert_eq!(
            fs.lookup_path(b"/b/inner/deep/..").unwrap_err(),
            Error::NotADirectory {
                ino: fs.lookup_path(b"/b/inner/deep").unwrap()
            }
        );
    }
}

/// A rename within one directory scans it once and puts the new name in the first room, which
/// may be the slack of the old entry itself or of the entry before it: removing the old entry
/// afterwards must not swallow the new one.
#[test]
fn rename_within_a_directory_into_the_slack_around_the_old_entry() {
    for kind in [KINDS[0], KINDS[1]] {
        let f = image(kind, 4);
        let mut fs = f.open_rw(T0);
        let none = RenameFlags::default();
        let d = mkdir(&mut fs, InodeNo::ROOT, "d").ino();
        touch(&mut fs, d, "x");
        touch(&mut fs, d, "y");
        let z = touch(&mut fs, d, "z").ino();
        // "z" is last and holds the block's slack: "zz" goes into it.
        assert_eq!(fs.rename(d, b"z", d, b"zz", none, T0), Ok(None));
        assert_eq!(names(&fs, d), set(&["x", "y", "zz"]));
        // Without "y", "x" holds 12 spare bytes just before "zz": "w2" goes there.
        let y = fs.unlink(d, b"y", T0).unwrap();
        fs.free_inode(y.ino(), T0).unwrap();
        assert_eq!(fs.rename(d, b"zz", d, b"w2", none, T0), Ok(None));
        assert_eq!(names(&fs, d), set(&["x", "w2"]));
        let dir = fs.inode(d).unwrap();
        assert_eq!(fs.lookup(&dir, b"w2"), Ok(Some(z)));
        // And a new name still finds room after them.
        touch(&mut fs, d, "v");
        assert_eq!(names(&fs, d), set(&["x", "w2", "v"]));
        f.finish(fs);
        let fs = f.open().unwrap();
        assert_eq!(names(&fs, d), set(&["x", "w2", "v"]));
    }
}

#[test]
fn name_and_state_errors() {
    let f = image(KINDS[0], 4);
    let mut fs = f.open_rw(T0);
    let root = InodeNo::ROOT;
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(
            fs.create(root, bad, REG, 0, 0, 0, T0).unwrap_err(),
            Error::InvalidName,
            "{bad:?}"
        );
    }
    let long = vec![b'n'; 256];
    assert_eq!(
        fs.create(root, &long, REG, 0, 0, 0, T0).unwrap_err(),
        Error::NameTooLong
    );
    assert_eq!(Error::NameTooLong.errno(), 36);
    assert_eq!(Error::InvalidName.errno(), 22);
    let max = vec![b'n'; 255];
    touch(&mut fs, root, std::str::from_utf8(&max).unwrap());
    // A free inode is no directory to create in.
    assert!(matches!(
        fs.create(InodeNo::new(100), b"x", REG, 0, 0, 0, T0)
            .unwrap_err(),
        Error::Corrupt(crate::Corrupt::InodeNotInUse { .. })
    ));
    let plain = touch(&mut fs, root, "plain");
    assert_eq!(
        fs.create(plain.ino(), b"x", REG, 0, 0, 0, T0).unwrap_err(),
        Error::NotADirectory { ino: plain.ino() }
    );
    assert!(matches!(
        fs.create(root, b"bad", 0o777, 0, 0, 0, T0).unwrap_err(),
        Error::InvalidArgument(_)
    ));
    // Reserved inodes cannot be changed.
    assert!(matches!(
        fs.write(InodeNo::new(7), 0, b"x", T0).unwrap_err(),
        Error::NotPermitted(_)
    ));
    // Link count limit.
    let many = touch(&mut fs, root, "many");
    let mut raw = fs.read_raw(many.ino()).unwrap();
    raw.set_links(LINK_MAX);
    fs.write_raw(&raw).unwrap();
    assert_eq!(
        fs.link(root, b"one-more", many.ino(), T0).unwrap_err(),
        Error::TooManyLinks
    );
    raw.set_links(1);
    fs.write_raw(&raw).unwrap();
    f.finish(fs);
    // Read-only: every change fails.
    let mut ro = Ext2::open(MemDisk::new(f.bytes())).unwrap();
    assert!(!ro.writable());
    assert_eq!(
        ro.create(root, b"x", REG, 0, 0, 0, T0).unwrap_err(),
        Error::ReadOnly
    );
    assert_eq!(ro.sync().unwrap_err(), Error::ReadOnly);
    assert_eq!(Error::ReadOnly.errno(), 30);
}

#[test]
fn other_block_sizes() {
    // 64 KiB blocks store a whole-block record's rec_len as 65535.
    for (bs, mib) in [("2048", 8), ("65536", 32)] {
        let f = image(&["-t", "ext2", "-b", bs], mib);
        let mut fs = f.open_rw(T0);
        let d = mkdir(&mut fs, InodeNo::ROOT, "d");
        let name = |i: usize| format!("{i:04}{}", "x".repeat(200));
        for i in 0..400 {
            touch(&mut fs, d.ino(), &name(i));
        }
        assert!(fs.inode(d.ino()).unwrap().size() > fs.block_size());
        for i in 0..400 {
            if i % 3 != 0 {
                let gone = fs.unlink(d.ino(), name(i).as_bytes(), T0).unwrap();
                fs.free_inode(gone.ino(), T0).unwrap();
            }
        }
        let file = touch(&mut fs, InodeNo::ROOT, "data");
        let data = pattern(300_000, 1);
        fs.write(file.ino(), 12_345, &data, T0).unwrap();
        fs.truncate(file.ino(), 100_000, T0).unwrap();
        f.finish(fs);
        let fs = f.open().unwrap();
        assert_eq!(names(&fs, fs.lookup_path(b"/d").unwrap()).len(), 134);
        assert_eq!(
            read_all(&fs, "/data").unwrap()[12_345..],
            data[..100_000 - 12_345]
        );
    }
}

#[test]
fn changes_an_htree_indexed_directory_as_linear() {
    // e2fsck -D indexes a large directory (dir_index); we write it as plain ext2, dropping the
    // index as Linux ext2 does.
    let f = image(KINDS[0], 8);
    let mut fs = f.open_rw(T0);
    let d = mkdir(&mut fs, InodeNo::ROOT, "big");
    for i in 0..400 {
        touch(&mut fs, d.ino(), &format!("file-{i:04}"));
    }
    f.finish(fs);
    let (code, out) = f.e2fsck(&["-fyD"]);
    assert!(code <= 1, "{out}");
    let stat = f.debugfs_out("stat /big");
    assert!(stat.contains("Flags: 0x1000"), "indexed: {stat}");
    let mut fs = f.open_rw(T0);
    for i in 0..400 {
        if i % 2 == 0 {
            let gone = fs
                .unlink(d.ino(), format!("file-{i:04}").as_bytes(), T0)
                .unwrap();
            fs.free_inode(gone.ino(), T0).unwrap();
        }
    }
    for i in 0..100 {
        touch(&mut fs, d.ino(), &format!("new-{i}"));
    }
    assert_eq!(fs.inode(d.ino()).unwrap().flags() & 0x1000, 0);
    assert_eq!(names(&fs, d.ino()).len(), 300);
    f.finish(fs);
}
