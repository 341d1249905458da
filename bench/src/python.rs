//! The python benchmark: Debian's CPython 3.11 starting up, in the guest (guest.img carries it,
//! xtask/src/python.rs) and natively with the host's /usr/bin/python3.11 — the same interpreter —
//! interleaved round by round. Two programs: `python3 -c pass`, and an import-heavy one (json, re,
//! datetime, subprocess, sqlite3, zipfile, hashlib, tempfile, threading, logging, pathlib,
//! argparse; then it exits). Measured three ways:
//!
//! - **warm**: a driver script starts each program N+1 times with `subprocess.run` and times each
//!   start to exit with `time.perf_counter_ns` (the first, untimed, warms the page cache), in the
//!   guest (`vmm -- python3 -c DRIVER`) and natively — the figure the target is about;
//! - **cold VM**: the whole `vmm --snapshot IMAGE -- python3 -c CODE`, spawn to exit (boot, a cold
//!   page cache, power-off), next to `vmm --snapshot IMAGE -- /bin/true` (the same without
//!   python), and the native process spawn to exit;
//! - **emulated instructions** (where `perf stat -e kvm:kvm_emulate_insn` works): a cold
//!   `python3 -c pass` VM run minus a `/bin/true` one, the VMM process only.
//!
//! Owns the command lines, the driver, the interleaving and what a good run is (exit status 0; the
//! driver's `NOA-PYTHON name=… ns=…` lines, N of each). Timing a process is `child`'s job;
//! printing is `report`'s.

use crate::child::{Ended, Finished, Session};
use crate::common::{Host, TempDir, command, host, millis, strings};
use crate::kbench;
use crate::linux::{EMULATE_EVENT, perf_prefix};
use crate::parse;
use crate::stats::Summary;
use anyhow::{Context, Result};
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The target for `python3 -c pass` in the guest (warm, in-guest); noted, never asserted.
pub const TARGET_PASS_MS: f64 = 150.0;

/// The line the driver prints per timed start.
pub const MARKER: &str = "NOA-PYTHON";

/// The import-heavy program.
pub const IMPORTS: &str = "import json, re, datetime, subprocess, sqlite3, zipfile, hashlib, \
                           tempfile, threading, logging, pathlib, argparse";

/// Starts each program `N + 1` times (argv: interpreter, N), timing all but the first.
const DRIVER: &str = "\
import subprocess, sys, time
python, n = sys.argv[1], int(sys.argv[2])
for name, code in (('pass', 'pass'), ('imports', sys.argv[3])):
    for i in range(n + 1):
        start = time.perf_counter_ns()
        subprocess.run([python, '-c', code], check=True)
        ns = time.perf_counter_ns() - start
        if i:
            print(f'NOA-PYTHON name={name} ns={ns}', flush=True)
";

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    /// guest.img: python3 at `guest_python`.
    pub image: PathBuf,
    pub guest_python: String,
    /// The host's interpreter (the one the image carries).
    pub python: PathBuf,
    pub perf: PathBuf,
    pub runs: usize,
    /// Timed starts of each program per driver run.
    pub warm_starts: u64,
    pub warmup: usize,
    pub deadline: Duration,
}

/// Everything the python benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub runs: usize,
    pub warmup_runs: usize,
    pub order: &'static str,
    pub host: Host,
    pub guest_python: String,
    pub native_python: String,
    pub imports_program: &'static str,
    pub warm: Warm,
    pub cold: Cold,
    pub emulated_instructions: Instructions,
    pub targets: Targets,
}

#[derive(Debug, Serialize)]
pub struct Warm {
    pub what: &'static str,
    pub starts_per_run: u64,
    pub guest_command: Vec<String>,
    pub native_command: Vec<String>,
    pub pass: Pair,
    pub imports: Pair,
}

/// One program, guest and native, in ms.
#[derive(Debug, Serialize)]
pub struct Pair {
    pub guest_ms: Summary,
    pub native_ms: Summary,
    /// Guest median over native median.
    pub ratio_guest_over_native: f64,
}

#[derive(Debug, Serialize)]
pub struct Cold {
    pub what: &'static str,
    pub pass: Pair,
    pub imports: Pair,
    /// `vmm --snapshot IMAGE -- /bin/true`, spawn to exit, ms.
    pub vmm_true_ms: Summary,
    /// Cold `python3 -c pass` less `/bin/true`, paired per round, ms.
    pub pass_less_true_ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct Instructions {
    pub event: &'static str,
    pub available: bool,
    pub unavailable_because: Option<String>,
    pub method: &'static str,
    /// (count of a cold `python3 -c pass` run - count of a `/bin/true` run), paired per round.
    pub per_cold_pass: Option<Summary>,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    pub pass_in_guest_median_ms_at_most: f64,
    pub pass_in_guest_median_met: bool,
}

/// One thing run in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GuestWarm,
    NativeWarm,
    GuestCold { imports: bool },
    NativeCold { imports: bool },
    GuestTrue,
    Counted { python: bool },
}

/// Runs the benchmark. Prints progress to stderr; the report is the caller's to print.
pub fn run(config: &Config) -> Result<Report> {
    crate::common::require_files([
        ("--vmm", &config.vmm),
        ("--image", &config.image),
        ("--python", &config.python),
    ])?;
    let dir = TempDir::new("python").context("creating a temporary directory")?;
    let deadline = config.deadline + Duration::from_secs(10);
    let vmm = |guest: &[&str]| -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            config.vmm.clone().into(),
            "--snapshot".into(),
            "--timeout".into(),
            config.deadline.as_secs().max(1).to_string().into(),
            config.image.clone().into(),
            "--".into(),
        ];
        args.extend(guest.iter().map(OsString::from));
        args
    };
    let code = |imports: bool| if imports { IMPORTS } else { "pass" };
    let starts = config.warm_starts.to_string();
    let args_of = |kind: Kind| -> Vec<OsString> {
        match kind {
            Kind::GuestWarm => vmm(&[
                &config.guest_python,
                "-c",
                DRIVER,
                &config.guest_python,
                &starts,
                IMPORTS,
            ]),
            Kind::NativeWarm => {
                let python: OsString = config.python.clone().into();
                vec![
                    python.clone(),
                    "-c".into(),
                    DRIVER.into(),
                    python,
                    starts.clone().into(),
                    IMPORTS.into(),
                ]
            }
            Kind::GuestCold { imports } => vmm(&[&config.guest_python, "-c", code(imports)]),
            Kind::NativeCold { imports } => vec![
                config.python.clone().into(),
                "-c".into(),
                code(imports).into(),
            ],
            Kind::GuestTrue => vmm(&["/bin/true"]),
            Kind::Counted { python } => {
                let mut args = perf_prefix(&config.perf, &counted_csv(dir.path(), python));
                args.extend(if python {
                    vmm(&[&config.guest_python, "-c", "pass"])
                } else {
                    vmm(&["/bin/true"])
                });
                args
            }
        }
    };
    let run_one = |kind: Kind, label: &str| -> Result<Finished> {
        let args = args_of(kind);
        if let Kind::Counted { python } = kind {
            let _ = std::fs::remove_file(counted_csv(dir.path(), python));
        }
        let mut child = command(&args);
        if matches!(kind, Kind::NativeWarm | Kind::NativeCold { .. }) {
            without_python_env(&mut child);
        }
        let finished = Session::spawn(&mut child, deadline)?.finish()?;
        let problem = finished.problem();
        match problem {
            Some(problem) => Err(kbench::failure(
                &format!("{kind:?}"),
                label,
                &problem,
                &args,
                &finished,
            )),
            None => Ok(finished),
        }
    };

    let mut perf_unavailable = probe_perf(&config.perf, dir.path()).err();
    if let Some(why) = &perf_unavailable {
        eprintln!("noa-bench python: no emulated-instruction count: {why}");
    }
    let round_kinds = |count: bool| -> Vec<Kind> {
        let mut kinds = vec![
            Kind::GuestWarm,
            Kind::NativeWarm,
            Kind::GuestCold { imports: false },
            Kind::NativeCold { imports: false },
            Kind::GuestCold { imports: true },
            Kind::NativeCold { imports: true },
            Kind::GuestTrue,
        ];
        if count {
            kinds.extend([
                Kind::Counted { python: true },
                Kind::Counted { python: false },
            ]);
        }
        kinds
    };
    eprintln!(
        "noa-bench python: {} warm-up + {} interleaved rounds: the driver ({} timed starts of \
         `-c pass` and of the imports, guest and native), cold `vmm -- python3 -c …` and the \
         native process, `vmm -- /bin/true`{} ...",
        config.warmup,
        config.runs,
        config.warm_starts,
        if perf_unavailable.is_none() {
            ", perf-counted cold pass and /bin/true"
        } else {
            ""
        }
    );
    for i in 0..config.warmup {
        for kind in round_kinds(false) {
            run_one(kind, &format!("warm-up run {}", i + 1))?;
        }
    }

    #[derive(Default)]
    struct Samples {
        guest_warm: [Vec<f64>; 2],
        native_warm: [Vec<f64>; 2],
        guest_cold: [Vec<f64>; 2],
        native_cold: [Vec<f64>; 2],
        guest_true: Vec<f64>,
        pass_less_true: Vec<f64>,
        instructions: Vec<f64>,
    }
    let mut s = Samples::default();
    for round in 0..config.runs {
        let kinds = round_kinds(perf_unavailable.is_none());
        let label = format!("run {}", round + 1);
        let (mut cold_pass, mut cold_true) = (None, None);
        let (mut counted_pass, mut counted_true) = (None, None);
        for k in 0..kinds.len() {
            let kind = kinds[(round + k) % kinds.len()];
            let finished = run_one(kind, &label)?;
            let ms = millis(finished.exit_after);
            match kind {
                Kind::GuestWarm | Kind::NativeWarm => {
                    let per_start =
                        driver_times(&finished.stdout, config.warm_starts).map_err(|problem| {
                            kbench::failure(
                                &format!("{kind:?}"),
                                &label,
                                &problem,
                                &args_of(kind),
                                &finished,
                            )
                        })?;
                    let into = if kind == Kind::GuestWarm {
                        &mut s.guest_warm
                    } else {
                        &mut s.native_warm
                    };
                    into[0].extend(per_start.0);
                    into[1].extend(per_start.1);
                }
                Kind::GuestCold { imports } => {
                    s.guest_cold[usize::from(imports)].push(ms);
                    if !imports {
                        cold_pass = Some(ms);
                    }
                }
                Kind::NativeCold { imports } => s.native_cold[usize::from(imports)].push(ms),
                Kind::GuestTrue => {
                    s.guest_true.push(ms);
                    cold_true = Some(ms);
                }
                Kind::Counted { python } => {
                    let csv = std::fs::read_to_string(counted_csv(dir.path(), python))
                        .unwrap_or_default();
                    match parse::perf_stat_count(&csv, EMULATE_EVENT) {
                        Ok(count) if python => counted_pass = Some(count as f64),
                        Ok(count) => counted_true = Some(count as f64),
                        Err(why) => {
                            perf_unavailable.get_or_insert(why);
                        }
                    }
                }
            }
        }
        if let (Some(pass), Some(t)) = (cold_pass, cold_true) {
            s.pass_less_true.push(pass - t);
        }
        if let (Some(pass), Some(t)) = (counted_pass, counted_true) {
            s.instructions.push(pass - t);
        }
    }

    let summary = |samples: &[f64], what: &str| {
        Summary::of(samples).with_context(|| format!("no samples of {what}"))
    };
    let pair = |guest: &[f64], native: &[f64], what: &str| -> Result<Pair> {
        let guest_ms = summary(guest, what)?;
        let native_ms = summary(native, what)?;
        Ok(Pair {
            ratio_guest_over_native: guest_ms.median / native_ms.median,
            guest_ms,
            native_ms,
        })
    };
    let warm = Warm {
        what: "in-guest and native: a driver (python3 -c DRIVER) starts each program N+1 times \
               with subprocess.run and times each start to exit with time.perf_counter_ns; the \
               first start of each is untimed (it warms the page cache)",
        starts_per_run: config.warm_starts,
        guest_command: strings(&args_of(Kind::GuestWarm)),
        native_command: strings(&args_of(Kind::NativeWarm)),
        pass: pair(&s.guest_warm[0], &s.native_warm[0], "warm pass")?,
        imports: pair(&s.guest_warm[1], &s.native_warm[1], "warm imports")?,
    };
    let cold = Cold {
        what: "spawn to exit of the whole process: for the guest, `vmm --snapshot IMAGE -- \
               python3 -c CODE` (boot, a cold page cache and power-off included); natively the \
               python3.11 process (the host's page cache is warm)",
        pass: pair(&s.guest_cold[0], &s.native_cold[0], "cold pass")?,
        imports: pair(&s.guest_cold[1], &s.native_cold[1], "cold imports")?,
        vmm_true_ms: summary(&s.guest_true, "vmm -- /bin/true")?,
        pass_less_true_ms: summary(&s.pass_less_true, "cold pass less /bin/true")?,
    };
    let available = !s.instructions.is_empty();
    let emulated_instructions = Instructions {
        event: EMULATE_EVENT,
        available,
        unavailable_because: if available {
            None
        } else {
            Some(perf_unavailable.unwrap_or_else(|| "no counted runs".to_string()))
        },
        method: "perf stat -e kvm:kvm_emulate_insn on the VMM process only: a cold `vmm -- \
                 python3 -c pass` run minus a `vmm -- /bin/true` run, paired per round",
        per_cold_pass: Summary::of(&s.instructions),
    };
    let targets = Targets {
        pass_in_guest_median_ms_at_most: TARGET_PASS_MS,
        pass_in_guest_median_met: warm.pass.guest_ms.median <= TARGET_PASS_MS,
    };
    Ok(Report {
        benchmark: "python",
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved: each round runs every variant once (the perf-counted pair where perf \
                works), the first of them rotating round by round",
        host: host(),
        guest_python: config.guest_python.clone(),
        native_python: config.python.to_string_lossy().into_owned(),
        imports_program: IMPORTS,
        warm,
        cold,
        emulated_instructions,
        targets,
    })
}

/// The native interpreter runs as in the guest: without the PYTHON* variables of this host.
fn without_python_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PYTHON") {
            command.env_remove(key);
        }
    }
}

fn counted_csv(dir: &Path, python: bool) -> PathBuf {
    dir.join(if python {
        "count-pass.csv"
    } else {
        "count-true.csv"
    })
}

/// Whether `perf stat` can count the event here: runs it over `true`. The error says why not.
fn probe_perf(perf: &Path, dir: &Path) -> Result<(), String> {
    let csv = dir.join("probe.csv");
    let mut args = perf_prefix(perf, &csv);
    args.push("true".into());
    let session = Session::spawn(&mut command(&args), Duration::from_secs(30))
        .map_err(|e| format!("{e:#}"))?;
    let finished = session.finish().map_err(|e| format!("{e:#}"))?;
    if finished.ended != Ended::Exited(0) {
        return Err(format!(
            "`{} stat -e {EMULATE_EVENT}` failed ({})",
            perf.display(),
            finished.ended
        ));
    }
    let text = std::fs::read_to_string(&csv).unwrap_or_default();
    parse::perf_stat_count(&text, EMULATE_EVENT).map(|_| ())
}

/// The driver's timed starts in ms, (pass, imports); an error unless exactly `n` of each came.
fn driver_times(stdout: &str, n: u64) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut pass, mut imports) = (Vec::new(), Vec::new());
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix(MARKER) else {
            continue;
        };
        let mut name = None;
        let mut ns = None;
        for word in rest.split_whitespace() {
            match word.split_once('=') {
                Some(("name", v)) => name = Some(v),
                Some(("ns", v)) => ns = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        let ms = ns.ok_or_else(|| format!("no ns= in `{line}`"))? as f64 / 1e6;
        match name {
            Some("pass") => pass.push(ms),
            Some("imports") => imports.push(ms),
            _ => return Err(format!("unknown program in `{line}`")),
        }
    }
    if pass.len() as u64 != n || imports.len() as u64 != n {
        return Err(format!(
            "the driver timed {} + {} starts, not {n} of each",
            pass.len(),
            imports.len()
        ));
    }
    Ok((pass, imports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_lines_give_milliseconds_and_wrong_counts_fail() {
        let out = "noise\nNOA-PYTHON name=pass ns=2000000\nNOA-PYTHON name=imports ns=5500000\n";
        assert_eq!(driver_times(out, 1).unwrap(), (vec![2.0], vec![5.5]));
        assert!(driver_times(out, 2).unwrap_err().contains("not 2"));
        assert!(driver_times("NOA-PYTHON name=x ns=1\n", 1).is_err());
        assert!(driver_times("NOA-PYTHON name=pass\n", 1).is_err());
    }

    #[test]
    fn the_driver_is_valid_python_that_times_both_programs() {
        let python = Path::new("/usr/bin/python3.11");
        if !python.is_file() {
            eprintln!("skipping: no {}", python.display());
            return;
        }
        let mut child = Command::new(python);
        child.args(["-c", DRIVER]).arg(python).args(["1", IMPORTS]);
        without_python_env(&mut child);
        let output = child.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let (pass, imports) = driver_times(&String::from_utf8_lossy(&output.stdout), 1).unwrap();
        assert!(pass[0] > 0.0 && imports[0] > 0.0);
    }
}
