//! The block benchmark: sequential 1 MiB requests (reads also in 4 MiB ones) through the VMM's
//! virtio-blk, measured by the guest's own clock (`noa.kbench=block_read` / `block_write`),
//! against the host reading the same file in the same request size, interleaved run by run.
//!
//! Owns the test data (a file of random bytes in a private temporary directory, made once per
//! invocation, and scratch copies of it and of the image for the write-through variant), the
//! command lines of the variants, the host's baseline read, the interleaving, and the summary.
//! Spawning and timing a process is `child`'s job; judging a guest's output is `kbench`'s;
//! printing is `report`'s.

use crate::child::{Ended, Session};
use crate::common::{Host, MIB, RandomBytes, TempDir, command, host, mib_per_s, millis, strings};
use crate::kbench;
use crate::stats::Summary;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The target, reported next to the figures; never asserted.
pub const TARGET_GUEST_OVER_HOST_READ: f64 = 0.5;

/// The request size of the guest's benchmark (guest-os/kernel/src/kbench.rs) and of the host's
/// baseline read.
pub const REQUEST_BYTES: usize = 1024 * 1024;

/// The large-request read variants' request size (as `dd bs=4M`), with this many in flight (16 MiB
/// of guest buffers, as 8 of the 1 MiB ones do 8 MiB).
pub const LARGE_REQUEST_BYTES: usize = 4 * 1024 * 1024;
const LARGE_IN_FLIGHT: usize = 4;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    pub image: PathBuf,
    pub mib: u64,
    pub runs: usize,
    pub warmup: usize,
    pub deadline: Duration,
}

/// Everything the block benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    /// Size of the test file, and of what each run reads or writes.
    pub mib: u64,
    pub request_bytes: usize,
    pub large_request_bytes: usize,
    pub runs: usize,
    pub warmup_runs: usize,
    /// How the variants were ordered within each round.
    pub order: &'static str,
    pub host: Host,
    pub guest_read: GuestVariant,
    pub guest_write_snapshot_overlay: GuestVariant,
    pub guest_write_file: GuestVariant,
    pub host_read: HostVariant,
    /// The same reads in [`LARGE_REQUEST_BYTES`] requests.
    pub guest_read_large: GuestVariant,
    pub host_read_large: HostVariant,
    /// The guest's median read rate over the host's, in 1 MiB requests.
    pub ratio_guest_over_host_read: f64,
    /// The same in large requests: what the target is judged on (sequential throughput is
    /// measured with large requests, as `dd bs=4M` or `fio --bs=4M` do).
    pub ratio_guest_over_host_read_large: f64,
    pub targets: Targets,
    /// Anything odd seen on the way that did not fail the benchmark.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GuestVariant {
    pub command: Vec<String>,
    /// What the variant measures, in words.
    pub what: &'static str,
    /// bytes / ns from the guest's `NOA-KBENCH` line (its clock, first request to last
    /// completion), MiB/s.
    pub mib_per_s: Summary,
    /// The guest's time, ms.
    pub guest_ms: Summary,
    /// Spawn to the VMM's exit, ms (boot and power-off included).
    pub process_ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct HostVariant {
    pub what: &'static str,
    pub mib_per_s: Summary,
    pub ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    pub guest_over_host_read_at_least: f64,
    pub guest_over_host_read_met: bool,
}

/// The six things run in each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GuestRead,
    GuestWriteOverlay,
    GuestWriteFile,
    HostRead,
    GuestReadLarge,
    HostReadLarge,
}

const ROUND: [Kind; 6] = [
    Kind::GuestRead,
    Kind::GuestWriteOverlay,
    Kind::GuestWriteFile,
    Kind::HostRead,
    Kind::GuestReadLarge,
    Kind::HostReadLarge,
];

/// One measurement: bytes moved and the time it took.
#[derive(Debug, Clone, Copy)]
struct Sample {
    bytes: u64,
    time: Duration,
    /// Guest runs: spawn to the VMM's exit.
    process: Duration,
}

/// Runs the benchmark. Prints progress to stderr; the report is the caller's to print.
pub fn run(config: &Config) -> Result<Report> {
    if !config.image.is_file() {
        bail!(
            "--image {}: no such file (build it with `cargo xtask build`)",
            config.image.display()
        );
    }
    let bytes = config.mib * MIB;
    let dir = TempDir::new("block").context("creating a temporary directory")?;
    let data = dir.path().join("data.bin");
    let data_copy = dir.path().join("data-scratch.bin");
    let image_copy = dir.path().join("guest-scratch.img");
    eprintln!(
        "noa-bench block: writing {} MiB of random bytes to {} and scratch copies ...",
        config.mib,
        data.display()
    );
    write_random_file(&data, bytes)?;
    std::fs::copy(&data, &data_copy)
        .with_context(|| format!("copying {} to {}", data.display(), data_copy.display()))?;
    std::fs::copy(&config.image, &image_copy).with_context(|| {
        format!(
            "copying {} to {}",
            config.image.display(),
            image_copy.display()
        )
    })?;
    // Written back now, so that the host's write-back of these copies does not throttle the
    // guest's writes in the first rounds.
    for path in [&data, &data_copy, &image_copy] {
        std::fs::File::open(path)
            .and_then(|file| file.sync_all())
            .with_context(|| format!("syncing {}", path.display()))?;
    }
    // Page cache warm for every variant: the VMM's reads of the file come from it too.
    host_read(&data, bytes, REQUEST_BYTES).context("warming the page cache")?;

    let guest =
        |name: &str, snapshot: bool, file: &Path, image: &Path, large: bool| -> Vec<OsString> {
            let mut args: Vec<OsString> = vec![config.vmm.clone().into()];
            if snapshot {
                args.push("--snapshot".into());
            }
            let mut volume = file.as_os_str().to_owned();
            volume.push(":/bench");
            args.extend([
                "--volume".into(),
                volume,
                "--cmdline".into(),
                format!(
                    "noa.kbench={name} noa.kbench.mib={} noa.kbench.disk=vdb{}",
                    config.mib,
                    if large {
                        format!(
                            " noa.kbench.request_kib={} noa.kbench.in_flight={LARGE_IN_FLIGHT}",
                            LARGE_REQUEST_BYTES / 1024
                        )
                    } else {
                        String::new()
                    }
                )
                .into(),
                image.into(),
            ]);
            args
        };
    let read_args = guest("block_read", true, &data, &config.image, false);
    let overlay_args = guest("block_write", true, &data, &config.image, false);
    let file_args = guest("block_write", false, &data_copy, &image_copy, false);
    let large_read_args = guest("block_read", true, &data, &config.image, true);

    let run_one = |kind: Kind, label: &str| -> Result<Sample> {
        let (args, name, who) = match kind {
            Kind::GuestRead => (&read_args, "block_read", "vmm read"),
            Kind::GuestWriteOverlay => {
                (&overlay_args, "block_write", "vmm write (snapshot overlay)")
            }
            Kind::GuestWriteFile => (&file_args, "block_write", "vmm write (file)"),
            Kind::GuestReadLarge => (&large_read_args, "block_read", "vmm read (4 MiB requests)"),
            Kind::HostRead | Kind::HostReadLarge => {
                let request = if kind == Kind::HostRead {
                    REQUEST_BYTES
                } else {
                    LARGE_REQUEST_BYTES
                };
                let time = host_read(&data, bytes, request)?;
                return Ok(Sample {
                    bytes,
                    time,
                    process: time,
                });
            }
        };
        let finished = Session::spawn(&mut command(args), config.deadline)?.finish()?;
        let measured = kbench::outcome(&finished, name, Ended::Exited(0))
            .map_err(|problem| kbench::failure(who, label, &problem, args, &finished))?;
        if measured.bytes != bytes {
            let problem = format!(
                "the guest moved {} bytes, not the {bytes} asked for",
                measured.bytes
            );
            return Err(kbench::failure(who, label, &problem, args, &finished));
        }
        if measured.ns == 0 {
            let problem = "the guest measured 0 ns".to_string();
            return Err(kbench::failure(who, label, &problem, args, &finished));
        }
        Ok(Sample {
            bytes: measured.bytes,
            time: Duration::from_nanos(measured.ns),
            process: finished.exit_after,
        })
    };

    eprintln!(
        "noa-bench block: {} warm-up + {} interleaved rounds of guest read, guest write (snapshot \
         overlay), guest write (file), host read, guest and host read in 4 MiB requests, {} MiB \
         each ...",
        config.warmup, config.runs, config.mib
    );
    for i in 0..config.warmup {
        for kind in ROUND {
            run_one(kind, &format!("warm-up run {}", i + 1))?;
        }
    }
    let mut samples: [Vec<Sample>; 6] = Default::default();
    for round in 0..config.runs {
        // Rotate who goes first so that no variant always runs right after the same other one.
        for k in 0..ROUND.len() {
            let index = (round + k) % ROUND.len();
            samples[index].push(run_one(ROUND[index], &format!("run {}", round + 1))?);
        }
    }

    let [
        read,
        overlay,
        file,
        host_samples,
        large_read,
        large_host_samples,
    ] = samples;
    let guest_read = guest_variant(
        &read_args,
        "the guest reads the --volume (vdb) under --snapshot; the VMM preads the file",
        &read,
    )?;
    let guest_write_snapshot_overlay = guest_variant(
        &overlay_args,
        "the guest writes vdb under --snapshot: into the VMM's copy-on-write overlay (no flush to disk)",
        &overlay,
    )?;
    let guest_write_file = guest_variant(
        &file_args,
        "the guest writes vdb, a scratch copy of the file, then flushes (the VMM's fdatasync)",
        &file,
    )?;
    let host_read = host_variant(
        "std::fs::File::read_exact, 1 MiB at a time, sequential, page cache warm",
        &host_samples,
    )?;
    let guest_read_large = guest_variant(
        &large_read_args,
        "as the read above, in 4 MiB requests, 4 in flight",
        &large_read,
    )?;
    let host_read_large = host_variant(
        "std::fs::File::read_exact, 4 MiB at a time, sequential, page cache warm",
        &large_host_samples,
    )?;
    let ratio = guest_read.mib_per_s.median / host_read.mib_per_s.median;
    let ratio_large = guest_read_large.mib_per_s.median / host_read_large.mib_per_s.median;
    // Nothing is judged odd yet; kept so that the JSON has the same shape as the others.
    let warnings = Vec::new();
    Ok(Report {
        benchmark: "block",
        mib: config.mib,
        request_bytes: REQUEST_BYTES,
        large_request_bytes: LARGE_REQUEST_BYTES,
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved: each round runs guest read, guest write (snapshot overlay), guest \
                write (file), host read, and guest and host read in 4 MiB requests once, the \
                first of them rotating round by round",
        host: host(),
        guest_read,
        guest_write_snapshot_overlay,
        guest_write_file,
        host_read,
        guest_read_large,
        host_read_large,
        ratio_guest_over_host_read: ratio,
        ratio_guest_over_host_read_large: ratio_large,
        targets: Targets {
            guest_over_host_read_at_least: TARGET_GUEST_OVER_HOST_READ,
            guest_over_host_read_met: ratio_large >= TARGET_GUEST_OVER_HOST_READ,
        },
        warnings,
    })
}

fn guest_variant(
    args: &[OsString],
    what: &'static str,
    samples: &[Sample],
) -> Result<GuestVariant> {
    let ms = |f: fn(&Sample) -> Duration| {
        Summary::of(&samples.iter().map(|s| millis(f(s))).collect::<Vec<_>>()).context("no samples")
    };
    Ok(GuestVariant {
        command: strings(args),
        what,
        mib_per_s: rates(samples)?,
        guest_ms: ms(|s| s.time)?,
        process_ms: ms(|s| s.process)?,
    })
}

fn host_variant(what: &'static str, samples: &[Sample]) -> Result<HostVariant> {
    Ok(HostVariant {
        what,
        mib_per_s: rates(samples)?,
        ms: Summary::of(&samples.iter().map(|s| millis(s.time)).collect::<Vec<_>>())
            .context("no samples")?,
    })
}

fn rates(samples: &[Sample]) -> Result<Summary> {
    Summary::of(
        &samples
            .iter()
            .map(|s| mib_per_s(s.bytes, s.time.as_secs_f64()))
            .collect::<Vec<_>>(),
    )
    .context("no samples")
}

/// Writes `bytes` random bytes to a new file at `path`, 1 MiB at a time.
fn write_random_file(path: &Path, bytes: u64) -> Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut random = RandomBytes::from_clock();
    let mut buf = vec![0u8; REQUEST_BYTES];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(REQUEST_BYTES as u64) as usize;
        random.fill(&mut buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    Ok(())
}

/// The host's baseline: reads the first `bytes` of `path` sequentially, one `read_exact` of
/// `request` bytes (the guest's request size) at a time; times from the first read to the last
/// (the open is not timed, as the guest's figure does not count opening its disk either).
fn host_read(path: &Path, bytes: u64, request: usize) -> Result<Duration> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; request];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(request as u64) as usize;
        file.read_exact(&mut buf[..n])
            .with_context(|| format!("reading {}", path.display()))?;
        std::hint::black_box(&buf);
        left -= n as u64;
    }
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_file_and_host_read() {
        let dir = TempDir::new("block-test").unwrap();
        let path = dir.path().join("f");
        let bytes = 2 * MIB + 3;
        write_random_file(&path, bytes).unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, bytes);
        // Two MiB of random bytes are not a repeated MiB.
        assert!(data[..REQUEST_BYTES] != data[REQUEST_BYTES..2 * REQUEST_BYTES]);
        assert!(host_read(&path, bytes, REQUEST_BYTES).is_ok());
        assert!(host_read(&path, bytes, LARGE_REQUEST_BYTES).is_ok());
        assert!(
            host_read(&path, bytes + 1, REQUEST_BYTES).is_err(),
            "past the end"
        );
    }

    #[test]
    fn rates_are_mib_per_second() {
        let s = Sample {
            bytes: 4 * MIB,
            time: Duration::from_millis(500),
            process: Duration::from_secs(1),
        };
        let r = rates(&[s, s]).unwrap();
        assert_eq!(r.median, 8.0);
        let v = guest_variant(&["vmm".into()], "x", &[s]).unwrap();
        assert_eq!((v.guest_ms.median, v.process_ms.median), (500.0, 1000.0));
    }
}
