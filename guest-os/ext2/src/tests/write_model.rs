//! A model-based random test: thousands of random operations applied both to the file system and
//! to an in-memory model that predicts every result, errors included; then unmount, `e2fsck -fn`
//! clean, and every file's contents, size and links and every directory listing equal to the
//! model's, read back from the image.

use std::collections::BTreeMap;
use std::vec::Vec;
use std::{format, println, vec};

use super::fixture::{XorShift, pattern};
use super::write_file::{DIR, KINDS, REG, T0, image};
use crate::{BlockDevice, Error, Ext2, FileType, InodeNo, MemDisk, RenameFlags, SetAttr};

#[derive(Debug, Default)]
struct FileModel {
    data: Vec<u8>,
    links: u16,
}

#[derive(Debug)]
struct DirModel {
    parent: u32,
    entries: BTreeMap<Vec<u8>, u32>,
}

/// What the file system should hold.
#[derive(Debug, Default)]
struct Model {
    files: BTreeMap<u32, FileModel>,
    dirs: BTreeMap<u32, DirModel>,
    symlinks: BTreeMap<u32, Vec<u8>>,
    /// Files and directories with no links left, still "open".
    orphans: Vec<u32>,
}

impl Model {
    fn is_dir(&self, ino: u32) -> bool {
        self.dirs.contains_key(&ino)
    }

    /// Whether directory `ancestor` is `dir` or above it.
    fn within(&self, dir: u32, ancestor: u32) -> bool {
        let mut current = dir;
        loop {
            if current == ancestor {
                return true;
            }
            if current == 2 {
                return false;
            }
            current = self.dirs[&current].parent;
        }
    }

    fn entry(&self, dir: u32, name: &[u8]) -> Option<u32> {
        self.dirs[&dir].entries.get(name).copied()
    }

    fn dir_links(&self, dir: u32) -> u16 {
        let subdirs = self.dirs[&dir]
            .entries
            .values()
            .filter(|&&i| self.is_dir(i))
            .count();
        // The root also holds lost+found.
        2 + subdirs as u16 + u16::from(dir == 2)
    }

    /// Drops one link of `ino` after its entry went away.
    fn unlinked(&mut self, ino: u32) {
        if let Some(file) = self.files.get_mut(&ino) {
            file.links -= 1;
            if file.links == 0 {
                self.orphans.push(ino);
            }
        } else {
            self.orphans.push(ino);
        }
    }
}

fn name(rng: &mut XorShift) -> Vec<u8> {
    let k = rng.below(24);
    format!("n{k}{}", "x".repeat((k * 7 % 50) as usize)).into_bytes()
}

fn pick<T: Copy>(rng: &mut XorShift, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

/// Applies `ops` random operations to `fs` and `model`, asserting every result.
fn run(fs: &mut Ext2<MemDisk>, model: &mut Model, rng: &mut XorShift, ops: usize) {
    let now = T0 + 10;
    for step in 0..ops {
        let dirs: Vec<u32> = model.dirs.keys().copied().collect();
        let files: Vec<u32> = model.files.keys().copied().collect();
        let dir = pick(rng, &dirs);
        let op = rng.below(100);
        let context = format!("step {step}, op {op}");
        match op {
            // Create a file or directory.
            0..=14 => {
                let name = name(rng);
                let is_dir = rng.below(4) == 0;
                let mode = if is_dir { DIR } else { REG };
                let result = fs.create(InodeNo::new(dir), &name, mode, 0, 0, 0, now);
                if model.entry(dir, &name).is_some() {
                    assert_eq!(result.unwrap_err(), Error::Exists, "{context}");
                    continue;
                }
                let ino = result.expect(&context).ino().get();
                model.dirs.get_mut(&dir).unwrap().entries.insert(name, ino);
                if is_dir {
                    let entries = BTreeMap::new();
                    model.dirs.insert(
                        ino,
                        DirModel {
                            parent: dir,
                            entries,
                        },
                    );
                } else {
                    model.files.insert(
                        ino,
                        FileModel {
                            data: vec![],
                            links: 1,
                        },
                    );
                }
            }
            // Symlink.
            15..=18 => {
                let name = name(rng);
                let len = if rng.below(2) == 0 {
                    1 + rng.below(59)
                } else {
                    60 + rng.below(900)
                };
                let target: Vec<u8> = pattern(len as usize, rng.next())
                    .into_iter()
                    .map(|b| b'a' + b % 26)
                    .collect();
                let result = fs.symlink(InodeNo::new(dir), &name, &target, 0, 0, now);
                if model.entry(dir, &name).is_some() {
                    assert_eq!(result.unwrap_err(), Error::Exists, "{context}");
                    continue;
                }
                let ino = result.expect(&context).ino().get();
                model.dirs.get_mut(&dir).unwrap().entries.insert(name, ino);
                model.symlinks.insert(ino, target);
            }
            // Write.
            19..=44 if !files.is_empty() => {
                let ino = pick(rng, &files);
                let file = model.files.get_mut(&ino).unwrap();
                let offset = match rng.below(4) {
                    0 => file.data.len() as u64,
                    1 => rng.below(file.data.len() as u64 + 1),
                    2 => rng.below(300_000),
                    _ => rng.below(40_000),
                };
                let len = if rng.below(8) == 0 {
                    rng.below(70_000)
                } else {
                    rng.below(5000)
                };
                let data = pattern(len as usize, rng.next());
                let inode = fs
                    .write(InodeNo::new(ino), offset, &data, now)
                    .expect(&context);
                let end = offset as usize + data.len();
                if !data.is_empty() && file.data.len() < end {
                    file.data.resize(end, 0);
                }
                if !data.is_empty() {
                    file.data[offset as usize..end].copy_from_slice(&data);
                }
                assert_eq!(inode.size(), file.data.len() as u64, "{context}");
            }
            // Truncate.
            45..=51 if !files.is_empty() => {
                let ino = pick(rng, &files);
                let file = model.files.get_mut(&ino).unwrap();
                let size = rng.below(file.data.len() as u64 * 2 + 3000);
                fs.truncate(InodeNo::new(ino), size, now).expect(&context);
                file.data.resize(size as usize, 0);
            }
            // Hard link.
            52..=56 if !files.is_empty() => {
                let ino = pick(rng, &files);
                let name = name(rng);
                let result = fs.link(InodeNo::new(dir), &name, InodeNo::new(ino), now);
                if model.entry(dir, &name).is_some() {
                    assert_eq!(result.unwrap_err(), Error::Exists, "{context}");
                } else if model.files[&ino].links == 0 {
                    assert_eq!(result.unwrap_err(), Error::NotFound, "{context}");
                } else {
                    let inode = result.expect(&context);
                    let file = model.files.get_mut(&ino).unwrap();
                    file.links += 1;
                    assert_eq!(inode.links(), file.links, "{context}");
                    model.dirs.get_mut(&dir).unwrap().entries.insert(name, ino);
                }
            }
            // Unlink.
            57..=66 => {
                let name = name(rng);
                let result = fs.unlink(InodeNo::new(dir), &name, now);
                match model.entry(dir, &name) {
                    None => assert_eq!(result.unwrap_err(), Error::NotFound, "{context}"),
                    Some(ino) if model.is_dir(ino) => assert_eq!(
                        result.unwrap_err(),
                        Error::IsADirectory {
                            ino: InodeNo::new(ino)
                        },
                        "{context}"
                    ),
                    Some(ino) => {
                        let inode = result.expect(&context);
                        model.dirs.get_mut(&dir).unwrap().entries.remove(&name);
                        model.unlinked(ino);
                        if let Some(file) = model.files.get(&ino) {
                            assert_eq!(inode.links(), file.links, "{context}");
                        }
                    }
                }
            }
            // Rmdir.
            67..=71 => {
                let name = name(rng);
                let result = fs.rmdir(InodeNo::new(dir), &name, now);
                match model.entry(dir, &name) {
                    None => assert_eq!(result.unwrap_err(), Error::NotFound, "{context}"),
                    Some(ino) if !model.is_dir(ino) => assert_eq!(
                        result.unwrap_err(),
                        Error::NotADirectory {
                            ino: InodeNo::new(ino)
                        },
                        "{context}"
                    ),
                    Some(ino) if !model.dirs[&ino].entries.is_empty() => {
                        assert_eq!(result.unwrap_err(), Error::NotEmpty, "{context}")
                    }
                    Some(ino) => {
                        assert_eq!(result.expect(&context).links(), 0);
                        model.dirs.get_mut(&dir).unwrap().entries.remove(&name);
                        model.dirs.remove(&ino);
                        model.orphans.push(ino);
                    }
                }
            }
            // Rename.
            72..=86 => rename(fs, model, rng, dir, &dirs, &context),
            // Free orphans (the last close), after reading one.
            87..=91 if !model.orphans.is_empty() => {
                let ino = model
                    .orphans
                    .remove(rng.below(model.orphans.len() as u64) as usize);
                if let Some(file) = model.files.remove(&ino) {
                    let inode = fs.inode_any_links(InodeNo::new(ino)).unwrap();
                    let mut back = vec![0u8; file.data.len()];
                    fs.read(&inode, 0, &mut back).unwrap();
                    assert_eq!(back, file.data, "{context}: orphan {ino}");
                }
                model.symlinks.remove(&ino);
                fs.free_inode(InodeNo::new(ino), now).expect(&context);
            }
            // Attributes, fallocate, sync.
            92..=94 if !files.is_empty() => {
                let ino = pick(rng, &files);
                let attr = SetAttr {
                    mode: Some(rng.below(0o7777) as u16),
                    ..SetAttr::default()
                };
                let inode = fs.set_attr(InodeNo::new(ino), attr).expect(&context);
                assert_eq!(inode.permissions(), attr.mode.unwrap());
            }
            95..=97 if !files.is_empty() => {
                let ino = pick(rng, &files);
                let file = model.files.get_mut(&ino).unwrap();
                let (offset, len) = (rng.below(100_000), 1 + rng.below(50_000));
                let keep = rng.below(2) == 0;
                fs.allocate(InodeNo::new(ino), offset, len, keep, now)
                    .expect(&context);
                if !keep && file.data.len() < (offset + len) as usize {
                    file.data.resize((offset + len) as usize, 0);
                }
            }
            98 => fs.sync().unwrap(),
            _ => {}
        }
        if step % 500 == 499 {
            check(fs, model);
        }
    }
}

/// A random rename, its outcome predicted in the order the file system checks.
fn rename(
    fs: &mut Ext2<MemDisk>,
    model: &mut Model,
    rng: &mut XorShift,
    old_dir: u32,
    dirs: &[u32],
    context: &str,
) {
    let new_dir = if rng.below(2) == 0 {
        old_dir
    } else {
        pick(rng, dirs)
    };
    let (old_name, new_name) = (name(rng), name(rng));
    let flags = RenameFlags {
        noreplace: rng.below(6) == 0,
        exchange: rng.below(6) == 0,
    };
    let result = fs.rename(
        InodeNo::new(old_dir),
        &old_name,
        InodeNo::new(new_dir),
        &new_name,
        flags,
        T0 + 10,
    );
    let expect_err = |e: Error| assert_eq!(result.clone().unwrap_err(), e, "{context} {flags:?}");
    if flags.noreplace && flags.exchange {
        return expect_err(Error::InvalidArgument(
            "RENAME_NOREPLACE and RENAME_EXCHANGE together",
        ));
    }
    let Some(src) = model.entry(old_dir, &old_name) else {
        return expect_err(Error::NotFound);
    };
    if old_dir == new_dir && old_name == new_name {
        return assert_eq!(result, Ok(None), "{context}");
    }
    let dst = model.entry(new_dir, &new_name);
    if dst == Some(src) {
        return assert_eq!(result, Ok(None), "{context}");
    }
    let moves = old_dir != new_dir;
    let loop_err = Error::InvalidArgument("a directory cannot move into itself");
    if flags.exchange {
        let Some(dst) = dst else {
            return expect_err(Error::NotFound);
        };
        if moves
            && ((model.is_dir(src) && model.within(new_dir, src))
                || (model.is_dir(dst) && model.within(old_dir, dst)))
        {
            return expect_err(loop_err);
        }
        assert_eq!(result, Ok(None), "{context}");
        model
            .dirs
            .get_mut(&old_dir)
            .unwrap()
            .entries
            .insert(old_name, dst);
        model
            .dirs
            .get_mut(&new_dir)
            .unwrap()
            .entries
            .insert(new_name, src);
        if let Some(d) = model.dirs.get_mut(&src) {
            d.parent = new_dir;
        }
        if let Some(d) = model.dirs.get_mut(&dst) {
            d.parent = old_dir;
        }
        return;
    }
    if let Some(dst) = dst {
        if flags.noreplace {
            return expect_err(Error::Exists);
        }
        match (model.is_dir(src), model.is_dir(dst)) {
            (true, false) => {
                return expect_err(Error::NotADirectory {
                    ino: InodeNo::new(dst),
                });
            }
            (false, true) => {
                return expect_err(Error::IsADirectory {
                    ino: InodeNo::new(dst),
                });
            }
            (true, true) if !model.dirs[&dst].entries.is_empty() => {
                return expect_err(Error::NotEmpty);
            }
            _ => {}
        }
    }
    if model.is_dir(src) && moves && model.within(new_dir, src) {
        return expect_err(loop_err);
    }
    let replaced = result.expect(context);
    assert_eq!(replaced.as_ref().map(|i| i.ino().get()), dst, "{context}");
    model
        .dirs
        .get_mut(&old_dir)
        .unwrap()
        .entries
        .remove(&old_name);
    model
        .dirs
        .get_mut(&new_dir)
        .unwrap()
        .entries
        .insert(new_name, src);
    if let Some(d) = model.dirs.get_mut(&src) {
        d.parent = new_dir;
    }
    if let Some(dst) = dst {
        if model.is_dir(dst) {
            model.dirs.remove(&dst);
            model.orphans.push(dst);
        } else {
            model.unlinked(dst);
        }
    }
}

/// Asserts that `fs` holds what `model` says, from the root down.
fn check<D: BlockDevice>(fs: &Ext2<D>, model: &Model) {
    let mut seen = 0;
    let mut stack = vec![2u32];
    while let Some(dir) = stack.pop() {
        seen += 1;
        let inode = fs.inode(InodeNo::new(dir)).unwrap();
        assert_eq!(inode.links(), model.dir_links(dir), "links of dir {dir}");
        let mut listed: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        for entry in fs.read_dir(&inode).unwrap() {
            match &entry.name[..] {
                b"." => assert_eq!(entry.ino.get(), dir),
                b".." => assert_eq!(
                    entry.ino.get(),
                    if dir == 2 { 2 } else { model.dirs[&dir].parent }
                ),
                _ => {
                    listed.insert(entry.name.clone(), entry.ino.get());
                }
            }
        }
        let mut expected = model.dirs[&dir].entries.clone();
        if dir == 2 {
            let lost = listed.get(&b"lost+found"[..]).copied();
            expected.insert(b"lost+found".to_vec(), lost.unwrap());
        }
        assert_eq!(listed, expected, "listing of dir {dir}");
        for (name, &ino) in &model.dirs[&dir].entries {
            let inode = fs.inode(InodeNo::new(ino)).unwrap();
            match inode.file_type() {
                FileType::Directory => stack.push(ino),
                FileType::Regular => {
                    let file = &model.files[&ino];
                    assert_eq!(inode.links(), file.links, "links of {name:?}");
                    assert_eq!(inode.size(), file.data.len() as u64, "size of {name:?}");
                    let mut back = vec![0u8; file.data.len()];
                    fs.read(&inode, 0, &mut back).unwrap();
                    assert!(back == file.data, "contents of {name:?} (inode {ino})");
                }
                FileType::Symlink => {
                    assert_eq!(fs.read_link(&inode).unwrap(), model.symlinks[&ino]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(seen, model.dirs.len());
}

#[test]
fn random_operations_match_the_model() {
    let env = |name, default| std::env::var(name).map_or(default, |v| v.parse().unwrap());
    let ops = env("EXT2_MODEL_OPS", 3000);
    for (i, kind) in [KINDS[0], KINDS[1], KINDS[2], KINDS[4]]
        .into_iter()
        .enumerate()
    {
        let seed = env("EXT2_MODEL_SEED", 0x00c0_ffee_1234_5678) + i as u64;
        let f = image(kind, 64);
        let mut fs = f.open_rw(T0);
        let mut model = Model::default();
        model.dirs.insert(
            2,
            DirModel {
                parent: 2,
                entries: BTreeMap::new(),
            },
        );
        let mut rng = XorShift(seed | 1);
        run(&mut fs, &mut model, &mut rng, ops as usize);
        check(&fs, &model);
        for ino in std::mem::take(&mut model.orphans) {
            model.files.remove(&ino);
            fs.free_inode(InodeNo::new(ino), T0).unwrap();
        }
        let stat = fs.statfs();
        println!(
            "{kind:?}: {} files, {} dirs, {} symlinks, {} blocks free",
            model.files.len(),
            model.dirs.len(),
            model.symlinks.len(),
            stat.free_blocks
        );
        f.finish(fs);
        check(&f.open().unwrap(), &model);
    }
}
