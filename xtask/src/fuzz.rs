//! `cargo xtask fuzz [TARGET] [--seconds N]`, and the short fuzz pass `cargo xtask test` ends
//! with: the libFuzzer targets in `vmm/fuzz/` (see its README), run by cargo-fuzz on a nightly
//! toolchain with AddressSanitizer.
//!
//! Without a nightly toolchain the short pass is skipped with a line saying so; cargo-fuzz is
//! installed when missing. A crash, a panic, a sanitizer report or a hang (an input running longer
//! than [`HANG_SECS`]) fails the pass; libFuzzer writes the input to
//! `vmm/fuzz/artifacts/TARGET/`, and cargo-fuzz prints how to reproduce it.
//!
//! The corpus grows in `vmm/fuzz/corpus/TARGET/` (not committed); the committed seeds and past
//! reproducers in `vmm/fuzz/seeds/TARGET/` are replayed first on every run. The build goes to
//! `vmm/fuzz/target/`, or wherever CARGO_TARGET_DIR says.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub const SKIPPED: &str =
    "SKIPPED: fuzzing needs a nightly toolchain (rustup toolchain install nightly)";

/// The short pass: at least this many seconds in all, and at least [`SHORT_PASS_MIN_SECS`] per
/// target.
const SHORT_PASS_TOTAL_SECS: u64 = 60;
const SHORT_PASS_MIN_SECS: u64 = 15;

/// An input that runs longer than this is a hang.
const HANG_SECS: u64 = 10;

fn fuzz_dir() -> PathBuf {
    crate::root().join("vmm/fuzz")
}

/// `cargo +nightly ARGS` in `vmm/fuzz/`. This is rustup's `cargo` from PATH, not `$CARGO` (the
/// stable toolchain's own binary, which knows no `+toolchain`).
fn nightly_cargo() -> Command {
    let mut command = Command::new("cargo");
    command.arg("+nightly").current_dir(fuzz_dir());
    // Chosen for the outer (stable) cargo that runs xtask; the nightly one picks its own.
    command.env_remove("RUSTUP_TOOLCHAIN");
    command
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `cargo +nightly` works here.
pub fn nightly_available() -> bool {
    succeeds(nightly_cargo().arg("--version"))
}

/// Installs cargo-fuzz if `cargo fuzz` does not run.
fn ensure_cargo_fuzz() -> Result<()> {
    if succeeds(nightly_cargo().args(["fuzz", "--version"])) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    crate::build::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
        .context("cannot install cargo-fuzz, which the fuzz pass needs")
}

/// The fuzz targets, as `cargo fuzz list` names them.
fn targets() -> Result<Vec<String>> {
    let output = nightly_cargo()
        .args(["fuzz", "list"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo fuzz list")?;
    if !output.status.success() {
        bail!("cargo fuzz list failed ({})", output.status);
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if targets.is_empty() {
        bail!(
            "cargo fuzz list found no fuzz targets in {}",
            fuzz_dir().display()
        );
    }
    Ok(targets)
}

/// Runs `target` for `seconds`; Err if it found anything.
fn run_target(target: &str, seconds: u64) -> Result<()> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    let seeds = dir.join("seeds").join(target);
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let mut command = nightly_cargo();
    command.args(["fuzz", "run", target]).arg(&corpus);
    if seeds.is_dir() {
        // Read, never written: new inputs go to the first folder, the corpus.
        command.arg(&seeds);
    }
    command.arg("--").args([
        format!("-max_total_time={seconds}"),
        format!("-timeout={HANG_SECS}"),
        "-print_final_stats=1".to_string(),
    ]);
    crate::build::run(&mut command).with_context(|| {
        format!(
            "fuzz target {target} found a crash or a hang: the input is in {}",
            dir.join("artifacts").join(target).display()
        )
    })
}

/// Builds every target, then runs `targets` for `seconds` each; fails listing the targets that
/// found something, after running all of them.
fn run_all(targets: &[String], seconds: u64) -> Result<()> {
    crate::build::run(nightly_cargo().args(["fuzz", "build"]))
        .context("cannot build the fuzz targets")?;
    let mut failed = Vec::new();
    for target in targets {
        if let Err(e) = run_target(target, seconds) {
            eprintln!("xtask: {e:#}");
            failed.push(target.as_str());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzzing found crashes or hangs in: {} (reproduce with `cd vmm/fuzz && cargo +nightly fuzz run TARGET ARTIFACT`)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// `cargo xtask test`'s pass: every target for a few seconds, at least a minute in all; skipped,
/// with a line saying so, without a nightly toolchain.
pub fn short_pass() -> Result<()> {
    if !nightly_available() {
        eprintln!("{SKIPPED}");
        return Ok(());
    }
    ensure_cargo_fuzz()?;
    let targets = targets()?;
    let seconds = SHORT_PASS_TOTAL_SECS
        .div_ceil(targets.len() as u64)
        .max(SHORT_PASS_MIN_SECS);
    eprintln!(
        "xtask: short fuzz pass: {} targets, {seconds} s each",
        targets.len()
    );
    run_all(&targets, seconds)?;
    eprintln!("xtask: fuzzing found nothing");
    Ok(())
}

/// `cargo xtask fuzz [TARGET] [--seconds N]`: one target, or all of them, for N seconds each.
pub fn run(target: Option<String>, seconds: u64) -> Result<()> {
    if !nightly_available() {
        bail!("{SKIPPED}");
    }
    ensure_cargo_fuzz()?;
    let all = targets()?;
    let chosen = match target {
        Some(target) if all.contains(&target) => vec![target],
        Some(target) => bail!("no fuzz target '{target}' (known: {})", all.join(", ")),
        None => all,
    };
    run_all(&chosen, seconds)
}
