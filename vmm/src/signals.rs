//! SIGINT and SIGTERM to the VMM: the signals that ask a run to end (Ctrl-C, `kill`, `docker
//! stop`-style supervisors).
//!
//! This module owns catching them and nothing else: signal-hook's handler only writes the
//! signal's number to its pipe (async-signal-safe), and a thread of ours reads the pipe and hands
//! each signal to a callback — the run loop's event channel (`vm.rs`), which decides what a signal
//! means (ask the guest to shut down, or stop it hard). Handlers are installed with SA_RESTART,
//! so the device threads' blocking calls are not interrupted.

use anyhow::Context;
use signal_hook::consts::signal::{SIGINT, SIGTERM};
use std::fmt;

/// A signal that asks the VMM to end the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// The signal's number (the VMM's exit code for a hard stop is 128 + this).
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => SIGINT,
            Signal::Terminate => SIGTERM,
        }
    }

    fn from_number(number: i32) -> Option<Signal> {
        match number {
            SIGINT => Some(Signal::Interrupt),
            SIGTERM => Some(Signal::Terminate),
            _ => None,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// From now on, SIGINT and SIGTERM no longer end the process: each one that arrives is passed to
/// `on_signal`, on a thread of its own (named `signals`), in the order they came.
pub fn forward(on_signal: impl Fn(Signal) + Send + 'static) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install the SIGINT/SIGTERM handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for number in signals.forever() {
                match Signal::from_number(number) {
                    Some(signal) => on_signal(signal),
                    None => tracing::debug!("ignored signal {number}"),
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_numbers_and_names() {
        assert_eq!(Signal::Interrupt.number(), 2);
        assert_eq!(Signal::Terminate.number(), 15);
        assert_eq!(Signal::Interrupt.to_string(), "SIGINT");
        assert_eq!(Signal::from_number(15), Some(Signal::Terminate));
        assert_eq!(Signal::from_number(1), None);
    }
}
