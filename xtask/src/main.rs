//! `cargo xtask`: builds the VMM, the kernel and the guest image, boots it, tests and benchmarks.
//!
//! Artifacts go to `target/noa/`: `vmm`, `kernel.elf` (with symbols) and `guest.img` (ext2, with
//! the stripped kernel at `/boot/kernel`, `/boot/cmdline`, `/sbin/init`, busybox and the bundled
//! model in `/storage/models`); `cargo xtask test` adds `tests/` (the test programs) and
//! `test.img` (the guest image plus them). What is downloaded or generated once (the model, the
//! tests' Python venv and Node) lives in the host cache outside the clone (`cache.rs`).

mod bench;
mod build;
mod cache;
mod checksum;
mod deps;
mod fuzz;
mod image;
mod model;
mod node;
mod pyenv;
mod python;
mod services;
mod test;
mod tiny_model;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run, test and benchmark NOA ARK OS"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what is missing, build the VMM and the kernel, write target/noa/.
    Build,
    /// Rebuild only target/noa/guest.img from the built kernel (builds init, adds busybox).
    Image {
        /// Copy a host file, or a folder's contents, into the image: HOST:GUEST (repeatable).
        #[arg(long, value_name = "HOST:GUEST")]
        add: Vec<image::Add>,
        /// Write the image here instead of target/noa/guest.img.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Build, then boot target/noa/guest.img: `cargo xtask run -- [VMM ARGS]`.
    Run {
        #[arg(last = true)]
        vmm_args: Vec<String>,
    },
    /// Build, then run every test: unit tests, KVM boots, in-guest ktests, the QEMU cross-check,
    /// and a short fuzz pass (vmm/fuzz; skipped without nightly).
    Test {
        /// Only build: the artifacts, the test programs (target/noa/tests) and target/noa/test.img.
        #[arg(long)]
        no_run: bool,
    },
    /// Run the virtio fuzz targets (vmm/fuzz; needs nightly): one, or each, for N seconds.
    Fuzz {
        target: Option<String>,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Build, then run a benchmark: `boot`, `block`, `net`, `linux`, `python`, `files`, `http`,
    /// `llama` or `mcp-start` (see bench/README.md).
    Bench {
        #[arg(default_value = "boot")]
        which: String,
        /// Runs per variant (each benchmark has its own default).
        #[arg(long)]
        runs: Option<u32>,
    },
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Where the artifacts go.
pub fn artifacts() -> PathBuf {
    root().join("target/noa")
}

fn main() -> Result<()> {
    match Args::parse().command {
        Command::Build => build::all().map(|_| ()),
        Command::Image { add, output } => {
            deps::ensure_rust_targets()?;
            let noa = artifacts();
            image::write_image(&noa, &output.unwrap_or_else(|| noa.join("guest.img")), &add)
        }
        Command::Run { vmm_args } => {
            let noa = build::all()?;
            let status = std::process::Command::new(noa.join("vmm"))
                .args(&vmm_args)
                .arg(noa.join("guest.img"))
                .status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Command::Test { no_run } => test::all(no_run),
        Command::Fuzz { target, seconds } => fuzz::run(target, seconds),
        Command::Bench { which, runs } => bench::run(&which, runs),
    }
}
