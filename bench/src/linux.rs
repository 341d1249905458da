//! The linux benchmark: the Linux ABI's costs under our kernel, each measured by one static program
//! (bench/programs/linux_abi.c, `gcc -O2 -static`) run in the guest (`vmm --snapshot IMAGE --
//! PROGRAM NAME N`) and natively on the host in the same invocation, interleaved round by round:
//!
//! - `getpid`: µs per raw getpid system call, and the guest's emulated ring-0 instructions per call
//!   (`perf stat -e kvm:kvm_emulate_insn` on the VMM process alone, a run with N calls minus a run
//!   with none, over N) where perf and that event exist;
//! - `forkexec`: µs per fork + exec of a static hello (the same program) + wait;
//! - `pingpong`: µs per one-byte round trip between two processes over two pipes, on one CPU;
//! - `vmm IMAGE -- /bin/true`: the whole process, spawn to exit.
//!
//! Owns the command lines, the perf probe and counts, the interleaving and what a good run is (the
//! program's `NOA-LINUX name=... iters=N ...` line and exit status 0). Timing a process is
//! `child`'s job; printing is `report`'s.

use crate::child::{Ended, Finished, Session};
use crate::common::{Host, TempDir, command, host, millis, strings};
use crate::kbench;
use crate::parse::{self, LinuxLine};
use crate::stats::Summary;
use anyhow::{Context, Result};
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The target for `vmm IMAGE -- /bin/true`, reported next to the figure; never asserted.
pub const TARGET_VMM_TRUE_MEDIAN_MS: f64 = 60.0;

/// The tracepoint that counts instructions KVM emulates: on PVM hosts, every guest ring-0
/// instruction (shared/FIELD-NOTES.md).
pub const EMULATE_EVENT: &str = "kvm:kvm_emulate_insn";

/// The guest's CPUs for the ping-pong: our kernel accepts `sched_setaffinity` without enforcing
/// it, so the guest gets one vCPU, and both processes share it as the native run's share CPU 0.
pub const PINGPONG_GUEST_CPUS: u32 = 1;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    /// The image holding the program at `guest_program`.
    pub image: PathBuf,
    /// The image of the `/bin/true` run.
    pub true_image: PathBuf,
    /// The same program on the host.
    pub program: PathBuf,
    pub guest_program: String,
    pub perf: PathBuf,
    pub getpid_iters: u64,
    pub forkexec_iters: u64,
    pub pingpong_iters: u64,
    pub runs: usize,
    pub true_runs: usize,
    pub warmup: usize,
    pub deadline: Duration,
}

/// Everything the linux benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub runs: usize,
    pub warmup_runs: usize,
    /// How the variants were ordered within each round.
    pub order: &'static str,
    pub host: Host,
    pub program: Program,
    pub getpid: Getpid,
    pub fork_exec: Pair,
    pub pipe_pingpong: Pair,
    pub vmm_true: VmmTrue,
    pub targets: Targets,
    /// Anything odd seen on the way that did not fail the benchmark.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Program {
    pub host_path: String,
    pub guest_path: String,
    /// What a run prints, and where the figures come from.
    pub output: &'static str,
}

/// One sub-benchmark, guest and native.
#[derive(Debug, Serialize)]
pub struct Pair {
    pub what: &'static str,
    /// Timed iterations per run (after an untimed warm-up inside the program).
    pub iterations: u64,
    /// The guest's vCPUs (`None`: the VMM's default).
    pub guest_cpus: Option<u32>,
    pub guest: Side,
    pub native: Side,
    /// The guest's median µs per iteration over the native median.
    pub ratio_guest_over_native: f64,
}

#[derive(Debug, Serialize)]
pub struct Side {
    pub command: Vec<String>,
    /// The program's own clock (CLOCK_MONOTONIC) over the timed loop, µs per iteration.
    pub us_per_iteration: Summary,
    /// Spawn to exit of the whole process (for the guest: the VMM, boot and power-off included), ms.
    pub process_ms: Summary,
    /// Whether the program's `sched_setaffinity(CPU 0)` succeeded in every run (ping-pong only).
    pub pinned: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Getpid {
    #[serde(flatten)]
    pub latency: Pair,
    pub emulated_instructions: EmulatedInstructions,
}

#[derive(Debug, Serialize)]
pub struct EmulatedInstructions {
    pub event: &'static str,
    pub available: bool,
    /// Why there is no count (no perf, no such event, perf failed).
    pub unavailable_because: Option<String>,
    pub method: &'static str,
    pub command_with_calls: Vec<String>,
    pub command_without_calls: Vec<String>,
    /// (count with N calls - count with none) / N, paired round by round.
    pub per_getpid: Option<Summary>,
    pub count_with_calls: Option<Summary>,
    pub count_without_calls: Option<Summary>,
}

#[derive(Debug, Serialize)]
pub struct VmmTrue {
    pub command: Vec<String>,
    pub runs: usize,
    /// Spawn to exit, ms.
    pub ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    pub vmm_true_median_ms_at_most: f64,
    pub vmm_true_median_met: bool,
}

/// The program's sub-benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bench {
    Getpid,
    ForkExec,
    PingPong,
}

impl Bench {
    fn name(self) -> &'static str {
        match self {
            Bench::Getpid => "getpid",
            Bench::ForkExec => "forkexec",
            Bench::PingPong => "pingpong",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const BENCHES: [Bench; 3] = [Bench::Getpid, Bench::ForkExec, Bench::PingPong];

/// One thing run in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Guest(Bench),
    Native(Bench),
    /// `perf stat` over a guest getpid run: with the N calls, or with none.
    Counted {
        with_calls: bool,
    },
    VmmTrue,
}

/// A good run of the program.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ns: u64,
    pinned: bool,
    process: Duration,
}

/// Runs the benchmark. Prints progress to stderr; the report is the caller's to print.
pub fn run(config: &Config) -> Result<Report> {
    crate::common::require_files([
        ("--vmm", &config.vmm),
        ("--image", &config.image),
        ("--true-image", &config.true_image),
        ("--program", &config.program),
    ])?;
    // Absolute: the program execs itself by its argv[0] in the fork + exec benchmark.
    let program = std::fs::canonicalize(&config.program)
        .with_context(|| format!("--program {}", config.program.display()))?;
    let dir = TempDir::new("linux").context("creating a temporary directory")?;
    let mut warnings = Vec::new();

    let iters = |bench: Bench| match bench {
        Bench::Getpid => config.getpid_iters,
        Bench::ForkExec => config.forkexec_iters,
        Bench::PingPong => config.pingpong_iters,
    };
    let guest_cpus = |bench: Bench| (bench == Bench::PingPong).then_some(PINGPONG_GUEST_CPUS);
    let guest_args = |bench: Bench, n: u64| -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            config.vmm.clone().into(),
            "--snapshot".into(),
            // The VMM stops a stuck guest itself (exit 124), also under perf, which our kill
            // at the deadline would not reach.
            "--timeout".into(),
            config.deadline.as_secs().max(1).to_string().into(),
        ];
        if let Some(cpus) = guest_cpus(bench) {
            args.extend(["--cpus".into(), cpus.to_string().into()]);
        }
        args.extend([
            config.image.clone().into(),
            "--".into(),
            config.guest_program.clone().into(),
            bench.name().into(),
            n.to_string().into(),
        ]);
        args
    };
    let native_args = |bench: Bench| -> Vec<OsString> {
        vec![
            program.clone().into(),
            bench.name().into(),
            iters(bench).to_string().into(),
        ]
    };
    let counted_csv = |with_calls: bool| {
        dir.path().join(if with_calls {
            "count-n.csv"
        } else {
            "count-0.csv"
        })
    };
    let counted_args = |with_calls: bool| -> Vec<OsString> {
        let mut args = perf_prefix(&config.perf, &counted_csv(with_calls));
        let n = if with_calls { config.getpid_iters } else { 0 };
        args.extend(guest_args(Bench::Getpid, n));
        args
    };
    let true_args: Vec<OsString> = vec![
        config.vmm.clone().into(),
        config.true_image.clone().into(),
        "--".into(),
        "/bin/true".into(),
    ];
    // Session's deadline is a little later than the VMM's own --timeout.
    let deadline = config.deadline + Duration::from_secs(10);

    let mut perf_unavailable = probe_perf(config, dir.path()).err();
    if let Some(why) = &perf_unavailable {
        eprintln!("noa-bench linux: no emulated-instruction count: {why}");
    }

    enum Outcome {
        Program(Sample),
        Count(u64),
        Time(Duration),
        /// perf ran the guest fine but gave no count: counting stops, with this reason.
        NoCount(String),
    }
    let run_one = |kind: Kind, label: &str| -> Result<Outcome> {
        let (args, bench, n, who) = match kind {
            Kind::Guest(b) => (guest_args(b, iters(b)), b, iters(b), "guest"),
            Kind::Native(b) => (native_args(b), b, iters(b), "native"),
            Kind::Counted { with_calls } => {
                let _ = std::fs::remove_file(counted_csv(with_calls));
                let n = if with_calls { config.getpid_iters } else { 0 };
                (
                    counted_args(with_calls),
                    Bench::Getpid,
                    n,
                    "perf-counted guest",
                )
            }
            Kind::VmmTrue => {
                let finished = Session::spawn(&mut command(&true_args), deadline)?.finish()?;
                if finished.timed_out || finished.ended != Ended::Exited(0) {
                    let problem = if finished.timed_out {
                        "killed at the deadline".to_string()
                    } else {
                        format!("ended with {} instead of exit status 0", finished.ended)
                    };
                    return Err(kbench::failure(
                        "vmm /bin/true",
                        label,
                        &problem,
                        &true_args,
                        &finished,
                    ));
                }
                return Ok(Outcome::Time(finished.exit_after));
            }
        };
        let who = format!("{who} {}", bench.name());
        let finished = Session::spawn(&mut command(&args), deadline)?.finish()?;
        let sample = outcome(&finished, bench.name(), n)
            .map_err(|problem| kbench::failure(&who, label, &problem, &args, &finished))?;
        if let Kind::Counted { with_calls } = kind {
            let csv = std::fs::read_to_string(counted_csv(with_calls)).unwrap_or_default();
            return Ok(match parse::perf_stat_count(&csv, EMULATE_EVENT) {
                Ok(count) => Outcome::Count(count),
                Err(why) => Outcome::NoCount(why),
            });
        }
        Ok(Outcome::Program(sample))
    };

    let per_round_true = config.true_runs.div_ceil(config.runs.max(1));
    let round_kinds = |true_runs: usize, count: bool| -> Vec<Kind> {
        let mut kinds = Vec::new();
        for bench in BENCHES {
            kinds.push(Kind::Guest(bench));
            kinds.push(Kind::Native(bench));
            if bench == Bench::Getpid && count {
                kinds.push(Kind::Counted { with_calls: true });
                kinds.push(Kind::Counted { with_calls: false });
            }
        }
        kinds.extend(std::iter::repeat_n(Kind::VmmTrue, true_runs));
        kinds
    };

    eprintln!(
        "noa-bench linux: {} warm-up + {} interleaved rounds of getpid x{}, fork+exec x{}, pipe \
         ping-pong x{} (guest and native){}, and {} runs of vmm -- /bin/true ...",
        config.warmup,
        config.runs,
        config.getpid_iters,
        config.forkexec_iters,
        config.pingpong_iters,
        if perf_unavailable.is_none() {
            ", perf-counted guest getpid with and without the calls"
        } else {
            ""
        },
        config.true_runs
    );
    for i in 0..config.warmup {
        for kind in round_kinds(1, perf_unavailable.is_none()) {
            if let Outcome::NoCount(why) = run_one(kind, &format!("warm-up run {}", i + 1))? {
                perf_unavailable.get_or_insert(why);
            }
        }
    }

    let mut guest: [Vec<Sample>; 3] = Default::default();
    let mut native: [Vec<Sample>; 3] = Default::default();
    let mut true_times = Vec::new();
    // Per round: (count with the calls, count without).
    let mut counts: Vec<(Option<u64>, Option<u64>)> = Vec::new();
    for round in 0..config.runs {
        let true_here = per_round_true.min(config.true_runs - true_times.len());
        let kinds = round_kinds(true_here, perf_unavailable.is_none());
        let label = format!("run {}", round + 1);
        let mut pair = (None, None);
        // Rotate who goes first so that no variant always runs right after the same other one.
        for k in 0..kinds.len() {
            let kind = kinds[(round + k) % kinds.len()];
            match run_one(kind, &label)? {
                Outcome::Program(sample) => match kind {
                    Kind::Guest(b) => guest[b.index()].push(sample),
                    Kind::Native(b) => native[b.index()].push(sample),
                    _ => unreachable!("only program kinds give program samples"),
                },
                Outcome::Count(count) => match kind {
                    Kind::Counted { with_calls: true } => pair.0 = Some(count),
                    _ => pair.1 = Some(count),
                },
                Outcome::Time(time) => true_times.push(time),
                Outcome::NoCount(why) => {
                    perf_unavailable.get_or_insert(why);
                }
            }
        }
        counts.push(pair);
    }

    let side = |args: Vec<OsString>, samples: &[Sample], n: u64, pinning: bool| -> Result<Side> {
        Ok(Side {
            command: strings(&args),
            us_per_iteration: Summary::of(
                &samples
                    .iter()
                    .map(|s| s.ns as f64 / 1e3 / n.max(1) as f64)
                    .collect::<Vec<_>>(),
            )
            .context("no samples")?,
            process_ms: Summary::of(
                &samples
                    .iter()
                    .map(|s| millis(s.process))
                    .collect::<Vec<_>>(),
            )
            .context("no samples")?,
            pinned: pinning.then(|| samples.iter().all(|s| s.pinned)),
        })
    };
    let pair = |bench: Bench, what: &'static str| -> Result<Pair> {
        let pinning = bench == Bench::PingPong;
        let n = iters(bench);
        let guest = side(guest_args(bench, n), &guest[bench.index()], n, pinning)?;
        let native = side(native_args(bench), &native[bench.index()], n, pinning)?;
        Ok(Pair {
            what,
            iterations: n,
            guest_cpus: guest_cpus(bench),
            ratio_guest_over_native: guest.us_per_iteration.median / native.us_per_iteration.median,
            guest,
            native,
        })
    };

    let getpid = pair(
        Bench::Getpid,
        "raw getpid system calls (syscall(SYS_getpid)) in a loop, after 16 untimed ones",
    )?;
    let fork_exec = pair(
        Bench::ForkExec,
        "fork; the child dup2s /dev/null onto stdout and execs the same static program as \
         `linux_abi hello` (writes \"hello\\n\", exits 0); the parent waitpids; after 1 untimed round",
    )?;
    let pipe_pingpong = pair(
        Bench::PingPong,
        "one byte there and back between parent and child over two pipes, both on one CPU \
         (native: sched_setaffinity to CPU 0; guest: --cpus 1, as the guest does not enforce \
         affinity); after 16 untimed round trips",
    )?;
    if pipe_pingpong.native.pinned == Some(false) {
        warnings.push(
            "native ping-pong: sched_setaffinity(CPU 0) failed, so the two processes may have \
             run on different CPUs"
                .to_string(),
        );
    }

    let with: Vec<f64> = counts
        .iter()
        .filter_map(|c| c.0)
        .map(|c| c as f64)
        .collect();
    let without: Vec<f64> = counts
        .iter()
        .filter_map(|c| c.1)
        .map(|c| c as f64)
        .collect();
    let per_call: Vec<f64> = counts
        .iter()
        .filter_map(|&(a, b)| Some((a? as f64 - b? as f64) / config.getpid_iters.max(1) as f64))
        .collect();
    if perf_unavailable.is_some() && !per_call.is_empty() {
        warnings.push(format!(
            "perf stopped giving counts part-way; the emulated-instruction figures cover {} of {} rounds",
            per_call.len(),
            config.runs
        ));
    }
    let available = !per_call.is_empty();
    let emulated_instructions = EmulatedInstructions {
        event: EMULATE_EVENT,
        available,
        unavailable_because: if available {
            None
        } else {
            Some(perf_unavailable.unwrap_or_else(|| "no counted runs".to_string()))
        },
        method: "perf stat -e kvm:kvm_emulate_insn on the VMM process (and its threads) only, never \
                 system-wide: (count of a guest run with N getpid calls - count of one with 0) / N, \
                 paired within each round; the two runs differ only in the timed loop",
        command_with_calls: strings(&counted_args(true)),
        command_without_calls: strings(&counted_args(false)),
        per_getpid: Summary::of(&per_call),
        count_with_calls: Summary::of(&with),
        count_without_calls: Summary::of(&without),
    };

    let vmm_true = VmmTrue {
        command: strings(&true_args),
        runs: true_times.len(),
        ms: Summary::of(&true_times.iter().map(|t| millis(*t)).collect::<Vec<_>>())
            .context("no /bin/true runs")?,
    };
    let targets = Targets {
        vmm_true_median_ms_at_most: TARGET_VMM_TRUE_MEDIAN_MS,
        vmm_true_median_met: vmm_true.ms.median <= TARGET_VMM_TRUE_MEDIAN_MS,
    };
    Ok(Report {
        benchmark: "linux",
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved: each round runs every guest and native variant once (plus the \
                perf-counted guest getpid runs and its share of the /bin/true runs), the first of \
                them rotating round by round",
        host: host(),
        program: Program {
            host_path: program.to_string_lossy().into_owned(),
            guest_path: config.guest_program.clone(),
            output: "one line per run, `NOA-LINUX name=NAME iters=N ns=T pinned=0|1`: T is \
                     CLOCK_MONOTONIC ns over the N timed iterations, read inside the program",
        },
        getpid: Getpid {
            latency: getpid,
            emulated_instructions,
        },
        fork_exec,
        pipe_pingpong,
        vmm_true,
        targets,
        warnings,
    })
}

/// `perf stat -x, -e kvm:kvm_emulate_insn -o CSV --`: counts in the process it starts and its
/// threads and children only (no `-a`: other VMs may be running on the host).
pub(crate) fn perf_prefix(perf: &Path, csv: &Path) -> Vec<OsString> {
    vec![
        perf.into(),
        "stat".into(),
        "-x,".into(),
        "-e".into(),
        EMULATE_EVENT.into(),
        "-o".into(),
        csv.into(),
        "--".into(),
    ]
}

/// Whether `perf stat` can count the event here: runs it over `true`. The error says why not.
fn probe_perf(config: &Config, dir: &Path) -> Result<(), String> {
    let csv = dir.join("probe.csv");
    let mut args = perf_prefix(&config.perf, &csv);
    args.push("true".into());
    let session = Session::spawn(&mut command(&args), Duration::from_secs(30))
        .map_err(|e| format!("{e:#}"))?;
    let finished = session.finish().map_err(|e| format!("{e:#}"))?;
    if finished.ended != Ended::Exited(0) {
        let said: Vec<&str> = finished
            .stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(3)
            .collect();
        return Err(format!(
            "`{} stat -e {EMULATE_EVENT}` failed ({}): {}",
            config.perf.display(),
            finished.ended,
            said.join(" / ")
        ));
    }
    let text = std::fs::read_to_string(&csv).unwrap_or_default();
    parse::perf_stat_count(&text, EMULATE_EVENT).map(|_| ())
}

/// The program's figures from a finished run, or what was wrong with it: the deadline passed, it
/// printed `NOA-LINUX error=...`, no `NOA-LINUX name=<name> iters=<n>` line came, or it did not
/// exit 0.
fn outcome(run: &Finished, name: &str, n: u64) -> Result<Sample, String> {
    let mut found = None;
    let mut error = None;
    for line in run.stdout.lines() {
        match parse::linux_line(line) {
            Some(LinuxLine::Result {
                name: got,
                iters,
                ns,
                pinned,
            }) if got == name => found = Some((iters, ns, pinned)),
            Some(LinuxLine::Error(what)) => error = error.or(Some(what)),
            _ => {}
        }
    }
    if run.timed_out {
        return Err(format!(
            "killed after {:.1} s",
            run.exit_after.as_secs_f64()
        ));
    }
    if let Some(what) = error {
        return Err(format!(
            "the program reported `{} error={what}` ({})",
            parse::LINUX_MARKER,
            run.ended
        ));
    }
    let Some((iters, ns, pinned)) = found else {
        return Err(format!(
            "exited ({}) without printing a `{} name={name} iters={n} ns=T pinned=P` line",
            run.ended,
            parse::LINUX_MARKER
        ));
    };
    if iters != n {
        return Err(format!("the program ran {iters} iterations, not {n}"));
    }
    if run.ended != Ended::Exited(0) {
        return Err(format!("ended with {} instead of exit status 0", run.ended));
    }
    Ok(Sample {
        ns,
        pinned,
        process: run.exit_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(stdout: &str, ended: Ended, timed_out: bool) -> Finished {
        Finished {
            exit_after: Duration::from_millis(5),
            ended,
            timed_out,
            max_rss_kib: 0,
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }

    #[test]
    fn a_good_run_gives_its_figures() {
        let run = finished(
            "hello\nNOA-LINUX name=getpid iters=3 ns=300 pinned=0\n",
            Ended::Exited(0),
            false,
        );
        let sample = outcome(&run, "getpid", 3).unwrap();
        assert_eq!((sample.ns, sample.pinned), (300, false));
        assert_eq!(sample.process, Duration::from_millis(5));
    }

    #[test]
    fn bad_runs_say_what_was_wrong() {
        let line = "NOA-LINUX name=getpid iters=3 ns=300 pinned=0\n";
        let wrong_n = outcome(&finished(line, Ended::Exited(0), false), "getpid", 4);
        assert!(wrong_n.unwrap_err().contains("3 iterations, not 4"));
        let other = outcome(&finished(line, Ended::Exited(0), false), "pingpong", 3);
        assert!(other.unwrap_err().contains("without printing"));
        let status = outcome(&finished(line, Ended::Exited(1), false), "getpid", 3);
        assert!(status.unwrap_err().contains("exit status 1"));
        let killed = outcome(&finished(line, Ended::Signalled(9), true), "getpid", 3);
        assert!(killed.unwrap_err().contains("killed"));
        let error = finished("NOA-LINUX error=fork errno=11\n", Ended::Exited(1), false);
        assert!(
            outcome(&error, "forkexec", 3)
                .unwrap_err()
                .contains("error=fork errno=11")
        );
    }

    #[test]
    fn perf_runs_only_the_command_it_is_given() {
        let args = perf_prefix(Path::new("perf"), Path::new("/t/c.csv"));
        let words = strings(&args);
        assert_eq!(
            words,
            [
                "perf",
                "stat",
                "-x,",
                "-e",
                EMULATE_EVENT,
                "-o",
                "/t/c.csv",
                "--"
            ]
        );
        assert!(!words.iter().any(|w| w == "-a" || w == "--all-cpus"));
    }

    #[test]
    fn a_missing_perf_is_unavailable_not_an_error() {
        let dir = TempDir::new("linux-test").unwrap();
        let config = Config {
            vmm: "vmm".into(),
            image: "i".into(),
            true_image: "i".into(),
            program: "p".into(),
            guest_program: "/p".into(),
            perf: "/nonexistent/noa-bench-perf".into(),
            getpid_iters: 1,
            forkexec_iters: 1,
            pingpong_iters: 1,
            runs: 1,
            true_runs: 1,
            warmup: 0,
            deadline: Duration::from_secs(5),
        };
        assert!(probe_perf(&config, dir.path()).is_err());
    }
}
