//! Installing what the build and the tests need: the rustup targets (the kernel's, and musl for
//! static guest programs such as init), and Debian packages (e2fsprogs for the image, busybox-static
//! for its shell and tools, python3.11 for its CPython — `python.rs` checks that one by path —,
//! qemu-system-x86 for the cross-check; g++, cmake, ccache and libclang-dev for noa-server's llama.cpp;
//! golang-go and gcc for the test programs). As root we install them; otherwise we print the exact command and stop.

use anyhow::{Context, Result, bail};
use std::process::Command;

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// Static Linux programs for the guest (init, the Rust test programs).
pub const USER_TARGET: &str = "x86_64-unknown-linux-musl";

/// Debian packages and the command each provides.
const PACKAGES: &[(&str, &str)] = &[
    ("e2fsprogs", "mke2fs"),
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("binutils", "strip"),
    ("busybox-static", "busybox"),
    // noa-server's llama.cpp: C++, CMake, and libclang for llama-cpp-sys-2's bindgen.
    ("g++", "g++"),
    ("cmake", "cmake"),
    ("ccache", "ccache"),
    ("libclang-dev", LIBCLANG),
];

/// The file libclang-dev provides (it has no command); checked by path.
const LIBCLANG: &str = "/usr/lib/llvm-14/lib/libclang.so";

/// What only `cargo xtask test` needs: compilers for the test programs (runtimes/tests/).
const TEST_PACKAGES: &[(&str, &str)] = &[("golang-go", "go"), ("gcc", "gcc")];

pub fn ensure_all() -> Result<()> {
    ensure_rust_targets()?;
    ensure_packages(PACKAGES)
}

/// What `cargo xtask test` needs beyond the build.
pub fn ensure_for_tests() -> Result<()> {
    ensure_packages(TEST_PACKAGES)
}

pub fn ensure_rust_targets() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("cannot run rustup (the build needs it to add the guest's targets)")?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    for target in [KERNEL_TARGET, USER_TARGET] {
        if !installed.lines().any(|l| l.trim() == target) {
            eprintln!("xtask: installing the Rust target {target}");
            crate::build::run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    Ok(())
}

/// Where `program` is, on PATH or in the sbin folders (which a non-root PATH often lacks).
pub fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn ensure_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, cmd)| {
            if cmd.starts_with('/') {
                !std::path::Path::new(cmd).exists()
            } else {
                find(cmd).is_none()
            }
        })
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    install_packages(&missing)
}

/// Installs the Debian `packages` (as root), or fails with the `apt-get` line to run.
pub fn install_packages(missing: &[&str]) -> Result<()> {
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
            .args(missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
