//! `cargo xtask bench NAME`: builds the artifacts, then runs `noa-bench NAME` (bench/) on them,
//! writing `target/noa/bench-NAME.json` next to the printed table.

use anyhow::{Result, bail};

/// The benchmarks, whether each needs the bare kernel (for QEMU), and their default run counts.
const BENCHMARKS: &[(&str, bool, u32)] =
    &[("boot", true, 20), ("block", false, 5), ("net", true, 3)];

pub fn run(which: &str, runs: Option<u32>) -> Result<()> {
    let Some(&(name, needs_kernel, default_runs)) =
        BENCHMARKS.iter().find(|(name, ..)| *name == which)
    else {
        let known: Vec<&str> = BENCHMARKS.iter().map(|(name, ..)| *name).collect();
        bail!("unknown benchmark '{which}' (known: {})", known.join(", "));
    };
    let noa = crate::build::all()?;
    let mut command = crate::build::cargo();
    command
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "bench",
            "--",
            name,
            "--runs",
        ])
        .arg(runs.unwrap_or(default_runs).to_string())
        .arg("--vmm")
        .arg(noa.join("vmm"))
        .arg("--image")
        .arg(noa.join("guest.img"));
    if needs_kernel {
        command.arg("--kernel").arg(noa.join("kernel.elf"));
    }
    command
        .arg("--json")
        .arg(noa.join(format!("bench-{name}.json")));
    crate::build::run(&mut command)
}
