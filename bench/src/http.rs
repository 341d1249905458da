//! The http benchmark: one small static HTTP/1.1 server (bench/programs/http_server.c) served
//! natively, from our VMM through `--publish`, and from QEMU microvm (KVM, our kernel, the same
//! image) through slirp's `hostfwd`, measured by the same client on the host, interleaved run by
//! run:
//!
//! - requests/s: K keep-alive connections (`--connections`, e.g. 1 and 8) doing `GET /small`,
//!   each asking again as soon as it has its answer, for `--seconds`; with each request's latency;
//! - download (host <- guest): `GET /bytes?n=N`, MiB/s, every byte checked;
//! - upload (host -> guest): `POST /upload` of N bytes, which the server reads and drops, MiB/s.
//!
//! A run is one server's life: spawn, its `NOA-HTTP listening port=P` line, the connections (each
//! warmed with one untimed request), the phases in that order, `GET /quit`, its exit (0; QEMU's
//! 1, isa-debug-exit's (0 << 1) | 1) and its `NOA-HTTP done` line. A variant whose run fails
//! (the server's `NOA-HTTP error=…` — a guest without sockets says `error=socket` —, no listening
//! line by the deadline, a bad response, a stall, another exit) is marked failed with why, its
//! command and output, and is left out of the later rounds; the others go on. The table and the
//! JSON say so, and the benchmark then exits non-zero.
//!
//! Owns the variants, the interleaving, a run from spawn to exit, and the report's figures and
//! ratios. The command lines are `machines`', the client is `client`'s, the table is `table`'s.

mod client;
mod machines;
pub mod table;

use crate::child::{Ended, Finished, Session};
use crate::common::{Host, MIB, command, host, mib_per_s, millis, strings};
use crate::kbench;
use crate::stats::Summary;
use anyhow::{Context, Result, bail};
use client::{Client, Request};
use serde::Serialize;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

/// The server's line marker.
pub const MARKER: &str = "NOA-HTTP";

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    /// The image holding the server at `guest_program`.
    pub image: PathBuf,
    /// The kernel QEMU boots: the image's own /boot/kernel.
    pub kernel: PathBuf,
    /// The server on the host: the same binary as in the image.
    pub program: PathBuf,
    pub guest_program: String,
    pub qemu: PathBuf,
    pub qemu_cpu: Option<String>,
    pub debugfs: PathBuf,
    pub vmm_cpus: u32,
    pub variants: Vec<Kind>,
    pub connections: Vec<usize>,
    pub seconds: f64,
    /// Bytes of the download and of the upload; 0 skips them.
    pub download_mib: u64,
    pub upload_mib: u64,
    pub runs: usize,
    pub warmup: usize,
    pub deadline: Duration,
}

/// The three ways of serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Native,
    Vmm,
    Qemu,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Vmm => "vmm",
            Kind::Qemu => "qemu slirp",
        }
    }

    /// How the process ends when the server exits 0.
    fn clean_exit(self) -> Ended {
        match self {
            Kind::Qemu => Ended::Exited(1),
            Kind::Native | Kind::Vmm => Ended::Exited(0),
        }
    }
}

/// Everything the http benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub runs: usize,
    pub warmup_runs: usize,
    pub order: &'static str,
    pub seconds_per_rate: f64,
    pub download_bytes: u64,
    pub upload_bytes: u64,
    pub client: &'static str,
    pub host: Host,
    pub program: String,
    pub guest_program: String,
    pub variants: Vec<Variant>,
    /// VMM over native and VMM over QEMU, medians; higher is better for the VMM.
    pub ratios: Vec<Ratio>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Variant {
    pub kind: Kind,
    pub name: &'static str,
    /// The command line of the last run (the host port differs run by run).
    pub command: Vec<String>,
    /// Why the variant failed (with its command and output); its figures are those of the runs
    /// before.
    pub failed: Option<String>,
    pub measured_runs: usize,
    /// Guest CPUs (none for native).
    pub guest_cpus: Option<u32>,
    pub rates: Vec<RateFigures>,
    pub download_mib_per_s: Option<Summary>,
    pub upload_mib_per_s: Option<Summary>,
    /// Spawn -> the listening line (a guest's boot included), ms.
    pub listening_ms: Option<Summary>,
    /// Spawn -> exit, ms.
    pub run_ms: Option<Summary>,
}

#[derive(Debug, Serialize)]
pub struct RateFigures {
    pub connections: usize,
    pub requests_per_s: Summary,
    /// Each run's median and 90th-percentile request latency, µs.
    pub latency_median_us: Summary,
    pub latency_p90_us: Summary,
    /// Requests answered per run.
    pub requests: Summary,
}

#[derive(Debug, Serialize)]
pub struct Ratio {
    pub figure: String,
    pub vmm_over_native: Option<f64>,
    pub vmm_over_qemu: Option<f64>,
}

/// One good run.
#[derive(Debug, Clone)]
struct Sample {
    listening: Duration,
    rates: Vec<client::Rate>,
    /// MiB/s.
    download: Option<f64>,
    upload: Option<f64>,
    exit: Duration,
}

/// Runs the benchmark. Prints progress to stderr; the report is the caller's to print. Failed
/// variants are in the report, not an error: see [`failures`].
pub fn run(config: &Config) -> Result<Report> {
    if config.variants.is_empty() {
        bail!("no variants to run");
    }
    let guest = config.variants.iter().any(|&k| k != Kind::Native);
    let mut files = vec![("--program", &config.program)];
    if guest {
        files.extend([("--vmm", &config.vmm), ("--image", &config.image)]);
    }
    if config.variants.contains(&Kind::Qemu) {
        files.push(("--kernel", &config.kernel));
    }
    crate::common::require_files(files)?;
    // Checked as files above: a bare name ("vmm") means the file here, not a program on PATH.
    let config = &Config {
        vmm: std::path::absolute(&config.vmm).context("--vmm")?,
        program: std::path::absolute(&config.program).context("--program")?,
        ..config.clone()
    };
    let most = config.connections.iter().copied().max().unwrap_or(1).max(1);
    let mut variants: Vec<State> = config
        .variants
        .iter()
        .map(|&kind| State {
            kind,
            args: Vec::new(),
            samples: Vec::new(),
            failed: None,
        })
        .collect();
    // QEMU's kernel command line starts with the image's own; without it, QEMU cannot run.
    let boot_cmdline = if config.variants.contains(&Kind::Qemu) {
        match machines::boot_cmdline(&config.debugfs, &config.image) {
            Ok(line) => Some(line),
            Err(problem) => {
                if let Some(v) = variants.iter_mut().find(|v| v.kind == Kind::Qemu) {
                    v.failed = Some(format!("qemu slirp could not be set up: {problem}"));
                }
                None
            }
        }
    } else {
        None
    };

    let args_of = |kind: Kind, port: u16| -> Vec<OsString> {
        match kind {
            Kind::Native => machines::native_command(&config.program),
            Kind::Vmm => machines::vmm_command(
                &config.vmm,
                &config.image,
                &config.guest_program,
                config.vmm_cpus,
                config.deadline.as_secs().max(1),
                port,
            ),
            Kind::Qemu => machines::qemu_command(
                &machines::Qemu {
                    qemu: &config.qemu,
                    cpu: config.qemu_cpu.as_deref(),
                    kernel: &config.kernel,
                    image: &config.image,
                    boot_cmdline: boot_cmdline.as_deref().unwrap_or_default(),
                    guest_program: &config.guest_program,
                },
                port,
            ),
        }
    };

    eprintln!(
        "noa-bench http: {} warm-up + {} interleaved rounds of {}; each run: GET /small on {:?} \
         connection(s) for {} s each, a {} MiB download, a {} MiB upload ...",
        config.warmup,
        config.runs,
        config
            .variants
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(", "),
        config.connections,
        config.seconds,
        config.download_mib,
        config.upload_mib
    );
    for round in 0..config.warmup + config.runs {
        let measured = round >= config.warmup;
        let label = if measured {
            format!("run {}", round - config.warmup + 1)
        } else {
            format!("warm-up run {}", round + 1)
        };
        let count = variants.len();
        for k in 0..count {
            let v = &mut variants[(round + k) % count];
            if v.failed.is_some() {
                continue;
            }
            let port = free_port()?;
            let args = args_of(v.kind, port);
            match one_run(v.kind, &args, &label, port, most, config) {
                Ok(sample) => {
                    eprintln!("  {label} {}: {}", v.kind.label(), progress_words(&sample));
                    if measured {
                        v.samples.push(sample);
                    }
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    eprintln!(
                        "  {label} {}: FAILED (left out from now on)\n{text}",
                        v.kind.label()
                    );
                    v.failed = Some(text);
                }
            }
            v.args = args;
        }
    }

    let mut warnings = Vec::new();
    let report_variants: Vec<Variant> = variants
        .iter()
        .map(|v| summarise(v, config))
        .collect::<Result<_>>()?;
    if config.variants.contains(&Kind::Vmm)
        && config.variants.contains(&Kind::Qemu)
        && config.vmm_cpus != 1
    {
        warnings.push(format!(
            "the guest has {} CPUs under the vmm but 1 under QEMU (microvm with acpi=off has no \
             MADT to list more): not the same machine (--vmm-cpus 1 makes it so)",
            config.vmm_cpus
        ));
    }
    let ratios = ratios(&report_variants);
    Ok(Report {
        benchmark: "http",
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved: each round runs every variant once, the first of them rotating round \
                by round; a failed variant is left out of the rounds after",
        seconds_per_rate: config.seconds,
        download_bytes: config.download_mib * MIB,
        upload_bytes: config.upload_mib * MIB,
        client: "in noa-bench, one thread, non-blocking sockets with TCP_NODELAY under one poll \
                 with the server's pipes; latency: first byte of the request written -> last \
                 byte of the response read; rates: bytes (or requests) over the phase's start -> \
                 its last response",
        host: host(),
        program: config.program.to_string_lossy().into_owned(),
        guest_program: config.guest_program.clone(),
        variants: report_variants,
        ratios,
        warnings,
    })
}

/// The failed variants' messages; the caller fails the benchmark with them after printing.
pub fn failures(report: &Report) -> Vec<String> {
    report
        .variants
        .iter()
        .filter_map(|v| v.failed.as_ref().map(|why| format!("{}: {why}", v.name)))
        .collect()
}

struct State {
    kind: Kind,
    args: Vec<OsString>,
    samples: Vec<Sample>,
    failed: Option<String>,
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

fn progress_words(s: &Sample) -> String {
    let mut words: Vec<String> = s
        .rates
        .iter()
        .map(|r| format!("{:.0} req/s x{}", rate_of(r), r.connections))
        .collect();
    if let Some(d) = s.download {
        words.push(format!("download {d:.2} MiB/s"));
    }
    if let Some(u) = s.upload {
        words.push(format!("upload {u:.2} MiB/s"));
    }
    words.join(", ")
}

fn rate_of(r: &client::Rate) -> f64 {
    if r.secs > 0.0 {
        r.requests as f64 / r.secs
    } else {
        0.0
    }
}

/// One run: spawn, listening line, connections, the phases, quit, exit.
fn one_run(
    kind: Kind,
    args: &[OsString],
    label: &str,
    port: u16,
    connections: usize,
    config: &Config,
) -> Result<Sample> {
    let who = kind.label();
    // The VMM's own --timeout is the deadline; the kill comes 10 s after.
    let deadline = match kind {
        Kind::Vmm => config.deadline + Duration::from_secs(10),
        Kind::Native | Kind::Qemu => config.deadline,
    };
    let mut session = Session::spawn(&mut command(args), deadline)?;
    let fail = |mut session: Session, problem: String| -> anyhow::Error {
        session.kill();
        match session.finish() {
            Ok(finished) => kbench::failure(who, label, &problem, args, &finished),
            Err(e) => e.context(format!("{who} {label} failed: {problem}")),
        }
    };

    // 1. The server listens (natively it says on which port).
    let (listening, said_port) = loop {
        match session.next_line()? {
            Some((line, at)) => match parse_line(&line) {
                Some(Line::Listening(p)) => break (at, p),
                Some(Line::Error(_)) => {
                    let finished = session.finish()?;
                    let problem = format!("the server reported `{}`", error_text(&finished));
                    return Err(kbench::failure(who, label, &problem, args, &finished));
                }
                _ => {}
            },
            None => {
                let finished = session.finish()?;
                let problem = if finished.timed_out {
                    format!(
                        "killed after {:.1} s without a `{MARKER} listening` line",
                        finished.exit_after.as_secs_f64()
                    )
                } else {
                    format!(
                        "ended ({}) without a `{MARKER} listening` line",
                        finished.ended
                    )
                };
                return Err(kbench::failure(who, label, &problem, args, &finished));
            }
        }
    };
    let port = if kind == Kind::Native {
        said_port
    } else {
        port
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    // 2. The phases.
    let mut client = match Client::connect(&mut session, addr, connections) {
        Ok(client) => client,
        Err(problem) => return Err(fail(session, problem)),
    };
    let time = Duration::from_secs_f64(config.seconds);
    let mut rates = Vec::new();
    for &k in &config.connections {
        match client.requests(&mut session, k, time) {
            Ok(rate) => rates.push(rate),
            Err(problem) => return Err(fail(session, problem)),
        }
    }
    let mut transfer = |session: &mut Session, request: Request, mib: u64| {
        if mib == 0 {
            return Ok(None);
        }
        client.transfer(session, request).map(Some)
    };
    let download = match transfer(
        &mut session,
        Request::Bytes(config.download_mib * MIB),
        config.download_mib,
    ) {
        Ok(d) => d,
        Err(problem) => return Err(fail(session, problem)),
    };
    let upload = match transfer(
        &mut session,
        Request::Upload(config.upload_mib * MIB),
        config.upload_mib,
    ) {
        Ok(u) => u,
        Err(problem) => return Err(fail(session, problem)),
    };
    if let Err(problem) = client.quit(&mut session) {
        return Err(fail(session, problem));
    }
    drop(client);

    // 3. The exit.
    let finished = session.finish()?;
    let problem = if finished.timed_out {
        Some(format!(
            "killed after {:.1} s: the server answered GET /quit but did not exit",
            finished.exit_after.as_secs_f64()
        ))
    } else if finished.ended != kind.clean_exit() {
        Some(format!(
            "ended with {} instead of {}",
            finished.ended,
            kind.clean_exit()
        ))
    } else if !finished
        .stdout
        .lines()
        .any(|l| parse_line(l) == Some(Line::Done))
    {
        Some(format!("exited without its `{MARKER} done` line"))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(kbench::failure(who, label, &problem, args, &finished));
    }
    let rate = |took: Duration, mib: u64| mib_per_s(mib * MIB, took.as_secs_f64());
    Ok(Sample {
        listening,
        rates,
        download: download.map(|d| rate(d, config.download_mib)),
        upload: upload.map(|u| rate(u, config.upload_mib)),
        exit: finished.exit_after,
    })
}

/// One parsed `NOA-HTTP` line.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Listening(u16),
    Done,
    Error(&'a str),
}

fn parse_line(line: &str) -> Option<Line<'_>> {
    let rest = line[line.find(MARKER)? + MARKER.len()..].trim();
    if let Some(error) = rest.strip_prefix("error=") {
        return Some(Line::Error(error));
    }
    if rest.starts_with("done ") {
        return Some(Line::Done);
    }
    let port = rest.strip_prefix("listening port=")?.parse().ok()?;
    Some(Line::Listening(port))
}

/// The server's error line, for the failure message.
fn error_text(run: &Finished) -> String {
    run.stdout
        .lines()
        .find_map(|l| match parse_line(l) {
            Some(Line::Error(what)) => Some(format!("{MARKER} error={what}")),
            _ => None,
        })
        .unwrap_or_default()
}

fn summarise(v: &State, config: &Config) -> Result<Variant> {
    let samples = &v.samples;
    let of = |values: Vec<f64>| Summary::of(&values);
    let mut rates = Vec::new();
    if !samples.is_empty() {
        for (i, &connections) in config.connections.iter().enumerate() {
            let per_run: Vec<&client::Rate> = samples.iter().map(|s| &s.rates[i]).collect();
            let latency = |percent: usize| -> Vec<f64> {
                per_run
                    .iter()
                    .map(|r| percentile(&r.latencies_us, percent))
                    .collect()
            };
            rates.push(RateFigures {
                connections,
                requests_per_s: of(per_run.iter().map(|r| rate_of(r)).collect())
                    .context("no rate samples")?,
                latency_median_us: of(latency(50)).context("no latency samples")?,
                latency_p90_us: of(latency(90)).context("no latency samples")?,
                requests: of(per_run.iter().map(|r| r.requests as f64).collect())
                    .context("no request counts")?,
            });
        }
    }
    Ok(Variant {
        kind: v.kind,
        name: v.kind.label(),
        command: strings(&v.args),
        failed: v.failed.clone(),
        measured_runs: samples.len(),
        guest_cpus: match v.kind {
            Kind::Native => None,
            Kind::Vmm => Some(config.vmm_cpus),
            Kind::Qemu => Some(1),
        },
        rates,
        download_mib_per_s: of(samples.iter().filter_map(|s| s.download).collect()),
        upload_mib_per_s: of(samples.iter().filter_map(|s| s.upload).collect()),
        listening_ms: of(samples.iter().map(|s| millis(s.listening)).collect()),
        run_ms: of(samples.iter().map(|s| millis(s.exit)).collect()),
    })
}

/// Nearest-rank percentile of unsorted `values` (0 for none).
fn percentile(values: &[f64], percent: usize) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (percent * sorted.len())
        .div_ceil(100)
        .clamp(1, sorted.len());
    sorted[rank - 1]
}

/// VMM over native and over QEMU for each figure both have.
fn ratios(variants: &[Variant]) -> Vec<Ratio> {
    let find = |kind: Kind| variants.iter().find(|v| v.kind == kind);
    let Some(vmm) = find(Kind::Vmm) else {
        return Vec::new();
    };
    let (native, qemu) = (find(Kind::Native), find(Kind::Qemu));
    type Get = Box<dyn Fn(&Variant) -> Option<f64>>;
    let mut figures: Vec<(String, Get)> = Vec::new();
    for r in &vmm.rates {
        let k = r.connections;
        figures.push((
            format!("requests/s, {k} connection(s)"),
            Box::new(move |v: &Variant| {
                v.rates
                    .iter()
                    .find(|r| r.connections == k)
                    .map(|r| r.requests_per_s.median)
            }),
        ));
    }
    figures.push((
        "download MiB/s".into(),
        Box::new(|v: &Variant| v.download_mib_per_s.as_ref().map(|s| s.median)),
    ));
    figures.push((
        "upload MiB/s".into(),
        Box::new(|v: &Variant| v.upload_mib_per_s.as_ref().map(|s| s.median)),
    ));
    figures
        .into_iter()
        .filter_map(|(figure, get)| {
            let mine = get(vmm)?;
            let over = |other: Option<&Variant>| {
                let theirs = get(other?)?;
                (theirs > 0.0).then(|| mine / theirs)
            };
            Some(Ratio {
                figure,
                vmm_over_native: over(native),
                vmm_over_qemu: over(qemu),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
