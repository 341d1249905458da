//! Reading what the guest and the VMM print: the guest's `NOA-BOOT-OK cpus=<n> mem_mib=<m>` line,
//! its in-guest benchmark lines (`NOA-KBENCH ...`), the VMM's `VMM own peak RSS <N> KiB` log
//! line, the linux benchmark program's `NOA-LINUX ...` lines and `perf stat -x,` counts.
//!
//! Pure text functions only; spawning and timing the processes that print them is `child`'s job.

/// The marker the guest kernel prints once it is up (guest-os/kernel/src/main.rs).
pub const BOOT_MARKER: &str = "NOA-BOOT-OK";

/// The phrase the VMM logs with `--verbose` right before its own peak RSS in KiB (vmm/src/main.rs).
pub const VMM_OWN_RSS_MARKER: &str = "VMM own peak RSS";

/// The marker of the in-guest benchmarks' lines (guest-os/kernel/src/kbench.rs).
pub const KBENCH_MARKER: &str = "NOA-KBENCH";

/// What the guest's boot line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BootLine {
    pub cpus: u32,
    pub mem_mib: u64,
}

/// Parses a line of guest console output as the boot line, `NOA-BOOT-OK cpus=<n> mem_mib=<m>`.
///
/// The marker may follow other text on the same line (a console can glue partial lines together) and
/// the line may end in `\r` (serial consoles); anything else is not the boot line.
pub fn boot_line(line: &str) -> Option<BootLine> {
    let rest = &line[line.find(BOOT_MARKER)? + BOOT_MARKER.len()..];
    let mut words = rest.split_whitespace();
    let cpus = words.next()?.strip_prefix("cpus=")?.parse().ok()?;
    let mem_mib = words.next()?.strip_prefix("mem_mib=")?.parse().ok()?;
    if words.next().is_some() || !rest.starts_with(' ') {
        return None;
    }
    Some(BootLine { cpus, mem_mib })
}

/// One `NOA-KBENCH` line of an in-guest benchmark (`noa.kbench=NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kbench {
    /// `NOA-KBENCH name=<name> bytes=<b> ns=<t>`: the benchmark moved `bytes` in `ns` nanoseconds
    /// of the guest's clock.
    Result { name: String, bytes: u64, ns: u64 },
    /// `NOA-KBENCH listening port=<p>`: `tcp_sink` is ready for the host's connection.
    Listening { port: u16 },
    /// `NOA-KBENCH error=<what> ...`: the benchmark failed; the rest of the line, verbatim.
    Error(String),
}

/// Parses a line of guest console output as a `NOA-KBENCH` line. Like [`boot_line`], the marker may
/// follow other text and the line may end in `\r`; a line with the marker that fits none of the
/// forms is `None` (the caller reports it as output, not as a result).
pub fn kbench_line(line: &str) -> Option<Kbench> {
    let rest = &line[line.find(KBENCH_MARKER)? + KBENCH_MARKER.len()..];
    if !rest.starts_with(' ') {
        return None;
    }
    let rest = rest.trim();
    if let Some(error) = rest.strip_prefix("error=") {
        return Some(Kbench::Error(error.to_string()));
    }
    let mut words = rest.split_whitespace();
    let first = words.next()?;
    let parsed = if first == "listening" {
        let port = words.next()?.strip_prefix("port=")?.parse().ok()?;
        Kbench::Listening { port }
    } else {
        let name = first.strip_prefix("name=")?;
        if name.is_empty() {
            return None;
        }
        let bytes = words.next()?.strip_prefix("bytes=")?.parse().ok()?;
        let ns = words.next()?.strip_prefix("ns=")?.parse().ok()?;
        Kbench::Result {
            name: name.to_string(),
            bytes,
            ns,
        }
    };
    words.next().is_none().then_some(parsed)
}

/// The marker of the `noa-bench linux` program's lines (bench/programs/linux_abi.c).
pub const LINUX_MARKER: &str = "NOA-LINUX";

/// One `NOA-LINUX` line of the linux benchmark's program, in the guest or native.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinuxLine {
    /// `NOA-LINUX name=<name> iters=<n> ns=<t> pinned=<0|1>`: `iters` timed iterations took `ns`
    /// nanoseconds (CLOCK_MONOTONIC); `pinned`: its `sched_setaffinity` succeeded.
    Result {
        name: String,
        iters: u64,
        ns: u64,
        pinned: bool,
    },
    /// `NOA-LINUX error=<what> ...`: the program failed; the rest of the line, verbatim.
    Error(String),
}

/// Parses a line of the linux benchmark program's output. Like [`kbench_line`], the marker may
/// follow other text and the line may end in `\r`; a marked line of neither form is `None`.
pub fn linux_line(line: &str) -> Option<LinuxLine> {
    let rest = &line[line.find(LINUX_MARKER)? + LINUX_MARKER.len()..];
    if !rest.starts_with(' ') {
        return None;
    }
    let rest = rest.trim();
    if let Some(error) = rest.strip_prefix("error=") {
        return Some(LinuxLine::Error(error.to_string()));
    }
    let mut words = rest.split_whitespace();
    let name = words.next()?.strip_prefix("name=")?;
    if name.is_empty() {
        return None;
    }
    let iters = words.next()?.strip_prefix("iters=")?.parse().ok()?;
    let ns = words.next()?.strip_prefix("ns=")?.parse().ok()?;
    let pinned = match words.next()?.strip_prefix("pinned=")? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    words.next().is_none().then(|| LinuxLine::Result {
        name: name.to_string(),
        iters,
        ns,
        pinned,
    })
}

/// The count of `event` in what `perf stat -x, -o FILE` wrote to FILE (CSV: `count,unit,event,...`;
/// `#` comment lines and blank lines skipped). An uncounted or unsupported event, or none at all,
/// is an error that says so.
pub fn perf_stat_count(csv: &str, event: &str) -> Result<u64, String> {
    for line in csv.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 3 || fields[2] != event {
            continue;
        }
        return fields[0]
            .parse()
            .map_err(|_| format!("perf stat counted {event} as `{}`", fields[0]));
    }
    Err(format!("perf stat wrote no count for {event}"))
}

/// Finds the VMM's own peak RSS (guest memory excluded), in KiB, in its `--verbose` stderr:
/// `... peak RSS X KiB, guest memory resident Y KiB, VMM own peak RSS Z KiB`, possibly with tracing's
/// timestamp, level and ANSI colours around it. Takes the last such line.
pub fn vmm_own_peak_rss_kib(stderr: &str) -> Option<u64> {
    stderr.lines().rev().find_map(|line| {
        let line = strip_ansi(line);
        let rest = &line[line.find(VMM_OWN_RSS_MARKER)? + VMM_OWN_RSS_MARKER.len()..];
        let mut words = rest.split_whitespace();
        let kib = words.next()?.parse().ok()?;
        (words.next()? == "KiB").then_some(kib)
    })
}

/// Removes ANSI CSI escape sequences (`ESC [ ... final-byte`), which tracing adds for colours.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameter and intermediate bytes, then one final byte in 0x40..=0x7e.
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_line_plain() {
        assert_eq!(
            boot_line("NOA-BOOT-OK cpus=2 mem_mib=511"),
            Some(BootLine {
                cpus: 2,
                mem_mib: 511
            })
        );
    }

    #[test]
    fn boot_line_with_carriage_return_and_prefix() {
        assert_eq!(
            boot_line("NOA-BOOT-OK cpus=4 mem_mib=1023\r"),
            Some(BootLine {
                cpus: 4,
                mem_mib: 1023
            })
        );
        assert_eq!(
            boot_line("\u{1b}cNOA-BOOT-OK cpus=1 mem_mib=16"),
            Some(BootLine {
                cpus: 1,
                mem_mib: 16
            })
        );
    }

    #[test]
    fn not_the_boot_line() {
        for line in [
            "",
            "NOA-BOOT-OK",
            "NOA-BOOT-OK cpus=2",
            "NOA-BOOT-OKcpus=2 mem_mib=511",
            "NOA-BOOT-OK cpus=x mem_mib=511",
            "NOA-BOOT-OK cpus=2 mem_mib=",
            "NOA-BOOT-OK mem_mib=511 cpus=2",
            "NOA-BOOT-OK cpus=2 mem_mib=511 extra",
            "NOA-BOOT-FAIL cpus=2 mem_mib=511",
            "noa-boot-ok cpus=2 mem_mib=511",
        ] {
            assert_eq!(boot_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn rss_line_as_the_vmm_logs_it() {
        let stderr = "\u{1b}[2m2026-11-27T15:52:47.071204Z\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m kernel ...\n\
                      \u{1b}[2m2026-11-27T15:52:47.093735Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m peak RSS 3456 KiB, \
                      guest memory resident 168 KiB, VMM own peak RSS 3288 KiB\n";
        assert_eq!(vmm_own_peak_rss_kib(stderr), Some(3288));
    }

    #[test]
    fn rss_line_without_colours_or_prefix() {
        let stderr = "peak RSS 10 KiB, guest memory resident 4 KiB, VMM own peak RSS 6 KiB";
        assert_eq!(vmm_own_peak_rss_kib(stderr), Some(6));
        let with_prefix = "2026-11-27T15:52:47Z  INFO vmm: peak RSS 10 KiB, guest memory resident 4 KiB, VMM own peak RSS 6 KiB\r\n";
        assert_eq!(vmm_own_peak_rss_kib(with_prefix), Some(6));
    }

    #[test]
    fn rss_line_missing_or_malformed() {
        assert_eq!(vmm_own_peak_rss_kib(""), None);
        assert_eq!(
            vmm_own_peak_rss_kib("peak RSS 3456 KiB, guest memory resident 168 KiB"),
            None
        );
        assert_eq!(vmm_own_peak_rss_kib("VMM own peak RSS lots KiB"), None);
        assert_eq!(vmm_own_peak_rss_kib("VMM own peak RSS 12 MiB"), None);
    }

    #[test]
    fn strip_ansi_keeps_plain_text() {
        assert_eq!(strip_ansi("\u{1b}[32m INFO\u{1b}[0m x"), " INFO x");
        assert_eq!(strip_ansi("plain ümlaut"), "plain ümlaut");
    }

    #[test]
    fn kbench_result_lines() {
        assert_eq!(
            kbench_line("NOA-KBENCH name=block_read bytes=268435456 ns=501234567"),
            Some(Kbench::Result {
                name: "block_read".into(),
                bytes: 268_435_456,
                ns: 501_234_567
            })
        );
        assert_eq!(
            kbench_line("junk NOA-KBENCH name=tcp_sink bytes=2097152 ns=0\r"),
            Some(Kbench::Result {
                name: "tcp_sink".into(),
                bytes: 2_097_152,
                ns: 0
            })
        );
    }

    #[test]
    fn kbench_listening_and_error_lines() {
        assert_eq!(
            kbench_line("NOA-KBENCH listening port=5001"),
            Some(Kbench::Listening { port: 5001 })
        );
        assert_eq!(
            kbench_line("NOA-KBENCH error=no-disk"),
            Some(Kbench::Error("no-disk".into()))
        );
        assert_eq!(
            kbench_line("NOA-KBENCH error=unknown-benchmark name=x\r"),
            Some(Kbench::Error("unknown-benchmark name=x".into()))
        );
    }

    #[test]
    fn not_a_kbench_line() {
        for line in [
            "",
            "NOA-KBENCH",
            "NOA-KBENCH ",
            "NOA-KBENCHname=a bytes=1 ns=1",
            "NOA-KBENCH name=a bytes=1",
            "NOA-KBENCH name= bytes=1 ns=1",
            "NOA-KBENCH name=a bytes=-1 ns=1",
            "NOA-KBENCH name=a ns=1 bytes=1",
            "NOA-KBENCH name=a bytes=1 ns=1 extra",
            "NOA-KBENCH listening",
            "NOA-KBENCH listening port=70000",
            "NOA-KBENCH listening port=5001 extra",
            "NOA-BOOT-OK cpus=2 mem_mib=511",
        ] {
            assert_eq!(kbench_line(line), None, "{line:?}");
        }
    }
    #[test]
    fn linux_lines() {
        assert_eq!(
            linux_line("NOA-LINUX name=getpid iters=2000 ns=470638 pinned=0"),
            Some(LinuxLine::Result {
                name: "getpid".into(),
                iters: 2000,
                ns: 470_638,
                pinned: false
            })
        );
        assert_eq!(
            linux_line("x NOA-LINUX name=pingpong iters=0 ns=90 pinned=1\r"),
            Some(LinuxLine::Result {
                name: "pingpong".into(),
                iters: 0,
                ns: 90,
                pinned: true
            })
        );
        assert_eq!(
            linux_line("NOA-LINUX error=fork errno=11"),
            Some(LinuxLine::Error("fork errno=11".into()))
        );
        for line in [
            "",
            "hello",
            "NOA-LINUX",
            "NOA-LINUXname=a iters=1 ns=1 pinned=0",
            "NOA-LINUX name=a iters=1 ns=1",
            "NOA-LINUX name=a iters=1 ns=1 pinned=2",
            "NOA-LINUX name= iters=1 ns=1 pinned=0",
            "NOA-LINUX name=a iters=-1 ns=1 pinned=0",
            "NOA-LINUX name=a iters=1 ns=1 pinned=0 extra",
            "NOA-KBENCH name=a bytes=1 ns=1",
        ] {
            assert_eq!(linux_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn perf_stat_csv() {
        let csv = "# started on Fri Nov 27 19:20:27 2026\n\n1289737,,kvm:kvm_emulate_insn,2205054626,100.00,,\n";
        assert_eq!(perf_stat_count(csv, "kvm:kvm_emulate_insn"), Ok(1_289_737));
        assert!(perf_stat_count(csv, "kvm:kvm_exit").is_err());
        let uncounted = "<not supported>,,kvm:kvm_emulate_insn,0,100.00,,\n";
        assert!(
            perf_stat_count(uncounted, "kvm:kvm_emulate_insn")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(perf_stat_count("", "kvm:kvm_emulate_insn").is_err());
    }
}
