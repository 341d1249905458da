//! Presenting a benchmark's figures: the plain-text table for people and the JSON file for tools.
//!
//! Owns formatting only; it never measures and never judges (the targets are printed as notes, and
//! nothing here affects the exit status).

use crate::boot::Report;
use crate::common::Host;
use crate::stats::Summary;
use crate::{block, files, linux, net, python};
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

const LABEL_WIDTH: usize = 36;

/// The boot benchmark's table.
pub fn boot_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "boot benchmark: {} runs each, interleaved ({})",
        r.runs,
        host_words(&r.host)
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

/// The block benchmark's table.
pub fn block_table(r: &block::Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "block benchmark: {} MiB sequential in {} MiB requests, {} runs each, interleaved ({})",
        r.mib,
        r.request_bytes / (1024 * 1024),
        r.runs,
        host_words(&r.host)
    );
    let _ = writeln!(out, "{}", rate_header());
    for (label, summary) in [
        ("vmm read (guest clock)", &r.guest_read.mib_per_s),
        (
            "vmm write, snapshot overlay",
            &r.guest_write_snapshot_overlay.mib_per_s,
        ),
        (
            "vmm write, file (+ fdatasync)",
            &r.guest_write_file.mib_per_s,
        ),
        ("host read (page cache)", &r.host_read.mib_per_s),
        ("vmm read, 4 MiB requests", &r.guest_read_large.mib_per_s),
        ("host read, 4 MiB requests", &r.host_read_large.mib_per_s),
    ] {
        let _ = writeln!(out, "{label:LABEL_WIDTH$}{}", rate_row(summary, 1));
    }
    for (label, ratio) in [
        ("ratio guest/host read", r.ratio_guest_over_host_read),
        (
            "ratio guest/host read, 4 MiB",
            r.ratio_guest_over_host_read_large,
        ),
    ] {
        let _ = writeln!(out, "{label:LABEL_WIDTH$}{ratio:>9.2}x");
    }
    let _ = writeln!(
        out,
        "guest time per run: read {:.1} ms, write overlay {:.1} ms, write file {:.1} ms; host read {:.1} ms   [medians]",
        r.guest_read.guest_ms.median,
        r.guest_write_snapshot_overlay.guest_ms.median,
        r.guest_write_file.guest_ms.median,
        r.host_read.ms.median
    );
    let _ = writeln!(
        out,
        "vmm process, spawn -> exit: read {:.1} ms, write overlay {:.1} ms, write file {:.1} ms   [medians]",
        r.guest_read.process_ms.median,
        r.guest_write_snapshot_overlay.process_ms.median,
        r.guest_write_file.process_ms.median
    );
    let t = &r.targets;
    let _ = writeln!(
        out,
        "target (from the issue; noted, not asserted): guest sequential read >= {}x host, in 4 MiB requests: {}",
        t.guest_over_host_read_at_least,
        met(t.guest_over_host_read_met)
    );
    for warning in &r.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// The net benchmark's table.
pub fn net_table(r: &net::Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "net benchmark: TCP host -> guest through a port forward, {} MiB in {} KiB writes, {} runs each, interleaved ({})",
        r.mib,
        r.write_bytes / 1024,
        r.runs,
        host_words(&r.host)
    );
    let _ = writeln!(out, "{}", rate_header());
    for (label, summary) in [
        ("vmm: host view", &r.vmm.host_mib_per_s),
        ("vmm: guest view", &r.vmm.guest_mib_per_s),
        ("qemu slirp: host view", &r.qemu_slirp.host_mib_per_s),
        ("qemu slirp: guest view", &r.qemu_slirp.guest_mib_per_s),
    ] {
        let _ = writeln!(out, "{label:LABEL_WIDTH$}{}", rate_row(summary, 3));
    }
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>9.2}x",
        "ratio vmm/qemu (host view)", r.ratio_vmm_over_qemu.host_view
    );
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>9.2}x",
        "ratio vmm/qemu (guest view)", r.ratio_vmm_over_qemu.guest_view
    );
    let _ = writeln!(
        out,
        "host view: connect done -> child exit; guest view: first byte -> last byte, guest clock"
    );
    for (name, v) in [("vmm", &r.vmm), ("qemu slirp", &r.qemu_slirp)] {
        let _ = writeln!(
            out,
            "{name}: spawn -> listening {:.0} ms; connect {:.1} ms; from connect: last write accepted {:.0} ms, result line {:.0} ms, exit {:.0} ms   [medians]",
            v.listening_ms.median,
            v.connect_ms.median,
            v.last_write_ms.median,
            v.result_line_ms.median,
            v.exit_ms.median
        );
    }
    let t = &r.targets;
    let _ = writeln!(
        out,
        "target (from the issue; noted, not asserted): vmm/qemu slirp >= {}x (host view): {}",
        t.vmm_over_qemu_at_least,
        met(t.vmm_over_qemu_met)
    );
    let cpus = |c: Option<u32>| c.map_or("?".to_string(), |c| c.to_string());
    let _ = writeln!(
        out,
        "guest said: cpus={} (vmm), cpus={} (qemu)",
        cpus(r.vmm.guest_cpus),
        cpus(r.qemu_slirp.guest_cpus)
    );
    for warning in &r.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// The linux benchmark's table.
pub fn linux_table(r: &linux::Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "linux benchmark: one static program in the guest and natively, {} runs each, interleaved ({})",
        r.runs,
        host_words(&r.host)
    );
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>12}{:>12}{:>12}{:>12}{:>14}",
        "us per iteration", "guest med", "guest min", "native med", "native min", "guest/native"
    );
    let g = &r.getpid.latency;
    for (label, pair) in [
        (format!("getpid (N={})", g.iterations), g),
        (
            format!("fork+exec+wait hello (N={})", r.fork_exec.iterations),
            &r.fork_exec,
        ),
        (
            format!(
                "pipe ping-pong round trip (N={})",
                r.pipe_pingpong.iterations
            ),
            &r.pipe_pingpong,
        ),
    ] {
        let _ = writeln!(
            out,
            "{label:LABEL_WIDTH$}{:>12}{:>12}{:>12}{:>12}{:>13.0}x",
            us(pair.guest.us_per_iteration.median),
            us(pair.guest.us_per_iteration.min),
            us(pair.native.us_per_iteration.median),
            us(pair.native.us_per_iteration.min),
            pair.ratio_guest_over_native
        );
    }
    let e = &r.getpid.emulated_instructions;
    match (&e.per_getpid, &e.count_with_calls, &e.count_without_calls) {
        (Some(per), Some(with), Some(without)) => {
            let _ = writeln!(
                out,
                "emulated ring-0 instructions per getpid: {:.1} (median; min {:.1}, max {:.1}) [{}: \
                 perf stat on the vmm only, (N={} run - 0 run) / N; whole runs: {:.0} vs {:.0}, medians]",
                per.median, per.min, per.max, e.event, g.iterations, with.median, without.median
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "emulated ring-0 instructions per getpid: unavailable ({})",
                e.unavailable_because.as_deref().unwrap_or("no counts")
            );
        }
    }
    let _ = writeln!(
        out,
        "guest process (vmm spawn -> exit) per run: getpid {:.0} ms, fork+exec {:.0} ms, ping-pong {:.0} ms   [medians]",
        g.guest.process_ms.median,
        r.fork_exec.guest.process_ms.median,
        r.pipe_pingpong.guest.process_ms.median
    );
    let pinned = |p: Option<bool>| match p {
        Some(true) => "pinned to CPU 0",
        Some(false) => "NOT pinned",
        None => "-",
    };
    let _ = writeln!(
        out,
        "ping-pong: guest with --cpus {} (affinity not enforced in the guest), native {}",
        r.pipe_pingpong.guest_cpus.unwrap_or(0),
        pinned(r.pipe_pingpong.native.pinned)
    );
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>12}{:>12}{:>12}",
        format!("{} runs", r.vmm_true.runs),
        "median",
        "min",
        "p90"
    );
    let _ = writeln!(
        out,
        "{:LABEL_WIDTH$}{:>9.1} ms{:>9.1} ms{:>9.1} ms",
        "vmm IMAGE -- /bin/true, spawn -> exit",
        r.vmm_true.ms.median,
        r.vmm_true.ms.min,
        r.vmm_true.ms.p90
    );
    let t = &r.targets;
    let _ = writeln!(
        out,
        "target (from the issue; noted, not asserted): vmm -- /bin/true median <= {} ms: {}",
        t.vmm_true_median_ms_at_most,
        met(t.vmm_true_median_met)
    );
    for warning in &r.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// The python benchmark's table.
pub fn python_table(r: &python::Report) -> String {
    const WIDE: usize = 48;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "python benchmark: Debian's CPython 3.11, guest ({}) vs native ({}), {} rounds, interleaved ({})",
        r.guest_python,
        r.native_python,
        r.runs,
        host_words(&r.host)
    );
    let _ = writeln!(
        out,
        "{:WIDE$}{:>11}{:>11}{:>11}{:>11}{:>14}",
        "ms", "guest med", "guest min", "native med", "native min", "guest/native"
    );
    let warm = format!("{} starts per run", r.warm.starts_per_run);
    for (label, pair) in [
        (format!("python3 -c pass, warm ({warm})"), &r.warm.pass),
        (format!("imports, warm ({warm})"), &r.warm.imports),
        (
            "python3 -c pass, cold VM (vmm spawn -> exit)".to_string(),
            &r.cold.pass,
        ),
        (
            "imports, cold VM (vmm spawn -> exit)".to_string(),
            &r.cold.imports,
        ),
    ] {
        let _ = writeln!(
            out,
            "{label:WIDE$}{:>11.1}{:>11.1}{:>11.1}{:>11.1}{:>13.0}x",
            pair.guest_ms.median,
            pair.guest_ms.min,
            pair.native_ms.median,
            pair.native_ms.min,
            pair.ratio_guest_over_native
        );
    }
    let _ = writeln!(
        out,
        "{:WIDE$}{:>11.1}{:>11.1}",
        "vmm -- /bin/true (the boot alone)", r.cold.vmm_true_ms.median, r.cold.vmm_true_ms.min
    );
    let _ = writeln!(
        out,
        "{:WIDE$}{:>11.1}{:>11.1}",
        "cold python3 -c pass less /bin/true",
        r.cold.pass_less_true_ms.median,
        r.cold.pass_less_true_ms.min
    );
    let _ = writeln!(out, "imports: {}", r.imports_program);
    let e = &r.emulated_instructions;
    match &e.per_cold_pass {
        Some(per) => {
            let _ = writeln!(
                out,
                "emulated ring-0 instructions per cold python3 -c pass: {:.0} (median; min {:.0}, max {:.0}) [{}: cold pass run - /bin/true run]",
                per.median, per.min, per.max, e.event
            );
        }
        None => {
            let _ = writeln!(
                out,
                "emulated ring-0 instructions per cold python3 -c pass: unavailable ({})",
                e.unavailable_because.as_deref().unwrap_or("no counts")
            );
        }
    }
    let t = &r.targets;
    let _ = writeln!(
        out,
        "target (from the issue; noted, not asserted): python3 -c pass in the guest (warm median) <= {} ms: {}",
        t.pass_in_guest_median_ms_at_most,
        met(t.pass_in_guest_median_met)
    );
    out
}

/// The files benchmark's table: medians, and how many times slower the guest is.
pub fn files_table(r: &files::Report) -> String {
    const WIDE: usize = 44;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "files benchmark: guest ext2 on a fresh {} MiB --volume disk vs native in a directory beside it (under {}), {} rounds, interleaved ({})",
        r.disk.mib,
        Path::new(&r.disk.host_dir)
            .parent()
            .unwrap_or(Path::new("/"))
            .display(),
        r.runs,
        host_words(&r.host)
    );
    let _ = writeln!(
        out,
        "{:WIDE$}{:>12}{:>12}{:>12}",
        "medians", "guest", "native", "ratio"
    );
    let mib = r.write.operations;
    for (label, pair) in [
        (
            format!("create, µs per file (N={})", r.create.operations),
            &r.create,
        ),
        (
            format!("unlink, µs per file (N={})", r.unlink.operations),
            &r.unlink,
        ),
        (
            format!("append 4 KiB + fsync, µs (N={})", r.append_fsync.operations),
            &r.append_fsync,
        ),
        (
            format!("write {mib} MiB (1 MiB writes + fsync), MiB/s"),
            &r.write,
        ),
        (format!("read {mib} MiB (1 MiB reads), MiB/s"), &r.read),
    ] {
        let (guest, native) = if pair.unit == "MiB/s" {
            (
                format!("{:.2}", pair.guest.median),
                format!("{:.1}", pair.native.median),
            )
        } else {
            (us(pair.guest.median), us(pair.native.median))
        };
        // `{:WIDE$}` counts chars, so "µ" pads like any letter.
        let ratio = if pair.ratio >= 10.0 {
            format!("{:.0}x", pair.ratio)
        } else {
            format!("{:.1}x", pair.ratio)
        };
        let _ = writeln!(out, "{label:WIDE$}{guest:>12}{native:>12}{ratio:>12}");
    }
    let _ = writeln!(
        out,
        "ratio: guest/native for times, native/guest for rates (how many times slower the guest is)"
    );
    let _ = writeln!(
        out,
        "read: the guest's after a fresh boot (from its disk; the host may cache the image file), the native one from the host's page cache"
    );
    let _ = writeln!(
        out,
        "guest vmm processes, spawn -> exit: write run {:.1} s, read run {:.1} s   [medians; boot included]",
        r.guest_write_run_ms.median / 1e3,
        r.guest_read_run_ms.median / 1e3
    );
    out
}

/// Microseconds with as many decimals as a small figure needs.
fn us(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(report: &T, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut json = serde_json::to_string_pretty(report).context("serialising the report")?;
    json.push('\n');
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

fn host_words(host: &Host) -> String {
    let kind = if host.pvm {
        "PVM host: kvm_pvm".to_string()
    } else if host.kvm_modules.is_empty() {
        "no kvm module loaded".to_string()
    } else {
        format!("KVM host: {}", host.kvm_modules.join(", "))
    };
    format!("{kind}, {} host CPUs", host.cpus)
}

/// The header over `rate_row`s: throughput is better high, so its columns are median, min, max.
fn rate_header() -> String {
    format!(
        "{:LABEL_WIDTH$}{:>10}{:>10}{:>10}",
        "MiB/s", "median", "min", "max"
    )
}

fn rate_row(s: &Summary, decimals: usize) -> String {
    format!(
        "{:>10.decimals$}{:>10.decimals$}{:>10.decimals$}",
        s.median, s.min, s.max
    )
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
        assert_eq!(rate_row(&s, 1), "      12.3      11.0      14.0");
        assert_eq!(rate_header().len(), LABEL_WIDTH + 30);
        assert_eq!(
            (us(1234.56), us(12.345), us(0.2354)),
            ("1235".into(), "12.35".into(), "0.235".into())
        );
    }
}
