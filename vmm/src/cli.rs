//! The command line, in the style of Firecracker and Cloud Hypervisor: one image, a few flags,
//! and optionally a command to run in the guest after `--` (runner mode).

use clap::Parser;
use std::path::PathBuf;

/// Boots a NOA ARK OS disk image on Linux/KVM.
///
/// Exit status: the guest's own exit code; 2 bad usage, bad image or no /dev/kvm; 124 --timeout
/// expired; 125 guest crashed; 126 VMM-internal failure; 130/143 the guest was stopped hard after
/// SIGINT/SIGTERM.
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

    /// On SIGINT or SIGTERM the VMM asks the guest to shut down and waits SECS seconds for it to
    /// power off (with its own exit code); then, or on a second signal, it stops the guest and
    /// exits with 128 + the signal.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_stop_timeout)]
    pub stop_timeout: std::time::Duration,

    /// Boot this kernel ELF instead of the image's /boot/kernel.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,

    /// Arguments appended to the image's /boot/cmdline.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub cmdline: Option<String>,

    /// Give the run a private copy-on-write overlay of the image, discarded at exit (parallel,
    /// hermetic runs of one image).
    #[arg(long)]
    pub snapshot: bool,

    /// Attach FILE as the next disk (/dev/vdb, /dev/vdc, … in order), for GUESTPATH; `:ro` attaches
    /// it read-only.
    #[arg(long, value_name = "FILE:GUESTPATH[:ro]")]
    pub volume: Vec<Volume>,

    /// The guest's network: `user` (a private NAT inside the VMM: the guest is 10.0.2.15 and
    /// reaches the host's loopback as 10.0.2.2, nothing else), `tap:NAME` (a host tap interface)
    /// or `none`.
    #[arg(long, value_name = "user|tap:NAME|none", default_value = "user")]
    pub net: crate::devices::virtio::net::NetArg,

    /// Forward the host's TCP port HOSTPORT (on HOSTIP, 127.0.0.1 unless given) to the guest's
    /// GUESTPORT; `--net user` only; repeatable.
    #[arg(long, value_name = "[HOSTIP:]HOSTPORT:GUESTPORT")]
    pub publish: Vec<crate::devices::virtio::net::Publish>,

    /// Without `-- CMD` and without any --publish (and with --net user): forward the host's
    /// [HOSTIP:]HOSTPORT to the guest's port 8080, where its API and MCP server listen; `off` for
    /// no default forward.
    #[arg(long, value_name = "[HOSTIP:]HOSTPORT|off", default_value = "127.0.0.1:8080", env = crate::service::DEFAULT_PUBLISH_ENV)]
    pub default_publish: crate::service::DefaultPublish,

    /// Attach a virtio-vsock device: the guest's CID is N; host programs connect to the Unix
    /// socket PATH and write `CONNECT <port>\n`; guest connections to host port P reach PATH_P.
    #[arg(long, value_name = "cid=N,uds=PATH")]
    pub vsock: Option<crate::devices::virtio::vsock::VsockConfig>,

    /// Log what the VMM does (to stderr); with a command, also show the kernel's log (the serial
    /// console) on stderr as it comes.
    #[arg(long, short)]
    pub verbose: bool,

    /// The disk image (ext2, with /boot/kernel and /boot/cmdline).
    pub image: PathBuf,

    /// A command to run in the guest (runner mode): its stdout and stderr become the VMM's, stdin
    /// feeds it, and the VMM exits with its exit code. The kernel's log then shows only with
    /// --verbose or when the run fails.
    #[arg(last = true, value_name = "CMD ARGS")]
    pub command: Vec<std::ffi::OsString>,
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

/// `--stop-timeout`: like `--timeout`, and 0 (stop at once) is allowed.
fn parse_stop_timeout(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(0.0) => Ok(std::time::Duration::ZERO),
        _ => parse_timeout(text),
    }
}

/// A `--volume FILE:GUESTPATH[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub file: PathBuf,
    /// Where the guest mounts it (absolute).
    pub guest_path: String,
    pub read_only: bool,
}

impl std::str::FromStr for Volume {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (rest, read_only) = match text.rsplit_once(':') {
            Some((rest, "ro")) => (rest, true),
            Some((rest, "rw")) => (rest, false),
            _ => (text, false),
        };
        // The guest path is the last ':' field, so host paths may contain ':'.
        let Some((file, guest_path)) = rest.rsplit_once(':') else {
            return Err(format!("'{text}' is not FILE:GUESTPATH[:ro]"));
        };
        if file.is_empty() || !guest_path.starts_with('/') {
            return Err(format!(
                "'{text}': need a host file and an absolute guest path, as FILE:GUESTPATH[:ro]"
            ));
        }
        Ok(Volume {
            file: PathBuf::from(file),
            guest_path: guest_path.to_string(),
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse() {
        let v: Volume = "data.img:/data".parse().unwrap();
        assert_eq!(
            (v.file.to_str().unwrap(), v.guest_path.as_str(), v.read_only),
            ("data.img", "/data", false)
        );
        let v: Volume = "/a:b/c.img:/mnt/c:ro".parse().unwrap();
        assert_eq!(
            (v.file.to_str().unwrap(), v.guest_path.as_str(), v.read_only),
            ("/a:b/c.img", "/mnt/c", true)
        );
        for bad in ["data.img", ":/data", "data.img:relative", "data.img:ro", ""] {
            assert!(bad.parse::<Volume>().is_err(), "{bad}");
        }
    }

    #[test]
    fn service_mode_defaults() {
        use crate::service::{DEFAULT_PUBLISH_ENV, DefaultPublish};
        let cli = Cli::try_parse_from(["vmm", "guest.img"]).unwrap();
        assert_eq!(cli.stop_timeout, crate::stop::DEFAULT_GRACE);
        if std::env::var_os(DEFAULT_PUBLISH_ENV).is_none() {
            assert_eq!(
                cli.default_publish,
                DefaultPublish::At("127.0.0.1:8080".parse().unwrap())
            );
        }
        let cli = Cli::try_parse_from(["vmm", "--default-publish", "off", "guest.img"]).unwrap();
        assert_eq!(cli.default_publish, DefaultPublish::Off);
        let cli = Cli::try_parse_from(["vmm", "--stop-timeout", "0", "g.img"]).unwrap();
        assert_eq!(cli.stop_timeout, std::time::Duration::ZERO);
        assert!(Cli::try_parse_from(["vmm", "--default-publish", "x", "g.img"]).is_err());
    }

    #[test]
    fn stop_timeouts_may_be_zero_but_not_negative() {
        use std::time::Duration;
        assert_eq!(parse_stop_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(parse_stop_timeout("2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["-1", "x", "", "inf", "NaN"] {
            assert!(parse_stop_timeout(bad).is_err(), "{bad}");
        }
    }
}
