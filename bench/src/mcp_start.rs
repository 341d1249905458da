//! The mcp-start benchmark: how soon a freshly started NOA ARK OS answers MCP. `vmm --snapshot
//! --cpus N --publish 127.0.0.1:PORT:8080 IMAGE` (service mode: init starts noa-server on the
//! guest's port 8080; the explicit forward turns the default one off) against the same
//! noa-server natively (`noa-server serve --listen 127.0.0.1:PORT --threads N`), interleaved
//! round by round, one at a time. Measured from just before spawn, in this one thread:
//!
//! - the first `GET /health` answered 200;
//! - the first MCP `tools/list` (stateless 2026-07-28: no initialize) answered 200 with a result
//!   that lists the `generate` tool — the figure the target is about;
//! - the model ready (`/health` says `"state":"ready"`);
//! - then SIGTERM, and the time to the process's exit, which must be status 0 (a clean stop).
//!
//! Both probes run side by side, each retried every `poll`, in the same `poll` that drains the
//! child's pipes. Once `/health` answers, the readiness checks come every `ready_poll` or ten
//! times the last check's duration, whichever is longer, so that they steal little from the
//! loading model (a guest answers /health in ~150 ms on PVM hosts). A run fails when the process ends early, or nothing
//! answers within the deadline; an unclean stop is recorded, reported, and makes the benchmark
//! exit non-zero after its report.
//!
//! Owns the command lines, the schedule of the probes, what a good run is and the report with its
//! table; the requests and answers are `mcp_probe`'s.

use crate::child::{Ended, Session};
use crate::common::{Host, TempDir, command, host, millis, strings, tail};
use crate::kbench;
use crate::load::{self, LoadAverage};
use crate::mcp_probe::{self, Attempt, Target};
use crate::stats::Summary;
use anyhow::{Context, Result};
use serde::Serialize;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The target: MCP answering at most this long after the VMM starts; noted, not asserted.
pub const TARGET_MS: f64 = 150.0;

/// An attempt without its whole answer this long after its connect is dropped and retried (a
/// forward may hold a connection it cannot pass on yet).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Readiness checks are spaced at least this many times their own duration apart.
const READY_SPACING: u32 = 10;

/// The guest's port where init starts noa-server (/etc/noa/services.toml).
pub const GUEST_PORT: u16 = 8080;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    /// guest.img: noa-server started by init, the bundled model in /storage/models.
    pub image: PathBuf,
    /// The same noa-server natively.
    pub server: PathBuf,
    /// The model the native server loads (the one the image carries).
    pub model: PathBuf,
    /// The guest's vCPUs and the native server's llama.cpp threads.
    pub cpus: u32,
    pub runs: usize,
    pub warmup: usize,
    /// Time between two attempts of a probe until the server answers.
    pub poll: Duration,
    /// Time between two readiness checks once `/health` answers.
    pub ready_poll: Duration,
    /// Spawn to the model ready: a run that takes longer fails.
    pub deadline: Duration,
    /// SIGTERM to the exit: a process still running then is killed (an unclean stop).
    pub stop_deadline: Duration,
}

/// Everything the benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub runs: usize,
    pub warmup_runs: usize,
    pub order: &'static str,
    pub host: Host,
    pub load_before: Option<LoadAverage>,
    pub load_after: Option<LoadAverage>,
    pub probes: Probes,
    pub guest: Variant,
    pub native: Variant,
    pub ratios: Ratios,
    pub targets: Targets,
    /// Every stop that did not end with exit status 0 within the stop deadline.
    pub unclean_stops: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Probes {
    pub tools_list: String,
    pub tools_list_body: &'static str,
    pub expected_tool: &'static str,
    pub health: &'static str,
    pub poll_ms: f64,
    pub ready_poll_ms: f64,
    pub clock: &'static str,
}

/// One variant's figures, ms from spawn (the stop: from SIGTERM).
#[derive(Debug, Serialize)]
pub struct Variant {
    /// The command line, PORT standing for the port of each run.
    pub command: Vec<String>,
    pub health_ms: Summary,
    pub tools_list_ms: Summary,
    pub model_ready_ms: Summary,
    pub stop_ms: Summary,
    /// How each stop ended (`exit status 0` is clean).
    pub stops: Vec<String>,
    pub clean_stops: usize,
    /// tools/list attempts per run until the first good answer.
    pub tools_list_attempts: Summary,
}

/// Guest median over native median.
#[derive(Debug, Serialize)]
pub struct Ratios {
    pub health: f64,
    pub tools_list: f64,
    pub model_ready: f64,
    pub stop: f64,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    pub tools_list_in_guest_median_ms_at_most: f64,
    pub tools_list_in_guest_median_met: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Guest,
    Native,
}

/// One run's times, ms.
#[derive(Debug)]
struct Sample {
    health: f64,
    tools_list: f64,
    ready: f64,
    stop: f64,
    ended: Ended,
    stopped_in_time: bool,
    tools_attempts: f64,
    /// The last lines of the process's stderr (the VMM's and the guest's words on the stop).
    stderr_tail: String,
}

/// Runs the benchmark. Prints progress to stderr; the report is the caller's to print.
pub fn run(config: &Config) -> Result<Report> {
    crate::common::require_files([
        ("--vmm", &config.vmm),
        ("--image", &config.image),
        ("--server", &config.server),
        ("--model", &config.model),
    ])?;
    let dir = TempDir::new("mcp-start").context("creating a temporary directory")?;
    let load_before = load::now();
    eprintln!(
        "noa-bench mcp-start: {} warm-up + {} interleaved rounds of `vmm IMAGE` (service mode, \
         --publish) and native `noa-server serve`, each from spawn to tools/list, /health, the \
         model ready and a SIGTERM stop ({}) ...",
        config.warmup,
        config.runs,
        load::words(load_before.as_ref())
    );
    for i in 0..config.warmup {
        for kind in [Kind::Guest, Kind::Native] {
            run_one(config, kind, &dir, &format!("warm-up run {}", i + 1))?;
        }
    }
    let mut guest = Vec::new();
    let mut native = Vec::new();
    for round in 0..config.runs {
        let order = if round % 2 == 0 {
            [Kind::Guest, Kind::Native]
        } else {
            [Kind::Native, Kind::Guest]
        };
        for kind in order {
            let sample = run_one(config, kind, &dir, &format!("run {}", round + 1))?;
            eprintln!(
                "noa-bench mcp-start: run {} {kind:?}: /health {:.0} ms, tools/list {:.0} ms, \
                 model ready {:.0} ms, stop {:.0} ms ({})",
                round + 1,
                sample.health,
                sample.tools_list,
                sample.ready,
                sample.stop,
                sample.ended
            );
            match kind {
                Kind::Guest => guest.push(sample),
                Kind::Native => native.push(sample),
            }
        }
    }
    let load_after = load::now();

    let mut unclean_stops = Vec::new();
    let variant = |kind: Kind, samples: &[Sample], unclean: &mut Vec<String>| -> Result<Variant> {
        let summary = |get: fn(&Sample) -> f64, what: &str| {
            let values: Vec<f64> = samples.iter().map(get).collect();
            Summary::of(&values).with_context(|| format!("no samples of {kind:?} {what}"))
        };
        let clean = |s: &Sample| s.stopped_in_time && s.ended == Ended::Exited(0);
        for (i, s) in samples.iter().enumerate() {
            if !clean(s) {
                unclean.push(format!(
                    "{kind:?} run {}: {} {:.0} ms after SIGTERM{}; its stderr ended:\n{}",
                    i + 1,
                    s.ended,
                    s.stop,
                    if s.stopped_in_time {
                        ""
                    } else {
                        " (killed: still running at the stop deadline)"
                    },
                    s.stderr_tail.trim_end()
                ));
            }
        }
        Ok(Variant {
            command: strings(&args_of(config, kind, None, dir.path())),
            health_ms: summary(|s| s.health, "/health")?,
            tools_list_ms: summary(|s| s.tools_list, "tools/list")?,
            model_ready_ms: summary(|s| s.ready, "model ready")?,
            stop_ms: summary(|s| s.stop, "stop")?,
            stops: samples.iter().map(|s| s.ended.to_string()).collect(),
            clean_stops: samples.iter().filter(|s| clean(s)).count(),
            tools_list_attempts: summary(|s| s.tools_attempts, "attempts")?,
        })
    };
    let guest = variant(Kind::Guest, &guest, &mut unclean_stops)?;
    let native = variant(Kind::Native, &native, &mut unclean_stops)?;
    let ratio = |g: &Summary, n: &Summary| g.median / n.median;
    let ratios = Ratios {
        health: ratio(&guest.health_ms, &native.health_ms),
        tools_list: ratio(&guest.tools_list_ms, &native.tools_list_ms),
        model_ready: ratio(&guest.model_ready_ms, &native.model_ready_ms),
        stop: ratio(&guest.stop_ms, &native.stop_ms),
    };
    let targets = Targets {
        tools_list_in_guest_median_ms_at_most: TARGET_MS,
        tools_list_in_guest_median_met: guest.tools_list_ms.median <= TARGET_MS,
    };
    Ok(Report {
        benchmark: "mcp-start",
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved, one process at a time: each round runs the guest and the native \
                server once, the first of them alternating round by round",
        host: host(),
        load_before,
        load_after,
        probes: Probes {
            tools_list: format!(
                "POST /mcp (Content-Type: application/json; Accept: application/json, \
                 text/event-stream; MCP-Protocol-Version: {}; Mcp-Method: tools/list), one \
                 request per connection",
                mcp_probe::PROTOCOL_VERSION
            ),
            tools_list_body: mcp_probe::TOOLS_LIST_BODY,
            expected_tool: mcp_probe::EXPECTED_TOOL,
            health: "GET /health; the model is ready when it says \"state\":\"ready\"; once it \
                     answers, checks every ready_poll_ms or 10x the last check's duration, \
                     whichever is longer",
            poll_ms: millis(config.poll),
            ready_poll_ms: millis(config.ready_poll),
            clock: "from just before spawn to the moment the whole answer was read (the stop: \
                    from SIGTERM to wait4's return); both probes run side by side in one thread",
        },
        guest,
        native,
        ratios,
        targets,
        unclean_stops,
    })
}

/// The command line of `kind`; `port` `None` writes PORT (for the report).
fn args_of(config: &Config, kind: Kind, port: Option<u16>, dir: &std::path::Path) -> Vec<OsString> {
    let port = port.map_or("PORT".to_string(), |p| p.to_string());
    let cpus = config.cpus.to_string();
    match kind {
        Kind::Guest => vec![
            config.vmm.clone().into(),
            "--snapshot".into(),
            "--cpus".into(),
            cpus.into(),
            "--publish".into(),
            format!("127.0.0.1:{port}:{GUEST_PORT}").into(),
            config.image.clone().into(),
        ],
        Kind::Native => vec![
            config.server.clone().into(),
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--model".into(),
            config.model.clone().into(),
            "--workspace".into(),
            dir.join("workspace").into(),
            "--threads".into(),
            cpus.into(),
            // No token: as in the guest, which serves its loopback-only forward without one.
            "--token-file".into(),
            dir.join("no-token").into(),
        ],
    }
}

/// One probe's schedule: an attempt in flight, or the time of the next.
struct Probe {
    target: Target,
    attempt: Option<Attempt>,
    next: Instant,
    attempts: u32,
    last_error: Option<String>,
}

impl Probe {
    fn new(target: Target, now: Instant) -> Probe {
        Probe {
            target,
            attempt: None,
            next: now,
            attempts: 0,
            last_error: None,
        }
    }

    /// Starts an attempt when none is in flight and its time has come; a refused connection
    /// schedules the next after `interval`.
    fn start_if_due(&mut self, port: u16, interval: Duration) {
        let now = Instant::now();
        if self.attempt.is_some() || now < self.next {
            return;
        }
        self.attempts += 1;
        match Attempt::start(self.target, port) {
            Ok(attempt) => self.attempt = Some(attempt),
            Err(e) => self.failed(e, now + interval),
        }
    }

    fn failed(&mut self, error: String, next: Instant) {
        self.attempt = None;
        self.last_error = Some(error);
        self.next = next;
    }
}

/// Spawns `kind`, probes it until all three answers came, stops it with SIGTERM and times that.
fn run_one(config: &Config, kind: Kind, dir: &TempDir, label: &str) -> Result<Sample> {
    let port = free_port()?;
    let args = args_of(config, kind, Some(port), dir.path());
    let workspace = dir.path().join("workspace");
    let _ = std::fs::remove_dir_all(&workspace);
    std::fs::create_dir_all(&workspace)
        .with_context(|| format!("creating {}", workspace.display()))?;
    let mut child = command(&args);
    child.env_remove("NOA_TOKEN");
    let start = Instant::now();
    let mut session = Session::spawn(&mut child, config.deadline + config.stop_deadline)?;
    let ms = |at: Instant| millis(at.duration_since(start));
    let mut tools = Probe::new(Target::ToolsList, start);
    let mut health = Probe::new(Target::Health, start);
    let (mut tools_at, mut health_at, mut ready_at) = (None, None, None);

    let problem: Option<String> = loop {
        if tools_at.is_some() && ready_at.is_some() {
            break None;
        }
        if start.elapsed() > config.deadline {
            break Some(format!(
                "not all answers within {:.0} s (tools/list: {}; /health: {}; model ready: {})",
                config.deadline.as_secs_f64(),
                tools_at.map_or_else(
                    || format!("none, last: {}", tools.last_error.as_deref().unwrap_or("-")),
                    |t| format!("{t:.0} ms")
                ),
                health_at.map_or_else(
                    || format!(
                        "none, last: {}",
                        health.last_error.as_deref().unwrap_or("-")
                    ),
                    |t| format!("{t:.0} ms")
                ),
                ready_at.map_or("no".to_string(), |t| format!("{t:.0} ms")),
            ));
        }
        if session.done() {
            break Some("the process ended before all answers came".to_string());
        }
        let health_interval = if health_at.is_some() {
            config.ready_poll
        } else {
            config.poll
        };
        for probe in [&mut tools, &mut health] {
            if probe
                .attempt
                .as_ref()
                .is_some_and(|a| a.started.elapsed() > ATTEMPT_TIMEOUT)
            {
                let error = format!("no whole answer within {ATTEMPT_TIMEOUT:?}");
                probe.failed(error, Instant::now());
            }
        }
        if tools_at.is_none() {
            tools.start_if_due(port, config.poll);
        }
        if ready_at.is_none() {
            health.start_if_due(port, health_interval);
        }
        let mut fds: Vec<libc::pollfd> = [&tools, &health]
            .into_iter()
            .filter_map(|p| p.attempt.as_ref().map(Attempt::pollfd))
            .collect();
        // Sleep until the sooner of the idle probes' next attempts (capped: the loop also checks
        // the deadline and the child).
        let now = Instant::now();
        let wake = [(&tools, tools_at.is_none()), (&health, ready_at.is_none())]
            .into_iter()
            .filter(|(p, wanted)| *wanted && p.attempt.is_none())
            .map(|(p, _)| p.next.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        session.wait_many(&mut fds, Some(wake))?;
        let ready_fds: Vec<bool> = fds.iter().map(|fd| fd.revents != 0).collect();
        let mut fd_index = 0;
        let mut fatal = None;
        for probe in [&mut tools, &mut health] {
            let Some(attempt) = probe.attempt.as_mut() else {
                continue;
            };
            let readable = ready_fds[fd_index];
            fd_index += 1;
            if !readable {
                continue;
            }
            let result = attempt.read();
            let now = Instant::now();
            let took = now.duration_since(attempt.started);
            let interval = match probe.target {
                Target::ToolsList => config.poll,
                Target::Health if health_at.is_some() => config.ready_poll,
                Target::Health => config.poll,
            };
            match result {
                Ok(None) => {}
                Err(e) => probe.failed(e, now + interval),
                Ok(Some(answer)) => {
                    probe.attempt = None;
                    match probe.target {
                        Target::ToolsList => match mcp_probe::tool_names(&answer) {
                            Ok(names) if names.iter().any(|n| n == mcp_probe::EXPECTED_TOOL) => {
                                tools_at = Some(ms(now));
                            }
                            Ok(names) => probe.failed(
                                format!(
                                    "tools/list without `{}`: {names:?}",
                                    mcp_probe::EXPECTED_TOOL
                                ),
                                now + interval,
                            ),
                            Err(e) => probe.failed(e, now + interval),
                        },
                        Target::Health => {
                            let state = mcp_probe::model_state(&answer);
                            if answer.status == 200 && health_at.is_none() {
                                health_at = Some(ms(now));
                            }
                            match state.as_deref() {
                                Ok("ready") => ready_at = Some(ms(now)),
                                Ok("failed" | "absent") => {
                                    fatal = Some(format!(
                                        "/health says the model is {}: {}",
                                        state.as_deref().unwrap_or("?"),
                                        String::from_utf8_lossy(&answer.body)
                                    ));
                                }
                                Ok(_) => probe.next = now + ready_interval(config.ready_poll, took),
                                Err(e) => probe.failed(e.clone(), now + interval),
                            }
                        }
                    }
                }
            }
        }
        if fatal.is_some() {
            break fatal;
        }
    };
    if let Some(problem) = problem {
        session.kill();
        let finished = session.finish()?;
        return Err(kbench::failure(
            &format!("{kind:?}"),
            label,
            &problem,
            &args,
            &finished,
        ));
    }
    let (Some(tools_list), Some(ready)) = (tools_at, ready_at) else {
        unreachable!("the loop ends with both answers or a problem");
    };
    // The model ready implies /health answered.
    let health = health_at.unwrap_or(ready);

    let signalled = session.elapsed();
    session.terminate();
    let finished = session.finish()?;
    let stop = millis(finished.exit_after.saturating_sub(signalled));
    Ok(Sample {
        health,
        tools_list,
        ready,
        stop,
        ended: finished.ended,
        stopped_in_time: !finished.timed_out,
        tools_attempts: f64::from(tools.attempts),
        stderr_tail: tail(&finished.stderr),
    })
}

/// The wait before the next readiness check: at least `ready_poll`, and at least
/// [`READY_SPACING`] times what the last check took, so that checks take at most about a tenth
/// of the server's time while it loads the model (a guest's /health costs ~150 ms on PVM hosts).
fn ready_interval(ready_poll: Duration, last_check_took: Duration) -> Duration {
    ready_poll.max(last_check_took * READY_SPACING)
}

/// A TCP port free on the loopback just now (bind port 0, close).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

/// The benchmark's table.
pub fn table(r: &Report) -> String {
    const WIDE: usize = 40;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mcp-start benchmark: spawn -> MCP answering, the guest (vmm IMAGE, service mode, --publish) vs noa-server natively, {} rounds, interleaved ({}, {} host CPUs; {} before, {} after)",
        r.runs,
        if r.host.pvm {
            "PVM host: kvm_pvm"
        } else {
            "KVM host"
        },
        r.host.cpus,
        load::words(r.load_before.as_ref()),
        load::words(r.load_after.as_ref()),
    );
    let _ = writeln!(
        out,
        "{:WIDE$}{:>11}{:>11}{:>11}{:>11}{:>11}{:>11}{:>14}",
        "ms",
        "guest med",
        "guest min",
        "guest p90",
        "native med",
        "native min",
        "native p90",
        "guest/native"
    );
    for (label, g, n, ratio) in [
        (
            "first /health 200",
            &r.guest.health_ms,
            &r.native.health_ms,
            r.ratios.health,
        ),
        (
            "first tools/list listing `generate`",
            &r.guest.tools_list_ms,
            &r.native.tools_list_ms,
            r.ratios.tools_list,
        ),
        (
            "model ready (/health state=ready)",
            &r.guest.model_ready_ms,
            &r.native.model_ready_ms,
            r.ratios.model_ready,
        ),
        (
            "SIGTERM -> exit",
            &r.guest.stop_ms,
            &r.native.stop_ms,
            r.ratios.stop,
        ),
    ] {
        let _ = writeln!(
            out,
            "{label:WIDE$}{:>11.1}{:>11.1}{:>11.1}{:>11.1}{:>11.1}{:>11.1}{:>13.1}x",
            g.median, g.min, g.p90, n.median, n.min, n.p90, ratio
        );
    }
    let _ = writeln!(
        out,
        "tools/list attempts until the first answer (median): guest {:.0}, native {:.0}; probes every {:.0} ms, readiness every {:.0} ms or 10x its last check's duration",
        r.guest.tools_list_attempts.median,
        r.native.tools_list_attempts.median,
        r.probes.poll_ms,
        r.probes.ready_poll_ms
    );
    let _ = writeln!(
        out,
        "clean stops (exit status 0 after SIGTERM): guest {}/{}, native {}/{}",
        r.guest.clean_stops,
        r.guest.stops.len(),
        r.native.clean_stops,
        r.native.stops.len()
    );
    for unclean in &r.unclean_stops {
        // Its first line; the JSON and the error after the table have the stderr too.
        let _ = writeln!(
            out,
            "UNCLEAN STOP: {}",
            unclean.lines().next().unwrap_or_default()
        );
    }
    let t = &r.targets;
    let _ = writeln!(
        out,
        "target (from the issue; noted, not asserted): MCP answering in the guest <= {} ms after vmm starts (tools/list median): {}",
        t.tools_list_in_guest_median_ms_at_most,
        if t.tools_list_in_guest_median_met {
            "met"
        } else {
            "not met"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            vmm: "/v".into(),
            image: "/i".into(),
            server: "/s".into(),
            model: "/m.gguf".into(),
            cpus: 2,
            runs: 1,
            warmup: 0,
            poll: Duration::from_millis(2),
            ready_poll: Duration::from_millis(20),
            deadline: Duration::from_secs(1),
            stop_deadline: Duration::from_secs(1),
        }
    }

    #[test]
    fn readiness_checks_are_spaced_by_their_cost() {
        let poll = Duration::from_millis(20);
        assert_eq!(ready_interval(poll, Duration::from_micros(300)), poll);
        assert_eq!(
            ready_interval(poll, Duration::from_millis(150)),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn command_lines() {
        let dir = std::path::Path::new("/d");
        assert_eq!(
            strings(&args_of(&config(), Kind::Guest, Some(4242), dir)).join(" "),
            "/v --snapshot --cpus 2 --publish 127.0.0.1:4242:8080 /i"
        );
        assert_eq!(
            strings(&args_of(&config(), Kind::Native, None, dir)).join(" "),
            "/s serve --listen 127.0.0.1:PORT --model /m.gguf --workspace /d/workspace --threads 2 --token-file /d/no-token"
        );
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = run(&config()).unwrap_err().to_string();
        assert!(err.contains("--vmm /v"), "{err}");
    }
}
