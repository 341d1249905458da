//! Ending a run on request, as `docker stop` and systemd do: SIGINT or SIGTERM to the VMM asks
//! the guest to shut down (a host request, `devices::pvport::requests`: the guest's kernel sends
//! SIGTERM to its PID 1, init stops its programs and the kernel powers off, writing the disks
//! back), and the guest has a grace period (`--stop-timeout`, 10 s by default) to power off with
//! its own exit code. If it has not by then, or on a second signal, the VMM stops it hard and
//! exits with 128 + the signal (130 for SIGINT, 143 for SIGTERM), saying why in one line.
//!
//! This module is the decision only — what a signal means at a given moment, and when the grace
//! period ends; the run loop in `vm.rs` carries it out.

use crate::exit::{Failure, StopWhy};
use crate::signals::Signal;
use std::time::{Duration, Instant};

/// The grace period unless `--stop-timeout` says otherwise (docker stop's default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What the run loop does with a signal.
#[derive(Debug)]
pub enum Step {
    /// Ask the guest to shut down, and wait for it until [`Stopping::deadline`].
    AskGuest,
    /// Stop the guest now and end with this.
    StopNow(Failure),
}

/// Where a run stands with respect to signals.
#[derive(Debug)]
pub struct Stopping {
    grace: Duration,
    /// The first signal and when it came.
    first: Option<(Signal, Instant)>,
}

impl Stopping {
    pub fn new(grace: Duration) -> Stopping {
        Stopping { grace, first: None }
    }

    /// `signal` arrived at `now`.
    pub fn on_signal(&mut self, signal: Signal, now: Instant) -> Step {
        if self.first.is_some() {
            return Step::StopNow(Failure::Stopped {
                signal,
                why: StopWhy::SecondSignal,
            });
        }
        self.first = Some((signal, now));
        Step::AskGuest
    }

    /// When the guest's grace period ends, once a signal asked it to shut down.
    pub fn deadline(&self) -> Option<Instant> {
        self.first.map(|(_, at)| at + self.grace)
    }

    /// The end of the run if the grace period is over at `now`.
    pub fn grace_over(&self, now: Instant) -> Option<Failure> {
        let (signal, _) = self.first?;
        (now >= self.deadline()?).then_some(Failure::Stopped {
            signal,
            why: StopWhy::GracePassed(self.grace),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_asks_the_guest_and_starts_the_grace_period() {
        let mut stopping = Stopping::new(Duration::from_secs(10));
        let start = Instant::now();
        assert!(stopping.deadline().is_none());
        assert!(stopping.grace_over(start).is_none());
        assert!(matches!(
            stopping.on_signal(Signal::Terminate, start),
            Step::AskGuest
        ));
        assert_eq!(stopping.deadline(), Some(start + Duration::from_secs(10)));
        assert!(
            stopping
                .grace_over(start + Duration::from_secs(9))
                .is_none()
        );
        let failure = stopping
            .grace_over(start + Duration::from_secs(10))
            .expect("grace over");
        assert_eq!(failure.exit_code(), 143);
        assert_eq!(
            failure.to_string(),
            "guest still running 10s after SIGTERM (--stop-timeout), stopped it"
        );
    }

    #[test]
    fn a_second_signal_stops_at_once_with_its_own_code() {
        let mut stopping = Stopping::new(Duration::from_secs(10));
        let start = Instant::now();
        assert!(matches!(
            stopping.on_signal(Signal::Terminate, start),
            Step::AskGuest
        ));
        let Step::StopNow(failure) = stopping.on_signal(Signal::Interrupt, start) else {
            panic!("a second signal must stop the guest");
        };
        assert_eq!(failure.exit_code(), 130);
        assert_eq!(
            failure.to_string(),
            "SIGINT again: stopped the guest without waiting for it to power off"
        );
    }

    #[test]
    fn no_grace_means_the_deadline_is_the_signal() {
        let mut stopping = Stopping::new(Duration::ZERO);
        let start = Instant::now();
        stopping.on_signal(Signal::Interrupt, start);
        let failure = stopping.grace_over(start).expect("no grace");
        assert_eq!(failure.exit_code(), 130);
    }
}
