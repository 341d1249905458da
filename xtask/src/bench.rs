//! `cargo xtask bench NAME`: builds the artifacts, then runs `noa-bench NAME` (bench/) on them,
//! writing `target/noa/bench-NAME.json` next to the printed table.
//!
//! `linux` also compiles bench/programs/linux_abi.c (`gcc -O2 -static`) into
//! `<target>/noa-bench/linux_abi` and writes `target/noa/bench-linux.img`: the guest image plus
//! that program at /opt/noa-bench/linux_abi. `vmm IMAGE -- /bin/true` is timed on that image too
//! (without --snapshot, as the issue states it; the VMM refuses that for an image another VMM has
//! open, as tests often have guest.img).
//!
//! `python` runs on guest.img itself (it carries python3) against the host's /usr/bin/python3.11.
//!
//! With `NOA_BENCH_NO_BUILD=1` the VMM and kernel already in target/noa are used as they are
//! (nothing is rebuilt but what the benchmark itself needs, e.g. the linux program and its image).

use crate::build::run as run_command;
use anyhow::{Context, Result, bail, ensure};
use std::path::PathBuf;
use std::process::Command;

/// The benchmarks, whether each needs the bare kernel (for QEMU), and their default run counts.
const BENCHMARKS: &[(&str, bool, u32)] = &[
    ("boot", true, 20),
    ("block", false, 5),
    ("net", true, 3),
    ("linux", false, 3),
    ("python", false, 3),
];

/// Where the linux benchmark's program goes in its image.
const LINUX_GUEST_PROGRAM: &str = "/opt/noa-bench/linux_abi";

pub fn run(which: &str, runs: Option<u32>) -> Result<()> {
    let Some(&(name, needs_kernel, default_runs)) =
        BENCHMARKS.iter().find(|(name, ..)| *name == which)
    else {
        let known: Vec<&str> = BENCHMARKS.iter().map(|(name, ..)| *name).collect();
        bail!("unknown benchmark '{which}' (known: {})", known.join(", "));
    };
    let noa = if std::env::var_os("NOA_BENCH_NO_BUILD").is_some_and(|v| v != "0") {
        let noa = crate::artifacts();
        for file in ["vmm", "guest.img", "kernel.elf"] {
            ensure!(
                noa.join(file).is_file(),
                "NOA_BENCH_NO_BUILD: {} is missing (run `cargo xtask build`)",
                noa.join(file).display()
            );
        }
        noa
    } else {
        crate::build::all()?
    };
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
        .arg(noa.join("vmm"));
    if name == "linux" {
        let program = build_linux_program()?;
        let image = noa.join("bench-linux.img");
        crate::deps::ensure_rust_targets()?;
        crate::image::write_image(
            &noa,
            &image,
            &[crate::image::Add {
                host: program.clone(),
                guest: LINUX_GUEST_PROGRAM.into(),
            }],
        )?;
        command
            .arg("--image")
            .arg(&image)
            .arg("--program")
            .arg(&program)
            .arg("--guest-program")
            .arg(LINUX_GUEST_PROGRAM);
    } else {
        command.arg("--image").arg(noa.join("guest.img"));
    }
    if needs_kernel {
        command.arg("--kernel").arg(noa.join("kernel.elf"));
    }
    command
        .arg("--json")
        .arg(noa.join(format!("bench-{name}.json")));
    run_command(&mut command)
}

/// Compiles bench/programs/linux_abi.c with `gcc -O2 -static`; returns the program's path.
fn build_linux_program() -> Result<PathBuf> {
    let source = crate::root().join("bench/programs/linux_abi.c");
    let out_dir = crate::build::target_dir().join("noa-bench");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let program = out_dir.join("linux_abi");
    let gcc = crate::deps::find("gcc").context("no gcc: install it (`apt-get install gcc`)")?;
    run_command(
        Command::new(gcc)
            .args(["-O2", "-static", "-Wall", "-Wextra", "-o"])
            .arg(&program)
            .arg(&source),
    )?;
    ensure!(program.is_file(), "gcc wrote no {}", program.display());
    Ok(program)
}
