//! The guest image: a plain ext2 file system (so `debugfs` and `e2fsck` work on it) made with
//! `mke2fs -d` from a staging folder — no root, no loop devices.
//!
//! It holds `/boot/kernel` (the kernel stripped of symbols: the VMM reads and loads fewer bytes)
//! and `/boot/cmdline`.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

/// The kernel command line baked into the image.
pub const CMDLINE: &str = "console=ttyS0";
/// Image size: room for the kernel now, and for the programs of later issues.
const IMAGE_MIB: u32 = 64;

/// Writes `noa/guest.img` from `noa/kernel.elf`.
pub fn write(noa: &Path) -> Result<()> {
    let staging = noa.join("image-root");
    let _ = std::fs::remove_dir_all(&staging);
    let boot = staging.join("boot");
    std::fs::create_dir_all(&boot).with_context(|| format!("cannot create {}", boot.display()))?;
    crate::build::run(
        Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(boot.join("kernel"))
            .arg(noa.join("kernel.elf")),
    )?;
    std::fs::write(boot.join("cmdline"), format!("{CMDLINE}\n"))?;
    let image = noa.join("guest.img");
    let partial = noa.join("guest.img.partial");
    // mke2fs -d fills an existing file quietly (it announces files it has to create).
    std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    crate::build::run(
        Command::new(crate::deps::find("mke2fs").unwrap_or_else(|| "mke2fs".into()))
            .args([
                "-q",
                "-F",
                "-t",
                "ext2",
                // 4 KiB blocks: the VMM reads the kernel a block at a time, so fewer, larger reads.
                "-b",
                "4096",
                "-L",
                "noa-root",
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&staging)
            .arg(&partial)
            .arg(format!("{IMAGE_MIB}M")),
    )?;
    std::fs::rename(&partial, &image)
        .with_context(|| format!("cannot write {}", image.display()))?;
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}
