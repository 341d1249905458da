//! `cargo xtask test`: builds the artifacts, then runs every test of the workspace's host crates
//! against them — unit tests, the KVM boot and bad-input tests, the in-guest ktests and the QEMU
//! cross-check live in `vmm/tests/` and find the artifacts through `NOA_ARTIFACTS`.

use anyhow::Result;

pub fn all() -> Result<()> {
    let noa = crate::build::all()?;
    crate::build::run(
        crate::build::cargo()
            .args([
                "test",
                "--workspace",
                "--exclude",
                "hal-pv",
                "--exclude",
                "noa-kernel",
            ])
            .env("NOA_ARTIFACTS", &noa),
    )?;
    crate::fuzz::short_pass()?;
    eprintln!("xtask: all tests passed");
    Ok(())
}
