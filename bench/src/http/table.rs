//! The http benchmark's plain-text table: one column per variant (medians), the VMM's ratios to
//! native and to QEMU, then what failed and why (first lines; the JSON has all of it).
//!
//! Formatting only, like `report`: it never measures or judges.

use super::{Report, Variant};
use crate::common::MIB;
use crate::stats::Summary;
use std::fmt::Write as _;

const LABEL: usize = 44;
const COLUMN: usize = 13;

pub fn http_table(r: &Report) -> String {
    let mut out = String::new();
    let host = &r.host;
    let _ = writeln!(
        out,
        "http benchmark: the same HTTP/1.1 server (epoll, keep-alive) natively and in guests behind a port forward, {} runs each, interleaved ({}, {} host CPUs)",
        r.runs,
        if host.pvm {
            "PVM host: kvm_pvm".to_string()
        } else {
            format!("KVM modules: {}", host.kvm_modules.join(", "))
        },
        host.cpus
    );
    let mut header = format!("{:LABEL$}", "medians");
    for v in &r.variants {
        let _ = write!(header, "{:>COLUMN$}", v.name);
    }
    let ratio_names = ["vmm/native", "vmm/qemu"];
    for name in ratio_names {
        let _ = write!(header, "{name:>COLUMN$}");
    }
    let _ = writeln!(out, "{header}");

    let row = |out: &mut String,
               label: &str,
               get: &dyn Fn(&Variant) -> Option<f64>,
               decimals: usize,
               ratio: Option<&str>| {
        let mut line = format!("{label:LABEL$}");
        for v in &r.variants {
            let cell = match get(v) {
                Some(x) => format!("{x:.decimals$}"),
                None if v.failed.is_some() => "failed".into(),
                None => "-".into(),
            };
            let _ = write!(line, "{cell:>COLUMN$}");
        }
        if let Some(figure) = ratio
            && let Some(ratio) = r.ratios.iter().find(|x| x.figure == figure)
        {
            for x in [ratio.vmm_over_native, ratio.vmm_over_qemu] {
                let cell = x.map_or("-".to_string(), ratio_cell);
                let _ = write!(line, "{cell:>COLUMN$}");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    };
    let median = |s: Option<&Summary>| s.map(|s| s.median);

    let ks: Vec<usize> = r
        .variants
        .iter()
        .flat_map(|v| v.rates.iter().map(|x| x.connections))
        .fold(Vec::new(), |mut ks, k| {
            if !ks.contains(&k) {
                ks.push(k);
            }
            ks
        });
    for k in ks {
        fn rate(v: &Variant, k: usize) -> Option<&super::RateFigures> {
            v.rates.iter().find(|x| x.connections == k)
        }
        let figure = format!("requests/s, {k} connection(s)");
        row(
            &mut out,
            &format!("GET /small, {k} conn: requests/s"),
            &|v| median(rate(v, k).map(|x| &x.requests_per_s)),
            0,
            Some(&figure),
        );
        row(
            &mut out,
            "  latency median, µs",
            &|v| median(rate(v, k).map(|x| &x.latency_median_us)),
            1,
            None,
        );
        row(
            &mut out,
            "  latency p90, µs",
            &|v| median(rate(v, k).map(|x| &x.latency_p90_us)),
            1,
            None,
        );
    }
    if r.download_bytes > 0 {
        row(
            &mut out,
            &format!(
                "download {} MiB (host <- server), MiB/s",
                r.download_bytes / MIB
            ),
            &|v| median(v.download_mib_per_s.as_ref()),
            2,
            Some("download MiB/s"),
        );
    }
    if r.upload_bytes > 0 {
        row(
            &mut out,
            &format!(
                "upload {} MiB (host -> server), MiB/s",
                r.upload_bytes / MIB
            ),
            &|v| median(v.upload_mib_per_s.as_ref()),
            2,
            Some("upload MiB/s"),
        );
    }
    row(
        &mut out,
        "spawn -> listening line, ms",
        &|v| median(v.listening_ms.as_ref()),
        1,
        None,
    );
    row(
        &mut out,
        "spawn -> exit, ms",
        &|v| median(v.run_ms.as_ref()),
        1,
        None,
    );
    let _ = writeln!(
        out,
        "ratios: the vmm's median over the other's (above 1: the vmm is faster); requests/s over {} s per connection count, after one untimed request per connection",
        r.seconds_per_rate
    );
    for v in &r.variants {
        if let Some(cpus) = v.guest_cpus {
            let _ = writeln!(
                out,
                "{}: {} guest CPU(s), {}",
                v.name,
                cpus,
                v.command.join(" ")
            );
        } else {
            let _ = writeln!(out, "{}: {}", v.name, v.command.join(" "));
        }
    }
    for warning in &r.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    for v in &r.variants {
        if let Some(why) = &v.failed {
            // The first line says what went wrong; the command is above, the output in the JSON.
            let _ = writeln!(
                out,
                "FAILED: {} ({} measured runs before): {}",
                v.name,
                v.measured_runs,
                why.lines().next().unwrap_or_default()
            );
        }
    }
    out
}

/// A ratio with three significant digits, however small (a guest can be 1000x slower).
fn ratio_cell(x: f64) -> String {
    if !x.is_finite() || x <= 0.0 {
        return format!("{x}x");
    }
    let decimals = (2 - x.log10().floor() as i32).clamp(0, 9) as usize;
    format!("{x:.decimals$}x")
}

#[cfg(test)]
mod tests {
    use super::ratio_cell;

    #[test]
    fn ratios_keep_three_digits() {
        assert_eq!(ratio_cell(0.000653), "0.000653x");
        assert_eq!(ratio_cell(0.5), "0.500x");
        assert_eq!(ratio_cell(2.345), "2.35x");
        assert_eq!(ratio_cell(1234.0), "1234x");
    }
}
