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
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => code::USAGE,
            Failure::Timeout(_) => code::TIMEOUT,
            Failure::GuestCrash(_) => code::GUEST_CRASH,
            Failure::Internal(_) => code::INTERNAL,
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
