//! How the VMM ends: the guest's own exit code, or one the VMM picks — and then it says why in one
//! line on stderr (like docker and timeout(1); the codes can coincide with a guest's own).

use std::fmt;

/// Exit codes the VMM itself picks (documented in README.md).
pub mod code {
    /// Bad usage, bad image or kernel, no usable /dev/kvm.
    pub const USAGE: i32 = 2;
    /// `--timeout` expired.
    pub const TIMEOUT: i32 = 124;
    /// The guest crashed: kernel panic, CPU exception, triple fault, KVM emulation failure.
    pub const GUEST_CRASH: i32 = 125;
    /// The VMM failed on its own.
    pub const INTERNAL: i32 = 126;
    /// The VMM stopped the guest hard after `signal` (SIGINT: 130, SIGTERM: 143), as a shell
    /// reports a program that signal ended.
    pub fn stopped_by(signal: crate::signals::Signal) -> i32 {
        128 + signal.number()
    }
}

/// Why the VMM ends, when it is not simply the guest's exit code.
#[derive(Debug)]
pub enum Failure {
    /// The user asked for something impossible (bad flags, image, kernel; no KVM).
    Usage(anyhow::Error),
    /// The guest did not finish in time.
    Timeout(std::time::Duration),
    /// The guest crashed; the text says how.
    GuestCrash(String),
    /// Something failed inside the VMM.
    Internal(anyhow::Error),
    /// The VMM got `signal` and stopped the guest without its power-off.
    Stopped {
        signal: crate::signals::Signal,
        why: StopWhy,
    },
}

/// Why a signal ended the run without the guest's own power-off (see `stop.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopWhy {
    /// A second SIGINT/SIGTERM came while the guest was shutting down.
    SecondSignal,
    /// The guest did not power off within the grace period (`--stop-timeout`).
    GracePassed(std::time::Duration),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => code::USAGE,
            Failure::Timeout(_) => code::TIMEOUT,
            Failure::GuestCrash(_) => code::GUEST_CRASH,
            Failure::Internal(_) => code::INTERNAL,
            Failure::Stopped { signal, .. } => code::stopped_by(*signal),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            // `{:#}` prints the whole context chain on one line.
            Failure::Usage(e) => write!(f, "{e:#}"),
            Failure::Timeout(after) => {
                write!(
                    f,
                    "guest still running after --timeout {}s, stopped it",
                    after.as_secs_f64()
                )
            }
            Failure::GuestCrash(how) => write!(f, "guest crashed: {how}"),
            Failure::Internal(e) => write!(f, "internal error: {e:#}"),
            Failure::Stopped {
                signal,
                why: StopWhy::SecondSignal,
            } => write!(
                f,
                "{signal} again: stopped the guest without waiting for it to power off"
            ),
            Failure::Stopped {
                signal,
                why: StopWhy::GracePassed(grace),
            } => write!(
                f,
                "guest still running {}s after {signal} (--stop-timeout), stopped it",
                grace.as_secs_f64()
            ),
        }
    }
}

/// Shorthand: wrap errors of a step as usage errors (bad input from the user).
pub trait UsageContext<T> {
    fn usage(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> UsageContext<T> for Result<T, E> {
    fn usage(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Usage(e.into()))
    }
}

/// Shorthand: wrap errors of a step as VMM-internal failures.
pub trait InternalContext<T> {
    fn internal(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> InternalContext<T> for Result<T, E> {
    fn internal(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Internal(e.into()))
    }
}
