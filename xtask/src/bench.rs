//! `cargo xtask bench NAME`: builds the artifacts, then runs `noa-bench NAME` (bench/) on them,
//! writing `target/noa/bench-NAME.json` next to the printed table.
//!
//! `linux` also compiles bench/programs/linux_abi.c (`gcc -O2 -static`) into
//! `<target>/noa-bench/linux_abi` and writes `target/noa/bench-linux.img`: the guest image plus
//! that program at /opt/noa-bench/linux_abi. `vmm IMAGE -- /bin/true` is timed on that image too
//! (without --snapshot, as the issue states it; the VMM refuses that for an image another VMM has
//! open, as tests often have guest.img).
//!
//! `files` likewise compiles bench/programs/files.c into `<target>/noa-bench/files` and writes
//! `target/noa/bench-files.img` (the guest image plus it at /opt/noa-bench/files); the benchmark
//! boots a private copy of that and makes its ext2 disks with the mke2fs found here.
//!
//! `http` likewise compiles bench/programs/http_server.c into `<target>/noa-bench/http_server` and
//! writes `target/noa/bench-http.img` (the guest image plus it at /opt/noa-bench/http_server); QEMU
//! boots kernel.elf on that image with the kernel command line the VMM would give it, starting
//! with the image's /boot/cmdline, which the benchmark reads with the debugfs found here.
//!
//! `python` runs on guest.img itself (it carries python3) against the host's /usr/bin/python3.11.
//!
//! `llama` and `mcp-start` run on guest.img too (it carries noa-server and the bundled model),
//! against the same noa-server natively (`--server`: `services::build_server`'s release build,
//! `<target>/noa-server/x86_64-unknown-linux-gnu/release/noa-server`) and the same model from the
//! host's cache (`--model`: `model::ensure_bundled`).
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
    ("files", false, 3),
    ("http", true, 3),
    ("llama", false, 3),
    ("mcp-start", false, 3),
];

/// The benchmarks that run noa-server natively next to the guest's.
const NATIVE_SERVER: &[&str] = &["llama", "mcp-start"];

/// The benchmarks that run a program of bench/programs/ from an image of their own: (benchmark,
/// program, where it goes in the image).
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("linux", "linux_abi", "/opt/noa-bench/linux_abi"),
    ("files", "files", "/opt/noa-bench/files"),
    ("http", "http_server", "/opt/noa-bench/http_server"),
];

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
    if let Some(&(_, source, guest_program)) = PROGRAMS.iter().find(|(bench, ..)| *bench == name) {
        let program = build_program(source)?;
        let image = noa.join(format!("bench-{name}.img"));
        crate::deps::ensure_rust_targets()?;
        crate::image::write_image(
            &noa,
            &image,
            &[crate::image::Add {
                host: program.clone(),
                guest: guest_program.into(),
            }],
        )?;
        command
            .arg("--image")
            .arg(&image)
            .arg("--program")
            .arg(&program)
            .arg("--guest-program")
            .arg(guest_program);
    } else {
        command.arg("--image").arg(noa.join("guest.img"));
    }
    if name == "files" {
        let mke2fs = crate::deps::find("mke2fs").context("no mke2fs: install e2fsprogs")?;
        command.arg("--mke2fs").arg(mke2fs);
    }
    if name == "http" {
        let debugfs = crate::deps::find("debugfs").context("no debugfs: install e2fsprogs")?;
        command.arg("--debugfs").arg(debugfs);
    }
    if NATIVE_SERVER.contains(&name) {
        command
            .arg("--server")
            .arg(crate::services::build_server()?)
            .arg("--model")
            .arg(crate::model::ensure_bundled()?);
    }
    if needs_kernel {
        command.arg("--kernel").arg(noa.join("kernel.elf"));
    }
    command
        .arg("--json")
        .arg(noa.join(format!("bench-{name}.json")));
    run_command(&mut command)
}

/// Compiles bench/programs/NAME.c with `gcc -O2 -static`; returns the program's path.
fn build_program(name: &str) -> Result<PathBuf> {
    let source = crate::root().join(format!("bench/programs/{name}.c"));
    let out_dir = crate::build::target_dir().join("noa-bench");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let program = out_dir.join(name);
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
