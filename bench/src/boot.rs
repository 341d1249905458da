//! The boot benchmark: our VMM against `qemu-system-x86_64 -M microvm -accel kvm` booting the same
//! kernel, interleaved run by run, to the guest's `NOA-BOOT-OK` line and to process exit; plus the
//! VMM's own peak RSS (guest memory excluded) from its `--verbose` log.
//!
//! Owns the command lines of the variants, the choice of QEMU's `-cpu` (probed once: `-cpu host`
//! aborts on some PVM hosts), the interleaving, and what counts as a successful run (the boot line
//! seen; exit status 0 for the VMM, 1 for QEMU, whose isa-debug-exit turns the guest's code 0 into
//! (0 << 1) | 1). Timing one process is `child`'s job; printing is `report`'s.

use crate::child::{self, Ended, Run};
use crate::common::{Host, command, host, millis, shell_words, strings, tail};
use crate::parse::{self, BootLine};
use crate::stats::Summary;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The targets, reported next to the figures; never asserted.
pub const TARGET_VMM_BOOT_LINE_MEDIAN_MS: f64 = 20.0;
pub const TARGET_QEMU_OVER_VMM_BOOT_LINE: f64 = 5.0;

/// QEMU `-cpu` values tried in order when none is given; `None` is QEMU's default CPU model.
/// `host` is the fair comparison (the guest sees the host's CPUID under our VMM too), but QEMU 7.2
/// aborts with it on PVM hosts ("failed to set MSR 0x10a", IA32_ARCH_CAPABILITIES); turning that
/// one MSR off keeps the rest of the host model.
const QEMU_CPU_CANDIDATES: [Option<&str>; 3] =
    [Some("host"), Some("host,arch-capabilities=off"), None];

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    pub image: PathBuf,
    pub kernel: PathBuf,
    pub qemu: PathBuf,
    /// `Some("none")` means no `-cpu` flag; `None` means probe `QEMU_CPU_CANDIDATES`.
    pub qemu_cpu: Option<String>,
    pub runs: usize,
    pub warmup: usize,
    pub deadline: Duration,
}

/// Everything the boot benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub runs: usize,
    pub warmup_runs: usize,
    /// How the variants were ordered within each round.
    pub order: &'static str,
    pub host: Host,
    pub vmm: Variant,
    pub qemu_microvm: QemuVariant,
    pub vmm_memory: VmmMemory,
    /// QEMU's median over the VMM's median.
    pub ratio_qemu_over_vmm: Ratios,
    pub targets: Targets,
    /// Anything odd seen on the way that did not fail the benchmark.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Variant {
    pub command: Vec<String>,
    pub boot_line: BootLine,
    /// Spawn to the boot line read from stdout, ms.
    pub boot_line_ms: Summary,
    /// Spawn to the process reaped, ms.
    pub exit_ms: Summary,
    /// The whole process's peak RSS (`ru_maxrss`, guest memory the guest touched included), KiB.
    pub peak_rss_kib: Summary,
}

#[derive(Debug, Serialize)]
pub struct QemuVariant {
    #[serde(flatten)]
    pub variant: Variant,
    /// The `-cpu` value used (`None`: no `-cpu` flag).
    pub cpu: Option<String>,
    /// `-cpu` values tried first that did not boot, with why.
    pub cpu_rejected: Vec<CpuRejected>,
}

#[derive(Debug, Serialize)]
pub struct CpuRejected {
    pub cpu: Option<String>,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct VmmMemory {
    pub command: Vec<String>,
    /// "VMM own peak RSS" from the VMM's log: its peak RSS less the guest memory resident, KiB.
    pub own_peak_rss_kib: Summary,
    /// `ru_maxrss` of the same processes, guest memory included, KiB.
    pub whole_peak_rss_kib: Summary,
}

#[derive(Debug, Serialize)]
pub struct Ratios {
    pub boot_line: f64,
    pub exit: f64,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    pub vmm_boot_line_median_ms_at_most: f64,
    pub vmm_boot_line_median_met: bool,
    pub qemu_over_vmm_boot_line_at_least: f64,
    pub qemu_over_vmm_boot_line_met: bool,
}

/// The three things run in each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vmm,
    Qemu,
    VmmVerbose,
}

const ROUND: [Kind; 3] = [Kind::Vmm, Kind::Qemu, Kind::VmmVerbose];

/// Runs the benchmark. Prints one line of progress to stderr; the report is the caller's to print.
pub fn run(config: &Config) -> Result<Report> {
    for (what, path) in [("--image", &config.image), ("--kernel", &config.kernel)] {
        if !path.is_file() {
            bail!(
                "{what} {}: no such file (build it with `cargo xtask build`)",
                path.display()
            );
        }
    }
    let mut warnings = Vec::new();
    // Boot to init's shell, which ends at once on closed stdin: no services, no port forward.
    let quiet = ["--cmdline", "noa.services=off", "--default-publish", "off"];
    let vmm_args: Vec<OsString> = std::iter::once(config.vmm.clone().into_os_string())
        .chain(quiet.iter().map(OsString::from))
        .chain([config.image.clone().into_os_string()])
        .collect();
    let verbose_args: Vec<OsString> = std::iter::once(config.vmm.clone().into_os_string())
        .chain(["--verbose"].iter().chain(quiet.iter()).map(OsString::from))
        .chain([config.image.clone().into_os_string()])
        .collect();

    let (qemu_cpu, cpu_rejected) = choose_qemu_cpu(config)?;
    let qemu_args = qemu_command(&config.qemu, qemu_cpu.as_deref(), &config.kernel);

    let args_of = |kind| match kind {
        Kind::Vmm => &vmm_args,
        Kind::Qemu => &qemu_args,
        Kind::VmmVerbose => &verbose_args,
    };
    let run_one = |kind: Kind, label: &str| -> Result<Run> {
        let args = args_of(kind);
        let run = child::run(&mut command(args), config.deadline)?;
        check(&run, kind, args, label)?;
        Ok(run)
    };

    eprintln!(
        "noa-bench boot: {} warm-up + {} interleaved rounds of vmm, qemu microvm, vmm --verbose ...",
        config.warmup, config.runs
    );
    for i in 0..config.warmup {
        for kind in ROUND {
            run_one(kind, &format!("warm-up run {}", i + 1))?;
        }
    }

    let mut vmm_runs = Vec::with_capacity(config.runs);
    let mut qemu_runs = Vec::with_capacity(config.runs);
    let mut verbose_runs = Vec::with_capacity(config.runs);
    let mut own_rss = Vec::with_capacity(config.runs);
    for round in 0..config.runs {
        // Rotate who goes first so that no variant always runs right after the same other one.
        for k in 0..ROUND.len() {
            let kind = ROUND[(round + k) % ROUND.len()];
            let run = run_one(kind, &format!("run {}", round + 1))?;
            match kind {
                Kind::Vmm => vmm_runs.push(run),
                Kind::Qemu => qemu_runs.push(run),
                Kind::VmmVerbose => {
                    let kib = parse::vmm_own_peak_rss_kib(&run.stderr).with_context(|| {
                        format!(
                            "`{}` logged no \"{}\" line; its stderr:\n{}",
                            shell_words(&verbose_args),
                            parse::VMM_OWN_RSS_MARKER,
                            tail(&run.stderr)
                        )
                    })?;
                    own_rss.push(kib as f64);
                    verbose_runs.push(run);
                }
            }
        }
    }

    let vmm = variant(&vmm_args, &vmm_runs, "vmm", &mut warnings)?;
    let qemu = variant(&qemu_args, &qemu_runs, "qemu microvm", &mut warnings)?;
    if vmm.boot_line.cpus != qemu.boot_line.cpus {
        warnings.push(format!(
            "the guest saw {} CPUs under the vmm but {} under QEMU: not the same machine",
            vmm.boot_line.cpus, qemu.boot_line.cpus
        ));
    }
    let ratio_qemu_over_vmm = Ratios {
        boot_line: qemu.boot_line_ms.median / vmm.boot_line_ms.median,
        exit: qemu.exit_ms.median / vmm.exit_ms.median,
    };
    let targets = Targets {
        vmm_boot_line_median_ms_at_most: TARGET_VMM_BOOT_LINE_MEDIAN_MS,
        vmm_boot_line_median_met: vmm.boot_line_ms.median <= TARGET_VMM_BOOT_LINE_MEDIAN_MS,
        qemu_over_vmm_boot_line_at_least: TARGET_QEMU_OVER_VMM_BOOT_LINE,
        qemu_over_vmm_boot_line_met: ratio_qemu_over_vmm.boot_line
            >= TARGET_QEMU_OVER_VMM_BOOT_LINE,
    };
    let vmm_memory = VmmMemory {
        command: strings(&verbose_args),
        own_peak_rss_kib: Summary::of(&own_rss).context("no RSS samples")?,
        whole_peak_rss_kib: Summary::of(
            &verbose_runs
                .iter()
                .map(|r| r.max_rss_kib as f64)
                .collect::<Vec<_>>(),
        )
        .context("no RSS samples")?,
    };
    Ok(Report {
        benchmark: "boot",
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved: each round runs vmm, qemu microvm and vmm --verbose once, the first of them rotating round by round",
        host: host(),
        vmm,
        qemu_microvm: QemuVariant {
            variant: qemu,
            cpu: qemu_cpu,
            cpu_rejected,
        },
        vmm_memory,
        ratio_qemu_over_vmm,
        targets,
        warnings,
    })
}

/// The QEMU command line: microvm under KVM, like our VMM's machine (2 vCPUs, 512 MiB, serial on
/// stdout, no devices but isa-debug-exit, which the kernel's power-off writes to).
fn qemu_command(qemu: &Path, cpu: Option<&str>, kernel: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        qemu.into(),
        "-M".into(),
        "microvm".into(),
        "-accel".into(),
        "kvm".into(),
    ];
    if let Some(cpu) = cpu {
        args.extend(["-cpu".into(), cpu.into()]);
    }
    args.extend(
        [
            "-m",
            "512M",
            "-smp",
            "2",
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-serial",
            "stdio",
            "-display",
            "none",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
        ]
        .map(OsString::from),
    );
    args.push(kernel.into());
    args
}

/// Finds a QEMU `-cpu` value that boots the kernel (one run each, which doubles as QEMU's warm-up).
fn choose_qemu_cpu(config: &Config) -> Result<(Option<String>, Vec<CpuRejected>)> {
    let candidates: Vec<Option<String>> = match config.qemu_cpu.as_deref() {
        Some("none") => vec![None],
        Some(cpu) => vec![Some(cpu.to_string())],
        None => QEMU_CPU_CANDIDATES
            .iter()
            .map(|c| c.map(str::to_string))
            .collect(),
    };
    let mut rejected = Vec::new();
    for cpu in candidates {
        let args = qemu_command(&config.qemu, cpu.as_deref(), &config.kernel);
        let run = child::run(&mut command(&args), config.deadline)?;
        match check(&run, Kind::Qemu, &args, "probe run") {
            Ok(()) => return Ok((cpu, rejected)),
            Err(e) => {
                let error = first_error_line(&run.stderr).unwrap_or_else(|| run.ended.to_string());
                rejected.push(CpuRejected {
                    cpu,
                    error: format!("{error} ({})", run.ended),
                });
                if config.qemu_cpu.is_some() {
                    return Err(e);
                }
            }
        }
    }
    let tried: Vec<String> = rejected
        .iter()
        .map(|r| {
            format!(
                "  -cpu {}: {}",
                r.cpu.as_deref().unwrap_or("(none)"),
                r.error
            )
        })
        .collect();
    bail!(
        "QEMU microvm did not boot the kernel with any -cpu choice:\n{}",
        tried.join("\n")
    )
}

/// Whether one run is a good boot; if not, an error with the command, what went wrong and stderr.
fn check(run: &Run, kind: Kind, args: &[OsString], label: &str) -> Result<()> {
    let (name, expected) = match kind {
        Kind::Vmm | Kind::VmmVerbose => ("vmm", Ended::Exited(0)),
        Kind::Qemu => ("qemu microvm", Ended::Exited(1)),
    };
    let problem = if run.timed_out {
        format!(
            "killed after {:.1} s {}",
            run.exit_after.as_secs_f64(),
            if run.boot_line.is_some() {
                "(the boot line came, but it did not exit)"
            } else {
                "without the boot line"
            }
        )
    } else if run.boot_line.is_none() {
        format!(
            "exited ({}) without printing a `{} cpus=N mem_mib=M` line",
            run.ended,
            parse::BOOT_MARKER
        )
    } else if run.ended != expected {
        let why = if kind == Kind::Qemu {
            ", what isa-debug-exit makes of the guest's power-off code 0"
        } else {
            ""
        };
        format!("ended with {} instead of {expected}{why}", run.ended)
    } else {
        return Ok(());
    };
    bail!(
        "{name} {label} failed: {problem}\ncommand: {}\nstdout:\n{}stderr:\n{}",
        shell_words(args),
        tail(&run.stdout),
        tail(&run.stderr)
    )
}

/// Summarises one variant's runs.
fn variant(
    args: &[OsString],
    runs: &[Run],
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Variant> {
    let boot_line = runs.first().and_then(|r| r.boot_line).context("no runs")?;
    let differing = runs
        .iter()
        .filter(|r| r.boot_line != Some(boot_line))
        .count();
    if differing > 0 {
        warnings.push(format!(
            "{name}: {differing} runs printed a boot line other than the first run's"
        ));
    }
    let ms = |f: fn(&Run) -> f64| {
        Summary::of(&runs.iter().map(f).collect::<Vec<_>>()).context("no runs")
    };
    Ok(Variant {
        command: strings(args),
        boot_line,
        boot_line_ms: ms(|r| r.boot_line_after.map_or(f64::NAN, millis))?,
        exit_ms: ms(|r| millis(r.exit_after))?,
        peak_rss_kib: ms(|r| r.max_rss_kib as f64)?,
    })
}

/// The first stderr line that reads like an error (QEMU prints warnings before the fatal one).
fn first_error_line(stderr: &str) -> Option<String> {
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find(|l| l.contains("error"))
        .or_else(|| lines().next())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_command_line() {
        let args = strings(&qemu_command(
            Path::new("qemu"),
            Some("host"),
            Path::new("k.elf"),
        ));
        assert_eq!(
            args.join(" "),
            "qemu -M microvm -accel kvm -cpu host -m 512M -smp 2 -nodefaults -no-user-config -nographic \
             -serial stdio -display none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel k.elf"
        );
        let args = strings(&qemu_command(Path::new("qemu"), None, Path::new("k.elf")));
        assert!(!args.iter().any(|a| a == "-cpu"));
    }

    #[test]
    fn first_error_line_skips_warnings() {
        let stderr = "qemu-system-x86_64: warning: host doesn't support requested feature\n\
                      qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n\
                      qemu-system-x86_64: kvm.c:3183: Assertion failed.\n";
        assert_eq!(
            first_error_line(stderr).unwrap(),
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"
        );
        assert_eq!(first_error_line("\n just this \n").unwrap(), "just this");
        assert_eq!(first_error_line(""), None);
    }

    fn fake(boot: Option<BootLine>, ended: Ended, timed_out: bool) -> Run {
        Run {
            boot_line_after: boot.map(|_| Duration::from_millis(5)),
            boot_line: boot,
            exit_after: Duration::from_millis(8),
            ended,
            timed_out,
            max_rss_kib: 1,
            stdout: String::new(),
            stderr: "oops".into(),
        }
    }

    #[test]
    fn good_runs_need_the_boot_line_and_the_right_exit_status() {
        let line = Some(BootLine {
            cpus: 2,
            mem_mib: 511,
        });
        let args = [OsString::from("x")];
        assert!(
            check(
                &fake(line, Ended::Exited(0), false),
                Kind::Vmm,
                &args,
                "run 1"
            )
            .is_ok()
        );
        assert!(
            check(
                &fake(line, Ended::Exited(1), false),
                Kind::Qemu,
                &args,
                "run 1"
            )
            .is_ok()
        );
        assert!(
            check(
                &fake(line, Ended::Exited(1), false),
                Kind::Vmm,
                &args,
                "run 1"
            )
            .is_err()
        );
        assert!(
            check(
                &fake(line, Ended::Exited(0), false),
                Kind::Qemu,
                &args,
                "run 1"
            )
            .is_err()
        );
        assert!(
            check(
                &fake(None, Ended::Exited(0), false),
                Kind::Vmm,
                &args,
                "run 1"
            )
            .is_err()
        );
        assert!(
            check(
                &fake(line, Ended::Signalled(9), true),
                Kind::Vmm,
                &args,
                "run 1"
            )
            .is_err()
        );
        let err = check(
            &fake(None, Ended::Exited(125), false),
            Kind::VmmVerbose,
            &args,
            "run 3",
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("run 3") && text.contains("oops") && text.contains("exit status 125"),
            "{text}"
        );
    }
}
