//! Durability of the guest's read-write ext2 (issue 5): what a guest program fsync'd survives the
//! VMM being killed, and the file system comes back with `e2fsck`.
//!
//! The workload is `/opt/tests/durability DIR NAME COUNT` (runtimes/tests/durability/): it
//! appends 64-byte records, fsyncs each, creates a file every 8th record (fsync'd, directory
//! too), and prints `ack I` only after the fsyncs returned. The disk under DIR is a `--volume`
//! made here with mke2fs; the boot image is a private copy (a `--snapshot` run would discard
//! the volume's writes too, as QEMU's -snapshot does).
//!
//! - Killed: 20 runs on one volume, each killed with SIGKILL at a random moment (a seeded
//!   generator, the seed printed, so a failure can be replayed with NOA_DURABILITY_SEED). After
//!   each: `e2fsck -fy` repairs (exit 0 or 1), `e2fsck -fn` then finds nothing, and every
//!   acknowledged record and file of every run so far is on the disk, read with `debugfs`.
//! - Clean: a run to completion; then `e2fsck -fn` finds nothing at all without a repair, and
//!   the root image the guest mounted read-write is clean too.
//! - Also: a full disk gives ENOSPC and loses nothing written before; stores through shared
//!   mappings reach the disk (by msync, and by the power-off alone); a volume that is not ext2
//!   is reported and skipped; a damaged directory gives errors, never a kernel crash.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLED_RUNS: u32 = 20;
const WORKLOAD: &str = "/opt/tests/durability";

/// The test image and a scratch folder, or None (skipped) without /dev/kvm.
fn setup() -> Option<(PathBuf, tempfile::TempDir)> {
    if !have_kvm() {
        return None;
    }
    let image = test_image();
    assert!(
        image.is_file(),
        "no test image at {}: run `cargo xtask test` (or `cargo xtask test --no-run`)",
        image.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // A private, writable copy of the boot image (sparse, reflinked where the host can).
    let root = dir.path().join("root.img");
    let status = Command::new("cp")
        .args(["--sparse=always", "--reflink=auto"])
        .arg(&image)
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success(), "cp {} failed", image.display());
    Some((root, dir))
}

fn tool(name: &str) -> Command {
    for dir in ["/sbin", "/usr/sbin", "/usr/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return Command::new(path);
        }
    }
    panic!("{name} not found: install e2fsprogs (`cargo xtask test` does, as root)");
}

fn make_volume(path: &Path) {
    let out = tool("mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", "1024"])
        .arg(path)
        .arg("32M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `e2fsck` with `flags` on `image`: (exit code, output).
fn e2fsck(flags: &str, image: &Path) -> (i32, String) {
    let out = tool("e2fsck").arg(flags).arg(image).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A file's content, read from the image by debugfs; None if it is not there.
fn debugfs_cat(image: &Path, path: &str) -> Option<Vec<u8>> {
    let out = tool("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(image)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("File not found") {
        return None;
    }
    Some(out.stdout)
}

fn check_of(name: &str, i: u32) -> u32 {
    let mut h: u32 = 2166136261 ^ i;
    for &b in name.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16777619);
    }
    h
}

fn record(name: &str, i: u32) -> Vec<u8> {
    let mut r = format!("rec {name} {i} {:08x} ", check_of(name, i)).into_bytes();
    r.resize(63, b'.');
    r.push(b'\n');
    r
}

fn pattern(i: u32) -> Vec<u8> {
    let len = 1000 + 37 * (i as usize % 4096);
    (0..len)
        .map(|k| b'a' + ((k * 7 + i as usize) % 26) as u8)
        .collect()
}

/// Every record `0..acked` of run `name` is in the log, in order, and each acknowledged file is
/// whole. Records past the acknowledged ones may be there too (written, not yet acknowledged).
fn assert_acknowledged(image: &Path, name: &str, acked: u32) {
    let log = debugfs_cat(image, &format!("/{name}"));
    if acked == 0 {
        return;
    }
    let log = log.unwrap_or_else(|| panic!("run {name}: {acked} records acknowledged, no log"));
    for i in 0..acked {
        let at = i as usize * 64;
        assert_eq!(
            log.get(at..at + 64),
            Some(record(name, i).as_slice()),
            "run {name}: acknowledged record {i} of {acked} is missing or damaged"
        );
        if i % 8 == 0 {
            let file = debugfs_cat(image, &format!("/{name}.{i}"))
                .unwrap_or_else(|| panic!("run {name}: acknowledged file {name}.{i} missing"));
            assert!(
                file == pattern(i),
                "run {name}: file {name}.{i} damaged ({} bytes)",
                file.len()
            );
        }
    }
}

/// A small xorshift generator: the kill times, replayable from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `vmm [--verbose] --volume VOLUME:/data ROOT -- COMMAND…` (no --snapshot: the volume's
/// writes must stay).
fn with_volume(root: &Path, volume: &Path, verbose: bool, command: &[&str]) -> Command {
    let mut vmm = vmm();
    vmm.args(["--timeout", GUEST_TIMEOUT_SECS]);
    if verbose {
        vmm.arg("--verbose");
    }
    vmm.arg("--volume")
        .arg(format!("{}:/data", volume.display()))
        .arg(root)
        .arg("--")
        .args(command);
    vmm
}

/// Runs `command` in the guest with the volume at /data; no kernel panic allowed.
fn run_with_volume(root: &Path, volume: &Path, verbose: bool, command: &[&str]) -> Run {
    let run = run(
        &mut with_volume(root, volume, verbose, command),
        Duration::from_secs(330),
    );
    assert_no_panic(&run.stderr);
    run
}

fn workload(root: &Path, volume: &Path, name: &str, count: u32) -> Command {
    with_volume(
        root,
        volume,
        false,
        &[WORKLOAD, "/data", name, &count.to_string()],
    )
}

#[test]
fn acknowledged_records_survive_kills() {
    let Some((root, dir)) = setup() else { return };
    let volume = dir.path().join("volume.img");
    make_volume(&volume);
    let seed = std::env::var("NOA_DURABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("NOA_DURABILITY_SEED={seed}");
    let mut rng = Rng(seed);
    let mut runs: Vec<(String, u32)> = Vec::new();
    for run in 0..KILLED_RUNS {
        let name = format!("run{run}");
        // Killed between 0 and 1.5 s after the first acknowledgement (a run acknowledges
        // hundreds of records a second): early, mid-file-creation, and mid-append.
        let delay = Duration::from_millis(rng.next() % 1500);
        let mut child = workload(&root, &volume, &name, 1_000_000)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = 0u32;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line
                    .strip_prefix("ack ")
                    .and_then(|i| i.parse::<u32>().ok())
                {
                    if acked == 0 {
                        let _ = tx.send(());
                    }
                    acked = i + 1;
                }
            }
            acked
        });
        let started = Instant::now();
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "run {name}: no acknowledgement within 120 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        println!(
            "{name}: killed {delay:?} after the first ack ({:?} after start), {acked} acknowledged",
            started.elapsed()
        );
        let (code, text) = e2fsck("-fy", &volume);
        assert!(code <= 1, "run {name}: e2fsck -fy exit {code}:\n{text}");
        let (code, text) = e2fsck("-fn", &volume);
        assert_eq!(
            code, 0,
            "run {name}: e2fsck -fn after repair, exit {code}:\n{text}"
        );
        runs.push((name, acked));
        for (name, acked) in &runs {
            assert_acknowledged(&volume, name, *acked);
        }
    }
}

#[test]
fn clean_power_off_leaves_clean_file_systems() {
    let Some((root, dir)) = setup() else { return };
    let volume = dir.path().join("volume.img");
    make_volume(&volume);
    let run = run_with_volume(&root, &volume, false, &[WORKLOAD, "/data", "clean", "200"]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.ends_with("durability: wrote 200 records\n"),
        "{}",
        run.stdout
    );
    for image in [&volume, &root] {
        let (code, text) = e2fsck("-fn", image);
        assert_eq!(
            code,
            0,
            "e2fsck -fn {} after a clean power-off:\n{text}",
            image.display()
        );
    }
    assert_acknowledged(&volume, "clean", 200);
}

#[test]
fn a_full_disk_gives_enospc_and_loses_nothing() {
    let Some((root, dir)) = setup() else { return };
    let volume = dir.path().join("small.img");
    let out = tool("mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", "1024"])
        .arg(&volume)
        .arg("2M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = "echo kept > /data/keep && sync && \
                  dd if=/dev/zero of=/data/fill bs=4096 2>/dev/null; echo dd=$?; \
                  echo more >> /data/keep; echo append=$?; cat /data/keep; \
                  rm /data/fill && echo after > /data/after && cat /data/after";
    let run = run_with_volume(&root, &volume, false, &["/bin/sh", "-c", script]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"dd=1"),
        "dd on a full disk must fail: {}",
        run.stdout
    );
    assert_eq!(lines.last(), Some(&"after"), "{}", run.stdout);
    assert!(run.stdout.contains("kept\n"), "{}", run.stdout);
    let (code, text) = e2fsck("-fn", &volume);
    assert_eq!(code, 0, "e2fsck -fn after filling the disk:\n{text}");
    let kept = debugfs_cat(&volume, "/keep").expect("/keep");
    assert!(kept.starts_with(b"kept\n"), "{kept:?}");
    assert_eq!(
        debugfs_cat(&volume, "/after").as_deref(),
        Some(&b"after\n"[..])
    );
}

#[test]
fn a_volume_that_is_not_ext2_is_reported_and_skipped() {
    let Some((root, dir)) = setup() else { return };
    let volume = dir.path().join("garbage.img");
    std::fs::write(&volume, vec![0x5au8; 1 << 20]).unwrap();
    let run = run_with_volume(
        &root,
        &volume,
        true,
        &["/bin/sh", "-c", "echo up; ls /data"],
    );
    assert!(
        run.stdout.starts_with("up\n"),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.contains("fs: volume /data not mounted"),
        "no kernel message about the volume:\n{}",
        run.stderr
    );
}

#[test]
fn stores_through_shared_mappings_reach_the_disk() {
    let Some((root, dir)) = setup() else { return };
    let volume = dir.path().join("volume.img");
    make_volume(&volume);
    // One file written back by msync (flush), one only by the power-off.
    let script = "import mmap\n\
                  for name, flush in (('flushed', True), ('at_power_off', False)):\n\
                  \x20   with open('/data/' + name, 'wb') as f:\n\
                  \x20       f.write(b'.' * 8192)\n\
                  \x20   with open('/data/' + name, 'r+b') as f:\n\
                  \x20       m = mmap.mmap(f.fileno(), 0)\n\
                  \x20       m[4096:4101] = name.encode()[:5]\n\
                  \x20       if flush:\n\
                  \x20           m.flush()\n\
                  \x20       m.close()\n\
                  print('mapped')\n";
    let run = run_with_volume(&root, &volume, false, &["/usr/bin/python3", "-c", script]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stdout, "mapped\n");
    let (code, text) = e2fsck("-fn", &volume);
    assert_eq!(code, 0, "e2fsck -fn:\n{text}");
    for name in ["flushed", "at_power_off"] {
        let data = debugfs_cat(&volume, &format!("/{name}")).expect(name);
        assert_eq!(data.len(), 8192, "{name}");
        assert_eq!(&data[4096..4101], &name.as_bytes()[..5], "{name}");
        assert!(data[..4096].iter().all(|&b| b == b'.'), "{name}");
    }
}

/// A fresh volume in `dir` holding `/hello` ("hello\n"), written by debugfs.
fn volume_with_hello(dir: &Path, name: &str) -> PathBuf {
    let volume = dir.join(name);
    make_volume(&volume);
    let file = dir.join("hello");
    std::fs::write(&file, "hello\n").unwrap();
    let out = tool("debugfs")
        .args(["-w", "-R", &format!("write {} hello", file.display())])
        .arg(&volume)
        .output()
        .unwrap();
    assert!(out.status.success(), "debugfs write: {out:?}");
    volume
}

#[test]
fn a_damaged_directory_gives_errors_not_a_crash() {
    let Some((root, dir)) = setup() else { return };
    let volume = volume_with_hello(dir.path(), "damaged.img");
    // The root directory's first block: its `..` entry gets an impossible record length.
    let out = tool("debugfs")
        .args(["-R", "blocks /"])
        .arg(&volume)
        .output()
        .unwrap();
    let block: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("debugfs blocks /: {out:?}"));
    let mut image = std::fs::read(&volume).unwrap();
    let at = block as usize * 1024 + 12 + 4; // second entry's rec_len
    image[at..at + 2].copy_from_slice(&3u16.to_le_bytes());
    std::fs::write(&volume, image).unwrap();
    let script =
        "ls /data; echo ls=$?; cat /data/hello; echo cat=$?; echo x > /data/new; echo write=$?";
    let run = run_with_volume(&root, &volume, true, &["/bin/sh", "-c", script]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    // `ls` reads the entries before the damage and may end quietly (busybox's does, as with
    // Linux's EIO from getdents); opening through the damaged entry must fail.
    for step in ["cat", "write"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{step}=")) && l != format!("{step}=0")),
            "{step} on a damaged directory must fail:\n{}",
            run.stdout
        );
    }
}

#[test]
fn a_file_system_marked_with_errors_is_mounted_read_only() {
    let Some((root, dir)) = setup() else { return };
    let volume = volume_with_hello(dir.path(), "errors.img");
    // s_state (superblock offset 58) = EXT2_ERROR_FS: e2fsck should look before anyone writes.
    let mut image = std::fs::read(&volume).unwrap();
    image[1024 + 58..1024 + 60].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(&volume, &image).unwrap();
    let script = "cat /data/hello; echo x > /data/new; echo write=$?";
    let run = run_with_volume(&root, &volume, true, &["/bin/sh", "-c", script]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.starts_with("hello\n"), "{}", run.stdout);
    assert!(run.stdout.contains("write=1"), "{}", run.stdout);
    assert!(run.stderr.contains("mounted read-only"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&volume).unwrap(),
        image,
        "a read-only mount wrote to the disk"
    );
}
