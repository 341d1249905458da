//! A guest server for the network tests: a `vmm … -- CMD` (or any program) running in the
//! background, its stdout read line by line (so a test can wait for "listening …"), both streams
//! kept for the failure report, and the process stopped with SIGTERM (SIGKILL if it lingers) and
//! reaped when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a stopped VMM may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct GuestServer {
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    status: Option<i32>,
}

impl GuestServer {
    /// Starts `command` (a `vmm` command line) with stdin closed.
    pub fn start(mut command: Command) -> GuestServer {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let (tx, lines) = channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let kept = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = err.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        GuestServer {
            child,
            lines,
            stdout,
            stderr,
            status: None,
        }
    }

    /// The VMM's exit code if it has exited.
    pub fn exited(&mut self) -> Option<i32> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status.code().unwrap_or(-1));
        }
        self.status
    }

    /// Both streams so far and the exit code, for a failure message.
    pub fn report(&mut self) -> String {
        // Let the reader threads catch up with a VMM that just exited.
        std::thread::sleep(Duration::from_millis(200));
        format!(
            "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.exited(),
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next stdout line starting with `prefix` (earlier lines are passed over), or why
    /// none came within `limit`: the VMM exited, or the time ran out.
    pub fn wait_for_line(&mut self, prefix: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no stdout line starting {prefix:?} after {limit:?}\n{}",
                        self.report()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    return Err(format!(
                        "the VMM ended before printing {prefix:?}\n{}",
                        self.report()
                    ));
                }
            }
        }
    }

    /// Waits up to `limit` for the process to exit; its code, or None (still running).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(code) = self.exited() {
                std::thread::sleep(Duration::from_millis(100)); // the readers catch up
                return Some(code);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Stops the VMM: SIGTERM, SIGKILL after [`STOP_GRACE`]; reaps it. Its exit code.
    pub fn stop(&mut self) -> i32 {
        if let Some(code) = self.exited() {
            return code;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(code) = self.exited() {
                return code;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("reap the vmm");
        let code = status.code().unwrap_or(-1);
        self.status = Some(code);
        code
    }
}

impl Drop for GuestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
