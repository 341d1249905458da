//! Init with one child of its own (the command after `--`, or the login shell): reap every
//! child until that one exits, passing on to it the signals init receives, and return its code.
//!
//! SIGTERM, SIGINT and SIGHUP are forwarded as they are. The login shell gets more for SIGTERM,
//! because an interactive shell ignores SIGTERM and init's SIGTERM means "power off": it also
//! gets a SIGHUP (what a closed terminal sends, which ends it), and SIGKILL if it is still there
//! after [`crate::shutdown::GRACE`].

use crate::reap::{self, Reaped};
use crate::signals::{self, Signals};
use std::time::Instant;

/// What SIGTERM to init does to the child.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnTerm {
    /// Forward it; the child decides (`-- CMD`).
    Forward,
    /// Forward it with a SIGHUP, and SIGKILL after the grace period (the login shell).
    HangUp,
}

/// Reaps every child until `pid` exits, then the zombies already there; returns `pid`'s exit
/// code (128 + signal if a signal killed it).
pub fn wait_for(pid: libc::pid_t, signals: &Signals, on_term: OnTerm) -> i32 {
    let mut kill_at: Option<Instant> = None;
    loop {
        loop {
            match reap::next() {
                Reaped::Exited(reaped, status) if reaped == pid => {
                    reap::zombies();
                    return reap::exit_code(status);
                }
                Reaped::Exited(..) => {}
                Reaped::Running => break,
                Reaped::NoChildren => {
                    // Our child is gone without our seeing its status (cannot happen unless
                    // the kernel lost it). Say so rather than hang.
                    eprintln!("init: lost track of process {pid}");
                    return 1;
                }
            }
        }
        if let Some(deadline) = kill_at
            && Instant::now() >= deadline
        {
            eprintln!(
                "init: process {pid} still running {} s after SIGTERM; sending SIGKILL",
                crate::shutdown::GRACE.as_secs()
            );
            signals::send(pid, libc::SIGKILL);
            kill_at = None;
        }
        let timeout = kill_at.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        for signal in signals.wait(timeout) {
            match signal {
                libc::SIGTERM | libc::SIGINT | libc::SIGHUP => signals::send(pid, signal),
                _ => continue,
            }
            if signal == libc::SIGTERM && on_term == OnTerm::HangUp {
                signals::send(pid, libc::SIGHUP);
                kill_at.get_or_insert_with(|| Instant::now() + crate::shutdown::GRACE);
            }
        }
    }
}
