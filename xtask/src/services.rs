//! Building services/noa-server: one static glibc executable (x86_64-unknown-linux-gnu with
//! `+crt-static`; llama.cpp is C++, which musl's toolchain here cannot build) that runs in the
//! guest and natively alike. It is compiled for this machine's CPU (`target-cpu=native`, which
//! llama-cpp-sys-2 turns into GGML_NATIVE), so inference uses the same SIMD level (AVX-512 where
//! the host has it) in the guest as natively; the image is meant for the host that built it.
//! llama.cpp's CMake build goes through ccache when it is installed.

use anyhow::Result;
use std::path::PathBuf;

pub const SERVER_TARGET: &str = "x86_64-unknown-linux-gnu";
/// Where the server goes in the image.
pub const GUEST_SERVER: &str = "usr/bin/noa-server";

/// Puts the server at /usr/bin/noa-server (stripped) and init's service list at
/// /etc/noa/services.toml in the image's staging folder.
pub fn install(server: &std::path::Path, staging: &std::path::Path) -> Result<()> {
    use anyhow::Context;
    let bin = staging.join(GUEST_SERVER);
    let etc = staging.join("etc/noa");
    for dir in [bin.parent().expect("a path with folders"), etc.as_path()] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::build::run(
        std::process::Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(&bin)
            .arg(server),
    )?;
    let services = crate::root().join("services/init/services.toml");
    std::fs::copy(&services, etc.join("services.toml"))
        .with_context(|| format!("cannot copy {}", services.display()))?;
    Ok(())
}

/// Runs noa-server's own tests (unit tests and tests/native.rs) with the release build's flags,
/// so they reuse what `build_server` compiled; `envs` are the test tools' variables.
pub fn test_server(envs: &[(&str, PathBuf)]) -> Result<()> {
    let manifest = crate::root().join("services/noa-server/Cargo.toml");
    let mut cargo = crate::build::cargo();
    cargo
        .args(["test", "--release", "--locked", "--target", SERVER_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(server_target_dir())
        .envs(envs.iter().map(|(k, v)| (*k, v)));
    server_environment(&mut cargo);
    crate::build::run(&mut cargo)
}

/// The server's own target folder (it is not a workspace member: other flags, other lock file).
pub fn server_target_dir() -> PathBuf {
    crate::build::target_dir().join("noa-server")
}

/// Builds noa-server (release) and returns the executable's path.
pub fn build_server() -> Result<PathBuf> {
    let manifest = crate::root().join("services/noa-server/Cargo.toml");
    let mut cargo = crate::build::cargo();
    cargo
        .args(["build", "--release", "--locked", "--target", SERVER_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(server_target_dir());
    server_environment(&mut cargo);
    crate::build::run(&mut cargo)?;
    Ok(server_target_dir()
        .join(SERVER_TARGET)
        .join("release/noa-server"))
}

/// The flags every build and test of the server shares (so tests reuse the release build).
pub fn server_environment(cargo: &mut std::process::Command) {
    cargo.env(
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
        "-C target-feature=+crt-static -C target-cpu=native",
    );
    if crate::deps::find("ccache").is_some() {
        cargo
            .env("CMAKE_C_COMPILER_LAUNCHER", "ccache")
            .env("CMAKE_CXX_COMPILER_LAUNCHER", "ccache");
    }
}
