//! What the benchmarks share: a description of the host, building and quoting a child's command
//! line, the tail of its output for error messages, a scratch directory, random bytes, and units.
//!
//! Owns no measurement and no judgement; the benchmarks (`boot`, `block`, `net`) do that.

use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Bytes in a MiB: every rate is reported in MiB/s.
pub const MIB: u64 = 1024 * 1024;

/// The host the benchmark ran on.
#[derive(Debug, Serialize)]
pub struct Host {
    /// `kvm*` entries of /sys/module, e.g. `["kvm", "kvm_pvm"]`.
    pub kvm_modules: Vec<String>,
    pub pvm: bool,
    pub cpus: usize,
    pub kernel_release: String,
}

/// Describes the host: its KVM modules (a PVM host has `kvm_pvm`), CPUs and kernel.
pub fn host() -> Host {
    let mut kvm_modules: Vec<String> = std::fs::read_dir("/sys/module")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n == "kvm" || n.starts_with("kvm_"))
                .collect()
        })
        .unwrap_or_default();
    kvm_modules.sort();
    Host {
        pvm: kvm_modules.iter().any(|m| m == "kvm_pvm"),
        kvm_modules,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Checks that each input the benchmark was given (`(option, path)`) is a file.
pub fn require_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a PathBuf)>,
) -> anyhow::Result<()> {
    for (what, path) in files {
        if !path.is_file() {
            anyhow::bail!("{what} {}: no such file", path.display());
        }
    }
    Ok(())
}

pub fn command(args: &[OsString]) -> Command {
    let mut command = Command::new(&args[0]);
    command.args(&args[1..]);
    // The VMM's tracing output is parsed, not read by a person: no colours.
    command.env("NO_COLOR", "1");
    command
}

pub fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

pub fn shell_words(args: &[OsString]) -> String {
    strings(args).join(" ")
}

/// The last lines of a child's output, for error messages.
pub fn tail(text: &str) -> String {
    const LINES: usize = 30;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    if lines.len() > LINES {
        out.push_str(&format!("  [... {} lines before]\n", lines.len() - LINES));
    }
    for line in &lines[lines.len().saturating_sub(LINES)..] {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    if lines.is_empty() {
        out.push_str("  (empty)\n");
    }
    out
}

/// Milliseconds to the microsecond: finer than anything a process spawn resolves, and short in JSON.
pub fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

/// `bytes` moved in `secs` seconds, in MiB/s.
pub fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

/// A private directory under the system's temporary directory, removed with all it holds when
/// dropped (also when the benchmark fails half-way).
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/noa-bench-<what>-<pid>-<nanos>`.
    pub fn new(what: &str) -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("noa-bench-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fast generator of incompressible bytes (xorshift64*), for test data that no layer can
/// shortcut by compressing or deduplicating it. Not for anything that needs real randomness.
pub struct RandomBytes(u64);

impl RandomBytes {
    /// Seeded from the clock.
    pub fn from_clock() -> RandomBytes {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        RandomBytes::with_seed(nanos)
    }

    /// Never seeded with zero, which xorshift cannot leave.
    pub fn with_seed(seed: u64) -> RandomBytes {
        RandomBytes(seed | 1)
    }

    /// Fills `buf` (its length a multiple of 8 or not) with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_fill_any_length_and_differ() {
        let mut a = vec![0u8; 1027];
        RandomBytes::with_seed(42).fill(&mut a);
        let mut b = vec![0u8; 1027];
        RandomBytes::with_seed(42).fill(&mut b);
        assert!(a == b, "same seed, same bytes");
        RandomBytes::with_seed(44).fill(&mut b);
        assert!(a != b, "another seed, other bytes");
        // Not constant and not mostly zero: every byte value shows up in 1 KiB or so.
        let distinct = a.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(distinct > 200, "{distinct}");
        assert!(a[1024..].iter().any(|&x| x != 0));
        let mut zero_seed = [0u8; 16];
        RandomBytes::with_seed(0).fill(&mut zero_seed);
        assert_ne!(zero_seed, [0; 16]);
    }

    #[test]
    fn temp_dir_is_removed() {
        let dir = TempDir::new("test").unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn rates_and_tails() {
        assert_eq!(mib_per_s(3 * MIB, 1.5), 2.0);
        assert_eq!(millis(Duration::from_micros(1500)), 1.5);
        assert_eq!(tail(""), "  (empty)\n");
        let long: String = (0..40).map(|i| format!("{i}\n")).collect();
        let t = tail(&long);
        assert!(
            t.starts_with("  [... 10 lines before]\n  10\n") && t.ends_with("  39\n"),
            "{t}"
        );
    }
}
