//! Directories and paths: listings against the source tree, streaming and resuming by offset,
//! `.` and `..` from disk, and every path error.

use core::ops::ControlFlow;
use std::collections::BTreeMap;
use std::format;
use std::vec::Vec;

use super::file::{assert_boot_files, boot};
use super::fixture::{inode_at, read_all};
use crate::{BlockDevice, DirEntry, Error, Ext2, FileType, InodeNo};

/// Names (without `.` and `..`) and types of `dir`, via `read_dir`.
fn listing<D: BlockDevice>(fs: &Ext2<D>, dir: &str) -> BTreeMap<Vec<u8>, FileType> {
    let inode = inode_at(fs, dir).unwrap();
    fs.read_dir(&inode)
        .unwrap()
        .into_iter()
        .filter(|e| e.name != b"." && e.name != b"..")
        .map(|e| (e.name, e.file_type))
        .collect()
}

#[test]
fn read_dir_lists_what_mke2fs_copied() {
    let f = boot();
    f.file("etc/hostname", b"noa\n");
    f.file("etc/noa/services.toml", b"");
    f.symlink("etc/localtime", "/usr/share/zoneinfo/UTC");
    let fs = f.build(&["-t", "ext2"], 4096);
    let mut expected = BTreeMap::new();
    for entry in std::fs::read_dir(f.tree.join("etc")).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let file_type = if kind.is_dir() {
            FileType::Directory
        } else if kind.is_symlink() {
            FileType::Symlink
        } else {
            FileType::Regular
        };
        expected.insert(entry.file_name().into_encoded_bytes(), file_type);
    }
    assert_eq!(listing(&fs, "/etc"), expected);

    // `.` and `..` are listed first, and each entry's inode is the one lookup finds.
    let etc = inode_at(&fs, "/etc").unwrap();
    let entries = fs.read_dir(&etc).unwrap();
    assert_eq!(entries[0].name, b".");
    assert_eq!(entries[0].ino, etc.ino());
    assert_eq!(entries[1].name, b"..");
    assert_eq!(entries[1].ino, InodeNo::ROOT);
    for entry in &entries {
        assert_eq!(fs.lookup(&etc, &entry.name).unwrap(), Some(entry.ino));
        let inode = fs.inode(entry.ino).unwrap();
        assert_eq!(inode.file_type(), entry.file_type);
    }
    assert_eq!(fs.lookup(&etc, b"nope").unwrap(), None);
    assert_eq!(fs.lookup(&etc, b"").unwrap(), None);
    assert_eq!(fs.lookup(&etc, b"noa/services.toml").unwrap(), None);
}

#[test]
fn big_directory_streams_and_resumes_by_offset() {
    let f = boot();
    let name = |i: usize| format!("entry-{i:04}-{}", "x".repeat(60));
    for i in 0..600 {
        f.file(
            &format!("boot/{}", name(i)),
            format!("file {i}\n").as_bytes(),
        );
    }
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let dir = inode_at(&fs, "/boot").unwrap();
    assert!(dir.size() > 20 * 1024, "directory should span many blocks");
    for i in [0, 1, 299, 598, 599] {
        let path = format!("/boot/{}", name(i));
        assert_eq!(
            read_all(&fs, &path).unwrap(),
            format!("file {i}\n").as_bytes()
        );
    }
    assert_boot_files(&fs);

    let all = fs.read_dir(&dir).unwrap();
    assert_eq!(all.len(), 600 + 2 + 2);

    // One entry at a time by offset gives the same list, ending at None.
    let mut one_by_one = Vec::new();
    let mut offset = 0;
    while let Some((entry, next)) = fs.read_dir_at(&dir, offset).unwrap() {
        assert!(next > offset);
        one_by_one.push(entry);
        offset = next;
    }
    assert_eq!(one_by_one, all);

    // getdents64-style: take up to 7 entries per call, resume where the last call stopped.
    let mut streamed: Vec<DirEntry> = Vec::new();
    let mut offset = 0;
    let mut calls = 0;
    loop {
        let mut taken = 0;
        let mut last_next = None;
        let resume = fs
            .read_dir_from(&dir, offset, |entry| {
                if taken == 7 {
                    return ControlFlow::Break(());
                }
                taken += 1;
                last_next = Some(entry.next_offset);
                streamed.push(entry.to_entry());
                ControlFlow::Continue(())
            })
            .unwrap();
        calls += 1;
        if taken == 0 {
            assert_eq!(resume, dir.size());
            break;
        }
        if taken == 7 && resume != dir.size() {
            // The refused entry starts where the last taken one said the next would.
            assert!(resume >= last_next.unwrap());
        }
        offset = resume;
    }
    assert_eq!(streamed, all);
    assert_eq!(calls, all.len().div_ceil(7) + 1);
}

#[test]
fn offsets_inside_entries_resume_at_the_next_entry() {
    let f = boot();
    for i in 0..40 {
        f.file(&format!("d/{i}"), b"");
    }
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let dir = inode_at(&fs, "/d").unwrap();
    let mut starts = Vec::new();
    fs.read_dir_from(&dir, 0, |e| {
        starts.push(e.offset);
        ControlFlow::Continue(())
    })
    .unwrap();
    for offset in 0..dir.size() + 10 {
        let got = fs.read_dir_at(&dir, offset).unwrap();
        let want = starts.iter().position(|&s| s >= offset);
        match (got, want) {
            (None, None) => {}
            (Some((entry, _)), Some(i)) => {
                let all = fs.read_dir(&dir).unwrap();
                assert_eq!(entry, all[i], "offset {offset}");
            }
            (got, want) => panic!("offset {offset}: got {got:?}, want entry {want:?}"),
        }
    }
}

#[test]
fn lookup_path_reads_dot_and_dotdot_from_disk() {
    let f = boot();
    f.file("a/b/c/d/e/deep.txt", b"deep\n");
    f.file("a/b/other", b"other\n");
    let fs = f.build(&["-t", "ext2", "-b", "4096"], 1024);
    let deep = fs.lookup_path(b"/a/b/c/d/e/deep.txt").unwrap();
    for path in [
        "//a//b/c/d/e/deep.txt",
        "/a/./b/c/./d/e/deep.txt",
        "/a/b/../b/c/d/../../c/d/e/deep.txt",
        "/../../a/b/c/d/e/deep.txt",
    ] {
        assert_eq!(fs.lookup_path(path.as_bytes()).unwrap(), deep, "{path}");
    }
    assert_eq!(fs.lookup_path(b"/").unwrap(), InodeNo::ROOT);
    assert_eq!(fs.lookup_path(b"/..").unwrap(), InodeNo::ROOT);
    assert_eq!(
        fs.lookup_path(b"/a/b/..").unwrap(),
        fs.lookup_path(b"/a").unwrap()
    );
    assert_eq!(
        fs.lookup_path(b"/a/b/").unwrap(),
        fs.lookup_path(b"/a/b").unwrap()
    );
    assert_eq!(read_all(&fs, "/a/b/c/../other").unwrap(), b"other\n");
}

#[test]
fn lookup_path_errors() {
    let f = boot();
    f.symlink("bootlink", "boot");
    let fs = f.build(&["-t", "ext2"], 4096);
    let kernel = fs.lookup_path(b"/boot/kernel").unwrap();
    let link = fs.lookup_path(b"/bootlink").unwrap();
    let long = format!("/{}", "a".repeat(256));
    let cases: [(&str, Error); 10] = [
        ("", Error::NotAbsolute),
        ("boot/kernel", Error::NotAbsolute),
        (&long, Error::NameTooLong),
        ("/nope", Error::NotFound),
        ("/boot/nope", Error::NotFound),
        ("/nope/kernel", Error::NotFound),
        ("/boot/kerne", Error::NotFound),
        ("/boot/kernel/x", Error::NotADirectory { ino: kernel }),
        ("/boot/kernel/", Error::NotADirectory { ino: kernel }),
        // Symlinks are not followed, in the middle of a path or before a trailing slash.
        ("/bootlink/kernel", Error::NotADirectory { ino: link }),
    ];
    for (path, want) in cases {
        assert_eq!(fs.lookup_path(path.as_bytes()), Err(want), "{path:?}");
    }
    assert_eq!(
        fs.lookup_path(b"/bootlink/"),
        Err(Error::NotADirectory { ino: link })
    );
    // 255 bytes is a valid (absent) name.
    let max = format!("/{}", "a".repeat(255));
    assert_eq!(fs.lookup_path(max.as_bytes()), Err(Error::NotFound));
    let kernel = fs.inode(kernel).unwrap();
    assert_eq!(
        fs.lookup(&kernel, b"x"),
        Err(Error::NotADirectory { ino: kernel.ino() })
    );
    assert_eq!(
        fs.read_dir(&kernel),
        Err(Error::NotADirectory { ino: kernel.ino() })
    );
    let root = fs.inode(fs.root()).unwrap();
    assert_eq!(
        fs.lookup(&root, "a".repeat(256).as_bytes()),
        Err(Error::NameTooLong)
    );
}

/// The directory walk reads a block in pieces when its buffer is shorter than a block (a
/// reader's 4 KiB buffer under 64 KiB blocks): any buffer that holds one entry sees every
/// entry where a whole block would, at the same offsets, with the same neighbours; and lookups
/// compare names by length and last word first, so names that differ in one byte anywhere are
/// told apart.
#[test]
fn walks_with_short_buffers_see_what_whole_blocks_see() {
    use crate::dir_scan::{ENTRY_MAX, EntryPlace, RawEntry, every_entry};
    let f = boot();
    // Names of every length 1..=255, differing from their neighbours in the first, a middle
    // or the last byte.
    let name = |i: usize| {
        let mut n = std::vec![b'a' + (i % 26) as u8; 1 + i % 255];
        let at = [0, n.len() / 2, n.len() - 1][i % 3];
        n[at] = b'0' + (i / 26 % 10) as u8;
        n
    };
    let mut names: Vec<Vec<u8>> = (0..400).map(name).collect();
    names.sort();
    names.dedup();
    for n in &names {
        f.file(&format!("boot/{}", std::str::from_utf8(n).unwrap()), b"x");
    }
    let fs = f.build(&["-t", "ext2", "-b", "4096"], 4096);
    let dir = inode_at(&fs, "/boot").unwrap();
    let walk = |len: usize| {
        let mut seen = Vec::new();
        let mut buf = std::vec![0u8; len];
        let mut visitor = every_entry(|place: &EntryPlace, entry: &RawEntry<'_>| {
            seen.push((
                place.offset,
                place.device,
                place.prev,
                entry.ino,
                entry.name.to_vec(),
            ));
            ControlFlow::Continue(())
        });
        fs.walk_dir(&dir, 0, &mut buf, &mut visitor).unwrap();
        drop(visitor);
        seen
    };
    let whole = walk(4096);
    assert!(whole.len() > names.len());
    for len in [ENTRY_MAX, ENTRY_MAX + 1, 300, 1000, 1024, 4095] {
        assert!(walk(len) == whole, "buffer of {len}");
    }
    for n in &names {
        assert!(fs.lookup(&dir, n).unwrap().is_some(), "{n:?}");
        let mut other = n.clone();
        other[n.len() / 2] ^= 0x40;
        if names.binary_search(&other).is_err() {
            assert_eq!(fs.lookup(&dir, &other).unwrap(), None, "{other:?}");
        }
    }
}
