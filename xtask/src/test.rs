//! `cargo xtask test`: builds the artifacts and the test programs (runtimes/tests/) and writes
//! `target/noa/test.img` — the guest image plus those programs under `/opt/tests` — then runs
//! every test of the workspace's host crates against them: unit tests, the KVM boot and bad-input
//! tests, the in-guest ktests, the QEMU cross-check and the Linux-program tests live in
//! `vmm/tests/` and find what they need through these environment variables:
//!
//! - `NOA_ARTIFACTS`: target/noa (vmm, kernel.elf, guest.img);
//! - `NOA_TEST_IMAGE`: target/noa/test.img;
//! - `NOA_TEST_PROGRAMS`: target/noa/tests, the programs laid out as under /opt/tests;
//! - `NOA_BUSYBOX`: the host's busybox (the one in the image), for the scripts' native runs;
//! - `NOA_MODEL`: the bundled model's GGUF in the host cache (the file the image has at
//!   `/storage/models/SmolLM2-135M-Instruct.Q4_1.gguf`; `model.rs`);
//! - `NOA_TINY_MODEL`: a tiny random-weight llama GGUF with the same tokenizer, for fast tests
//!   (`tiny_model.rs`);
//! - `NOA_TEST_PYTHON`: the tests' venv interpreter, with `mcp`, `openai` and `gguf` (`pyenv.rs`);
//! - `NOA_NODE`: a Node 22 binary, and `NOA_INSPECTOR`: the MCP Inspector's launcher script, run
//!   as `$NOA_NODE $NOA_INSPECTOR --cli URL --transport http --method tools/list` (`node.rs`).
//!
//! Those five are made once into the host cache (`cache.rs`); `--no-run` makes them too and
//! prints them, for running one test by hand.

use crate::build::run;
use crate::deps::USER_TARGET;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the test programs go in the test image.
pub const GUEST_TESTS: &str = "/opt/tests";

/// Builds everything the tests need; then, unless `no_run`, runs them.
pub fn all(no_run: bool) -> Result<()> {
    crate::deps::ensure_for_tests()?;
    let noa = crate::build::all()?;
    let programs = build_programs(&noa)?;
    let test_image = noa.join("test.img");
    crate::image::write_image(
        &noa,
        &test_image,
        &[crate::image::Add {
            host: programs.clone(),
            guest: GUEST_TESTS.into(),
        }],
    )?;
    let tools = test_tools()?;
    if no_run {
        eprintln!(
            "xtask: built {}, {} and {}",
            noa.display(),
            programs.display(),
            test_image.display()
        );
        for (name, value) in &tools {
            eprintln!("xtask: {name}={}", value.display());
        }
        return Ok(());
    }
    let mut cargo = crate::build::cargo();
    cargo
        .args([
            "test",
            "--workspace",
            "--exclude",
            "hal-pv",
            "--exclude",
            "noa-kernel",
        ])
        .env("NOA_ARTIFACTS", &noa)
        .env("NOA_TEST_IMAGE", &test_image)
        .env("NOA_TEST_PROGRAMS", &programs)
        .envs(tools.iter().map(|(k, v)| (*k, v)));
    if let Some(busybox) = crate::deps::find("busybox") {
        cargo.env("NOA_BUSYBOX", busybox);
    }
    run(&mut cargo)?;
    crate::services::test_server(&tools)?;
    crate::fuzz::short_pass()?;
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// The models, the venv's Python, Node and the MCP Inspector (made as needed), as the
/// environment variables the tests read.
fn test_tools() -> Result<Vec<(&'static str, PathBuf)>> {
    let (node, inspector) = crate::node::ensure_inspector()?;
    Ok(vec![
        ("NOA_MODEL", crate::model::ensure_bundled()?),
        ("NOA_TINY_MODEL", crate::tiny_model::ensure_tiny()?),
        ("NOA_TEST_PYTHON", crate::pyenv::ensure_test_venv()?),
        ("NOA_NODE", node),
        ("NOA_INSPECTOR", inspector),
    ])
}

/// Builds runtimes/tests/ into `noa/tests/`, laid out as in the image under /opt/tests:
/// `rust-std` (musl), `go` and `gonet` (CGO_ENABLED=0), `syscall-edge`, `avx`, `procfs`,
/// `sockets` and `durability` (gcc -static), `busybox/*.sh`, `python/*.py`.
pub fn build_programs(noa: &Path) -> Result<PathBuf> {
    let sources = crate::root().join("runtimes/tests");
    let out = noa.join("tests");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("busybox"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let target = crate::build::target_dir();

    // Its own crate (not a workspace member), with its own target folder.
    let rust_target = target.join("runtimes-tests");
    run(crate::build::cargo()
        .args(["build", "--release", "--locked", "--target", USER_TARGET])
        .arg("--manifest-path")
        .arg(sources.join("rust-std/Cargo.toml"))
        .arg("--target-dir")
        .arg(&rust_target))?;
    copy(
        &rust_target.join(USER_TARGET).join("release/rust-std"),
        &out.join("rust-std"),
    )?;

    go_build(&sources.join("go"), &out.join("go"), &target)?;
    go_build(&sources.join("gonet"), &out.join("gonet"), &target)?;

    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(out.join("syscall-edge"))
        .arg(sources.join("syscall-edge/syscall_edge.c")))?;

    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(out.join("avx"))
        .arg(sources.join("avx/avx.c")))?;

    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(out.join("durability"))
        .arg(sources.join("durability/durability.c")))?;

    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-pthread", "-o"])
        .arg(out.join("procfs"))
        .arg(sources.join("procfs/procfs.c")))?;

    run(Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(out.join("sockets"))
        .arg(sources.join("sockets/sockets.c")))?;

    for entry in std::fs::read_dir(sources.join("busybox"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sh") {
            copy(&path, &out.join("busybox").join(path.file_name().unwrap()))?;
        }
    }

    // Scripts for the image's python3 (and the host's /usr/bin/python3.11).
    std::fs::create_dir_all(out.join("python"))?;
    for entry in std::fs::read_dir(sources.join("python"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "py") {
            copy(&path, &out.join("python").join(path.file_name().unwrap()))?;
        }
    }
    Ok(out)
}

/// Builds the Go module in `module` into the static program `output` (`CGO_ENABLED=0`).
fn go_build(module: &Path, output: &Path, target: &Path) -> Result<()> {
    let mut go = Command::new(crate::deps::find("go").unwrap_or_else(|| "go".into()));
    go.current_dir(module)
        .args(["build", "-trimpath", "-buildvcs=false", "-o"])
        .arg(output)
        .env("CGO_ENABLED", "0");
    if std::env::var_os("HOME").is_none() {
        // CI without a home: Go needs somewhere for its build cache and module folder.
        go.env("GOCACHE", target.join("go/cache"))
            .env("GOPATH", target.join("go/path"));
    }
    run(&mut go)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}
