//! `noa-init`: PID 1 of the NOA ARK OS guest, installed as `/sbin/init`.
//!
//! The kernel starts it as `/sbin/init [KERNEL ARGS…] [-- CMD ARGS…]` with fds 0/1/2 open (stdin and
//! stdout on the console, stderr on the second console). It owns what a user program sees at start:
//! the environment, the command lookup, the services and their restarts, which signals reach
//! whom, and the exit code. It must not do anything the kernel does: mounts, devices and
//! power-off are the kernel's — init's exit *is* the power-off, with init's exit code.
//!
//! One of three modes, each in its own module:
//! - `-- CMD ARGS…` ([`runner`]): run CMD, exit with its code.
//! - no command, and `/etc/noa/services.toml` lists services ([`supervise`]): run them until
//!   SIGTERM/SIGINT, then stop them ([`shutdown`]) and exit 0.
//! - otherwise ([`shell`]): a login shell on the console; also when services.toml is bad, after
//!   saying what is wrong with it, and when the kernel command line says `noa.services=off`
//!   ([`cmdline`]).
//!
//! Run natively (not as PID 1) it makes itself a child subreaper, so it reaps orphans the same way
//! and its tests run on the host.

mod cmdline;
mod environment;
mod forward;
mod lookup;
mod reap;
mod runner;
mod services;
mod shell;
mod shutdown;
mod signals;
mod supervise;
mod token;

use std::ffi::OsString;

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if std::process::id() != 1 {
        // Natively, orphans of CMD come to us as they would to PID 1. Failure only means they
        // go to the real init instead.
        // SAFETY: prctl with integer arguments touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // Before any child exists, so no exit and no stop request goes unseen.
    let signals = match signals::Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("init: cannot handle signals: {e}");
            std::process::exit(1);
        }
    };
    let code = match args.iter().position(|a| a == "--") {
        Some(dash) if dash + 1 < args.len() => {
            runner::run(&args[dash + 1], &args[dash + 2..], &signals)
        }
        _ if cmdline::services_off() => shell::run(&signals),
        _ => {
            let path = services::config_path();
            match services::load(&path) {
                Ok(list) if !list.is_empty() => supervise::run(list, &signals),
                Ok(_) => shell::run(&signals),
                Err(e) => {
                    eprintln!("init: {e}");
                    eprintln!("init: no services started; starting a login shell instead");
                    shell::run(&signals)
                }
            }
        }
    };
    std::process::exit(code);
}
