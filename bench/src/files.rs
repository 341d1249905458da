//! The files benchmark: file-system costs through the Linux ABI — our kernel's ext2 on a
//! `--volume` disk against the host's own file system — measured by one static program
//! (bench/programs/files.c, `gcc -O2 -static`) in the guest and natively in the same invocation,
//! interleaved round by round:
//!
//! - `create`: µs per empty file created (open O_CREAT|O_EXCL + close), N in a fresh directory;
//!   `unlink`: µs per unlink of them;
//! - `append`: µs per 4 KiB appended (O_APPEND) then fsync'd, N times;
//! - `write`: MiB/s of a file written in 1 MiB writes then one fsync (timed together);
//! - `read`: MiB/s of that file read back in 1 MiB reads, by a second run of the program: in the
//!   guest after a fresh boot, so from its disk (whose image file the host may well have cached);
//!   natively from the host's page cache (nothing is dropped).
//!
//! Each round makes a fresh ext2 disk (`mke2fs -t ext2`) in the benchmark's temporary directory.
//! The guest mounts it: `vmm --volume DISK:/bench BOOT -- PROGRAM /bench STEPS`. No --snapshot:
//! it would discard the writes, and the VMM applies it to every disk, so the boot image is a
//! private copy instead. The native run works in a fresh directory beside the disk, on the same
//! host file system.
//!
//! Owns the disks, the command lines, the interleaving and what a good run is (exit status 0, the
//! program's `NOA-FILES name=… iters=N ns=T bytes=B` lines as asked, and in the guest a directory
//! on a file system of its own, i.e. the volume did mount). Timing a process is `child`'s job;
//! printing is `report`'s.

use crate::child::{Ended, Finished, Session};
use crate::common::{Host, TempDir, command, host, mib_per_s, millis, strings};
use crate::kbench;
use crate::stats::Summary;
use anyhow::{Context, Result, ensure};
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The program's line marker.
pub const MARKER: &str = "NOA-FILES";

/// Where the guest mounts the volume.
const GUEST_DIR: &str = "/bench";

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    /// The image holding the program at `guest_program`; copied, never written.
    pub image: PathBuf,
    /// The same program on the host.
    pub program: PathBuf,
    pub guest_program: String,
    pub mke2fs: PathBuf,
    pub creates: u64,
    pub appends: u64,
    /// Size of the sequentially written and read file.
    pub mib: u64,
    /// Size of each round's ext2 disk.
    pub disk_mib: u64,
    pub runs: usize,
    pub warmup: usize,
    pub deadline: Duration,
}

/// Everything the files benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub runs: usize,
    pub warmup_runs: usize,
    pub order: &'static str,
    pub host: Host,
    pub program: Program,
    pub disk: Disk,
    pub create: Pair,
    pub unlink: Pair,
    pub append_fsync: Pair,
    pub write: Pair,
    pub read: Pair,
    /// Spawn to exit of the guest's two VMM processes per round, ms.
    pub guest_write_run_ms: Summary,
    pub guest_read_run_ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct Program {
    pub host_path: String,
    pub guest_path: String,
    pub output: &'static str,
    /// Round 1's command lines; later rounds differ only in their disk and directory.
    pub guest_commands: [Vec<String>; 2],
    pub native_commands: [Vec<String>; 2],
}

#[derive(Debug, Serialize)]
pub struct Disk {
    pub made_with: String,
    pub mib: u64,
    /// The temporary directory that held the disks and the native runs' directories.
    pub host_dir: String,
    pub guest_mount: &'static str,
}

/// One figure, guest and native.
#[derive(Debug, Serialize)]
pub struct Pair {
    pub what: &'static str,
    pub unit: &'static str,
    /// Operations per run (files, appends, or MiB).
    pub operations: u64,
    pub guest: Summary,
    pub native: Summary,
    /// Median over median, so that more than 1 means the guest is slower.
    pub ratio: f64,
    pub ratio_is: &'static str,
}

/// The program's measurements, in the order it prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Unlink,
    Append,
    Write,
    Read,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Unlink => "unlink",
            Op::Append => "append",
            Op::Write => "write",
            Op::Read => "read",
        }
    }

    fn is_rate(self) -> bool {
        matches!(self, Op::Write | Op::Read)
    }

    /// µs per operation, or MiB/s.
    fn figure(self, m: &Measured) -> f64 {
        if self.is_rate() {
            mib_per_s(m.bytes, m.ns as f64 / 1e9)
        } else {
            m.ns as f64 / 1e3 / m.iters.max(1) as f64
        }
    }
}

/// One `NOA-FILES name=… iters=… ns=… bytes=…` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Measured {
    iters: u64,
    ns: u64,
    bytes: u64,
}

/// One run of the program: the first writes (create, append, write), the second reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    guest: bool,
    read: bool,
}

/// Runs the benchmark. Prints progress to stderr; the report is the caller's to print.
pub fn run(config: &Config) -> Result<Report> {
    crate::common::require_files([
        ("--vmm", &config.vmm),
        ("--image", &config.image),
        ("--program", &config.program),
    ])?;
    let dir = TempDir::new("files").context("creating a temporary directory")?;
    let boot = dir.path().join("boot.img");
    std::fs::copy(&config.image, &boot)
        .with_context(|| format!("copying {} to {}", config.image.display(), boot.display()))?;
    let disk = dir.path().join("disk.img");
    let native_dir = dir.path().join("native");
    let deadline = config.deadline + Duration::from_secs(10);

    let expected = |read: bool| -> Vec<(Op, u64)> {
        if read {
            vec![(Op::Read, config.mib)]
        } else {
            vec![
                (Op::Create, config.creates),
                (Op::Unlink, config.creates),
                (Op::Append, config.appends),
                (Op::Write, config.mib),
            ]
        }
    };
    let args_of = |kind: Kind| -> Vec<OsString> {
        let mut args: Vec<OsString> = if kind.guest {
            let mut volume = OsString::from(&disk);
            volume.push(format!(":{GUEST_DIR}"));
            vec![
                config.vmm.clone().into(),
                "--timeout".into(),
                config.deadline.as_secs().max(1).to_string().into(),
                "--volume".into(),
                volume,
                boot.clone().into(),
                "--".into(),
                config.guest_program.clone().into(),
                GUEST_DIR.into(),
            ]
        } else {
            vec![config.program.clone().into(), native_dir.clone().into()]
        };
        for (op, n) in expected(kind.read) {
            if op != Op::Unlink {
                args.push(format!("{}={n}", op.name()).into());
            }
        }
        args
    };
    let run_one = |kind: Kind, label: &str| -> Result<(Vec<Measured>, Duration)> {
        let args = args_of(kind);
        let finished = Session::spawn(&mut command(&args), deadline)?.finish()?;
        let who = format!(
            "{} {} run",
            if kind.guest { "guest" } else { "native" },
            if kind.read { "read" } else { "write" }
        );
        let measured = outcome(&finished, &expected(kind.read), kind.guest)
            .map_err(|problem| kbench::failure(&who, label, &problem, &args, &finished))?;
        Ok((measured, finished.exit_after))
    };

    eprintln!(
        "noa-bench files: {} warm-up + {} interleaved rounds, each on a fresh {} MiB ext2 disk: \
         {} creates + unlinks, {} appends + fsync, a {} MiB file written and read (guest and \
         native) ...",
        config.warmup, config.runs, config.disk_mib, config.creates, config.appends, config.mib
    );
    // Per op, guest then native.
    let mut samples: [[Vec<f64>; 2]; 5] = Default::default();
    let mut guest_ms: [Vec<f64>; 2] = Default::default();
    for round in 0..config.warmup + config.runs {
        let measured = round >= config.warmup;
        let label = if measured {
            format!("run {}", round - config.warmup + 1)
        } else {
            format!("warm-up run {}", round + 1)
        };
        fresh_disk(&config.mke2fs, &disk, config.disk_mib)?;
        fresh_dir(&native_dir)?;
        // The read runs follow their write runs; who goes first alternates.
        let first = round % 2 == 0;
        for (guest, read) in [
            (first, false),
            (!first, false),
            (first, true),
            (!first, true),
        ] {
            let kind = Kind { guest, read };
            let (figures, took) = run_one(kind, &label)?;
            if !measured {
                continue;
            }
            for ((op, _), m) in expected(read).iter().zip(&figures) {
                samples[*op as usize][usize::from(!guest)].push(op.figure(m));
            }
            if guest {
                guest_ms[usize::from(read)].push(millis(took));
            }
        }
    }

    let pair = |op: Op, what: &'static str| -> Result<Pair> {
        let [guest, native] = &samples[op as usize];
        let guest = Summary::of(guest).context("no guest samples")?;
        let native = Summary::of(native).context("no native samples")?;
        let (unit, ratio, ratio_is) = if op.is_rate() {
            ("MiB/s", native.median / guest.median, "native/guest")
        } else {
            (
                "µs per operation",
                guest.median / native.median,
                "guest/native",
            )
        };
        let operations = match op {
            Op::Create | Op::Unlink => config.creates,
            Op::Append => config.appends,
            Op::Write | Op::Read => config.mib,
        };
        Ok(Pair {
            what,
            unit,
            operations,
            guest,
            native,
            ratio,
            ratio_is,
        })
    };
    let rounds_ms = |read: bool| Summary::of(&guest_ms[usize::from(read)]).context("no guest runs");
    let commands = |guest: bool| [false, true].map(|read| strings(&args_of(Kind { guest, read })));
    Ok(Report {
        benchmark: "files",
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved: each round makes a fresh disk and directory, then runs the guest's \
                and the native write runs, then both read runs; who goes first alternates",
        host: host(),
        program: Program {
            host_path: config.program.to_string_lossy().into_owned(),
            guest_path: config.guest_program.clone(),
            output: "`NOA-FILES dir=DIR dev=D root_dev=R`, then per measurement `NOA-FILES \
                     name=NAME iters=N ns=T bytes=B`: T is CLOCK_MONOTONIC ns over the N \
                     operations, read inside the program",
            guest_commands: commands(true),
            native_commands: commands(false),
        },
        disk: Disk {
            made_with: format!(
                "{} -q -t ext2 -F DISK on a sparse file, fresh each round",
                config.mke2fs.display()
            ),
            mib: config.disk_mib,
            host_dir: dir.path().to_string_lossy().into_owned(),
            guest_mount: GUEST_DIR,
        },
        create: pair(
            Op::Create,
            "open(O_CREAT|O_EXCL|O_WRONLY) + close of N empty files in a fresh directory",
        )?,
        unlink: pair(Op::Unlink, "unlink of those N files")?,
        append_fsync: pair(
            Op::Append,
            "write of 4 KiB at the end (O_APPEND), then fsync",
        )?,
        write: pair(
            Op::Write,
            "a new file written in 1 MiB writes, then one fsync, timed together",
        )?,
        read: pair(
            Op::Read,
            "that file read back in 1 MiB reads by a second run: in the guest after a fresh \
             boot (from its disk), natively from the host's page cache",
        )?,
        guest_write_run_ms: rounds_ms(false)?,
        guest_read_run_ms: rounds_ms(true)?,
    })
}

/// A new sparse `mib`-MiB file at `path` holding an empty ext2.
fn fresh_disk(mke2fs: &Path, path: &Path, mib: u64) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.set_len(mib * crate::common::MIB)
        .with_context(|| format!("sizing {}", path.display()))?;
    let output = Command::new(mke2fs)
        .args(["-q", "-t", "ext2", "-F"])
        .arg(path)
        .output()
        .with_context(|| format!("cannot run {}", mke2fs.display()))?;
    ensure!(
        output.status.success(),
        "{} -t ext2 {} failed ({}): {}",
        mke2fs.display(),
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    std::fs::create_dir(path).with_context(|| format!("creating {}", path.display()))
}

/// One parsed `NOA-FILES` line.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Dir { dev: u64, root_dev: u64 },
    Result { name: &'a str, m: Measured },
    Error(&'a str),
}

fn parse_line(line: &str) -> Option<Line<'_>> {
    let rest = line[line.find(MARKER)? + MARKER.len()..].trim();
    if let Some(error) = rest.strip_prefix("error=") {
        return Some(Line::Error(error));
    }
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    };
    let number = |key: &str| field(key)?.parse::<u64>().ok();
    if field("dir").is_some() {
        return Some(Line::Dir {
            dev: number("dev")?,
            root_dev: number("root_dev")?,
        });
    }
    Some(Line::Result {
        name: field("name")?,
        m: Measured {
            iters: number("iters")?,
            ns: number("ns")?,
            bytes: number("bytes")?,
        },
    })
}

/// The measurements of a finished run, in `expected`'s order, or what was wrong with it: the
/// deadline passed, the program reported an error, a line is missing or counted other
/// operations, it did not exit 0, or (`on_volume`) its directory was on the root file system.
fn outcome(
    run: &Finished,
    expected: &[(Op, u64)],
    on_volume: bool,
) -> Result<Vec<Measured>, String> {
    if run.timed_out {
        return Err(format!(
            "killed after {:.1} s",
            run.exit_after.as_secs_f64()
        ));
    }
    let lines: Vec<Line> = run.stdout.lines().filter_map(parse_line).collect();
    if let Some(Line::Error(what)) = lines.iter().find(|l| matches!(l, Line::Error(_))) {
        return Err(format!(
            "the program reported `{MARKER} error={what}` ({})",
            run.ended
        ));
    }
    let mut measured = Vec::new();
    for &(op, n) in expected {
        let found = lines.iter().find_map(|l| match l {
            Line::Result { name, m } if *name == op.name() => Some(*m),
            _ => None,
        });
        let Some(m) = found else {
            return Err(format!(
                "exited ({}) without printing a `{MARKER} name={} iters={n} ...` line",
                run.ended,
                op.name()
            ));
        };
        if m.iters != n || m.ns == 0 {
            return Err(format!(
                "{} ran {} operations in {} ns, not {n}",
                op.name(),
                m.iters,
                m.ns
            ));
        }
        measured.push(m);
    }
    if run.ended != Ended::Exited(0) {
        return Err(format!("ended with {} instead of exit status 0", run.ended));
    }
    if on_volume {
        match lines.iter().find(|l| matches!(l, Line::Dir { .. })) {
            Some(Line::Dir { dev, root_dev }) if dev != root_dev => {}
            _ => {
                return Err(format!(
                    "{GUEST_DIR} is not on the volume (it did not mount)"
                ));
            }
        }
    }
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(stdout: &str, ended: Ended) -> Finished {
        Finished {
            exit_after: Duration::from_millis(5),
            ended,
            timed_out: false,
            max_rss_kib: 0,
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }

    const READ: &[(Op, u64)] = &[(Op::Read, 4)];
    const GOOD: &str = "NOA-FILES dir=/bench dev=65040 root_dev=65024\n\
                        NOA-FILES name=read iters=4 ns=2000000 bytes=4194304\n";

    #[test]
    fn a_good_run_gives_its_figures() {
        let m = outcome(&finished(GOOD, Ended::Exited(0)), READ, true).unwrap();
        assert_eq!(
            m,
            [Measured {
                iters: 4,
                ns: 2_000_000,
                bytes: 4 << 20
            }]
        );
        assert_eq!(Op::Read.figure(&m[0]), 2000.0);
        let create = Measured {
            iters: 10,
            ns: 50_000,
            bytes: 0,
        };
        assert_eq!(Op::Create.figure(&create), 5.0);
    }

    #[test]
    fn bad_runs_say_what_was_wrong() {
        let bad = |out: &str, ended, expected, on_volume| {
            outcome(&finished(out, ended), expected, on_volume).unwrap_err()
        };
        assert!(bad(GOOD, Ended::Exited(0), &[(Op::Read, 5)], true).contains("not 5"));
        assert!(bad(GOOD, Ended::Exited(0), &[(Op::Write, 4)], true).contains("without printing"));
        assert!(bad(GOOD, Ended::Exited(1), READ, true).contains("exit status 1"));
        let root = GOOD.replace("65040", "65024");
        assert!(bad(&root, Ended::Exited(0), READ, true).contains("did not mount"));
        assert!(outcome(&finished(&root, Ended::Exited(0)), READ, false).is_ok());
        let error = "NOA-FILES error=fsync-log errno=5\n";
        assert!(bad(error, Ended::Exited(1), READ, true).contains("error=fsync-log errno=5"));
    }

    /// The real program, natively, in a temporary directory: its lines are what `outcome` wants.
    #[test]
    fn the_program_runs_natively() {
        let Some(gcc) = ["/usr/bin/gcc", "/usr/local/bin/gcc"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            eprintln!("skipping: no gcc");
            return;
        };
        let dir = TempDir::new("files-test").unwrap();
        let program = dir.path().join("files");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/files.c");
        let built = Command::new(gcc)
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&program)
            .arg(&source)
            .status()
            .unwrap();
        assert!(built.success());
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let run = |steps: &[&str]| {
            let out = Command::new(&program)
                .arg(&work)
                .args(steps)
                .output()
                .unwrap();
            let ended = Ended::Exited(out.status.code().unwrap_or(-1));
            finished(&String::from_utf8_lossy(&out.stdout), ended)
        };
        let writes = [
            (Op::Create, 20),
            (Op::Unlink, 20),
            (Op::Append, 3),
            (Op::Write, 2),
        ];
        let m = outcome(&run(&["create=20", "append=3", "write=2"]), &writes, false).unwrap();
        assert_eq!(m[2].bytes, 3 * 4096);
        assert_eq!(m[3].bytes, 2 << 20);
        assert_eq!(std::fs::metadata(work.join("seq")).unwrap().len(), 2 << 20);
        assert!(!work.join("many").exists(), "create removes its directory");
        outcome(&run(&["read=2"]), &[(Op::Read, 2)], false).unwrap();
        // A file shorter than asked is an error, not a figure.
        let short = outcome(&run(&["read=3"]), &[(Op::Read, 3)], false).unwrap_err();
        assert!(short.contains("error=short-file"), "{short}");
        // So are bytes that are not what was written.
        let seq = std::fs::OpenOptions::new()
            .write(true)
            .open(work.join("seq"))
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&seq, &[0xff; 8], 4096).unwrap();
        let wrong = outcome(&run(&["read=2"]), &[(Op::Read, 2)], false).unwrap_err();
        assert!(wrong.contains("error=wrong-bytes"), "{wrong}");
    }
}
