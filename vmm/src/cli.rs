//! The command line, in the style of Firecracker and Cloud Hypervisor: one image, a few flags,
//! and (later) a command to run in the guest after `--`.

use clap::Parser;
use std::path::PathBuf;

/// Boots a NOA ARK OS disk image on Linux/KVM.
///
/// Exit status: the guest's own exit code; 2 bad usage, bad image or no /dev/kvm; 124 --timeout
/// expired; 125 guest crashed; 126 VMM-internal failure.
#[derive(Debug, Parser)]
#[command(name = "vmm", version, about, long_about = None)]
pub struct Cli {
    /// Virtual CPUs (1 up to what this KVM allows).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: u32,

    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(MIN_MEMORY_MIB..=MAX_MEMORY_MIB))]
    pub memory: u64,

    /// Stop the guest after SECS seconds (exit code 124).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,

    /// Boot this kernel ELF instead of the image's /boot/kernel.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,

    /// Arguments appended to the image's /boot/cmdline.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub cmdline: Option<String>,

    /// Log what the VMM does (to stderr).
    #[arg(long, short)]
    pub verbose: bool,

    /// The disk image (ext2, with /boot/kernel and /boot/cmdline).
    pub image: PathBuf,

    /// A command to run in the guest (needs the guest's init; not yet supported).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// The kernel needs a few MiB for itself, its page tables and heap.
pub const MIN_MEMORY_MIB: u64 = 16;
/// The guest kernel's direct map covers 512 GiB.
pub const MAX_MEMORY_MIB: u64 = 512 * 1024;

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 1e9) {
        return Err(format!("'{text}' must be a positive number of seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}
