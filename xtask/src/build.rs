//! Building the VMM (release, host) and the kernel (release, x86_64-unknown-none), and gathering
//! them with the image in `target/noa/`.

use crate::deps::KERNEL_TARGET;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// `cargo`, as the one running us.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(crate::root());
    command
}

/// Runs `command`, failing with its command line if it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// The cargo target directory (honours CARGO_TARGET_DIR, which CI points outside the clone).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| crate::root().join("target"), PathBuf::from)
}

/// Installs what is missing, builds everything, writes target/noa/; returns that folder.
pub fn all() -> Result<PathBuf> {
    crate::deps::ensure_all()?;
    run(cargo().args(["build", "--release", "-p", "vmm"]))?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "noa-kernel",
        "--target",
        KERNEL_TARGET,
    ]))?;
    let noa = crate::artifacts();
    std::fs::create_dir_all(&noa).with_context(|| format!("cannot create {}", noa.display()))?;
    let target = target_dir();
    copy(&target.join("release/vmm"), &noa.join("vmm"))?;
    copy(
        &target.join(KERNEL_TARGET).join("release/kernel"),
        &noa.join("kernel.elf"),
    )?;
    crate::image::write(&noa)?;
    Ok(noa)
}

fn copy(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    // Replace rather than overwrite: a running vmm keeps its old file.
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}
