//! What the `block` and `net` benchmarks share about the guest's in-guest benchmarks
//! (`noa.kbench=NAME`, guest-os/kernel/src/kbench.rs): judging a finished run by its
//! `NOA-KBENCH` lines and exit status, and the error that carries the command and its output.
//!
//! Owns no timing; `child` runs the processes and the benchmarks decide what to run.

use crate::child::{Ended, Finished};
use crate::common::{shell_words, tail};
use crate::parse::{self, Kbench};
use std::ffi::OsString;

/// What a good run's `NOA-KBENCH name=… bytes=… ns=…` line said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub bytes: u64,
    pub ns: u64,
}

/// The guest's figures from a finished run, or what was wrong with it: the deadline passed, the
/// guest printed `NOA-KBENCH error=…`, no `NOA-KBENCH name=<name>` line came, or the process
/// ended other than `expected` (our VMM: the guest's code 0; QEMU: 1, isa-debug-exit's (0 << 1) | 1).
pub fn outcome(run: &Finished, name: &str, expected: Ended) -> Result<Measured, String> {
    let mut measured = None;
    let mut error = None;
    for line in run.stdout.lines() {
        match parse::kbench_line(line) {
            Some(Kbench::Result {
                name: got,
                bytes,
                ns,
            }) if got == name => measured = Some(Measured { bytes, ns }),
            Some(Kbench::Error(what)) => error = error.or(Some(what)),
            _ => {}
        }
    }
    if run.timed_out {
        return Err(format!(
            "killed after {:.1} s {}",
            run.exit_after.as_secs_f64(),
            if measured.is_some() {
                "(the result came, but it did not exit)"
            } else {
                "without a result"
            }
        ));
    }
    if let Some(what) = error {
        return Err(format!(
            "the guest reported `{} error={what}` ({})",
            parse::KBENCH_MARKER,
            run.ended
        ));
    }
    let Some(measured) = measured else {
        return Err(format!(
            "exited ({}) without printing a `{} name={name} bytes=B ns=T` line",
            run.ended,
            parse::KBENCH_MARKER
        ));
    };
    if run.ended != expected {
        return Err(format!("ended with {} instead of {expected}", run.ended));
    }
    Ok(measured)
}

/// The error for a failed run: who and which run, what went wrong, the command line, and the
/// tails of the child's stdout and stderr.
pub fn failure(
    who: &str,
    label: &str,
    problem: &str,
    args: &[OsString],
    run: &Finished,
) -> anyhow::Error {
    anyhow::anyhow!(
        "{who} {label} failed: {problem}\ncommand: {}\nstdout:\n{}stderr:\n{}",
        shell_words(args),
        tail(&run.stdout),
        tail(&run.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn finished(stdout: &str, ended: Ended, timed_out: bool) -> Finished {
        Finished {
            exit_after: Duration::from_millis(300),
            ended,
            timed_out,
            max_rss_kib: 1,
            stdout: stdout.into(),
            stderr: "oops".into(),
        }
    }

    const GOOD: &str =
        "NOA-BOOT-OK cpus=2 mem_mib=511\nNOA-KBENCH name=block_read bytes=1048576 ns=2000\n";

    #[test]
    fn a_good_run() {
        assert_eq!(
            outcome(
                &finished(GOOD, Ended::Exited(0), false),
                "block_read",
                Ended::Exited(0)
            ),
            Ok(Measured {
                bytes: 1_048_576,
                ns: 2000
            })
        );
        // QEMU's clean exit is 1.
        let qemu = "NOA-KBENCH listening port=5001\r\nNOA-KBENCH name=tcp_sink bytes=5 ns=7\r\n";
        assert_eq!(
            outcome(
                &finished(qemu, Ended::Exited(1), false),
                "tcp_sink",
                Ended::Exited(1)
            ),
            Ok(Measured { bytes: 5, ns: 7 })
        );
    }

    #[test]
    fn bad_runs_say_why() {
        let why = |stdout: &str, ended, timed_out| {
            outcome(
                &finished(stdout, ended, timed_out),
                "block_read",
                Ended::Exited(0),
            )
            .unwrap_err()
        };
        assert!(why(GOOD, Ended::Exited(1), false).contains("instead of exit status 0"));
        assert!(why(GOOD, Ended::Signalled(9), true).contains("did not exit"));
        assert!(why("", Ended::Signalled(9), true).contains("without a result"));
        assert!(
            why("NOA-BOOT-OK cpus=2 mem_mib=511\n", Ended::Exited(0), false)
                .contains("without printing a `NOA-KBENCH name=block_read bytes=B ns=T` line")
        );
        // Another benchmark's result is not ours.
        assert!(
            why(
                "NOA-KBENCH name=block_write bytes=1 ns=1\n",
                Ended::Exited(0),
                false
            )
            .contains("without printing")
        );
        let error = why("NOA-KBENCH error=no-disk\n", Ended::Exited(1), false);
        assert!(
            error.contains("error=no-disk") && error.contains("exit status 1"),
            "{error}"
        );
    }

    #[test]
    fn failure_carries_command_and_output() {
        let run = finished("guest said this\n", Ended::Exited(1), false);
        let text = format!(
            "{:#}",
            failure(
                "vmm",
                "run 2",
                "it broke",
                &["vmm".into(), "img".into()],
                &run
            )
        );
        for part in [
            "vmm run 2 failed: it broke",
            "command: vmm img",
            "guest said this",
            "oops",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
    }
}
