//! Crash states: run a sequence of operations on a device that records every write and flush;
//! then, for many cut points k, apply only the first k writes to the original image (a crash
//! after the k-th write reached the disk), run `e2fsck -fy` (which must fix whatever it finds:
//! exit 0 or 1) and `e2fsck -fn` (which must then find nothing), and check that every file
//! synced before the cut reads back exactly as synced.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;
use std::{format, fs, println};

use super::fixture::{pattern, read_all};
use super::write_file::{DIR, REG, T0, image};
use crate::{BlockDevice, Ext2, InodeNo, IoError, MemDisk, RenameFlags};

/// A device that records its writes, in order, and the write count at each flush.
struct Recorder {
    disk: MemDisk,
    writes: RefCell<Vec<(u64, Vec<u8>)>>,
    flushes: RefCell<Vec<usize>>,
}

impl BlockDevice for Recorder {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.disk.read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        self.writes.borrow_mut().push((offset, buf.to_vec()));
        self.disk.write_at(offset, buf)
    }

    fn flush(&self) -> Result<(), IoError> {
        self.flushes.borrow_mut().push(self.writes.borrow().len());
        Ok(())
    }

    fn len(&self) -> u64 {
        self.disk.len()
    }
}

/// Files synced so far: their contents, the write count they were durable at, and the paths
/// they may be found at (a directory above them may have moved since).
#[derive(Default)]
struct Synced {
    files: BTreeMap<String, (Vec<u8>, usize, Vec<String>)>,
}

impl Synced {
    fn sync(&mut self, fs: &mut Ext2<&Recorder>, rec: &Recorder, paths: &[&str]) {
        fs.sync().unwrap();
        let at = rec.writes.borrow().len();
        for path in paths {
            let data = read_all(fs, path).unwrap();
            let paths = std::vec![String::from(*path)];
            self.files.insert(String::from(*path), (data, at, paths));
        }
    }

    /// Notes that `path` was removed: from now on it may be gone, but never different.
    fn removed(&mut self, path: &str) {
        if let Some((_, _, paths)) = self.files.get_mut(path) {
            paths.push(String::from("gone"));
        }
    }

    /// Notes that directory `from` moved to `to`.
    fn moved(&mut self, from: &str, to: &str) {
        for (path, (_, _, paths)) in self.files.iter_mut() {
            if let Some(rest) = path.strip_prefix(from) {
                paths.push(format!("{to}{rest}"));
            }
        }
    }
}

/// The operations: files synced along the way are never touched again; everything around them
/// changes (their directory grows and shrinks, other files grow through indirect blocks, are
/// truncated, renamed, deleted and freed).
fn scenario(fs: &mut Ext2<&Recorder>, rec: &Recorder, synced: &mut Synced) {
    let root = InodeNo::ROOT;
    let now = T0 + 100;
    let keep = fs.create(root, b"keep", DIR, 0, 0, 0, now).unwrap().ino();
    let a = fs.create(keep, b"a", REG, 0, 0, 0, now).unwrap().ino();
    fs.write(a, 0, &pattern(5000, 1), now).unwrap();
    let b = fs.create(keep, b"b", REG, 0, 0, 0, now).unwrap().ino();
    fs.write(b, 0, &pattern(40_000, 2), now).unwrap();
    fs.symlink(keep, b"link", b"a", 0, 0, now).unwrap();
    synced.sync(fs, rec, &["/keep/a", "/keep/b"]);

    // A file written in pieces, renamed out of its directory, synced.
    let d = fs.create(keep, b"d", REG, 0, 0, 0, now).unwrap().ino();
    for i in 0..5 {
        fs.write(d, i * 20_000, &pattern(20_000, 10 + i), now)
            .unwrap();
    }
    let x = fs.create(root, b"x", DIR, 0, 0, 0, now).unwrap().ino();
    let y = fs.create(x, b"y", DIR, 0, 0, 0, now).unwrap().ino();
    fs.rename(keep, b"d", y, b"moved", RenameFlags::default(), now)
        .unwrap();
    synced.sync(fs, rec, &["/x/y/moved"]);

    // The synced files' directory grows by blocks and shrinks; a big file comes and goes.
    for i in 0..60 {
        let name = format!("tmp-{i:03}-{}", "t".repeat(i % 30));
        let ino = fs
            .create(keep, name.as_bytes(), REG, 0, 0, 0, now)
            .unwrap()
            .ino();
        fs.write(ino, 0, &pattern(700 * (i % 5), i as u64), now)
            .unwrap();
    }
    for i in (0..60).step_by(2) {
        let name = format!("tmp-{i:03}-{}", "t".repeat(i % 30));
        let gone = fs.unlink(keep, name.as_bytes(), now).unwrap();
        fs.free_inode(gone.ino(), now).unwrap();
    }
    let big = fs.create(root, b"big", REG, 0, 0, 0, now).unwrap().ino();
    fs.write(big, 0, &pattern(300_000, 3), now).unwrap();
    fs.truncate(big, 1000, now).unwrap();
    fs.write(big, 500_000, b"far", now).unwrap();
    let c = fs.create(keep, b"c", REG, 0, 0, 0, now).unwrap().ino();
    fs.write(c, 0, &pattern(12_345, 4), now).unwrap();
    synced.sync(fs, rec, &["/keep/c", "/big"]);

    // Unsynced tail: directories move, files are replaced and freed.
    fs.rename(root, b"x", keep, b"x", RenameFlags::default(), now)
        .unwrap();
    synced.moved("/x/", "/keep/x/");
    let e = fs.create(root, b"e", REG, 0, 0, 0, now).unwrap().ino();
    fs.write(e, 0, &pattern(70_000, 5), now).unwrap();
    let exchange = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    fs.rename(keep, b"tmp-001-t", root, b"e", exchange, now)
        .unwrap();
    let replaced = fs
        .rename(
            root,
            b"e",
            keep,
            b"tmp-003-ttt",
            RenameFlags::default(),
            now,
        )
        .unwrap()
        .unwrap();
    fs.free_inode(replaced.ino(), now).unwrap();
    synced.removed("/big");
    let gone = fs.unlink(root, b"big", now).unwrap();
    fs.free_inode(gone.ino(), now).unwrap();
    let gone = fs.rmdir(keep, b"x", now);
    assert!(gone.is_err(), "x is not empty");
}

#[test]
fn every_crash_state_is_repaired_without_losing_synced_files() {
    for kind in [
        &["-t", "ext2", "-b", "1024"][..],
        &["-t", "ext2", "-b", "4096"],
    ] {
        let f = image(kind, 4);
        let original = f.bytes();
        let rec = Recorder {
            disk: MemDisk::new(original.clone()),
            writes: RefCell::new(Vec::new()),
            flushes: RefCell::new(Vec::new()),
        };
        let mut synced = Synced::default();
        let mut fs = Ext2::open_rw_at(&rec, Some(T0)).unwrap();
        scenario(&mut fs, &rec, &mut synced);
        drop(fs);
        let writes = rec.writes.borrow();
        let total = writes.len();
        // Every write near a flush, and a spread over the rest (`EXT2_CRASH_STEP=1`: all).
        let step =
            std::env::var("EXT2_CRASH_STEP").map_or((total / 150).max(1), |v| v.parse().unwrap());
        let mut cuts: Vec<usize> = (0..=total).step_by(step).collect();
        for &at in rec.flushes.borrow().iter() {
            cuts.extend(at.saturating_sub(3)..=(at + 3).min(total));
        }
        cuts.sort_unstable();
        cuts.dedup();
        println!("{kind:?}: {total} writes, {} cut points", cuts.len());
        let mut bytes = original.clone();
        let mut applied = 0;
        for &cut in &cuts {
            for (offset, data) in &writes[applied..cut] {
                let at = *offset as usize;
                bytes[at..at + data.len()].copy_from_slice(data);
            }
            applied = cut;
            fs::write(&f.img, &bytes).unwrap();
            let (code, out) = f.e2fsck(&["-fy"]);
            assert!(
                code == 0 || code == 1,
                "cut {cut}/{total}: e2fsck -fy exit {code}:\n{out}"
            );
            let (code, out) = f.e2fsck(&["-fn"]);
            assert_eq!(code, 0, "cut {cut}/{total}: e2fsck -fn after -fy:\n{out}");
            let fs = f.open().unwrap();
            for (path, (data, at, paths)) in &synced.files {
                if *at <= cut {
                    let back = paths.iter().find_map(|p| read_all(&fs, p).ok());
                    match back {
                        Some(back) => assert!(back == *data, "cut {cut}/{total}: {path} changed"),
                        None => assert!(
                            paths.iter().any(|p| p == "gone"),
                            "cut {cut}/{total}: {path} is gone"
                        ),
                    }
                }
            }
        }
    }
}
