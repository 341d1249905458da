//! Writing file contents: small and large files, sparse files, files past 4 GiB, truncation up
//! and down, fallocate; each on several image kinds, unmounted and checked by `e2fsck -fn`.

use std::vec;

use super::fixture::{Counting, Fixture, MIB, inode_at, pattern, read_all};
use crate::{Error, Ext2, InodeNo, MemDisk};

pub(crate) const T0: u32 = 1_700_000_000;
pub(crate) const REG: u16 = 0o100_644;
pub(crate) const DIR: u16 = 0o40_755;

/// The image kinds every write test runs on: 1 KiB and 4 KiB blocks, with and without the
/// filetype feature, and revision 0.
pub(crate) const KINDS: &[&[&str]] = &[
    &["-t", "ext2", "-b", "1024"],
    &["-t", "ext2", "-b", "4096"],
    &["-t", "ext2", "-b", "1024", "-O", "^filetype"],
    &["-t", "ext2", "-b", "4096", "-O", "^filetype", "-I", "128"],
    &["-t", "ext2", "-b", "1024", "-r", "0"],
];

/// An empty image of `kind`, `mib` MiB.
pub(crate) fn image(kind: &[&str], mib: u64) -> Fixture {
    let f = Fixture::new();
    let bs: u64 = kind
        .windows(2)
        .find(|w| w[0] == "-b")
        .map_or(1024, |w| w[1].parse().unwrap());
    f.mkfs(kind, mib * MIB / bs);
    f
}

fn create_file(fs: &mut Ext2<MemDisk>, name: &str) -> InodeNo {
    fs.create(InodeNo::ROOT, name.as_bytes(), REG, 0, 0, 0, T0)
        .unwrap()
        .ino()
}

#[test]
fn small_files_write_and_read_back() {
    for kind in KINDS {
        let f = image(kind, 8);
        let mut fs = f.open_rw(T0);
        let a = create_file(&mut fs, "a");
        fs.write(a, 0, b"hello, world\n", T0 + 1).unwrap();
        let b = create_file(&mut fs, "b");
        let data = pattern(300_000, 7);
        fs.write(b, 0, &data, T0 + 2).unwrap();
        assert_eq!(read_all(&fs, "/a").unwrap(), b"hello, world\n");
        assert_eq!(read_all(&fs, "/b").unwrap(), data);
        f.finish(fs);
        let fs = f.open().unwrap();
        assert_eq!(read_all(&fs, "/b").unwrap(), data);
        let a = inode_at(&fs, "/a").unwrap();
        assert_eq!(a.mtime(), i64::from(T0 + 1));
        assert_eq!(a.size(), 13);
        let cat = f.debugfs_out("cat /a");
        assert_eq!(cat, "hello, world\n", "{kind:?}");
    }
}

#[test]
fn sparse_and_overwrites() {
    for kind in KINDS {
        let f = image(kind, 8);
        let mut fs = f.open_rw(T0);
        let ino = create_file(&mut fs, "sparse");
        let mut model = vec![0u8; 3 * MIB as usize];
        for (i, offset) in [0u64, 70_000, 1_000_000, 2_900_000, 123]
            .into_iter()
            .enumerate()
        {
            let chunk = pattern(5000 + i * 999, i as u64 + 20);
            fs.write(ino, offset, &chunk, T0).unwrap();
            let end = offset as usize + chunk.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[offset as usize..end].copy_from_slice(&chunk);
        }
        model.truncate(2_900_000 + 5000 + 3 * 999);
        assert_eq!(read_all(&fs, "/sparse").unwrap(), model);
        f.finish(fs);
        assert_eq!(read_all(&f.open().unwrap(), "/sparse").unwrap(), model);
    }
}

#[test]
fn dense_file_is_contiguous_and_reads_in_few_requests() {
    for kind in [KINDS[0], KINDS[1]] {
        let f = image(kind, 16);
        let mut fs = f.open_rw(T0);
        let ino = create_file(&mut fs, "dense");
        // 3 MiB in pieces of odd sizes, appended: direct, single and double indirect blocks.
        let data = pattern(3 * MIB as usize, 9);
        for chunk in data.chunks(100_003) {
            let size = fs.inode(ino).unwrap().size();
            fs.write(ino, size, chunk, T0).unwrap();
        }
        let inode = fs.inode(ino).unwrap();
        // Data blocks, plus the indirect blocks between them: exact i_blocks.
        let bs = fs.block_size();
        let per = bs / 4;
        let data_blocks = 3 * MIB / bs;
        assert_eq!(inode.block_words()[13] != 0, data_blocks > 12 + per);
        let leaves = (data_blocks - 12).div_ceil(per);
        let meta = if data_blocks > 12 + per {
            leaves + 1
        } else {
            leaves
        };
        assert_eq!(inode.blocks(), (data_blocks + meta) * bs / 512, "{kind:?}");
        f.finish(fs);
        let counting = Counting::new(MemDisk::new(f.bytes()));
        let fs = Ext2::open(&counting).unwrap();
        let inode = inode_at(&fs, "/dense").unwrap();
        counting.reset();
        let mut back = vec![0u8; data.len()];
        fs.read(&inode, 0, &mut back).unwrap();
        assert_eq!(back, data);
        let reads = counting.reads.get();
        // The data is contiguous but for the indirect blocks between it (and at most a group
        // boundary): one run, and one device read, per stretch.
        let (mut runs, mut block, mut next) = (0, 0, None);
        while block < data_blocks {
            let run = fs.map_run(&inode, block, data_blocks - block).unwrap();
            let start = run.start.unwrap();
            if next != Some(start) {
                runs += 1;
            }
            next = Some(start + run.blocks);
            block += run.blocks;
        }
        assert!(
            runs <= meta + 2,
            "{kind:?}: {runs} runs for {meta} indirect blocks"
        );
        // The reader maps 128 pointers at a time, reading up to two levels of pointers each.
        let pointer_reads = 2 * data_blocks.div_ceil(128) + 2;
        assert!(
            reads <= runs + pointer_reads,
            "{reads} reads for {runs} runs"
        );
    }
}

#[test]
fn sparse_file_past_4_gib_through_triple_indirect_blocks() {
    // 1 KiB blocks: the triple indirect tree starts at 12 + 256 + 65536 blocks (~64 MiB); no
    // large_file at first, so the writer must set it.
    let f = image(&["-t", "ext2", "-b", "1024", "-O", "^large_file"], 8);
    let mut fs = f.open_rw(T0);
    let ino = create_file(&mut fs, "huge");
    let offsets = [0u64, 5000, 300_000, 70 * MIB, 3 << 30, (5 << 30) + 12345];
    for (i, &offset) in offsets.iter().enumerate() {
        fs.write(ino, offset, &pattern(3000, i as u64), T0).unwrap();
    }
    let inode = fs.inode(ino).unwrap();
    assert_eq!(inode.size(), (5 << 30) + 12345 + 3000);
    assert_ne!(inode.block_words()[14], 0, "triple indirect");
    let max = fs.max_file_size();
    assert_eq!(fs.write(ino, max, b"x", T0).unwrap_err(), Error::FileTooBig);
    assert_eq!(Error::FileTooBig.errno(), 27);
    let (_, n) = fs.write_prefix(ino, max - 2, b"xyz", T0).unwrap();
    assert_eq!(n, 2, "a write stops at the largest size");
    fs.truncate(ino, (5 << 30) + 12345 + 3000, T0).unwrap();
    f.finish(fs);
    let fs = f.open().unwrap();
    let inode = inode_at(&fs, "/huge").unwrap();
    for (i, &offset) in offsets.iter().enumerate() {
        let mut back = vec![0u8; 3000];
        fs.read(&inode, offset, &mut back).unwrap();
        assert_eq!(back, pattern(3000, i as u64), "at {offset}");
    }
    let mut hole = vec![1u8; 4096];
    fs.read(&inode, 4 << 30, &mut hole).unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    let features = f.debugfs_out("features");
    assert!(features.contains("large_file"), "{features}");
    let stat = f.debugfs_out("stat /huge");
    assert!(
        stat.contains(&std::format!("Size: {}", (5u64 << 30) + 15345)),
        "{stat}"
    );
}

#[test]
fn revision_0_files_stop_below_2_gib() {
    let f = image(KINDS[4], 4);
    let mut fs = f.open_rw(T0);
    let ino = create_file(&mut fs, "f");
    assert_eq!(
        fs.write(ino, 1 << 31, b"x", T0).unwrap_err(),
        Error::FileTooBig
    );
    fs.write(ino, (1 << 31) - 2, b"x", T0).unwrap();
    f.finish(fs);
}

#[test]
fn truncate_down_and_up() {
    for kind in KINDS {
        let f = image(kind, 8);
        let mut fs = f.open_rw(T0);
        let before = fs.statfs();
        let ino = create_file(&mut fs, "t");
        let data = pattern(3 * MIB as usize, 4);
        fs.write(ino, 0, &data, T0).unwrap();
        let full = fs.statfs();
        // Down into the middle of a block, then up again: the old tail reads as zeros.
        let cut = MIB + 77;
        let inode = fs.truncate(ino, cut, T0 + 9).unwrap();
        assert_eq!(inode.size(), cut);
        assert_eq!(inode.mtime(), i64::from(T0 + 9));
        assert!(fs.statfs().free_blocks > full.free_blocks);
        fs.truncate(ino, 2 * MIB, T0).unwrap();
        let back = read_all(&fs, "/t").unwrap();
        assert_eq!(&back[..cut as usize], &data[..cut as usize]);
        assert!(back[cut as usize..].iter().all(|&b| b == 0));
        // Cuts at every level boundary, then to nothing.
        let bs = fs.block_size();
        let per = bs / 4;
        for blocks in [12 + per + 1, 12 + per, 13, 12, 1] {
            fs.truncate(ino, blocks * bs, T0).unwrap();
            let back = read_all(&fs, "/t").unwrap();
            let keep = (blocks * bs).min(cut) as usize;
            assert_eq!(&back[..keep], &data[..keep]);
        }
        let inode = fs.truncate(ino, 0, T0).unwrap();
        assert_eq!(inode.blocks(), 0);
        assert_eq!(inode.block_words(), &[0; 15]);
        let mut after = fs.statfs();
        after.free_inodes += 1;
        assert_eq!(after, before, "{kind:?}: every block back");
        f.finish(fs);
    }
}

/// A data pointer in an indirect block that names metadata (here the inode table) fails the
/// truncate that would free it, and the metadata stays marked in use: freeing checks every run
/// of data blocks it frees, not only the indirect blocks it reads.
#[test]
fn truncate_refuses_to_free_metadata_named_by_an_indirect_block() {
    use crate::{BlockDevice, Corrupt};
    let f = image(KINDS[1], 8);
    let mut fs = f.open_rw(T0);
    let ino = create_file(&mut fs, "t");
    let bs = fs.block_size();
    fs.write(ino, 0, &pattern(22 * bs as usize, 5), T0).unwrap();
    let indirect = u64::from(fs.inode(ino).unwrap().block_words()[12]);
    let table = u64::from(fs.groups[0].inode_table);
    let bitmap = u64::from(fs.groups[0].block_bitmap) * bs;
    fs.device()
        .write_at(indirect * bs + 5 * 4, &(table as u32).to_le_bytes())
        .unwrap();
    let err = fs.truncate(ino, 0, T0).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt(Corrupt::PointsAtMetadata { block, .. }) if block == table),
        "{err:?}"
    );
    fs.sync().unwrap();
    let mut byte = [0u8];
    fs.device().read_at(bitmap + table / 8, &mut byte).unwrap();
    assert_ne!(
        byte[0] & 1 << (table % 8),
        0,
        "the inode table is still in use"
    );
}

#[test]
fn fallocate_fills_holes() {
    for kind in [KINDS[0], KINDS[1]] {
        let f = image(kind, 8);
        let mut fs = f.open_rw(T0);
        let ino = create_file(&mut fs, "fa");
        fs.write(ino, 0, b"head", T0).unwrap();
        fs.truncate(ino, 100_000, T0).unwrap();
        fs.write(ino, 60_000, b"middle", T0).unwrap();
        let bs = fs.block_size();
        let free = fs.statfs().free_blocks;
        // Keep size: only the holes below the size get blocks.
        let inode = fs.allocate(ino, 0, 200_000, true, T0).unwrap();
        assert_eq!(inode.size(), 100_000);
        let used = free - fs.statfs().free_blocks;
        assert!(used >= 100_000 / bs - 2, "{used}");
        // Growing: the file covers the range.
        let inode = fs.allocate(ino, 150_000, 10_000, false, T0).unwrap();
        assert_eq!(inode.size(), 160_000);
        assert_eq!(
            fs.allocate(ino, 0, 0, false, T0).unwrap_err(),
            Error::InvalidArgument("fallocate of 0 bytes")
        );
        let back = read_all(&fs, "/fa").unwrap();
        assert_eq!(&back[..4], b"head");
        assert_eq!(&back[60_000..60_006], b"middle");
        assert!(back[4..60_000].iter().all(|&b| b == 0));
        f.finish(fs);
    }
}

#[test]
fn set_attr_changes_what_it_names() {
    let f = image(KINDS[1], 4);
    let mut fs = f.open_rw(T0);
    let ino = create_file(&mut fs, "attr");
    let inode = fs
        .set_attr(
            ino,
            crate::SetAttr {
                mode: Some(0o4711),
                uid: Some(1000),
                gid: Some(100),
                atime: Some(T0 - 5),
                mtime: None,
                ctime: Some(T0 + 1),
            },
        )
        .unwrap();
    assert_eq!(inode.mode(), 0o104_711);
    assert_eq!((inode.uid(), inode.gid()), (1000, 100));
    assert_eq!(inode.atime(), i64::from(T0 - 5));
    assert_eq!(inode.mtime(), i64::from(T0));
    assert_eq!(inode.ctime(), i64::from(T0 + 1));
    f.finish(fs);
    let stat = f.debugfs_out("stat /attr");
    assert!(
        stat.contains("Mode:  04711") && stat.contains("User:  1000"),
        "{stat}"
    );
}
