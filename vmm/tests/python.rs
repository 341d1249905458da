//! Debian's CPython 3.11 (dynamically linked: glibc's ld.so, libc, libm, libz, libexpat, and the
//! extension modules' libraries) natively and in the guest.
//!
//! `cargo xtask build` puts python3 into guest.img (xtask/src/python.rs); `cargo xtask test` adds
//! runtimes/tests/python/ to test.img under /opt/tests/python/. The scripts run natively with the
//! host's /usr/bin/python3.11 — the very interpreter the image carries — and in the guest
//! (`vmm --snapshot test.img -- /usr/bin/python3 …`); stdout and exit status must match. Guest
//! runs are slow on PVM hosts (every system call and page fault traps into an emulated ring 0;
//! check.py takes about a minute), hence the generous timeouts of `run_in_guest`.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The host's interpreter, the one xtask copies into the image.
const HOST_PYTHON: &str = "/usr/bin/python3.11";
const GUEST_SCRIPTS: &str = "/opt/tests/python";
const LIMIT: Duration = Duration::from_secs(120);

/// The scripts as built into `$NOA_TEST_PROGRAMS/python`; fails (with what to run) when missing.
fn script(name: &str) -> PathBuf {
    let path = test_programs().join("python").join(name);
    assert!(
        path.is_file(),
        "no {}: run `cargo xtask test` (or `cargo xtask test --no-run` to only build it)",
        path.display()
    );
    path
}

/// The test image; None (with the skip line) without /dev/kvm, a failure when it is missing.
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

/// Runs a script with the host's python3.11, with none of the PYTHON* variables that could
/// point it elsewhere (the guest has none either).
fn native(name: &str) -> Run {
    assert!(
        std::path::Path::new(HOST_PYTHON).is_file(),
        "{HOST_PYTHON} is missing: the image build needs it (apt-get install python3.11)"
    );
    let mut command = Command::new(HOST_PYTHON);
    command.arg(script(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PYTHON") {
            command.env_remove(key);
        }
    }
    run(&mut command, LIMIT)
}

fn guest(image: &std::path::Path, name: &str) -> Run {
    run_in_guest(
        image,
        &[],
        &["/usr/bin/python3", &format!("{GUEST_SCRIPTS}/{name}")],
    )
}

fn report(what: &str, run: &Run) -> String {
    format!(
        "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    )
}

/// check.py passed its own checks: exit 0, no FAIL line, its summary line last.
fn assert_passed(run: &Run) {
    let report = report("check.py", run);
    assert_eq!(run.code, 0, "{report}");
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("FAIL")),
        "{report}"
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some("python: all checks passed"),
        "{report}"
    );
    // One line per check: json, re, hashlib, sqlite3, threading, subprocess, tempfile, os.walk,
    // zipfile and datetime each have theirs.
    for module in [
        "json.",
        "re.",
        "hashlib.",
        "sqlite3.",
        "threading.",
        "subprocess.",
        "tempfile.",
        "os.walk",
        "zipfile.",
        "datetime.",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(module)),
            "no {module} check: {report}"
        );
    }
}

#[test]
fn python_check_passes_natively() {
    assert_passed(&native("check.py"));
}

#[test]
fn python_check_runs_in_the_guest_as_natively() {
    let Some(image) = guest_ready() else { return };
    let native = native("check.py");
    assert_passed(&native);
    let guest = guest(&image, "check.py");
    assert_no_panic(&guest.stderr);
    assert_eq!(
        guest.stdout,
        native.stdout,
        "check.py: stdout differs in the guest (left) from natively (right); {}",
        report("guest", &guest)
    );
    assert_eq!(guest.code, native.code, "{}", report("guest", &guest));
}

/// The shipped image (guest.img, not the test image) runs `python3 -c …` as the README shows.
#[test]
fn python3_runs_from_the_shipped_image() {
    if !have_kvm() {
        return;
    }
    let image = guest_image();
    let run = run_in_guest(&image, &[], &["python3", "-c", "print(1+1)"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "2\n"),
        "{}",
        report("python3 -c 'print(1+1)'", &run)
    );
    let run = run_in_guest(
        &image,
        &[],
        &[
            "python3",
            "-c",
            "import sys; print(sys.version_info[:2]); sys.exit(7)",
        ],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (7, "(3, 11)\n"),
        "{}",
        report("python3 -c 'sys.exit(7)'", &run)
    );
}

/// The lines of exec_elf.py's output whose case Linux answers the same way (`(linux)`).
fn linux_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.contains(" (linux): "))
        .collect()
}

/// What the guest kernel answers for the cases where Linux would map the program and crash it.
const GUEST_ONLY: &[&str] = &[
    "two-interps: ENOEXEC",
    "overlapping-loads: ENOEXEC",
    "load-over-the-stack: EINVAL",
    "interp-is-dynamic: ELIBBAD",
];

#[test]
fn dynamic_elf_programs_exec_as_on_linux_and_hostile_headers_are_refused() {
    let native = native("exec_elf.py");
    assert_eq!(native.code, 0, "{}", report("native exec_elf.py", &native));
    let native_lines = linux_lines(&native.stdout);
    // The good programs run natively, so the cases do what they say.
    assert!(
        native_lines.contains(&"good-dynamic (linux): exit 42")
            && native_lines.contains(&"good-dynamic-pie (linux): exit 42"),
        "{}",
        report("native exec_elf.py", &native)
    );
    let Some(image) = guest_ready() else { return };
    let guest = guest(&image, "exec_elf.py");
    assert_no_panic(&guest.stderr);
    assert_eq!(guest.code, 0, "{}", report("guest exec_elf.py", &guest));
    assert_eq!(
        linux_lines(&guest.stdout),
        native_lines,
        "guest (left) and Linux (right) differ; {}",
        report("guest exec_elf.py", &guest)
    );
    let others: Vec<&str> = guest
        .stdout
        .lines()
        .filter(|l| !l.contains(" (linux): "))
        .collect();
    assert_eq!(
        others,
        GUEST_ONLY,
        "{}",
        report("guest exec_elf.py", &guest)
    );
}
