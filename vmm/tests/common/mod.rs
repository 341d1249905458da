//! What the VMM's integration tests share: finding the artifacts `cargo xtask build` made, running
//! the `vmm` binary under test, and skipping KVM tests on hosts without /dev/kvm.
#![allow(dead_code)] // Each test file uses a different part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/noa/` (or `$NOA_ARTIFACTS`), with the guest image and kernel in it.
pub fn artifacts() -> PathBuf {
    let dir = std::env::var_os("NOA_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/noa"));
    assert!(
        dir.join("guest.img").is_file() && dir.join("kernel.elf").is_file(),
        "no guest image in {}: run `cargo xtask test` (or `cargo xtask build` first)",
        dir.display()
    );
    dir
}

pub fn guest_image() -> PathBuf {
    artifacts().join("guest.img")
}

pub fn kernel_elf() -> PathBuf {
    artifacts().join("kernel.elf")
}

/// True if KVM tests can run; otherwise prints the skip line the test log shows.
pub fn have_kvm() -> bool {
    if Path::new("/dev/kvm").exists() {
        true
    } else {
        println!("SKIPPED: no /dev/kvm");
        false
    }
}

/// The vmm binary of this build, without the default forward of service mode (tests run in
/// parallel and must not compete for the host's port 8080, nor see its banner on stderr; a test
/// of that forward passes `--default-publish`, which wins over the variable).
pub fn vmm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmm"));
    command.env("NOA_DEFAULT_PUBLISH", "off");
    command
}

/// A finished run: exit code and both streams.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts a VMM-chosen failure: `code`, one line on stderr naming `needle`, no panic.
    pub fn assert_vmm_error(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "exit code; stderr: {}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            self.stderr
        );
        assert_no_panic(&self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got: {}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("vmm: "),
            "stderr line should start with 'vmm: ': {}",
            lines[0]
        );
    }
}

pub fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "the VMM panicked: {stderr}"
    );
}

/// A finished run with its output bytes as they came (runner mode is byte-exact).
pub struct RawRun {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl RawRun {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `command` to completion (killing it after `limit`) with `stdin` as its standard input
/// (written from another thread while its output is read, so neither side can block the other).
pub fn run_with_stdin(
    command: &mut Command,
    stdin: Stdio,
    input: &[u8],
    limit: Duration,
) -> RawRun {
    use std::io::Write;
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let id = child.id();
    if let Some(mut pipe) = child.stdin.take() {
        let input = input.to_vec();
        // A guest that stops reading early closes nothing: ignore EPIPE at exit.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output: Output = match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for child"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("{command:?} still running after {limit:?}");
        }
    };
    RawRun {
        code: output.status.code().unwrap_or(-1),
        stdout: output.stdout,
        stderr: output.stderr,
    }
}

/// Runs `command` to completion (killing it after `limit`), stdin closed.
pub fn run(command: &mut Command, limit: Duration) -> Run {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = child.unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let id = child.id();
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output: Output = match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for child"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("{command:?} still running after {:?}", start.elapsed());
        }
    };
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Boots the image with `args` (before the image path) under a 60 s safety timeout, with
/// `--snapshot`: tests run in parallel on one image, which a read-write run would lock.
pub fn boot(args: &[&str]) -> Run {
    let mut command = vmm();
    command.args(["--timeout", "60", "--snapshot"]);
    // `--cmdline` is given once: noa.services=off joins the caller's words.
    match args.iter().position(|a| *a == "--cmdline") {
        Some(at) if at + 1 < args.len() => {
            command
                .args(&args[..=at])
                .arg(format!("{} {}", args[at + 1], NO_SERVICES[1]))
                .args(&args[at + 2..]);
        }
        _ => {
            command.args(NO_SERVICES).args(args);
        }
    }
    command.arg(guest_image());
    run(&mut command, Duration::from_secs(90))
}

/// What makes init run its login shell instead of the image's services (noa-server), for a boot
/// without `-- CMD` that should end when its stdin does.
pub const NO_SERVICES: [&str; 2] = ["--cmdline", "noa.services=off"];

/// The `cpus` and `mem_mib` of the boot line, which must appear exactly once.
pub fn boot_line(stdout: &str) -> (u32, u64) {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("NOA-BOOT-OK"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one boot line in: {stdout}");
    let field = |name: &str| -> u64 {
        lines[0]
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {}", lines[0]))
    };
    (field("cpus") as u32, field("mem_mib"))
}

/// `target/noa/test.img` (or `$NOA_TEST_IMAGE`): the guest image plus the test programs under
/// `/opt/tests`, which `cargo xtask test` writes.
pub fn test_image() -> PathBuf {
    std::env::var_os("NOA_TEST_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| noa_dir().join("test.img"))
}

/// `target/noa/tests/` (or `$NOA_TEST_PROGRAMS`): the test programs built for the guest, laid
/// out as under `/opt/tests` in the test image; they run natively too.
pub fn test_programs() -> PathBuf {
    std::env::var_os("NOA_TEST_PROGRAMS")
        .map(PathBuf::from)
        .unwrap_or_else(|| noa_dir().join("tests"))
}

/// `$NOA_ARTIFACTS` or `target/noa/`, without requiring what [`artifacts`] requires.
fn noa_dir() -> PathBuf {
    std::env::var_os("NOA_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/noa"))
}

/// The `--timeout` of a guest program run: generous, as a guest system call costs hundreds of µs
/// on PVM hosts today (a Rust std test program takes about a minute).
pub const GUEST_TIMEOUT_SECS: &str = "300";

/// Runs `command` in the guest booted from `image` (runner mode): `vmm --timeout 300 --snapshot
/// VMM_ARGS IMAGE -- COMMAND…`, stdin closed, killed if still running well after the guest
/// timeout.
pub fn run_in_guest(image: &Path, vmm_args: &[&str], command: &[&str]) -> Run {
    let mut vmm = vmm();
    vmm.args(["--timeout", GUEST_TIMEOUT_SECS, "--snapshot"])
        .args(vmm_args)
        .arg(image)
        .arg("--")
        .args(command);
    run(&mut vmm, Duration::from_secs(330))
}
