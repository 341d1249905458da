//! Presenting a benchmark's figures: the plain-text table for people and the JSON file for tools.
//!
//! Owns formatting only; it never measures and never judges (the targets are printed as notes, and
//! nothing here affects the exit status).

use crate::boot::Report;
use crate::stats::Summary;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

const LABEL_WIDTH: usize = 36;

/// The boot benchmark's table.
pub fn boot_table(r: &Report) -> String {
    let mut out = String::new();
    let host = if r.host.pvm {
        "PVM host: kvm_pvm".to_string()
    } else if r.host.kvm_modules.is_empty() {
        "no kvm module loaded".to_string()
    } else {
        format!("KVM host: {}", r.host.kvm_modules.join(", "))
    };
    let _ = writeln!(
        out,
        "boot benchmark: {} runs each, interleaved ({host}, {} host CPUs)",
        r.runs, r.host.cpus
    );
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>10}{:>10}{:>10}",
        "", "median", "min", "p90"
    );
    let q = &r.qemu_microvm.variant;
    for (label, summary) in [
        ("vmm: start -> NOA-BOOT-OK", &r.vmm.boot_line_ms),
        ("vmm: start -> exit", &r.vmm.exit_ms),
        ("qemu microvm: start -> NOA-BOOT-OK", &q.boot_line_ms),
        ("qemu microvm: start -> exit", &q.exit_ms),
    ] {
        let _ = writeln!(out, "{label:LABEL_WIDTH$}{}", ms_row(summary));
    }
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>9.1}x",
        "ratio qemu/vmm (boot line)", r.ratio_qemu_over_vmm.boot_line
    );
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>9.1}x",
        "ratio qemu/vmm (exit)", r.ratio_qemu_over_vmm.exit
    );
    let m = &r.vmm_memory;
    let _ = writeln!(
        out,
        "vmm own peak RSS (guest memory excluded): {}   (whole process peak: {})   [medians]",
        mib(m.own_peak_rss_kib.median),
        mib(m.whole_peak_rss_kib.median)
    );
    let _ = writeln!(
        out,
        "whole process peak RSS, plain runs: vmm {}, qemu microvm {}   [medians; guest memory touched included]",
        mib(r.vmm.peak_rss_kib.median),
        mib(q.peak_rss_kib.median)
    );
    let t = &r.targets;
    let _ = writeln!(
        out,
        "targets (from the issue; noted, not asserted): vmm NOA-BOOT-OK median <= {} ms: {}; qemu/vmm boot line >= {}x: {}",
        t.vmm_boot_line_median_ms_at_most,
        met(t.vmm_boot_line_median_met),
        t.qemu_over_vmm_boot_line_at_least,
        met(t.qemu_over_vmm_boot_line_met)
    );
    let line = |b: &crate::parse::BootLine| format!("cpus={} mem_mib={}", b.cpus, b.mem_mib);
    let _ = writeln!(
        out,
        "guest said: {} (vmm), {} (qemu)",
        line(&r.vmm.boot_line),
        line(&q.boot_line)
    );
    let cpu = |c: &Option<String>| {
        c.as_deref()
            .map_or("no -cpu flag".to_string(), |c| format!("-cpu {c}"))
    };
    let _ = write!(out, "qemu: {}", cpu(&r.qemu_microvm.cpu));
    for rejected in &r.qemu_microvm.cpu_rejected {
        let _ = write!(out, "; {} failed: {}", cpu(&rejected.cpu), rejected.error);
    }
    out.push('\n');
    for warning in &r.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut json = serde_json::to_string_pretty(report).context("serialising the report")?;
    json.push('\n');
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

fn ms_row(s: &Summary) -> String {
    format!("{:>7.2} ms{:>7.2} ms{:>7.2} ms", s.median, s.min, s.p90)
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "not met" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up() {
        let s = Summary::of(&[12.345, 11.0, 14.0]).unwrap();
        assert_eq!(ms_row(&s), "  12.35 ms  11.00 ms  14.00 ms");
        assert_eq!(mib(3288.0), "3.2 MiB");
    }
}
