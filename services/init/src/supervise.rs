//! Services mode: init starts every service of `services.toml`, restarts the ones that exit as
//! their `restart` policy says, reaps everything, and on SIGTERM or SIGINT stops them all
//! (`shutdown`) and exits 0. When no service is left running or waiting to restart, init exits:
//! 0 if each one's last exit was status 0, else 1.
//!
//! Each service starts with stdin on /dev/null, stdout and stderr inherited (the console), in a
//! process group of its own (so stopping it reaches what it started too), with init's children's
//! environment plus `NOA_TOKEN` (from the kernel command line, when given) plus its `env` table.
//!
//! Restarts back off: 100 ms after a quick exit (one within [`STABLE_RUN`] of its start),
//! doubling up to 5 s for each quick exit in a row; after [`GIVE_UP_AFTER`] quick exits in a row
//! init says so and leaves the service stopped. A service that cannot be started at all (its
//! program is missing) is reported once and not retried.

use crate::environment;
use crate::reap::{self, Reaped};
use crate::services::{self, Restart};
use crate::shutdown::{self, Running};
use crate::signals::{self, Signals};
use crate::token;
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run at least this long was a success at starting: the next restart is quick again.
pub const STABLE_RUN: Duration = Duration::from_secs(10);
/// Quick exits in a row after which init stops restarting a service.
pub const GIVE_UP_AFTER: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A service and where it stands.
struct Service {
    spec: services::Service,
    state: State,
    /// Exits in a row that came within STABLE_RUN of a start.
    quick_exits: u32,
}

enum State {
    Running {
        pid: libc::pid_t,
        since: Instant,
    },
    /// To be started at this time.
    Waiting(Instant),
    /// Not started again; `ok`: its last exit was status 0.
    Ended {
        ok: bool,
    },
}

/// Runs the services until told to stop or none is left; returns init's exit code.
pub fn run(specs: Vec<services::Service>, signals: &Signals) -> i32 {
    let token = token::from_cmdline();
    let start = Instant::now();
    let mut services: Vec<Service> = specs
        .into_iter()
        .map(|spec| Service {
            spec,
            state: State::Waiting(start),
            quick_exits: 0,
        })
        .collect();
    loop {
        while let Reaped::Exited(pid, status) = reap::next() {
            if let Some(service) = services.iter_mut().find(|s| s.pid() == Some(pid)) {
                service.exited(status);
            }
        }
        let now = Instant::now();
        for service in &mut services {
            if matches!(service.state, State::Waiting(at) if at <= now) {
                service.start(token.as_deref());
            }
        }
        if services
            .iter()
            .all(|s| matches!(s.state, State::Ended { .. }))
        {
            eprintln!("init: no service is left running");
            reap::zombies();
            let ok = services
                .iter()
                .all(|s| matches!(s.state, State::Ended { ok: true }));
            return if ok { 0 } else { 1 };
        }
        let next_start = services
            .iter()
            .filter_map(|s| match s.state {
                State::Waiting(at) => Some(at),
                _ => None,
            })
            .min();
        let timeout = next_start.map(|at| at.saturating_duration_since(Instant::now()));
        if let Some(signal) = signals
            .wait(timeout)
            .into_iter()
            .find(|&signal| signal == libc::SIGTERM || signal == libc::SIGINT)
        {
            eprintln!("init: {}: stopping the services", signals::name(signal));
            let running = services
                .iter()
                .filter_map(|s| {
                    Some(Running {
                        name: s.spec.name.clone(),
                        pid: s.pid()?,
                    })
                })
                .collect();
            shutdown::stop(running, signals);
            return 0;
        }
    }
}

impl Service {
    fn pid(&self) -> Option<libc::pid_t> {
        match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    fn start(&mut self, token: Option<&str>) {
        let name = &self.spec.name;
        let program = &self.spec.command[0];
        let mut command = Command::new(program);
        environment::apply(command.args(&self.spec.command[1..]))
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(token) = token {
            command.env(token::TOKEN_VAR, token);
        }
        command.envs(&self.spec.env);
        match command.spawn() {
            Ok(child) => {
                let pid = child.id() as libc::pid_t;
                eprintln!("init: started {name} (pid {pid})");
                self.state = State::Running {
                    pid,
                    since: Instant::now(),
                };
            }
            Err(e)
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied)
                    || e.raw_os_error() == Some(libc::ENOEXEC) =>
            {
                let why = match e.kind() {
                    ErrorKind::NotFound => "not found".to_string(),
                    _ => e.to_string(),
                };
                eprintln!("init: {name}: cannot start {program}: {why}; not retrying");
                self.state = State::Ended { ok: false };
            }
            // Out of memory or processes, say: a later try may work.
            Err(e) => self.after(false, Duration::ZERO, &format!("could not start: {e}")),
        }
    }

    fn exited(&mut self, status: libc::c_int) {
        let State::Running { since, .. } = self.state else {
            return;
        };
        let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        self.after(ok, since.elapsed(), &reap::describe(status));
    }

    /// Decides what comes after a run that lasted `ran` and ended (`what`, for the message).
    fn after(&mut self, ok: bool, ran: Duration, what: &str) {
        let name = &self.spec.name;
        let again = match self.spec.restart {
            Restart::Always => true,
            Restart::OnFailure => !ok,
            Restart::Never => false,
        };
        if !again {
            eprintln!("init: {name} {what}");
            self.state = State::Ended { ok };
            return;
        }
        if ran >= STABLE_RUN {
            self.quick_exits = 0;
        }
        self.quick_exits += 1;
        if self.quick_exits >= GIVE_UP_AFTER {
            eprintln!(
                "init: {name} {what}; giving up on it: it ended {} times in a row within {} s of starting",
                self.quick_exits,
                STABLE_RUN.as_secs()
            );
            self.state = State::Ended { ok: false };
            return;
        }
        let delay = backoff(self.quick_exits);
        eprintln!(
            "init: {name} {what}; restarting in {} ms",
            delay.as_millis()
        );
        self.state = State::Waiting(Instant::now() + delay);
    }
}

/// The wait before the restart that follows `quick_exits` quick exits in a row (1 or more).
fn backoff(quick_exits: u32) -> Duration {
    let doublings = quick_exits.saturating_sub(1).min(16);
    (FIRST_BACKOFF * (1 << doublings)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_100_ms_up_to_5_s() {
        let millis: Vec<u128> = (1..=9).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
