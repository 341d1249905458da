//! Unmodified static Linux programs (runtimes/tests/), natively and in the guest.
//!
//! `cargo xtask test` builds them into `$NOA_TEST_PROGRAMS` (target/noa/tests/) and writes
//! `$NOA_TEST_IMAGE` (target/noa/test.img: the guest image plus the programs under /opt/tests).
//! Each program checks itself and prints one deterministic line per check. Natively, each must
//! pass its own checks (these tests run now); in the guest (`vmm --snapshot test.img --
//! /opt/tests/…`), its stdout and exit status must equal the native run's. The guest side waits
//! for the kernel's Linux ABI (issue 4). Guest runs are slow on PVM hosts today (every system
//! call is a trap into an emulated ring 0), so their timeout is generous.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const GUEST_TESTS: &str = "/opt/tests";
/// The guest's CPUs in the Go test: not the host's count, so the runtime must see the guest's.
const GUEST_CPUS: u32 = 3;
const LIMIT: Duration = Duration::from_secs(120);

/// The built programs; fails (with what to run) when they are missing.
fn programs() -> PathBuf {
    let dir = test_programs();
    assert!(
        dir.join("rust-std").is_file(),
        "no test programs in {}: run `cargo xtask test` (or `cargo xtask test --no-run` to only \
         build them)",
        dir.display()
    );
    dir
}

/// The test image; false (with the skip line) without /dev/kvm, a failure when it is missing.
fn guest_ready() -> Option<PathBuf> {
    if !have_kvm() {
        return None;
    }
    let image = test_image();
    assert!(
        image.is_file(),
        "no test image at {}: run `cargo xtask test` (or `cargo xtask test --no-run`)",
        image.display()
    );
    Some(image)
}

fn native(command: &mut Command) -> Run {
    run(command.env_remove("GOMAXPROCS"), LIMIT)
}

/// A program passed its own checks: exit 0, no FAIL line, its summary line last.
fn assert_passed(name: &str, run: &Run) {
    let report = format!(
        "{name}: exit {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    );
    assert_eq!(run.code, 0, "{report}");
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("FAIL")),
        "{report}"
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some(format!("{name}: all checks passed").as_str()),
        "{report}"
    );
}

/// The guest run printed what the native run printed and exited the same way.
fn assert_same(name: &str, native: &Run, guest: &Run) {
    assert_no_panic(&guest.stderr);
    assert_eq!(
        guest.stdout, native.stdout,
        "{name}: stdout differs in the guest (left) from natively (right); guest exit {}, stderr:\n{}",
        guest.code, guest.stderr
    );
    assert_eq!(
        guest.code, native.code,
        "{name}: exit status differs; guest stderr:\n{}",
        guest.stderr
    );
}

// --- rust-std: a static Rust std program (musl) ---

const RUST_ARGS: [&str; 2] = ["alpha", "beta gamma"];

fn rust_std_native() -> Run {
    let dir = tempfile::tempdir().unwrap();
    native(
        Command::new(programs().join("rust-std"))
            .arg(dir.path())
            .args(RUST_ARGS),
    )
}

#[test]
fn rust_std_passes_natively() {
    assert_passed("rust-std", &rust_std_native());
}

#[test]
fn rust_std_runs_in_the_guest_as_natively() {
    let Some(image) = guest_ready() else { return };
    let native = rust_std_native();
    assert_passed("rust-std", &native);
    let mut command = vec![format!("{GUEST_TESTS}/rust-std"), "/tmp".into()];
    command.extend(RUST_ARGS.map(String::from));
    let guest = run_in_guest(&image, &[], &strs(&command));
    assert_same("rust-std", &native, &guest);
}

// --- go: a static Go program (CGO_ENABLED=0) ---

/// The Go program's output with its CPU lines taken out, and the counts they gave
/// (`numcpu`, `gomaxprocs`).
fn split_cpu_lines(stdout: &str) -> (String, u32, u32) {
    let mut rest = String::new();
    let (mut numcpu, mut gomaxprocs) = (0, 0);
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("numcpu=") {
            numcpu = n.parse().unwrap_or(0);
        } else if let Some(n) = line.strip_prefix("gomaxprocs=") {
            gomaxprocs = n.parse().unwrap_or(0);
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (rest, numcpu, gomaxprocs)
}

/// CPUs this process may run on (what Go's NumCPU counts: the affinity mask).
fn host_cpus() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status")
        .trim();
    list.split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

#[test]
fn go_passes_natively_and_sees_the_host_cpus() {
    let run = native(&mut Command::new(programs().join("go")));
    assert_passed("go", &run);
    let (_, numcpu, gomaxprocs) = split_cpu_lines(&run.stdout);
    assert_eq!(numcpu, host_cpus(), "{}", run.stdout);
    assert_eq!(gomaxprocs, numcpu, "{}", run.stdout);
}

#[test]
fn go_runs_in_the_guest_as_natively_and_sees_the_guest_cpus() {
    let Some(image) = guest_ready() else { return };
    let native = native(&mut Command::new(programs().join("go")));
    assert_passed("go", &native);
    let cpus = GUEST_CPUS.to_string();
    let guest = run_in_guest(&image, &["--cpus", &cpus], &[&format!("{GUEST_TESTS}/go")]);
    let (native_rest, _, _) = split_cpu_lines(&native.stdout);
    let (guest_rest, numcpu, gomaxprocs) = split_cpu_lines(&guest.stdout);
    let masked = |run: &Run, stdout: String| Run {
        code: run.code,
        stdout,
        stderr: run.stderr.clone(),
    };
    assert_same(
        "go",
        &masked(&native, native_rest),
        &masked(&guest, guest_rest),
    );
    assert_eq!(
        (numcpu, gomaxprocs),
        (GUEST_CPUS, GUEST_CPUS),
        "{}",
        guest.stdout
    );
}

// --- syscall-edge: system-call edge cases (C, gcc -static) ---

fn syscall_edge_native() -> Run {
    let dir = tempfile::tempdir().unwrap();
    native(Command::new(programs().join("syscall-edge")).arg(dir.path()))
}

#[test]
fn syscall_edge_passes_natively() {
    assert_passed("syscall-edge", &syscall_edge_native());
}

#[test]
fn syscall_edge_runs_in_the_guest_as_natively() {
    let Some(image) = guest_ready() else { return };
    let native = syscall_edge_native();
    assert_passed("syscall-edge", &native);
    let guest = run_in_guest(
        &image,
        &[],
        &[&format!("{GUEST_TESTS}/syscall-edge"), "/tmp"],
    );
    assert_same("syscall-edge", &native, &guest);
}

// --- procfs: /proc and /sys as programs read them (C, gcc -static) ---

fn procfs_native() -> Run {
    let dir = tempfile::tempdir().unwrap();
    native(Command::new(programs().join("procfs")).arg(dir.path()))
}

#[test]
fn procfs_passes_natively() {
    assert_passed("procfs", &procfs_native());
}

#[test]
fn procfs_runs_in_the_guest_as_natively() {
    let Some(image) = guest_ready() else { return };
    let native = procfs_native();
    assert_passed("procfs", &native);
    // Not the host's CPU count: the CPU checks must see the guest's.
    let cpus = GUEST_CPUS.to_string();
    let guest = run_in_guest(
        &image,
        &["--cpus", &cpus],
        &[&format!("{GUEST_TESTS}/procfs"), "/tmp"],
    );
    assert_same("procfs", &native, &guest);
}

// --- avx: vector registers across preemption and signals ---

fn avx_native() -> Run {
    native(Command::new(programs().join("avx")).arg("20000000"))
}

#[test]
fn avx_passes_natively() {
    assert_passed("avx", &avx_native());
}

#[test]
fn avx_state_survives_preemption_in_the_guest() {
    let Some(image) = guest_ready() else { return };
    let native = avx_native();
    assert_passed("avx", &native);
    // One CPU: the two processes must be preempted (10 ms slices) and switched on it.
    let guest = run_in_guest(
        &image,
        &["--cpus", "1"],
        &[&format!("{GUEST_TESTS}/avx"), "20000000"],
    );
    assert_same("avx", &native, &guest);
}

// --- busybox: sh scripts over busybox applets ---

/// The scripts, by file name.
fn busybox_scripts() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(programs().join("busybox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sh"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no busybox scripts");
    names
}

/// Runs a script natively with the busybox of the image (`$NOA_BUSYBOX`, else /bin/busybox),
/// its applets alone on PATH, as in the guest.
fn busybox_native(script: &str, applets: &Path) -> Run {
    native(
        Command::new(applets.join("sh"))
            .arg(programs().join("busybox").join(script))
            .env("PATH", applets),
    )
}

/// A folder with a symlink to busybox for each applet.
fn busybox_applets() -> tempfile::TempDir {
    let busybox = std::env::var_os("NOA_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/bin/busybox".into());
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (set NOA_BUSYBOX)", busybox.display()));
    let dir = tempfile::tempdir().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        std::os::unix::fs::symlink(&busybox, dir.path().join(applet)).unwrap();
    }
    dir
}

#[test]
fn busybox_scripts_pass_natively() {
    let applets = busybox_applets();
    for script in busybox_scripts() {
        let name = script.trim_end_matches(".sh");
        assert_passed(name, &busybox_native(&script, applets.path()));
    }
}

#[test]
fn busybox_scripts_run_in_the_guest_as_natively() {
    let Some(image) = guest_ready() else { return };
    let applets = busybox_applets();
    for script in busybox_scripts() {
        let name = script.trim_end_matches(".sh");
        let native = busybox_native(&script, applets.path());
        assert_passed(name, &native);
        let guest = run_in_guest(
            &image,
            &[],
            &["/bin/sh", &format!("{GUEST_TESTS}/busybox/{script}")],
        );
        assert_same(name, &native, &guest);
    }
}

// --- init (/sbin/init) in the guest: the runner-mode contract ---

#[test]
fn init_runs_the_command_and_exits_with_its_code() {
    let Some(image) = guest_ready() else { return };
    let run = run_in_guest(
        &image,
        &[],
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 7"],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (7, "out\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("err\n"), "{}", run.stderr);

    // Arguments arrive intact: spaces, an empty one, non-ASCII.
    let run = run_in_guest(&image, &[], &["printf", "[%s]", "a b", "", "c", "é*?$x"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "[a b][][c][é*?$x]"),
        "{}",
        run.stderr
    );

    // The environment init gives, the image's /etc, the working directory.
    let run = run_in_guest(
        &image,
        &[],
        &[
            "sh",
            "-c",
            "echo \"$PATH|$HOME|$TERM|$(cat /etc/hostname)|$(pwd)\"",
        ],
    );
    assert_eq!(
        run.stdout,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|linux|noa|/\n",
        "{}",
        run.stderr
    );
}

#[test]
fn init_reports_missing_commands_and_signals_as_a_shell_does() {
    let Some(image) = guest_ready() else { return };
    let run = run_in_guest(&image, &[], &["noa-no-such-command"]);
    assert_eq!(run.code, 127, "{}", run.stderr);
    assert!(
        run.stderr.contains("init: noa-no-such-command: not found"),
        "{}",
        run.stderr
    );
    let run = run_in_guest(&image, &[], &["/etc/passwd"]);
    assert_eq!(run.code, 126, "{}", run.stderr);
    let run = run_in_guest(&image, &[], &["/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!(run.code, 128 + 9, "{}", run.stderr);
    // An orphan still running does not keep the guest up once the command is done.
    let run = run_in_guest(&image, &[], &["/bin/sh", "-c", "(sleep 30 &); exit 3"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn init_without_a_command_runs_a_login_shell_on_the_console() {
    let Some(image) = guest_ready() else { return };
    let mut vmm = vmm();
    vmm.args(["--timeout", GUEST_TIMEOUT_SECS, "--snapshot"])
        .args(NO_SERVICES)
        .arg(&image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = vmm.spawn().expect("start vmm");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(b"case $0 in -*) echo login shell;; esac; exit 5\n");
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("vmm finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(5), "{stdout}");
    assert!(stdout.contains("login shell"), "{stdout}");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
