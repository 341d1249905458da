//! Spawning one guest-booting process and timing it: spawn -> boot line on stdout -> process exit.
//!
//! Owns the child's lifetime from spawn to reap: its stdout and stderr pipes (read in this thread
//! with `poll`, so neither pipe can fill and stall the child and no helper thread competes for the
//! host's CPUs; a pidfd in the same `poll` notices the exit), the deadline (a child that overruns it
//! is killed with SIGKILL), and the reap with `wait4`, which also yields the child's peak RSS.
//! Knows nothing about which program it runs or what a good exit status is; `boot` decides that.

use crate::parse::{self, BootLine};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signalled(i32),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exit status {code}"),
            Ended::Signalled(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

/// One timed run of a child process.
#[derive(Debug)]
pub struct Run {
    /// Spawn to the moment the boot line was read from the child's stdout; `None` if it never came.
    pub boot_line_after: Option<Duration>,
    /// What the boot line said.
    pub boot_line: Option<BootLine>,
    /// Spawn to the moment `wait4` returned the child's exit.
    pub exit_after: Duration,
    pub ended: Ended,
    /// The deadline passed and the child was killed.
    pub timed_out: bool,
    /// The child's peak resident set (`ru_maxrss` from `wait4`), KiB.
    pub max_rss_kib: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to completion with stdin from /dev/null, timing the first boot line on its stdout
/// and its exit. The child is killed once `deadline` has passed since spawn, boot line or not.
pub fn run(command: &mut Command, deadline: Duration) -> Result<Run> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
    let mut guard = KillOnDrop { pid, reaped: false };
    let mut stdout = child.stdout.take().context("child stdout not piped")?;
    let mut stderr = child.stderr.take().context("child stderr not piped")?;
    // Readable once the child has exited: lets the deadline cover the exit as well. Without one
    // (kernels before 5.3) the reap below simply blocks once the pipes have closed.
    let pidfd = open_pidfd(pid);
    let mut exited = pidfd.is_none();

    let mut out_bytes = Vec::new();
    let mut err_bytes = Vec::new();
    let mut scanned = 0; // stdout bytes already split into complete lines
    let mut boot_line_after = None;
    let mut boot_line = None;
    let mut out_open = true;
    let mut err_open = true;
    let mut timed_out = false;
    let mut buf = [0u8; 4096];

    while out_open || err_open || !exited {
        let left = deadline.saturating_sub(start.elapsed());
        if left.is_zero() {
            timed_out = true;
            // SAFETY: `pid` is our child, not yet reaped, so it cannot name another process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        let mut fds = [
            libc::pollfd {
                fd: if out_open { stdout.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if err_open { stderr.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd
                    .as_ref()
                    .filter(|_| !exited)
                    .map_or(-1, |fd| fd.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout_ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of three pollfds for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout_ms) };
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("poll on the child's pipes");
        }
        if fds[0].revents != 0 {
            let n = stdout
                .read(&mut buf)
                .context("reading the child's stdout")?;
            let read_at = start.elapsed();
            if n == 0 {
                out_open = false;
            }
            out_bytes.extend_from_slice(&buf[..n]);
            if boot_line.is_none() {
                // Only complete lines count: the marker is "seen" once its newline has arrived.
                while let Some(nl) = out_bytes[scanned..].iter().position(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(&out_bytes[scanned..scanned + nl]);
                    scanned += nl + 1;
                    if let Some(parsed) = parse::boot_line(&line) {
                        boot_line = Some(parsed);
                        boot_line_after = Some(read_at);
                        break;
                    }
                }
            }
        }
        if fds[1].revents != 0 {
            let n = stderr
                .read(&mut buf)
                .context("reading the child's stderr")?;
            if n == 0 {
                err_open = false;
            }
            err_bytes.extend_from_slice(&buf[..n]);
        }
        if fds[2].revents != 0 {
            exited = true;
        }
    }

    let (ended, max_rss_kib) = guard.reap()?;
    let exit_after = start.elapsed();
    Ok(Run {
        boot_line_after,
        boot_line,
        exit_after,
        ended,
        timed_out,
        max_rss_kib,
        stdout: String::from_utf8_lossy(&out_bytes).into_owned(),
        stderr: String::from_utf8_lossy(&err_bytes).into_owned(),
    })
}

/// A pidfd for our child, or `None` where the kernel has no `pidfd_open`.
fn open_pidfd(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just gave us this fd and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Kills and reaps the child if it was not reaped normally (an error on the way, or a panic), so no
/// benchmark leaves a VM running behind it.
struct KillOnDrop {
    pid: libc::pid_t,
    reaped: bool,
}

impl KillOnDrop {
    /// Waits for the child to exit; returns how it ended and its peak RSS in KiB.
    fn reap(&mut self) -> Result<(Ended, u64)> {
        let mut status = 0;
        // SAFETY: all-zero is a valid `rusage`.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `pid` is our unreaped child; `status` and `usage` are valid for writes.
            let got = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if got == self.pid {
                break;
            }
            let err = std::io::Error::last_os_error();
            if got < 0 && err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("wait4 on child {}: {err}", self.pid);
        }
        self.reaped = true;
        let ended = if libc::WIFEXITED(status) {
            Ended::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Ended::Signalled(libc::WTERMSIG(status))
        } else {
            bail!("child {} stopped with wait status {status:#x}", self.pid);
        };
        // Linux reports ru_maxrss in KiB.
        Ok((ended, u64::try_from(usage.ru_maxrss).unwrap_or(0)))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: `pid` is our child, not yet reaped, so it cannot name another process.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.reap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn times_the_boot_line_and_the_exit() {
        let run = run(
            &mut sh(
                "echo hello; echo 'NOA-BOOT-OK cpus=3 mem_mib=7'; sleep 0.05; echo bye >&2; exit 3",
            ),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            run.boot_line,
            Some(BootLine {
                cpus: 3,
                mem_mib: 7
            })
        );
        let boot = run.boot_line_after.unwrap();
        assert!(boot < run.exit_after);
        assert!(run.exit_after - boot >= Duration::from_millis(40));
        assert_eq!(run.ended, Ended::Exited(3));
        assert!(!run.timed_out);
        assert!(run.stdout.starts_with("hello\n"));
        assert_eq!(run.stderr, "bye\n");
        assert!(run.max_rss_kib > 0);
    }

    #[test]
    fn a_partial_line_is_not_the_boot_line() {
        let run = run(
            &mut sh("printf 'NOA-BOOT-OK cpus=1 mem_mib=1'"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(run.boot_line, None);
        assert_eq!(run.ended, Ended::Exited(0));
    }

    #[test]
    fn an_overrunning_child_is_killed() {
        let run = run(&mut sh("exec sleep 30"), Duration::from_millis(200)).unwrap();
        assert!(run.timed_out);
        assert_eq!(run.ended, Ended::Signalled(libc::SIGKILL));
        assert!(run.exit_after < Duration::from_secs(5));
    }

    #[test]
    fn a_child_that_closes_its_pipes_is_still_held_to_the_deadline() {
        let run = run(
            &mut sh("exec >&- 2>&-; exec sleep 30"),
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(run.timed_out);
        assert_eq!(run.ended, Ended::Signalled(libc::SIGKILL));
    }

    #[test]
    fn a_missing_program_is_an_error() {
        assert!(
            run(
                &mut Command::new("/nonexistent/noa-bench-test"),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
