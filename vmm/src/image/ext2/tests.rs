//! The VMM's view of the image: the boot files, its path rules and size cap, and one-line error
//! messages that name the image. The ext2 format itself (block sizes, sparse files, corruption,
//! fuzzing) is tested in `noa-ext2`.

use super::*;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileExt, symlink};
use std::process::Command;

const KERNEL_LEN: usize = 50_000;
const CMDLINE: &[u8] = b"console=ttyS0 quiet\n";
const MIB: u64 = 1 << 20;

/// `len` pseudo-random bytes (xorshift64); different seeds give different contents.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn mke2fs() -> PathBuf {
    let found = ["/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/bin/mke2fs"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.expect(
        "mke2fs not found in /usr/sbin, /sbin or /usr/bin: install e2fsprogs, the ext2 tests \
         need it to build real images",
    )
}

/// A directory tree and the image built from it, in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    tree: PathBuf,
    img: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let img = dir.path().join("guest.img");
        Fixture { dir, tree, img }
    }

    /// A tree with `/boot/kernel` and `/boot/cmdline`.
    fn boot() -> Self {
        let f = Fixture::new();
        f.file("boot/kernel", &pattern(KERNEL_LEN, 1));
        f.file("boot/cmdline", CMDLINE);
        f
    }

    fn file(&self, rel: &str, data: &[u8]) {
        let path = self.tree.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    /// Runs `mke2fs -q -F ARGS -d TREE IMG BLOCKS`.
    fn mkfs(&self, args: &[&str], blocks: u64) {
        let out = Command::new(mke2fs())
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
    }

    fn build(&self, args: &[&str], blocks: u64) -> Ext2Image {
        self.mkfs(args, blocks);
        self.open().unwrap()
    }

    fn open(&self) -> Result<Ext2Image, ImageError> {
        Ext2Image::open(&self.img)
    }

    fn patch(&self, offset: u64, bytes: &[u8]) {
        let file = fs::OpenOptions::new().write(true).open(&self.img).unwrap();
        file.write_all_at(bytes, offset).unwrap();
    }
}

fn assert_boot_files(img: &Ext2Image) {
    assert_eq!(
        img.read_file("/boot/kernel", 64 * MIB).unwrap(),
        pattern(KERNEL_LEN, 1)
    );
    assert_eq!(img.read_file("/boot/cmdline", 4096).unwrap(), CMDLINE);
}

#[test]
fn reads_the_boot_files() {
    // 4 KiB blocks as `cargo xtask image` makes them, and 1 KiB with a sparse kernel.
    let f = Fixture::boot();
    let img = f.build(&["-t", "ext2", "-b", "4096", "-L", "noa-root"], 1024);
    assert_boot_files(&img);
    // Repeated slashes are harmless.
    assert_eq!(img.read_file("//boot//cmdline", 100).unwrap(), CMDLINE);

    let f = Fixture::boot();
    let kernel = f.tree.join("boot/kernel");
    let file = fs::File::create(&kernel).unwrap();
    file.set_len(3 * MIB).unwrap();
    file.write_all_at(&pattern(KERNEL_LEN, 1), MIB).unwrap();
    let img = f.build(&["-t", "ext2", "-b", "1024"], 4096);
    let data = img.read_file("/boot/kernel", 64 * MIB).unwrap();
    assert_eq!(data, fs::read(&kernel).unwrap());
}

#[test]
fn empty_file_reads_as_empty() {
    let f = Fixture::boot();
    f.file("boot/empty", b"");
    let img = f.build(&["-t", "ext2"], 4096);
    assert_eq!(img.read_file("/boot/empty", 0).unwrap(), b"");
}

#[test]
fn too_large_is_refused_before_reading() {
    let f = Fixture::boot();
    let img = f.build(&["-t", "ext2"], 4096);
    let err = img
        .read_file("/boot/kernel", KERNEL_LEN as u64 - 1)
        .unwrap_err();
    assert!(
        matches!(err, ImageError::TooLarge { size, max_len, .. }
            if size == KERNEL_LEN as u64 && max_len == KERNEL_LEN as u64 - 1),
        "{err:?}"
    );
    // Exactly the limit is fine.
    assert!(img.read_file("/boot/kernel", KERNEL_LEN as u64).is_ok());
}

#[test]
fn missing_files_and_directories() {
    let f = Fixture::boot();
    let img = f.build(&["-t", "ext2"], 4096);
    for path in ["/boot/nope", "/nope/kernel", "/boot/kernel2", "/boot/kerne"] {
        let err = img.read_file(path, MIB).unwrap_err();
        assert!(
            matches!(err, ImageError::NotFound { .. }),
            "{path}: {err:?}"
        );
    }
}

#[test]
fn path_through_a_regular_file() {
    let f = Fixture::boot();
    let img = f.build(&["-t", "ext2"], 4096);
    let err = img.read_file("/boot/kernel/x", MIB).unwrap_err();
    assert!(
        matches!(&err, ImageError::NotADirectory { parent, .. } if parent == "/boot/kernel"),
        "{err:?}"
    );
}

#[test]
fn symlinks_and_directories_are_not_regular_files() {
    let f = Fixture::boot();
    symlink("cmdline", f.tree.join("boot/link")).unwrap();
    symlink("boot", f.tree.join("bootlink")).unwrap();
    let img = f.build(&["-t", "ext2"], 4096);
    for (path, want) in [
        ("/boot/link", "symbolic link"),
        ("/boot", "directory"),
        ("/", "directory"),
    ] {
        let err = img.read_file(path, MIB).unwrap_err();
        assert!(
            matches!(err, ImageError::NotRegularFile { kind, .. } if kind == want),
            "{path}: {err:?}"
        );
    }
    // Symlinks are not followed in the middle of a path either.
    let err = img.read_file("/bootlink/kernel", MIB).unwrap_err();
    assert!(matches!(err, ImageError::NotADirectory { .. }), "{err:?}");
}

#[test]
fn bad_paths() {
    let f = Fixture::boot();
    let img = f.build(&["-t", "ext2"], 4096);
    let long = format!("/{}", "a".repeat(256));
    for path in [
        "boot/kernel",
        "",
        "/boot/../boot/kernel",
        "/./boot/kernel",
        &long,
    ] {
        let err = img.read_file(path, MIB).unwrap_err();
        assert!(matches!(err, ImageError::BadPath { .. }), "{path}: {err:?}");
    }
}

// Images that are not (valid) ext2.

#[test]
fn missing_image() {
    let f = Fixture::new();
    let err = f.open().unwrap_err();
    assert!(matches!(err, ImageError::Open { .. }), "{err:?}");
    let err = Ext2Image::open(f.dir.path()).unwrap_err();
    assert!(matches!(err, ImageError::Open { .. }), "directory: {err:?}");
}

#[test]
fn empty_image() {
    let f = Fixture::new();
    fs::write(&f.img, b"").unwrap();
    let err = f.open().unwrap_err();
    assert!(matches!(err, ImageError::Empty { .. }), "{err:?}");
}

#[test]
fn tiny_image() {
    let f = Fixture::new();
    fs::write(&f.img, pattern(1500, 3)).unwrap();
    let err = f.open().unwrap_err();
    assert!(
        matches!(err, ImageError::TooSmall { len: 1500, .. }),
        "{err:?}"
    );
}

#[test]
fn random_bytes_image() {
    let f = Fixture::new();
    fs::write(&f.img, pattern(MIB as usize, 4)).unwrap();
    let err = f.open().unwrap_err();
    assert!(matches!(err, ImageError::NotExt2 { .. }), "{err:?}");
}

#[test]
fn truncated_image() {
    let f = Fixture::boot();
    f.mkfs(&["-t", "ext2"], 4096);
    let len = fs::metadata(&f.img).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&f.img)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = f.open().unwrap_err();
    assert!(matches!(err, ImageError::Truncated { .. }), "{err:?}");
}

#[test]
fn image_without_kernel() {
    let f = Fixture::new();
    f.file("etc/hostname", b"noa\n");
    let img = f.build(&["-t", "ext2"], 4096);
    let err = img.read_file("/boot/kernel", 64 * MIB).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
}

#[test]
fn ext4_image_is_rejected_as_ext4() {
    let f = Fixture::boot();
    f.mkfs(&["-t", "ext4"], 8192);
    let err = f.open().unwrap_err();
    assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("ext4") && msg.contains("extents"), "{msg}");
}

#[test]
fn corrupt_images_name_the_problem() {
    let f = Fixture::boot();
    f.mkfs(&["-t", "ext2", "-b", "1024"], 4096);
    // The root directory's "." entry with a rec_len of 0.
    let root_block: u64 = debugfs(&f, "bmap / 0").trim().parse().unwrap();
    f.patch(root_block * 1024 + 4, &0u16.to_le_bytes());
    let err = f
        .open()
        .unwrap()
        .read_file("/boot/kernel", MIB)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err:?}");
    assert!(
        msg.contains("guest.img: corrupt ext2 file system: "),
        "{msg}"
    );
    assert!(msg.contains("rec_len 0"), "{msg}");
    f.patch(root_block * 1024 + 4, &12u16.to_le_bytes());
    assert_boot_files(&f.open().unwrap());
    // A size no block map can address fails before anything is allocated, whatever the cap.
    debugfs(&f, "sif /boot/kernel size 0xffffffffffffffff");
    let err = f
        .open()
        .unwrap()
        .read_file("/boot/kernel", u64::MAX)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err:?}");
    assert!(msg.contains("can address"), "{msg}");
}

/// Runs one debugfs request on the image, read-write; returns its output.
fn debugfs(f: &Fixture, request: &str) -> String {
    let out = Command::new(mke2fs().with_file_name("debugfs"))
        .args(["-w", "-R", request])
        .arg(&f.img)
        .output()
        .unwrap();
    assert!(out.status.success(), "debugfs {request}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn error_messages_are_distinct_one_line_and_name_the_image() {
    let errors = [
        {
            let f = Fixture::new();
            f.open().unwrap_err()
        },
        {
            let f = Fixture::new();
            fs::write(&f.img, b"").unwrap();
            f.open().unwrap_err()
        },
        {
            let f = Fixture::new();
            fs::write(&f.img, pattern(MIB as usize, 4)).unwrap();
            f.open().unwrap_err()
        },
        {
            let f = Fixture::boot();
            f.mkfs(&["-t", "ext2"], 4096);
            fs::OpenOptions::new()
                .write(true)
                .open(&f.img)
                .unwrap()
                .set_len(MIB)
                .unwrap();
            f.open().unwrap_err()
        },
        {
            let f = Fixture::new();
            f.file("etc/hostname", b"noa\n");
            f.build(&["-t", "ext2"], 4096)
                .read_file("/boot/kernel", MIB)
                .unwrap_err()
        },
    ];
    let mut kinds = HashSet::new();
    for err in &errors {
        let msg = err.to_string();
        println!("vmm: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("guest.img: "), "{msg}");
        // Strip the temporary directory so that only the problem is compared.
        kinds.insert(msg.rsplit("guest.img: ").next().unwrap().to_owned());
    }
    assert_eq!(kinds.len(), errors.len(), "{kinds:?}");
    let not_found = errors[4].to_string();
    assert!(not_found.ends_with("guest.img: /boot/kernel: no such file in the image"));
    let truncated = errors[3].to_string();
    assert!(
        truncated.contains("image is truncated: the superblock says the file system is"),
        "{truncated}"
    );
}
