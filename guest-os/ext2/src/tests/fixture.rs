//! Test fixtures: temporary directories, image building with e2fsprogs, devices over files and
//! memory that count their reads, and deterministic pseudo-random data.

use std::cell::Cell;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::vec::Vec;
use std::{format, vec};

use crate::{BlockDevice, Ext2, Inode, IoError, MemDisk, Result};

pub(crate) const MIB: u64 = 1 << 20;

/// xorshift64: deterministic test data and fuzzing without another dependency.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `len` pseudo-random bytes; different seeds give different contents.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An e2fsprogs tool from /usr/sbin or /sbin.
pub(crate) fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} not found: install e2fsprogs, the ext2 tests build real images with it")
        })
}

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("noa-ext2-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A device over an image file, as the VMM reads it.
#[derive(Debug)]
pub(crate) struct FileDevice {
    file: File,
    len: u64,
}

impl FileDevice {
    pub(crate) fn open(path: &Path) -> Self {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        FileDevice { file, len }
    }
}

impl BlockDevice for FileDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| IoError::Errno(e.raw_os_error().unwrap_or(5)))
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A device that counts the reads and bytes that reach the one it wraps.
pub(crate) struct Counting<D> {
    pub(crate) inner: D,
    pub(crate) reads: Cell<u64>,
    pub(crate) bytes: Cell<u64>,
}

impl<D> Counting<D> {
    pub(crate) fn new(inner: D) -> Self {
        Counting {
            inner,
            reads: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    pub(crate) fn reset(&self) {
        self.reads.set(0);
        self.bytes.set(0);
    }
}

impl<D: BlockDevice> BlockDevice for Counting<D> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.reads.set(self.reads.get() + 1);
        self.bytes.set(self.bytes.get() + buf.len() as u64);
        self.inner.read_at(offset, buf)
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// A directory tree and the image built from it, in a temporary directory.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) tree: PathBuf,
    pub(crate) img: PathBuf,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = TempDir::new();
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let img = dir.path().join("guest.img");
        Fixture { dir, tree, img }
    }

    pub(crate) fn file(&self, rel: &str, data: &[u8]) {
        let path = self.tree.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    pub(crate) fn symlink(&self, rel: &str, target: &str) {
        let path = self.tree.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    /// A sparse file of `len` bytes with pattern chunks at `offsets`; returns its contents.
    pub(crate) fn sparse_file(&self, rel: &str, len: u64, offsets: &[u64]) -> Vec<u8> {
        let path = self.tree.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = File::create(&path).unwrap();
        file.set_len(len).unwrap();
        let mut expected = vec![0u8; len as usize];
        for (i, &offset) in offsets.iter().enumerate() {
            let chunk = pattern(5000.min((len - offset) as usize), 10 + i as u64);
            file.write_all_at(&chunk, offset).unwrap();
            expected[offset as usize..offset as usize + chunk.len()].copy_from_slice(&chunk);
        }
        expected
    }

    /// Runs `mke2fs -q -F ARGS -d TREE IMG BLOCKS`, then checks the image with `e2fsck -fn`.
    pub(crate) fn mkfs(&self, args: &[&str], blocks: u64) {
        let out = Command::new(tool("mke2fs"))
            .args(["-q", "-F"])
            .args(args)
            .arg("-d")
            .arg(&self.tree)
            .arg(&self.img)
            .arg(blocks.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mke2fs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.fsck();
    }

    /// Asserts that `e2fsck -fn` finds the image clean.
    pub(crate) fn fsck(&self) {
        let out = Command::new(tool("e2fsck"))
            .arg("-fn")
            .arg(&self.img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "e2fsck -fn found problems:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs debugfs commands (one per line) on the image, read-write.
    pub(crate) fn debugfs(&self, commands: &str) {
        let script = self.dir.path().join("debugfs.cmds");
        fs::write(&script, commands).unwrap();
        let out = Command::new(tool("debugfs"))
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(&self.img)
            .output()
            .unwrap();
        assert!(out.status.success(), "debugfs failed: {out:?}");
    }

    /// Runs one read-only debugfs request (`-R`) on the image; returns its output.
    pub(crate) fn debugfs_out(&self, request: &str) -> String {
        let out = Command::new(tool("debugfs"))
            .arg("-R")
            .arg(request)
            .arg(&self.img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "debugfs -R {request:?} failed: {out:?}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `e2fsck ARGS IMG`; returns the exit code and the output.
    pub(crate) fn e2fsck(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(tool("e2fsck"))
            .args(args)
            .arg(&self.img)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Opens the image for writing, in memory, at time `now`.
    pub(crate) fn open_rw(&self, now: u32) -> Ext2<MemDisk> {
        Ext2::open_rw_at(MemDisk::new(self.bytes()), Some(now)).unwrap()
    }

    /// Unmounts `fs`, writes its image back to the file and asserts `e2fsck -fn` finds it clean.
    pub(crate) fn finish(&self, mut fs: Ext2<MemDisk>) {
        fs.unmount().unwrap();
        fs::write(&self.img, fs.into_device().into_inner()).unwrap();
        self.fsck();
    }

    pub(crate) fn open(&self) -> Result<Ext2<FileDevice>> {
        Ext2::open(FileDevice::open(&self.img))
    }

    /// `mkfs`, then open.
    pub(crate) fn build(&self, args: &[&str], blocks: u64) -> Ext2<FileDevice> {
        self.mkfs(args, blocks);
        self.open().unwrap()
    }

    pub(crate) fn patch(&self, offset: u64, bytes: &[u8]) {
        let file = fs::OpenOptions::new().write(true).open(&self.img).unwrap();
        file.write_all_at(bytes, offset).unwrap();
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        fs::read(&self.img).unwrap()
    }
}

/// Reads all of regular file `path` (at most 128 MiB: a corrupt size must not make the test
/// allocate what the reader would refuse).
pub(crate) fn read_all<D: BlockDevice>(fs: &Ext2<D>, path: &str) -> Result<Vec<u8>> {
    let inode = inode_at(fs, path)?;
    let mut data = vec![0u8; inode.size().min(128 * MIB) as usize];
    let n = fs.read(&inode, 0, &mut data)?;
    assert_eq!(n as u64, inode.size());
    Ok(data)
}

/// The inode at `path`.
pub(crate) fn inode_at<D: BlockDevice>(fs: &Ext2<D>, path: &str) -> Result<Inode> {
    fs.inode(fs.lookup_path(path.as_bytes())?)
}
