//! A network namespace of the test's own, with a tap interface in it, for the `--net tap:NAME`
//! test: the VMM and the host-side programs run inside it (`ip netns exec`), so the addresses it
//! uses never touch the host's interfaces. The namespace (and the tap with it) is deleted when
//! dropped, on failure too.

use std::process::Command;

/// A network namespace that is deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create() -> Result<Netns, String> {
        let name = format!("noa-network-test-{}", std::process::id());
        // A namespace left by a crashed earlier run with this pid: gone first.
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// `ip -n NAME ARGS…`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A persistent tap interface `tap` in the namespace with `address` (CIDR) on it, up.
    pub fn add_tap(&self, tap: &str, address: &str) -> Result<(), String> {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        self.ip(&["addr", "add", address, "dev", tap])?;
        self.ip(&["link", "set", tap, "up"])
    }

    /// `program ARGS…` to run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program.as_ref());
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// Why the tap test cannot run here, if it cannot.
pub fn unsupported() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        return Some("the tap test needs root (network namespaces, /dev/net/tun)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the tap test needs the `ip` command".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("the tap test needs /dev/net/tun".into());
    }
    None
}
