//! The http benchmark against the real server natively, and against fake guests that fail in the
//! ways a guest can (an error line, silence, a missing piece of the QEMU set-up).

use super::*;
use crate::common::TempDir;
use std::path::Path;
use std::process::Command;

#[test]
fn lines_are_parsed() {
    assert_eq!(
        parse_line("NOA-HTTP listening port=8000"),
        Some(Line::Listening(8000))
    );
    assert_eq!(
        parse_line("[  1.0] x NOA-HTTP listening port=41234\r"),
        Some(Line::Listening(41234))
    );
    assert_eq!(
        parse_line("NOA-HTTP error=socket errno=38 (Function not implemented)"),
        Some(Line::Error("socket errno=38 (Function not implemented)"))
    );
    assert_eq!(
        parse_line("NOA-HTTP done requests=3 bytes_out=1 bytes_discarded=0 connections=1"),
        Some(Line::Done)
    );
    assert_eq!(parse_line("NOA-HTTP listening port=x"), None);
    assert_eq!(parse_line("hello"), None);
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
    assert_eq!(percentile(&v, 50), 5.0);
    assert_eq!(percentile(&v, 90), 9.0);
    assert_eq!(percentile(&[], 50), 0.0);
}

/// gcc, or `None` (the test is then skipped).
fn gcc() -> Option<&'static Path> {
    ["/usr/bin/gcc", "/usr/local/bin/gcc"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
}

fn build_server(dir: &Path) -> PathBuf {
    let program = dir.join("http_server");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/http_server.c");
    let built = Command::new(gcc().unwrap())
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&program)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success());
    program
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn config(dir: &Path, program: PathBuf, variants: &[Kind]) -> Config {
    let file = dir.join("some-file");
    std::fs::write(&file, b"x").unwrap();
    Config {
        vmm: file.clone(),
        image: file.clone(),
        kernel: file,
        program,
        guest_program: "/opt/noa-bench/http_server".into(),
        qemu: "/nonexistent/qemu".into(),
        qemu_cpu: None,
        debugfs: "/nonexistent/debugfs".into(),
        vmm_cpus: 2,
        variants: variants.to_vec(),
        connections: vec![1, 4],
        seconds: 0.2,
        download_mib: 3,
        upload_mib: 2,
        runs: 2,
        warmup: 0,
        deadline: Duration::from_secs(60),
    }
}

/// The whole benchmark natively with the real server; a fake VMM whose guest has no sockets
/// fails clearly and leaves native alone.
#[test]
fn native_runs_and_a_failing_guest_is_reported() {
    if gcc().is_none() {
        eprintln!("skipping: no gcc");
        return;
    }
    let dir = TempDir::new("http-test").unwrap();
    let program = build_server(dir.path());
    let mut config = config(dir.path(), program, &[Kind::Native, Kind::Vmm]);
    config.vmm = script(
        dir.path(),
        "fake-vmm",
        "echo 'NOA-HTTP error=socket errno=38 (Function not implemented)'; echo 'kernel said' >&2; exit 1",
    );
    let report = run(&config).unwrap();
    let native = &report.variants[0];
    assert_eq!(native.kind, Kind::Native);
    assert!(native.failed.is_none(), "{:?}", native.failed);
    assert_eq!(native.measured_runs, 2);
    assert_eq!(native.rates.len(), 2);
    assert_eq!(native.rates[1].connections, 4);
    for rate in &native.rates {
        assert!(rate.requests_per_s.median > 0.0);
        assert!(rate.requests.min >= 1.0);
        assert!(rate.latency_p90_us.median >= rate.latency_median_us.median);
    }
    assert!(native.download_mib_per_s.as_ref().unwrap().median > 0.0);
    assert!(native.upload_mib_per_s.as_ref().unwrap().median > 0.0);

    let vmm = &report.variants[1];
    let why = vmm.failed.as_deref().unwrap();
    assert!(why.contains("error=socket errno=38"), "{why}");
    assert!(why.contains("kernel said"), "{why}");
    assert!(why.contains("--publish 127.0.0.1:"), "{why}");
    assert_eq!(vmm.measured_runs, 0);
    assert!(report.ratios.is_empty(), "no vmm figures, no ratios");
    assert_eq!(failures(&report).len(), 1);

    let table = table::http_table(&report);
    assert!(table.contains("FAILED: vmm"), "{table}");
    assert!(table.contains("failed"), "{table}");
    serde_json::to_string(&report).unwrap();
}

/// A server that never says it listens is killed at the deadline, and that is a failure.
#[test]
fn a_silent_server_fails_at_the_deadline() {
    let dir = TempDir::new("http-test").unwrap();
    let silent = script(dir.path(), "silent", "exec sleep 30");
    let mut config = config(dir.path(), silent, &[Kind::Native]);
    config.deadline = Duration::from_millis(500);
    config.runs = 1;
    let report = run(&config).unwrap();
    let why = report.variants[0].failed.as_deref().unwrap();
    assert!(why.contains("without a `NOA-HTTP listening` line"), "{why}");
    assert!(why.contains("killed after"), "{why}");
}

/// A server that says it listens but answers nothing: the connection is refused, retried for a
/// while, then the run fails; so does a QEMU whose image cannot be read.
#[test]
fn a_server_that_does_not_serve_fails_and_qemu_needs_its_cmdline() {
    let dir = TempDir::new("http-test").unwrap();
    let port = free_port().unwrap();
    let liar = script(
        dir.path(),
        "liar",
        &format!("echo 'NOA-HTTP listening port={port}'; exec sleep 30"),
    );
    let mut config = config(dir.path(), liar, &[Kind::Native, Kind::Qemu]);
    config.runs = 1;
    let report = run(&config).unwrap();
    let why = report.variants[0].failed.as_deref().unwrap();
    assert!(why.contains("connection 1 to 127.0.0.1:"), "{why}");
    let qemu = report.variants[1].failed.as_deref().unwrap();
    assert!(
        qemu.contains("qemu slirp could not be set up: cannot run /nonexistent/debugfs"),
        "{qemu}"
    );
    assert_eq!(failures(&report).len(), 2);
}
