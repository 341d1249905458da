//! Reading file data: every block size and inode size, revision 0, ext3, direct through triple
//! indirect blocks, sparse files, files over 4 GiB, partial reads anywhere, and how few device
//! reads a contiguous file takes.

use std::string::ToString;
use std::vec;

use super::fixture::{Counting, Fixture, MIB, XorShift, inode_at, pattern, read_all};
use crate::{BlockDevice, Error, Ext2, FileType};

const KERNEL_LEN: usize = 50_000;
const CMDLINE: &[u8] = b"console=ttyS0 quiet\n";

/// A tree with `/boot/kernel` and `/boot/cmdline`.
pub(crate) fn boot() -> Fixture {
    let f = Fixture::new();
    f.file("boot/kernel", &pattern(KERNEL_LEN, 1));
    f.file("boot/cmdline", CMDLINE);
    f
}

pub(crate) fn assert_boot_files<D: BlockDevice>(fs: &Ext2<D>) {
    assert_eq!(
        read_all(fs, "/boot/kernel").unwrap(),
        pattern(KERNEL_LEN, 1)
    );
    assert_eq!(read_all(fs, "/boot/cmdline").unwrap(), CMDLINE);
}

#[test]
fn reads_small_files_at_every_block_size() {
    for bs in ["1024", "2048", "4096", "65536"] {
        let f = boot();
        let blocks = 4 * MIB / bs.parse::<u64>().unwrap();
        let fs = f.build(&["-t", "ext2", "-b", bs], blocks);
        assert_eq!(fs.block_size().to_string(), bs);
        assert_boot_files(&fs);
    }
}

#[test]
fn reads_128_byte_inodes() {
    let f = boot();
    let fs = f.build(&["-t", "ext2", "-b", "1024", "-I", "128"], 4096);
    assert_eq!(fs.geo.inode_size, 128);
    assert_boot_files(&fs);
}

#[test]
fn reads_revision_0() {
    let f = boot();
    let fs = f.build(&["-t", "ext2", "-b", "1024", "-r", "0"], 4096);
    assert_eq!(fs.geo.inode_size, 128);
    assert_boot_files(&fs);
    // Revision 0 directory entries carry no file type.
    let root = fs.inode(fs.root()).unwrap();
    let entries = fs.read_dir(&root).unwrap();
    assert!(entries.iter().all(|e| e.file_type == FileType::Unknown));
}

#[test]
fn reads_ext3_without_pending_journal_recovery() {
    // ext3 is ext2 plus a journal (a compat feature), so a clean one reads as ext2.
    let f = boot();
    let fs = f.build(&["-t", "ext3", "-b", "1024"], 8192);
    assert_boot_files(&fs);
}

#[test]
fn reads_dense_file_through_double_indirect_blocks() {
    // 1 MiB at 1 KiB blocks: 12 direct + 256 single indirect, the rest double indirect.
    let f = Fixture::new();
    let data = pattern(MIB as usize + 123, 2);
    f.file("boot/kernel", &data);
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let inode = inode_at(&fs, "/boot/kernel").unwrap();
    assert_ne!(
        inode.block_words()[13],
        0,
        "should use a double indirect block"
    );
    assert_eq!(read_all(&fs, "/boot/kernel").unwrap(), data);
}

#[test]
fn reads_20_mib_sparse_file_through_double_indirect_blocks() {
    let f = Fixture::new();
    let len = 20 * MIB;
    // Chunks in the direct, single and double indirect ranges, across their boundaries, and at
    // the very end.
    let offsets = [
        0,
        10_000,
        270_000,
        274_000,
        5 * MIB + 7,
        10 * MIB,
        len - 5000,
    ];
    let expected = f.sparse_file("boot/kernel", len, &offsets);
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let inode = inode_at(&fs, "/boot/kernel").unwrap();
    assert_ne!(
        inode.block_words()[13],
        0,
        "should use a double indirect block"
    );
    let data = read_all(&fs, "/boot/kernel").unwrap();
    assert!(data == expected, "20 MiB file content differs");
}

#[test]
fn reads_sparse_file_through_triple_indirect_blocks() {
    // At 1 KiB blocks, triple indirect starts after 12 + 256 + 256^2 blocks (about 64.3 MiB).
    let f = Fixture::new();
    let len = 70 * MIB;
    let expected = f.sparse_file("big", len, &[0, 69 * MIB, len - 100]);
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let inode = inode_at(&fs, "/big").unwrap();
    assert_ne!(
        inode.block_words()[14],
        0,
        "should use a triple indirect block"
    );
    let data = read_all(&fs, "/big").unwrap();
    assert!(data == expected, "70 MiB file content differs");
}

#[test]
fn sparse_holes_read_as_zeros_even_into_a_dirty_buffer() {
    let f = Fixture::new();
    // A hole at the start, data in the middle, a hole running to the end of the file.
    let expected = f.sparse_file("sparse", 300_000, &[100_000]);
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let inode = inode_at(&fs, "/sparse").unwrap();
    assert_eq!(
        inode.block_words()[0],
        0,
        "the first block should be a hole"
    );
    let mut buf = vec![0xa5u8; 300_000];
    assert_eq!(fs.read(&inode, 0, &mut buf).unwrap(), 300_000);
    assert!(buf == expected);
}

#[test]
fn reads_a_file_larger_than_4_gib() {
    // The size needs i_size_high; at 4 KiB blocks the tail is in the triple indirect range.
    let f = Fixture::new();
    let len = 5 * 1024 * MIB + 321;
    let path = f.tree.join("huge");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(len).unwrap();
    let head = pattern(3000, 7);
    let tail = pattern(9000, 8);
    use std::os::unix::fs::FileExt;
    file.write_all_at(&head, 0).unwrap();
    file.write_all_at(&tail, len - tail.len() as u64).unwrap();
    drop(file);
    let fs = f.build(&["-t", "ext2", "-b", "4096"], 4096);
    let inode = inode_at(&fs, "/huge").unwrap();
    assert_eq!(inode.size(), len);
    let mut buf = vec![0u8; 20_000];
    // The last 20 000 bytes: a hole, then the tail.
    let n = fs.read(&inode, len - 20_000, &mut buf).unwrap();
    assert_eq!(n, 20_000);
    assert!(buf[..11_000].iter().all(|&b| b == 0));
    assert_eq!(&buf[11_000..], &tail[..]);
    let n = fs.read(&inode, 0, &mut buf[..5000]).unwrap();
    assert_eq!(n, 5000);
    assert_eq!(&buf[..3000], &head[..]);
    assert!(buf[3000..5000].iter().all(|&b| b == 0));
    // A read straddling 4 GiB reads the hole there.
    let n = fs.read(&inode, (4 << 30) - 10, &mut buf[..20]).unwrap();
    assert_eq!(n, 20);
    assert!(buf[..20].iter().all(|&b| b == 0));
}

#[test]
fn partial_reads_at_any_offset_and_length() {
    let f = Fixture::new();
    let dense = pattern(300_000, 3);
    f.file("dense", &dense);
    let sparse = f.sparse_file("sparse", 400_000, &[0, 50_000, 140_000, 395_000]);
    let fs = f.build(&["-t", "ext2", "-b", "1024"], 8192);
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for (path, expected) in [("/dense", &dense), ("/sparse", &sparse)] {
        let inode = inode_at(&fs, path).unwrap();
        let size = expected.len() as u64;
        for _ in 0..300 {
            let offset = rng.below(size + 3000);
            let max = if rng.below(4) == 0 { 70_000 } else { 3000 };
            let len = rng.below(max) as usize;
            let mut buf = vec![0x5au8; len];
            let n = fs.read(&inode, offset, &mut buf).unwrap();
            let want = size.saturating_sub(offset).min(len as u64) as usize;
            assert_eq!(n, want, "{path} at {offset} for {len}");
            if want > 0 {
                let start = offset as usize;
                assert!(buf[..n] == expected[start..start + n], "{path} at {offset}");
            }
            assert!(buf[n..].iter().all(|&b| b == 0x5a), "wrote past the end");
        }
        // Exactly at and far past the end.
        let mut buf = [0u8; 10];
        assert_eq!(fs.read(&inode, size, &mut buf).unwrap(), 0);
        assert_eq!(fs.read(&inode, u64::MAX, &mut buf).unwrap(), 0);
        assert_eq!(fs.read(&inode, 0, &mut []).unwrap(), 0);
    }
}

#[test]
fn contiguous_file_reads_in_few_device_reads() {
    // 1 MiB at 4 KiB blocks: 12 direct blocks, then an indirect block, then 244 more; mke2fs lays
    // them out contiguously apart from the indirect block.
    let f = Fixture::new();
    let data = pattern(MIB as usize, 4);
    f.file("file", &data);
    f.mkfs(&["-t", "ext2", "-b", "4096"], 1024);
    let bytes = f.bytes();
    let fs = Ext2::open(Counting::new(bytes.as_slice())).unwrap();
    let inode = inode_at(&fs, "/file").unwrap();
    fs.device().reset();
    let mut buf = vec![0u8; data.len()];
    assert_eq!(fs.read(&inode, 0, &mut buf).unwrap(), data.len());
    assert!(buf == data);
    let (reads, read_bytes) = (fs.device().reads.get(), fs.device().bytes.get());
    // Two data runs (before and after the indirect block) and two batches of pointers, instead
    // of one read per block.
    assert!(
        reads <= 6,
        "{reads} device reads for a contiguous 1 MiB file"
    );
    // Pointers are read as needed (4 bytes each), not whole indirect blocks.
    assert!(read_bytes <= MIB + 1024, "{read_bytes} bytes read");
    // A small read in the middle maps only its own blocks.
    fs.device().reset();
    fs.read(&inode, 500_001, &mut buf[..10_000]).unwrap();
    assert!(
        fs.device().reads.get() <= 3,
        "{} reads",
        fs.device().reads.get()
    );
    assert!(
        fs.device().bytes.get() <= 10_000 + 64,
        "{}",
        fs.device().bytes.get()
    );
}

#[test]
fn empty_file_reads_as_empty() {
    let f = boot();
    f.file("boot/empty", b"");
    let fs = f.build(&["-t", "ext2"], 4096);
    assert_eq!(read_all(&fs, "/boot/empty").unwrap(), b"");
}

#[test]
fn read_refuses_what_is_not_a_regular_file() {
    let f = boot();
    f.symlink("link", "boot/cmdline");
    let fs = f.build(&["-t", "ext2"], 4096);
    let mut buf = [0u8; 16];
    for (path, file_type) in [("/boot", FileType::Directory), ("/link", FileType::Symlink)] {
        let inode = inode_at(&fs, path).unwrap();
        let err = fs.read(&inode, 0, &mut buf).unwrap_err();
        assert_eq!(
            err,
            Error::NotARegularFile {
                ino: inode.ino(),
                file_type
            }
        );
    }
}
