//! `noa-bench`: NOA ARK OS benchmarks, each run side by side with its reference in one invocation
//! (variants interleaved run by run), reported as medians (with min and p90) in a table and as JSON.
//!
//! This module owns the command line and the exit status only: 0 when the benchmark ran, non-zero
//! when it could not (a guest that fails to boot is an error). Figures never decide the exit status;
//! targets are printed as notes (DESIGN.md §10: benchmarks report, they are not timed assertions).
//! `boot` runs the boot benchmark, `child` times one process, `parse` reads guest and VMM output,
//! `stats` computes order statistics, `report` prints.

mod boot;
mod child;
mod parse;
mod report;
mod stats;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// NOA ARK OS benchmarks, side by side with their reference in one run.
///
/// Variants are interleaved run by run, so that drift on the host hits all of them alike; results
/// are medians with min and p90. Targets are printed as notes, never asserted: the exit status says
/// only whether the benchmark could run. Usually started by `cargo xtask bench <name>`.
#[derive(Debug, Parser)]
#[command(name = "noa-bench", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Boot time: our VMM vs QEMU microvm (KVM) on the same kernel, and the VMM's own memory.
    ///
    /// Interleaves, run by run: `VMM IMAGE` (default machine: 2 vCPUs, 512 MiB), timing spawn -> the
    /// guest's `NOA-BOOT-OK cpus=N mem_mib=M` line on stdout and spawn -> process exit (status must be
    /// 0); `qemu-system-x86_64 -M microvm -accel kvm -m 512M -smp 2 ... -kernel KERNEL`, the same two
    /// times (status must be 1: isa-debug-exit's (0 << 1) | 1); and `VMM --verbose IMAGE`, whose log
    /// line "VMM own peak RSS N KiB" gives the VMM's peak RSS without guest memory. QEMU's `-cpu` is
    /// probed first (`host`, then `host,arch-capabilities=off`, then none). A run that does not print
    /// the boot line within the deadline is killed and fails the benchmark.
    Boot(BootArgs),
}

#[derive(Debug, clap::Args)]
struct BootArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest disk image the VMM boots (target/noa/guest.img).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// The kernel ELF QEMU boots with -kernel: the same kernel as the image's /boot/kernel
    /// (target/noa/kernel.elf).
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,

    /// Measured runs of each variant (at least 20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(20..=100_000))]
    runs: u32,

    /// Unmeasured runs of each variant before the measured ones.
    #[arg(long, default_value_t = 1)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The QEMU binary.
    #[arg(long, value_name = "FILE", default_value = "qemu-system-x86_64")]
    qemu: PathBuf,

    /// QEMU -cpu value ("none": no -cpu flag). Default: the first of host,
    /// host,arch-capabilities=off and none that boots.
    #[arg(long, value_name = "CPU")]
    qemu_cpu: Option<String>,

    /// Kill a run (and fail the benchmark) that has not exited after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message carries the command line and the child's stderr; a backtrace of the
            // benchmark itself would only bury it.
            eprintln!("noa-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.bench {
        Bench::Boot(args) => {
            let config = boot::Config {
                vmm: args.vmm,
                image: args.image,
                kernel: args.kernel,
                qemu: args.qemu,
                qemu_cpu: args.qemu_cpu,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = boot::run(&config)?;
            print!("{}", report::boot_table(&result));
            if let Some(path) = &args.json {
                report::write_json(&result, path)?;
                println!("JSON: {}", path.display());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn boot_defaults_and_minimum_runs() {
        let cli = Cli::try_parse_from([
            "noa-bench",
            "boot",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
        ])
        .unwrap();
        let Bench::Boot(args) = cli.bench;
        assert_eq!((args.runs, args.warmup, args.timeout), (20, 1, 10));
        assert!(args.json.is_none());
        let few = [
            "noa-bench",
            "boot",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
            "--runs",
            "5",
        ];
        assert!(Cli::try_parse_from(few).is_err());
    }
}
