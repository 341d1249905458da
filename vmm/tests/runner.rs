//! Runner mode, `vmm IMAGE -- CMD ARGS…`, on real KVM boots: the command reaches the guest on its
//! command line (encoded), console 0 carries stdin and stdout byte for byte, console 1 stderr,
//! the end of stdin reaches the guest, and the kernel's log stays off stdout — on stderr with
//! --verbose or when the run fails.
//!
//! These runs use the in-guest console test (`noa.ktest=virtio_console`), which writes a line to
//! each console and the words after `--` as `NOA-INIT-ARGS …`, and with `noa.ktest.console=echo`
//! copies its input back until the input ends; so they do not depend on the guest's init.

mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;

const ECHO: &str = "noa.ktest=virtio_console noa.ktest.console=echo";

/// `vmm --snapshot --cpus 1 VMM_ARGS IMAGE -- COMMAND`, with `--timeout 60` unless VMM_ARGS
/// has one.
fn runner(vmm_args: &[&str], command: &[&str], stdin: Stdio, input: &[u8]) -> RawRun {
    let mut cmd = vmm();
    if !vmm_args.contains(&"--timeout") {
        cmd.args(["--timeout", "60"]);
    }
    cmd.args(["--snapshot", "--cpus", "1"])
        .args(vmm_args)
        .arg(guest_image())
        .arg("--")
        .args(command);
    run_with_stdin(&mut cmd, stdin, input, Duration::from_secs(90))
}

/// What the echo test writes to stdout: its line, the command words, then the input.
fn echo_stdout(encoded_command: &str, input: &[u8]) -> Vec<u8> {
    let mut out = format!("NOA-VIRTIO-CONSOLE-OK\nNOA-INIT-ARGS {encoded_command}\n").into_bytes();
    out.extend_from_slice(input);
    out
}

fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes, expected {}; first difference at {at:?}; start: {:?}",
            got.len(),
            want.len(),
            String::from_utf8_lossy(&got[..got.len().min(200)])
        );
    }
}

#[test]
fn command_reaches_the_guest_and_stdio_is_byte_exact() {
    if !have_kvm() {
        return;
    }
    let command = ["printf", "%s\\n", "a b", "", "x%y", "é", "--", "'\"$HOME\""];
    let encoded = "printf %25s%5Cn a%20b % x%25y %C3%A9 -- %27%22%24HOME%22";
    assert_eq!(vmm::command::encode(&command), encoded);
    // 100 KiB of every byte value: more than the VMM buffers (64 KiB) and the guest posts.
    let input: Vec<u8> = (0..100 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    let run = runner(&["--cmdline", ECHO], &command, Stdio::piped(), &input);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr_text());
    assert_bytes_eq(&run.stdout, &echo_stdout(encoded, &input), "stdout");
    // Console 1 is stderr; nothing else is there (no kernel log, no VMM line).
    assert_eq!(run.stderr_text(), "NOA-VIRTIO-CONSOLE1-OK\n");
}

#[test]
fn stdin_from_a_file_or_closed_ends_for_the_guest() {
    if !have_kvm() {
        return;
    }
    // A regular file (epoll cannot watch it).
    let all: Vec<u8> = (0..=255).collect();
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, &all).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let run = runner(&["--cmdline", ECHO], &["cat"], Stdio::from(file), b"");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr_text());
    assert_bytes_eq(&run.stdout, &echo_stdout("cat", &all), "stdout");

    // /dev/null.
    let run = runner(&["--cmdline", ECHO], &["cat"], Stdio::null(), b"");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr_text());
    assert_bytes_eq(&run.stdout, &echo_stdout("cat", b""), "stdout");

    // No stdin at all (closed by the caller): the guest sees the end at once, no hang.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", r#"exec "$@" <&-"#, "sh"])
        .arg(env!("CARGO_BIN_EXE_vmm"))
        .args([
            "--timeout",
            "60",
            "--snapshot",
            "--cpus",
            "1",
            "--cmdline",
            ECHO,
        ])
        .arg(guest_image())
        .args(["--", "cat"]);
    let run = run_with_stdin(&mut cmd, Stdio::null(), b"", Duration::from_secs(90));
    assert_eq!(run.code, 0, "stderr: {}", run.stderr_text());
    assert_bytes_eq(&run.stdout, &echo_stdout("cat", b""), "stdout");
}

#[test]
fn the_kernel_log_stays_off_stdout_and_shows_on_stderr_with_verbose() {
    if !have_kvm() {
        return;
    }
    let args = ["--cmdline", "noa.ktest=virtio_rng"];
    let run = runner(&args, &["true"], Stdio::null(), b"");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr_text());
    assert_eq!(String::from_utf8_lossy(&run.stdout), "", "stdout");
    assert_eq!(
        run.stderr_text(),
        "",
        "a clean run prints nothing on stderr"
    );

    let run = runner(
        &["--verbose", args[0], args[1]],
        &["true"],
        Stdio::null(),
        b"",
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr_text());
    assert_eq!(String::from_utf8_lossy(&run.stdout), "", "stdout");
    let stderr = run.stderr_text();
    assert_eq!(
        stderr.matches("NOA-BOOT-OK cpus=1").count(),
        1,
        "the boot line once on stderr: {stderr}"
    );
    assert!(stderr.contains("NOA-KTEST passed=1 failed=0"), "{stderr}");
    assert!(!stderr.contains("--- kernel log"), "{stderr}");
}

#[test]
fn a_crash_shows_the_kernel_log_on_stderr() {
    if !have_kvm() {
        return;
    }
    let run = runner(
        &["--cmdline", "noa.test=panic"],
        &["true"],
        Stdio::null(),
        b"",
    );
    let stderr = run.stderr_text();
    assert_eq!(run.code, 125, "stderr: {stderr}");
    assert_no_panic(&stderr);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "", "stdout");
    let log = stderr
        .strip_prefix("--- kernel log (serial console) ---\n")
        .unwrap_or_else(|| panic!("no kernel log first: {stderr}"));
    let (log, after) = log
        .split_once("--- end of kernel log ---\n")
        .unwrap_or_else(|| panic!("no end of the kernel log: {stderr}"));
    assert!(log.contains("NOA-BOOT-OK cpus=1"), "{log}");
    assert!(
        log.contains("KERNEL PANIC: requested by noa.test=panic"),
        "{log}"
    );
    assert!(
        after.starts_with("vmm: guest crashed: kernel panic\nKERNEL PANIC: "),
        "{after}"
    );
}

#[test]
fn a_timeout_shows_the_kernel_log_unless_it_was_shown_already() {
    if !have_kvm() {
        return;
    }
    let args = ["--timeout", "0.5", "--cmdline", "noa.test=hang"];
    let run = runner(&args, &["sleep", "1000"], Stdio::null(), b"");
    let stderr = run.stderr_text();
    assert_eq!(run.code, 124, "stderr: {stderr}");
    assert!(
        stderr.starts_with("--- kernel log (serial console) ---\nNOA-BOOT-OK"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "--- end of kernel log ---\nvmm: guest still running after --timeout 0.5s, stopped it\n"
        ),
        "{stderr}"
    );

    let run = runner(
        &["-v", args[0], args[1], args[2], args[3]],
        &["x"],
        Stdio::null(),
        b"",
    );
    let stderr = run.stderr_text();
    assert_eq!(run.code, 124, "stderr: {stderr}");
    assert_eq!(stderr.matches("NOA-BOOT-OK").count(), 1, "{stderr}");
    assert!(!stderr.contains("--- kernel log"), "{stderr}");
}

#[test]
fn bad_commands_are_usage_errors() {
    // Refused before KVM is touched.
    let huge = "x".repeat(70_000);
    let mut cmd = vmm();
    cmd.arg(guest_image()).args(["--", "echo", &huge]);
    run(&mut cmd, Duration::from_secs(30)).assert_vmm_error(2, "at most 65536 are allowed");

    let mut cmd = vmm();
    cmd.args(["--cmdline", "init-arg -- more"])
        .arg(guest_image())
        .args(["--", "true"]);
    run(&mut cmd, Duration::from_secs(30)).assert_vmm_error(2, "already has a `--` word");

    // Within the cap, but longer than the boot protocol's command line.
    if !have_kvm() {
        return;
    }
    let long = "y".repeat(5000);
    let mut cmd = vmm();
    cmd.arg("--snapshot")
        .arg(guest_image())
        .args(["--", "echo", &long]);
    run(&mut cmd, Duration::from_secs(30)).assert_vmm_error(2, "the boot protocol allows 4095");
}
