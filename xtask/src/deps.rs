//! Installing what the build and the tests need: the rustup target for the kernel, and Debian
//! packages (e2fsprogs for the image, qemu-system-x86 for the cross-check). As root we install
//! them; otherwise we print the exact command and stop.

use anyhow::{Context, Result, bail};
use std::process::Command;

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Debian packages and the command each provides.
const PACKAGES: &[(&str, &str)] = &[
    ("e2fsprogs", "mke2fs"),
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("binutils", "strip"),
];

pub fn ensure_all() -> Result<()> {
    ensure_rust_target()?;
    ensure_packages()
}

fn ensure_rust_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("cannot run rustup (the build needs it to add the kernel's target)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == KERNEL_TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the Rust target {KERNEL_TARGET}");
    crate::build::run(Command::new("rustup").args(["target", "add", KERNEL_TARGET]))
}

/// Where `program` is, on PATH or in the sbin folders (which a non-root PATH often lacks).
pub fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, cmd)| find(cmd).is_none())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        bail!(
            "missing Debian packages: {}. Install them with:\n    sudo {command}",
            missing.join(", ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(", "));
    let update = Command::new("apt-get").args(["update", "-q"]).status();
    if update.map(|s| !s.success()).unwrap_or(true) {
        eprintln!("xtask: apt-get update failed; trying the install anyway");
    }
    crate::build::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
