//! Spawning one guest-booting process and timing it: spawn -> lines on its stdout -> process exit.
//!
//! Owns the child's lifetime from spawn to reap: its stdout and stderr pipes (read in this thread
//! with `poll`, so neither pipe can fill and stall the child and no helper thread competes for the
//! host's CPUs; a pidfd in the same `poll` notices the exit), the deadline (a child that overruns it
//! is killed with SIGKILL), and the reap with `wait4`, which also yields the child's peak RSS.
//! [`Session`] hands the caller stdout line by line, each with the moment it was read, and lets it
//! wait on descriptors of its own in the same `poll` (the `net` benchmark's socket, the `http`
//! benchmark's connections); [`run`] is the boot benchmark's whole run on top of it. Knows nothing about which program it
//! runs or what a good exit status is; the benchmarks decide that.

use crate::parse::{self, BootLine};
use anyhow::{Context, Result, bail};
use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{ChildStderr, ChildStdout, Command, Stdio};
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

/// A running child: its pipes drained under one `poll`, its stdout split into lines.
pub struct Session {
    start: Instant,
    deadline: Duration,
    guard: KillOnDrop,
    stdout: ChildStdout,
    stderr: ChildStderr,
    /// Readable once the child has exited: lets the deadline cover the exit as well. Without one
    /// (kernels before 5.3) the reap simply blocks once the pipes have closed.
    pidfd: Option<OwnedFd>,
    out_bytes: Vec<u8>,
    err_bytes: Vec<u8>,
    /// Stdout bytes already split into complete lines.
    scanned: usize,
    /// Complete stdout lines not yet taken by `next_line`, with when they were read.
    lines: VecDeque<(String, Duration)>,
    out_open: bool,
    err_open: bool,
    exited: bool,
    timed_out: bool,
}

/// How a finished [`Session`] ended, with everything it printed.
#[derive(Debug)]
pub struct Finished {
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

impl Finished {
    /// Why this run does not count: killed at its deadline, or an exit other than status 0.
    pub fn problem(&self) -> Option<String> {
        if self.timed_out {
            Some(format!(
                "killed after {:.1} s",
                self.exit_after.as_secs_f64()
            ))
        } else if self.ended != Ended::Exited(0) {
            Some(format!(
                "ended with {} instead of exit status 0",
                self.ended
            ))
        } else {
            None
        }
    }
}

impl Session {
    /// Starts `command` with stdin from /dev/null and stdout and stderr piped to us. It is killed
    /// once `deadline` has passed since spawn (checked whenever the session waits), or when the
    /// session is dropped before [`Session::finish`].
    pub fn spawn(command: &mut Command, deadline: Duration) -> Result<Session> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
        let guard = KillOnDrop { pid, reaped: false };
        let stdout = child.stdout.take().context("child stdout not piped")?;
        let stderr = child.stderr.take().context("child stderr not piped")?;
        let pidfd = open_pidfd(pid);
        Ok(Session {
            start,
            deadline,
            guard,
            stdout,
            stderr,
            exited: pidfd.is_none(),
            pidfd,
            out_bytes: Vec::new(),
            err_bytes: Vec::new(),
            scanned: 0,
            lines: VecDeque::new(),
            out_open: true,
            err_open: true,
            timed_out: false,
        })
    }

    /// Time since spawn.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The child has closed both pipes and exited, or was killed at the deadline.
    pub fn done(&self) -> bool {
        self.timed_out || !(self.out_open || self.err_open || !self.exited)
    }

    /// The next complete line of the child's stdout (without its newline) and when it was read
    /// (since spawn); `None` once the child is done and every line has been taken. A last line
    /// without a newline is never returned: a marker counts once its newline has arrived.
    pub fn next_line(&mut self) -> Result<Option<(String, Duration)>> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Ok(Some(line));
            }
            if self.done() {
                return Ok(None);
            }
            self.wait(None, None)?;
        }
    }

    /// Kills the child now (SIGKILL), for a caller that has seen enough to fail the run;
    /// [`Session::finish`] then reaps it at once.
    pub fn kill(&mut self) {
        if !self.done() {
            // SAFETY: `pid` is our child, not yet reaped, so it cannot name another process.
            unsafe { libc::kill(self.guard.pid, libc::SIGKILL) };
        }
    }

    /// Sends SIGTERM (a request to stop) unless the child is done; the deadline still holds, and
    /// [`Session::finish`] then waits for the exit (the `mcp-start` benchmark times a clean stop).
    pub fn terminate(&mut self) {
        if !self.done() {
            // SAFETY: `pid` is our child, not yet reaped, so it cannot name another process.
            unsafe { libc::kill(self.guard.pid, libc::SIGTERM) };
        }
    }

    /// Waits once, up to the deadline and up to `at_most` if given, for output, the exit, or
    /// `extra` (a descriptor of the caller's and the `poll` events it wants); reads what the pipes
    /// have. Returns the events `extra` got (0 for none). Kills the child if the deadline has
    /// passed; a done session returns at once.
    pub fn wait(&mut self, extra: Option<(RawFd, i16)>, at_most: Option<Duration>) -> Result<i16> {
        let (fd, events) = extra.unwrap_or((-1, 0));
        let mut extra = [libc::pollfd {
            fd,
            events,
            revents: 0,
        }];
        self.wait_many(&mut extra, at_most)?;
        Ok(extra[0].revents)
    }

    /// [`Session::wait`] with any number of the caller's descriptors (the `http` benchmark's
    /// connections): each `revents` is set to what that descriptor got (0 for none; entries with
    /// a negative `fd` are skipped, as `poll` does).
    pub fn wait_many(
        &mut self,
        extra: &mut [libc::pollfd],
        at_most: Option<Duration>,
    ) -> Result<()> {
        for fd in extra.iter_mut() {
            fd.revents = 0;
        }
        if self.done() {
            return Ok(());
        }
        let left = self.deadline.saturating_sub(self.start.elapsed());
        if left.is_zero() {
            self.timed_out = true;
            // SAFETY: `pid` is our child, not yet reaped, so it cannot name another process.
            unsafe { libc::kill(self.guard.pid, libc::SIGKILL) };
            return Ok(());
        }
        let own = [
            (self.out_open, self.stdout.as_raw_fd()),
            (self.err_open, self.stderr.as_raw_fd()),
            (
                !self.exited,
                self.pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            ),
        ];
        let mut fds: Vec<libc::pollfd> = own
            .iter()
            .map(|&(open, fd)| libc::pollfd {
                fd: if open { fd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            })
            .chain(extra.iter().copied())
            .collect();
        let wait = at_most.map_or(left, |at_most| at_most.min(left));
        // Round up, so that a short wait is not a busy loop; `at_most` zero polls without waiting.
        let timeout_ms = if at_most == Some(Duration::ZERO) {
            0
        } else {
            i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX)
        };
        // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(err).context("poll on the child's pipes");
        }
        for (mine, polled) in extra.iter_mut().zip(&fds[own.len()..]) {
            mine.revents = polled.revents;
        }
        let mut buf = [0u8; 4096];
        if fds[0].revents != 0 {
            let n = self
                .stdout
                .read(&mut buf)
                .context("reading the child's stdout")?;
            let read_at = self.start.elapsed();
            if n == 0 {
                self.out_open = false;
            }
            self.out_bytes.extend_from_slice(&buf[..n]);
            while let Some(nl) = self.out_bytes[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = &self.out_bytes[self.scanned..self.scanned + nl];
                let line = String::from_utf8_lossy(line);
                let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
                self.scanned += nl + 1;
                self.lines.push_back((line, read_at));
            }
        }
        if fds[1].revents != 0 {
            let n = self
                .stderr
                .read(&mut buf)
                .context("reading the child's stderr")?;
            if n == 0 {
                self.err_open = false;
            }
            self.err_bytes.extend_from_slice(&buf[..n]);
        }
        if fds[2].revents != 0 {
            self.exited = true;
        }
        Ok(())
    }

    /// Waits for the child to be done (its exit, or the deadline), reaps it and returns how it
    /// ended and all it printed.
    pub fn finish(mut self) -> Result<Finished> {
        while !self.done() {
            self.wait(None, None)?;
        }
        let (ended, max_rss_kib) = self.guard.reap()?;
        let exit_after = self.start.elapsed();
        Ok(Finished {
            exit_after,
            ended,
            timed_out: self.timed_out,
            max_rss_kib,
            stdout: String::from_utf8_lossy(&self.out_bytes).into_owned(),
            stderr: String::from_utf8_lossy(&self.err_bytes).into_owned(),
        })
    }
}

/// Runs `command` to completion with stdin from /dev/null, timing the first boot line on its stdout
/// and its exit. The child is killed once `deadline` has passed since spawn, boot line or not.
pub fn run(command: &mut Command, deadline: Duration) -> Result<Run> {
    let mut session = Session::spawn(command, deadline)?;
    let mut boot_line_after = None;
    let mut boot_line = None;
    while let Some((line, read_at)) = session.next_line()? {
        if let Some(parsed) = parse::boot_line(&line) {
            boot_line = Some(parsed);
            boot_line_after = Some(read_at);
            break;
        }
    }
    let finished = session.finish()?;
    Ok(Run {
        boot_line_after,
        boot_line,
        exit_after: finished.exit_after,
        ended: finished.ended,
        timed_out: finished.timed_out,
        max_rss_kib: finished.max_rss_kib,
        stdout: finished.stdout,
        stderr: finished.stderr,
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

    #[test]
    fn session_hands_out_lines_and_waits_on_an_extra_fd() {
        let mut session = Session::spawn(
            &mut sh("echo one; printf 'two\\r\\n'; sleep 0.2; echo three; printf partial"),
            Duration::from_secs(10),
        )
        .unwrap();
        let (one, one_at) = session.next_line().unwrap().unwrap();
        assert_eq!(one, "one");
        assert_eq!(session.next_line().unwrap().unwrap().0, "two");
        // A pipe of our own, already writable: `wait` reports it without waiting for the child.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe() just created both and nothing else owns them.
        let (_read, write) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let events = session
            .wait(Some((write.as_raw_fd(), libc::POLLOUT)), None)
            .unwrap();
        assert_ne!(events & libc::POLLOUT, 0);
        assert!(!session.done());
        let (three, three_at) = session.next_line().unwrap().unwrap();
        assert_eq!(three, "three");
        assert!(three_at - one_at >= Duration::from_millis(150));
        assert_eq!(
            session.next_line().unwrap(),
            None,
            "a partial last line is not a line"
        );
        let finished = session.finish().unwrap();
        assert_eq!(finished.ended, Ended::Exited(0));
        assert!(finished.stdout.ends_with("three\npartial"));
    }

    #[test]
    fn a_killed_session_finishes_at_once() {
        let mut session =
            Session::spawn(&mut sh("exec sleep 30"), Duration::from_secs(30)).unwrap();
        assert_eq!(
            session.wait(None, Some(Duration::from_millis(20))).unwrap(),
            0
        );
        session.kill();
        let finished = session.finish().unwrap();
        assert_eq!(finished.ended, Ended::Signalled(libc::SIGKILL));
        assert!(!finished.timed_out);
        assert!(finished.exit_after < Duration::from_secs(5));
    }
}
