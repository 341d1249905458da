//! Stopping the services when init is told to stop (SIGTERM or SIGINT; init's exit is then the
//! VM's power-off): SIGTERM to each service's process group, up to [`GRACE`] for them to exit
//! while init reaps, SIGKILL to what is left. Owns that sequence and its grace period; deciding
//! *when* to stop is `supervise`'s.

use crate::reap::{self, Reaped};
use crate::signals::{self, Signals};
use std::time::{Duration, Instant};

/// How long a stopping service has between SIGTERM and SIGKILL (the same as `docker stop`'s
/// default is 10 s; a VM's services are small and the user is waiting at a Ctrl-C).
pub const GRACE: Duration = Duration::from_secs(5);

/// A service that is running: its name and pid, which is also its process group.
pub struct Running {
    pub name: String,
    pub pid: libc::pid_t,
}

/// Stops `running` and returns when they have all exited (or could not be made to).
pub fn stop(mut running: Vec<Running>, signals: &Signals) {
    let groups: Vec<libc::pid_t> = running.iter().map(|service| service.pid).collect();
    for &group in &groups {
        signals::send(-group, libc::SIGTERM);
    }
    let mut deadline = Instant::now() + GRACE;
    let mut killed = false;
    loop {
        reap_services(&mut running);
        if running.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            if killed {
                for service in &running {
                    eprintln!(
                        "init: {} (pid {}) did not exit after SIGKILL; leaving it",
                        service.name, service.pid
                    );
                }
                break;
            }
            for service in &running {
                eprintln!(
                    "init: {} (pid {}) still running {} s after SIGTERM; sending SIGKILL",
                    service.name,
                    service.pid,
                    GRACE.as_secs()
                );
                signals::send(-service.pid, libc::SIGKILL);
            }
            killed = true;
            deadline = Instant::now() + GRACE;
        }
        // Further SIGTERMs change nothing: the services are already stopping.
        signals.wait(Some(deadline.saturating_duration_since(Instant::now())));
    }
    // What the services started and left behind in their groups goes too; a group with no one
    // left in it answers ESRCH.
    for group in groups {
        signals::send(-group, libc::SIGKILL);
    }
    reap::zombies();
}

/// Reaps whatever has exited, taking the services among them off `running`.
fn reap_services(running: &mut Vec<Running>) {
    loop {
        match reap::next() {
            Reaped::Exited(pid, status) => {
                if let Some(index) = running.iter().position(|service| service.pid == pid) {
                    let service = running.swap_remove(index);
                    eprintln!("init: {} {}", service.name, reap::describe(status));
                }
            }
            Reaped::Running => return,
            Reaped::NoChildren => {
                running.clear();
                return;
            }
        }
    }
}
