//! A full disk: write until no block is left, then check that everything written before is
//! intact, that failed operations leak nothing, that freed space is reused, and that `e2fsck -fn`
//! finds the image clean; the same with inodes.

use std::format;
use std::string::String;
use std::vec::Vec;

use super::fixture::{inode_at, pattern, read_all};
use super::write_file::{DIR, REG, T0, image};
use crate::{BlockDevice, Error, Ext2, InodeNo};

fn assert_files<D: BlockDevice>(fs: &Ext2<D>, files: &[(String, Vec<u8>)]) {
    for (path, data) in files {
        assert!(read_all(fs, path).unwrap() == *data, "{path} changed");
    }
}

#[test]
fn fill_the_disk_then_check_everything() {
    for kind in [
        &["-t", "ext2", "-b", "1024", "-N", "64"][..],
        &["-t", "ext2", "-b", "4096", "-N", "64"],
    ] {
        let f = image(kind, 2);
        let mut fs = f.open_rw(T0);
        let root = InodeNo::ROOT;
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut full = false;
        for i in 0..40 {
            let name = format!("f{i}");
            let ino = fs
                .create(root, name.as_bytes(), REG, 0, 0, 0, T0)
                .unwrap()
                .ino();
            let mut data = Vec::new();
            // Pieces of uneven size until the disk is full.
            for piece in 0..8 {
                let chunk = pattern(10_000 + 3331 * piece, (i * 10 + piece) as u64);
                match fs.write_prefix(ino, data.len() as u64, &chunk, T0) {
                    Ok((inode, n)) => {
                        data.extend_from_slice(&chunk[..n]);
                        assert_eq!(inode.size(), data.len() as u64);
                        if n < chunk.len() {
                            full = true;
                            break;
                        }
                    }
                    Err(Error::NoSpace) => {
                        full = true;
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            files.push((format!("/{name}"), data));
            if full {
                break;
            }
        }
        assert!(full, "{kind:?}: the disk never filled");
        assert_eq!(fs.statfs().free_blocks, 0);
        // An empty write needs nothing.
        let f0 = inode_at(&fs, "/f0").unwrap();
        assert_eq!(fs.write(f0.ino(), 0, b"", T0).unwrap(), f0);
        assert_files(&fs, &files);
        let before = fs.statfs();
        // What needs a block fails and leaks nothing; what needs only an inode works.
        assert_eq!(
            fs.create(root, b"dir", DIR, 0, 0, 0, T0).unwrap_err(),
            Error::NoSpace
        );
        assert_eq!(fs.statfs(), before);
        let long = [b'x'; 100];
        assert_eq!(
            fs.symlink(root, b"slow", &long, 0, 0, T0).unwrap_err(),
            Error::NoSpace
        );
        assert_eq!(fs.statfs(), before);
        fs.symlink(root, b"fast", b"target", 0, 0, T0).unwrap();
        let empty = fs.create(root, b"empty", REG, 0, 0, 0, T0).unwrap();
        assert_eq!(
            fs.write(empty.ino(), 0, b"x", T0).unwrap_err(),
            Error::NoSpace
        );
        assert_eq!(fs.inode(empty.ino()).unwrap().size(), 0);
        assert_eq!(
            fs.allocate(empty.ino(), 0, 5000, false, T0).unwrap_err(),
            Error::NoSpace
        );
        assert_eq!(fs.inode(empty.ino()).unwrap().size(), 0);
        assert_files(&fs, &files);
        // Free one file; its space is used again.
        let (path, data) = files.remove(1);
        let gone = fs.unlink(root, &path.as_bytes()[1..], T0).unwrap();
        fs.free_inode(gone.ino(), T0).unwrap();
        assert!(fs.statfs().free_blocks as usize >= data.len() / fs.block_size() as usize);
        fs.write(empty.ino(), 0, &data, T0).unwrap();
        files.push(("/empty".into(), data));
        assert_files(&fs, &files);
        f.finish(fs);
        assert_files(&f.open().unwrap(), &files);
    }
}

#[test]
fn run_out_of_inodes() {
    let f = image(&["-t", "ext2", "-b", "1024", "-N", "32"], 2);
    let mut fs = f.open_rw(T0);
    let mut made = 0;
    loop {
        match fs.create(
            InodeNo::ROOT,
            format!("i{made}").as_bytes(),
            REG,
            0,
            0,
            0,
            T0,
        ) {
            Ok(_) => made += 1,
            Err(Error::NoSpace) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(made < 100);
    }
    assert_eq!(fs.statfs().free_inodes, 0);
    assert!(made > 10);
    let before = fs.statfs();
    assert_eq!(
        fs.symlink(InodeNo::ROOT, b"s", b"t", 0, 0, T0).unwrap_err(),
        Error::NoSpace
    );
    assert_eq!(fs.statfs(), before);
    f.finish(fs);
    let fs = f.open().unwrap();
    assert_eq!(fs.statfs().free_inodes, 0);
}
