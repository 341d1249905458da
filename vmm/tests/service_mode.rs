//! `vmm IMAGE` as a service host (issue 7), with real KVM boots:
//!
//! - SIGTERM/SIGINT to the VMM ask the guest to shut down: the guest's kernel sends SIGTERM to
//!   init, init passes it to the command, and the guest powers off with init's code — the file
//!   system written back and clean for `e2fsck`. A guest that ignores the request is stopped
//!   after `--stop-timeout` (exit 143 for SIGTERM), and a second signal stops it at once (130 for
//!   SIGINT), each with one line on stderr.
//! - Service mode forwards the host's port to the guest's 8080 by default and prints where the
//!   endpoints are; a default port that is taken is a warning, and the guest boots anyway.
//! - A forward beyond the host's loopback gets a token: printed, and on the guest's kernel
//!   command line as `noa.token=`.
//!
//! Tests wait for the guest to say it is ready before they signal the VMM; nothing here is timed
//! (the limits are only there to end a hung run).

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long a guest may take to say it is ready, or to end once told (hung-run guards only).
const LIMIT: Duration = Duration::from_secs(180);

/// A command that says `ready` and then waits for a signal, as the guest's command.
const WAIT_FOR_SIGNAL: &str = "echo ready; exec sleep 1000";

/// `--stop-timeout` where the guest is expected to power off by itself: generous, so that a loaded
/// host never turns the guest's shutdown into the VMM's stop (it is a limit, not a measurement).
const PATIENT: [&str; 2] = ["--stop-timeout", "120"];

/// A VMM running in the background: its output arrives line by line as the test reads it.
struct Running {
    child: Child,
    /// Kept open: the guest's console input (so a shell in service mode stays).
    _stdin: ChildStdin,
    lines: Receiver<(Stream, String)>,
    stdout: String,
    stderr: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stream {
    Stdout,
    Stderr,
}

impl Running {
    fn start(command: &mut Command) -> Running {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        for (stream, pipe) in [
            (
                Stream::Stdout,
                Box::new(out) as Box<dyn std::io::Read + Send>,
            ),
            (Stream::Stderr, Box::new(err)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take().expect("piped");
        Running {
            child,
            _stdin: stdin,
            lines,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// Reads output until a line of `stream` contains `needle`; returns that line.
    fn wait_for(&mut self, stream: Stream, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let left = LIMIT.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok((from, line)) => {
                    let found = from == stream && line.contains(needle);
                    self.keep(from, &line);
                    if found {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    panic!(
                        "no {needle:?} on {stream:?} after {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                        self.stdout, self.stderr
                    );
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the VMM ended before {needle:?} on {stream:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                ),
            }
        }
    }

    fn keep(&mut self, from: Stream, line: &str) {
        let text = match from {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        text.push_str(line);
        text.push('\n');
    }

    /// Sends `signal` (a name for kill(1): TERM, INT) to the VMM.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -s {signal} failed");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the VMM to end; returns its exit code and all its output.
    fn finish(mut self) -> Run {
        let start = Instant::now();
        loop {
            match self
                .lines
                .recv_timeout(LIMIT.saturating_sub(start.elapsed()))
            {
                Ok((from, line)) => self.keep(from, &line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    panic!(
                        "the VMM still runs {LIMIT:?} after it was told to stop\nstdout:\n{}\n\
                         stderr:\n{}",
                        self.stdout, self.stderr
                    );
                }
            }
        }
        let status = self.child.wait().expect("wait for the VMM");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}

/// The VMM on `image` (`--snapshot` unless `writable`) in runner mode with `sh -c script`.
fn runner(image: &Path, vmm_args: &[&str], script: &str) -> Command {
    let mut command = vmm();
    command.args(["--timeout", "300", "--cpus", "1"]);
    command
        .args(vmm_args)
        .arg(image)
        .args(["--", "sh", "-c", script]);
    command
}

/// A private, writable copy of the guest image in `dir`.
fn image_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("guest.img");
    let status = Command::new("cp")
        .args(["--sparse=always", "--reflink=auto"])
        .arg(guest_image())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success(), "cp {} failed", guest_image().display());
    copy
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

/// Asserts that a stop the VMM picked ended the run: `code`, and one `vmm: ` line naming
/// `needle` after whatever the guest wrote on stderr before.
fn assert_hard_stop(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "exit code; stderr: {}", run.stderr);
    assert_no_panic(&run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("vmm: ") && last.contains(needle),
        "the last stderr line should be the VMM's, naming {needle:?}: {}",
        run.stderr
    );
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("vmm: "))
            .count(),
        1,
        "one line from the VMM: {}",
        run.stderr
    );
}

#[test]
fn sigterm_reaches_the_command_and_the_disk_is_written_back() {
    if !have_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = image_copy(dir.path());
    // The trap's exit code (7) can only come from the guest: a hard stop would be 143.
    let script = "echo written-before > /root/stop-marker; \
                  trap 'echo got-TERM; echo written-by-trap >> /root/stop-marker; exit 7' TERM; \
                  echo ready; sleep 1000 & wait";
    let mut vmm = Running::start(&mut runner(&image, &PATIENT, script));
    vmm.wait_for(Stream::Stdout, "ready");
    vmm.signal("TERM");
    let run = vmm.finish();
    assert_eq!(run.code, 7, "init's code; stderr: {}", run.stderr);
    assert!(run.stdout.contains("got-TERM"), "stdout: {}", run.stdout);
    assert_eq!(
        run.stderr, "",
        "a clean shutdown needs no word from the VMM"
    );

    let fsck = tool("e2fsck").args(["-fn"]).arg(&image).output().unwrap();
    assert_eq!(
        fsck.status.code(),
        Some(0),
        "the guest's power-off left the file system unclean:\n{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let marker = tool("debugfs")
        .args(["-R", "cat /root/stop-marker"])
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&marker.stdout),
        "written-before\nwritten-by-trap\n",
        "what the command wrote, also in its SIGTERM trap, is on the disk"
    );
}

#[test]
fn ctrl_c_ends_the_command_through_the_guest() {
    if !have_kvm() {
        return;
    }
    let mut vmm = Running::start(&mut runner(
        &guest_image(),
        &["--snapshot", PATIENT[0], PATIENT[1]],
        WAIT_FOR_SIGNAL,
    ));
    vmm.wait_for(Stream::Stdout, "ready");
    vmm.signal("INT");
    let run = vmm.finish();
    // The guest always gets SIGTERM; sleep dies of it and init reports 128 + 15.
    assert_eq!(run.code, 143, "stderr: {}", run.stderr);
    assert_eq!(run.stderr, "", "the guest ended the run, not the VMM");
}

#[test]
fn a_guest_that_ignores_the_request_is_stopped_after_the_grace_period() {
    if !have_kvm() {
        return;
    }
    let script = "trap '' TERM; echo ready; while :; do sleep 1; done";
    let mut vmm = Running::start(&mut runner(
        &guest_image(),
        &["--snapshot", "--stop-timeout", "1"],
        script,
    ));
    vmm.wait_for(Stream::Stdout, "ready");
    vmm.signal("TERM");
    let run = vmm.finish();
    assert_hard_stop(
        &run,
        143,
        "guest still running 1s after SIGTERM (--stop-timeout), stopped it",
    );
}

#[test]
fn a_second_ctrl_c_stops_the_guest_at_once() {
    if !have_kvm() {
        return;
    }
    let script = "trap '' TERM; echo ready; while :; do sleep 1; done";
    // A grace period no test waits for: only the second signal can end this run.
    let mut vmm = Running::start(&mut runner(
        &guest_image(),
        &["--snapshot", "--stop-timeout", "1000"],
        script,
    ));
    vmm.wait_for(Stream::Stdout, "ready");
    vmm.signal("INT");
    vmm.signal("INT");
    let run = vmm.finish();
    assert_hard_stop(
        &run,
        130,
        "SIGINT again: stopped the guest without waiting for it to power off",
    );
}

/// Service mode: the banner names the endpoints of the default forward, something listens there
/// while the guest runs, and SIGTERM ends the guest through init (no hard stop).
fn serve_and_stop(default_publish: &str) -> Option<(String, Run)> {
    let mut command = vmm();
    command
        .args(["--timeout", "300", "--snapshot", "--cpus", "1"])
        .args(PATIENT)
        .args(["--default-publish", default_publish])
        .arg(guest_image());
    let mut vmm = Running::start(&mut command);
    let first = vmm.wait_for(Stream::Stderr, "vmm: ");
    if first.contains("cannot listen on") {
        // Someone else holds the port: the guest boots without the forward.
        vmm.signal("TERM");
        vmm.signal("TERM");
        vmm.finish();
        return None;
    }
    let url = first
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in the banner line {first:?}"))
        .to_string();
    assert!(
        first.starts_with("vmm: OpenAI API  http://") && url.ends_with("/v1"),
        "{first}"
    );
    let base = url.trim_end_matches("/v1").to_string();
    let mcp = vmm.wait_for(Stream::Stderr, "vmm: MCP");
    assert!(mcp.ends_with(&format!("{base}/mcp")), "{mcp}");
    let health = vmm.wait_for(Stream::Stderr, "vmm: health");
    assert!(health.ends_with(&format!("{base}/health")), "{health}");

    let addr = base.trim_start_matches("http://");
    std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("connect to the default forward {addr}: {e}"));
    // Signalled as soon as the kernel is up, before init can handle SIGTERM: the request waits
    // in the kernel until init does.
    vmm.wait_for(Stream::Stdout, "NOA-BOOT-OK");
    vmm.signal("TERM");
    let run = vmm.finish();
    assert!(
        !run.stderr.contains("stopped it") && !run.stderr.contains("stopped the guest"),
        "the guest should power off by itself: {}",
        run.stderr
    );
    // In service mode the kernel's log is stdout.
    assert!(
        run.stdout
            .contains("kernel: the host asks for a shutdown: SIGTERM to init"),
        "the guest's kernel passed the request on: {}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("vmm: SIGTERM: asking the guest to shut down"),
        "service mode says what it does with the signal: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("token"), "loopback needs no token");
    Some((addr.to_string(), run))
}

#[test]
fn service_mode_forwards_a_host_port_and_prints_the_endpoints() {
    if !have_kvm() {
        return;
    }
    // Port 0: the host picks a free one, which the banner must then show.
    let (addr, _) = serve_and_stop("127.0.0.1:0").expect("a free port is never taken");
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
}

#[test]
fn service_mode_forwards_port_8080_by_default() {
    if !have_kvm() {
        return;
    }
    // Without --default-publish (and without the variable the other tests set).
    let mut command = vmm();
    command
        .env_remove("NOA_DEFAULT_PUBLISH")
        .args(["--timeout", "300", "--snapshot", "--cpus", "1"])
        .arg(guest_image());
    let mut vmm = Running::start(&mut command);
    let first = vmm.wait_for(Stream::Stderr, "vmm: ");
    vmm.signal("TERM");
    vmm.signal("TERM");
    let run = vmm.finish();
    if first.contains("cannot listen on 127.0.0.1:8080") {
        println!("SKIPPED: 127.0.0.1:8080 is in use on this host");
        return;
    }
    assert_eq!(
        first, "vmm: OpenAI API  http://127.0.0.1:8080/v1",
        "{}",
        run.stderr
    );
}

#[test]
fn a_taken_default_port_is_a_warning_and_the_guest_boots_anyway() {
    if !have_kvm() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut command = vmm();
    command
        .args(["--timeout", "300", "--snapshot", "--cpus", "1"])
        .args(PATIENT)
        .args(["--default-publish", &addr.to_string()])
        .arg(guest_image());
    let mut vmm = Running::start(&mut command);
    let warning = vmm.wait_for(Stream::Stderr, "vmm: ");
    assert!(
        warning.contains(&format!("cannot listen on {addr}"))
            && warning.contains("--default-publish"),
        "{warning}"
    );
    vmm.wait_for(Stream::Stdout, "NOA-BOOT-OK");
    vmm.signal("TERM");
    let run = vmm.finish();
    assert!(
        !run.stderr.contains("http://"),
        "no endpoints: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("stopped it"), "{}", run.stderr);
}

#[test]
fn a_publish_beyond_loopback_gives_the_guest_a_token() {
    if !have_kvm() {
        return;
    }
    // Listens on every host address (port 0: a free one) for the few seconds of the run; nothing
    // here connects to it.
    let run = run_in_guest(
        &guest_image(),
        &["--cpus", "1", "--publish", "0.0.0.0:0:8080"],
        &["cat", "/proc/cmdline"],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("vmm: token "))
        .unwrap_or_else(|| panic!("no token line on stderr: {}", run.stderr));
    let token = line.split_whitespace().nth(2).expect("the token");
    assert_eq!(token.len(), 64, "{line}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    assert!(line.contains("Authorization: Bearer"), "{line}");
    assert!(
        run.stdout
            .split_whitespace()
            .any(|w| w == format!("noa.token={token}")),
        "the guest's command line lacks noa.token={token}: {}",
        run.stdout
    );

    // On loopback: no token, and runner mode's stderr stays the command's.
    let run = run_in_guest(
        &guest_image(),
        &["--cpus", "1", "--publish", "127.0.0.1:0:8080"],
        &["cat", "/proc/cmdline"],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stderr, "");
    assert!(!run.stdout.contains("noa.token="), "{}", run.stdout);
    assert!(
        run.stdout.contains("noa.pvport.irq=23"),
        "the request line is on the command line: {}",
        run.stdout
    );
}
