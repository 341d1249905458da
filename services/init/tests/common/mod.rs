//! Running noa-init natively for the tests: a scratch folder, a services file, and a running
//! init whose output lines the test can wait for before it sends a signal.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long a test waits for init before it calls it hung (a guard against hanging the test
/// run, not a measurement: everything here takes well under a second, or the grace period).
const HANG_GUARD: Duration = Duration::from_secs(120);

/// `noa-init` with stdin at EOF, and no services file or command line of the host's.
pub fn init(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_noa-init"));
    command
        .stdin(Stdio::null())
        .env("NOA_SERVICES", dir.join("no-services.toml"))
        .env("NOA_CMDLINE", dir.join("no-cmdline"))
        .env_remove("NOA_TOKEN");
    command
}

/// A fresh scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("noa-init-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `noa-init` reading `services` (TOML text) from a file in `dir`.
pub fn with_services(dir: &Path, services: &str) -> Command {
    let path = dir.join("services.toml");
    std::fs::write(&path, services).unwrap();
    let mut command = init(dir);
    command.env("NOA_SERVICES", &path);
    command
}

/// A TOML string holding `text` (a basic string: quotes and backslashes escaped).
pub fn toml_string(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// A `[[service]]` entry running `script` under `sh -c`.
pub fn sh_service(name: &str, restart: &str, script: &str) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\ncommand = [\"sh\", \"-c\", {}]\nrestart = \"{restart}\"\n\n",
        toml_string(script)
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Out,
    Err,
}

/// A running init, its output collected line by line as it comes.
pub struct Running {
    child: Child,
    lines: Receiver<(Stream, String)>,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    pub fn start(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start noa-init");
        let (send, lines) = channel();
        for (stream, reader) in [
            (
                Stream::Out,
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            ),
            (Stream::Err, Box::new(child.stderr.take().unwrap())),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { return };
                    if send.send((stream, line)).is_err() {
                        return;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Feeds `text` to init's stdin (when the command had a piped one).
    pub fn write_stdin(&mut self, text: &str) {
        self.child
            .stdin
            .as_mut()
            .expect("a piped stdin")
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn take(&mut self, (stream, line): (Stream, String)) {
        let all = match stream {
            Stream::Out => &mut self.stdout,
            Stream::Err => &mut self.stderr,
        };
        all.push_str(&line);
        all.push('\n');
    }

    /// Waits until a line on `stream` contains `text`.
    pub fn wait_for_line(&mut self, stream: Stream, text: &str) {
        let give_up = Instant::now() + HANG_GUARD;
        let seen = |all: &String| all.lines().any(|line| line.contains(text));
        loop {
            let all = match stream {
                Stream::Out => &self.stdout,
                Stream::Err => &self.stderr,
            };
            if seen(all) {
                return;
            }
            match self
                .lines
                .recv_timeout(give_up.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.take(line),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no {stream:?} line with {text:?}\nstdout:\n{}stderr:\n{}",
                        self.stdout, self.stderr
                    );
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "init ended with no {stream:?} line with {text:?}\nstdout:\n{}stderr:\n{}",
                    self.stdout, self.stderr
                ),
            }
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill takes no pointers; the pid is our own child's, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Waits for init to exit; returns its exit code, and all it wrote.
    pub fn finish(mut self) -> (i32, String, String) {
        drop(self.child.stdin.take());
        let give_up = Instant::now() + HANG_GUARD;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= give_up {
                let _ = self.child.kill();
                panic!(
                    "init did not exit\nstdout:\n{}stderr:\n{}",
                    self.stdout, self.stderr
                );
            }
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => self.take(line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
            }
        };
        // Everything init and its children wrote, to the end of both pipes. A child that
        // outlived init would keep them open: the guard stops waiting for it.
        while let Ok(line) = self
            .lines
            .recv_timeout(give_up.saturating_duration_since(Instant::now()))
        {
            self.take(line);
        }
        (
            status.code().expect("noa-init exits, not killed"),
            self.stdout,
            self.stderr,
        )
    }
}
