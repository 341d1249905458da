//! The net benchmark: TCP from the host into the guest through a port forward, our VMM's user-mode
//! network (`--publish`) against QEMU's slirp (`hostfwd`), the same kernel running
//! `noa.kbench=tcp_sink` in both, interleaved run by run.
//!
//! Owns the command lines of the two variants, the host's side of a run (wait for the guest's
//! `NOA-KBENCH listening` line, connect, push the data in 64 KiB writes, half-close, wait for the
//! guest's result and its exit), the interleaving and the summary. The sending happens in this
//! thread, in the same `poll` that drains the child's pipes (`child::Session`), so that no helper
//! thread competes for the host's two CPUs. Judging the guest's output is `kbench`'s job; printing
//! is `report`'s.

use crate::child::{Ended, Finished, Session};
use crate::common::{Host, MIB, RandomBytes, command, host, mib_per_s, millis, strings};
use crate::kbench;
use crate::parse::{self, Kbench};
use crate::stats::Summary;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::ffi::OsString;
use std::io::Write;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The target, reported next to the figures; never asserted.
pub const TARGET_VMM_OVER_QEMU: f64 = 2.0;

/// The guest's port, `noa.kbench.port`'s default.
pub const GUEST_PORT: u16 = 5001;

/// The size of each of the host's writes.
pub const WRITE_BYTES: usize = 64 * 1024;

/// How long the host keeps retrying its connect to the forwarded port.
const CONNECT_FOR: Duration = Duration::from_secs(5);

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub vmm: PathBuf,
    pub image: PathBuf,
    pub kernel: PathBuf,
    pub qemu: PathBuf,
    /// QEMU's `-cpu`; `None`: no `-cpu` flag.
    pub qemu_cpu: Option<String>,
    pub mib: u64,
    pub runs: usize,
    pub warmup: usize,
    pub deadline: Duration,
}

/// Everything the net benchmark measured; serialised as the `--json` file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    /// What each run sends.
    pub mib: u64,
    pub write_bytes: usize,
    pub runs: usize,
    pub warmup_runs: usize,
    /// How the variants were ordered within each round.
    pub order: &'static str,
    /// What the host's rate is timed over.
    pub host_view: &'static str,
    /// What the guest's rate is timed over.
    pub guest_view: &'static str,
    pub host: Host,
    pub vmm: Variant,
    pub qemu_slirp: Variant,
    /// The VMM's median rate over QEMU's.
    pub ratio_vmm_over_qemu: Ratios,
    pub targets: Targets,
    /// Anything odd seen on the way that did not fail the benchmark.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Variant {
    /// The command line of the last run (the host port differs run by run).
    pub command: Vec<String>,
    /// The guest's CPUs from its boot line, if it printed one.
    pub guest_cpus: Option<u32>,
    /// Bytes over the host's connect -> the child's exit, MiB/s.
    pub host_mib_per_s: Summary,
    /// Bytes over the guest's first byte -> last byte (its `tcp_sink` line), MiB/s.
    pub guest_mib_per_s: Summary,
    /// Spawn -> the guest's `listening` line, ms.
    pub listening_ms: Summary,
    /// The connect (retries included), ms.
    pub connect_ms: Summary,
    /// Connect done -> the host's last write accepted (into its socket buffer), ms.
    pub last_write_ms: Summary,
    /// Connect done -> the guest's `tcp_sink` line read, ms.
    pub result_line_ms: Summary,
    /// Connect done -> the child reaped, ms.
    pub exit_ms: Summary,
    /// The guest's first byte -> last byte, ms.
    pub guest_ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct Ratios {
    pub host_view: f64,
    pub guest_view: f64,
}

#[derive(Debug, Serialize)]
pub struct Targets {
    /// Judged on the host's view.
    pub vmm_over_qemu_at_least: f64,
    pub vmm_over_qemu_met: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vmm,
    Qemu,
}

const ROUND: [Kind; 2] = [Kind::Vmm, Kind::Qemu];

/// One run, times from spawn.
#[derive(Debug, Clone, Copy)]
struct Sample {
    bytes: u64,
    listening: Duration,
    connect_started: Duration,
    connected: Duration,
    last_write: Duration,
    result_line: Duration,
    exit: Duration,
    guest_ns: u64,
    guest_cpus: Option<u32>,
}

/// Runs the benchmark. Prints progress to stderr; the report is the caller's to print.
pub fn run(config: &Config) -> Result<Report> {
    for (what, path) in [("--image", &config.image), ("--kernel", &config.kernel)] {
        if !path.is_file() {
            bail!(
                "{what} {}: no such file (build it with `cargo xtask build`)",
                path.display()
            );
        }
    }
    let bytes = config.mib * MIB;
    let mut chunk = vec![0u8; WRITE_BYTES];
    RandomBytes::from_clock().fill(&mut chunk);

    let mut last_args: [Vec<OsString>; 2] = Default::default();
    let mut run_one = |kind: Kind, label: &str| -> Result<Sample> {
        let port = free_port()?;
        let (args, who, expected) = match kind {
            Kind::Vmm => (
                vmm_command(&config.vmm, &config.image, port),
                "vmm",
                Ended::Exited(0),
            ),
            // isa-debug-exit turns the guest's power-off code 0 into (0 << 1) | 1.
            Kind::Qemu => (
                qemu_command(
                    &config.qemu,
                    config.qemu_cpu.as_deref(),
                    &config.kernel,
                    port,
                ),
                "qemu slirp",
                Ended::Exited(1),
            ),
        };
        let sample = one_run(
            &args,
            who,
            label,
            expected,
            port,
            bytes,
            &chunk,
            config.deadline,
        );
        last_args[kind as usize] = args;
        sample
    };

    eprintln!(
        "noa-bench net: {} warm-up + {} interleaved rounds of vmm and qemu slirp, {} MiB each \
         (slow on PVM hosts: the guest's TCP runs in emulated ring 0) ...",
        config.warmup, config.runs, config.mib
    );
    for i in 0..config.warmup {
        for kind in ROUND {
            run_one(kind, &format!("warm-up run {}", i + 1))?;
        }
    }
    let mut samples: [Vec<Sample>; 2] = Default::default();
    for round in 0..config.runs {
        for k in 0..ROUND.len() {
            let index = (round + k) % ROUND.len();
            let label = format!("run {}", round + 1);
            let sample = run_one(ROUND[index], &label)?;
            eprintln!(
                "  {label} {}: {:.2} MiB/s (host view), {:.2} MiB/s (guest view)",
                ["vmm", "qemu slirp"][index],
                host_rate(&sample),
                guest_rate(&sample)
            );
            samples[index].push(sample);
        }
    }

    let [vmm_samples, qemu_samples] = samples;
    let [vmm_args, qemu_args] = last_args;
    let vmm = variant(&vmm_args, &vmm_samples)?;
    let qemu_slirp = variant(&qemu_args, &qemu_samples)?;
    let mut warnings = Vec::new();
    if vmm.guest_cpus != qemu_slirp.guest_cpus {
        warnings.push(format!(
            "the guest saw {} CPUs under the vmm but {} under QEMU (microvm with acpi=off has no \
             MADT to list more): not the same machine",
            cpus(vmm.guest_cpus),
            cpus(qemu_slirp.guest_cpus)
        ));
    }
    let ratio = Ratios {
        host_view: vmm.host_mib_per_s.median / qemu_slirp.host_mib_per_s.median,
        guest_view: vmm.guest_mib_per_s.median / qemu_slirp.guest_mib_per_s.median,
    };
    Ok(Report {
        benchmark: "net",
        mib: config.mib,
        write_bytes: WRITE_BYTES,
        runs: config.runs,
        warmup_runs: config.warmup,
        order: "interleaved: each round runs vmm and qemu slirp once, the first of them alternating",
        host_view: "bytes sent over the host's connect done -> the child's exit (the guest's \
                    result line and power-off included; the last write only fills the host's \
                    socket buffer, so it says nothing)",
        guest_view: "bytes over the guest's first byte received -> last byte received (its clock)",
        host: host(),
        targets: Targets {
            vmm_over_qemu_at_least: TARGET_VMM_OVER_QEMU,
            vmm_over_qemu_met: ratio.host_view >= TARGET_VMM_OVER_QEMU,
        },
        ratio_vmm_over_qemu: ratio,
        vmm,
        qemu_slirp,
        warnings,
    })
}

fn cpus(n: Option<u32>) -> String {
    n.map_or("an unknown number of".into(), |n| n.to_string())
}

/// `vmm --snapshot --cpus 1 --publish 127.0.0.1:PORT:5001 --cmdline noa.kbench=tcp_sink IMAGE`:
/// one vCPU, as QEMU's microvm without ACPI gives the guest. The VMM adds its user network's
/// words to the command line (a 16,000-byte MTU), which the guest's link takes as it would for
/// programs; under QEMU's slirp it keeps a wire's 1500.
fn vmm_command(vmm: &Path, image: &Path, port: u16) -> Vec<OsString> {
    vec![
        vmm.into(),
        "--snapshot".into(),
        "--cpus".into(),
        "1".into(),
        "--publish".into(),
        format!("127.0.0.1:{port}:{GUEST_PORT}").into(),
        "--cmdline".into(),
        "noa.kbench=tcp_sink".into(),
        image.into(),
    ]
}

/// QEMU microvm (no ACPI: the virtio-mmio devices go on the kernel command line) with slirp's
/// `hostfwd` to the guest's port, the same kernel booted with `-kernel`.
fn qemu_command(qemu: &Path, cpu: Option<&str>, kernel: &Path, port: u16) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        qemu.into(),
        "-M".into(),
        "microvm,acpi=off".into(),
        "-accel".into(),
        "kvm".into(),
    ];
    if let Some(cpu) = cpu {
        args.extend(["-cpu".into(), cpu.into()]);
    }
    args.extend(
        [
            "-m",
            "512M",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-netdev",
        ]
        .map(OsString::from),
    );
    args.push(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}").into());
    args.extend(["-device", "virtio-net-device,netdev=n0", "-kernel"].map(OsString::from));
    args.push(kernel.into());
    args.extend(["-append", "noa.kbench=tcp_sink"].map(OsString::from));
    args
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

/// One run: spawn, the guest's `listening` line, connect to 127.0.0.1:`port`, `bytes` in writes of
/// `chunk`, half-close, the guest's result, the exit.
#[allow(clippy::too_many_arguments)]
fn one_run(
    args: &[OsString],
    who: &str,
    label: &str,
    expected: Ended,
    port: u16,
    bytes: u64,
    chunk: &[u8],
    deadline: Duration,
) -> Result<Sample> {
    let mut session = Session::spawn(&mut command(args), deadline)?;
    let fail = |mut session: Session, problem: String| -> anyhow::Error {
        session.kill();
        match session.finish() {
            Ok(finished) => kbench::failure(who, label, &problem, args, &finished),
            Err(e) => e.context(format!("{who} {label} failed: {problem}")),
        }
    };

    // 1. The guest listens.
    let listening = loop {
        match session.next_line()? {
            Some((line, at)) => match parse::kbench_line(&line) {
                Some(Kbench::Listening { .. }) => break at,
                Some(Kbench::Error(_)) => {
                    // The guest exits by itself after an error line; `outcome` words it.
                    let finished = session.finish()?;
                    let problem = kbench::outcome(&finished, "tcp_sink", expected)
                        .err()
                        .unwrap_or_else(|| "an error line".into());
                    return Err(kbench::failure(who, label, &problem, args, &finished));
                }
                _ => {}
            },
            None => {
                let finished = session.finish()?;
                let problem = if finished.timed_out {
                    format!(
                        "killed after {:.1} s without a `{} listening` line",
                        finished.exit_after.as_secs_f64(),
                        parse::KBENCH_MARKER
                    )
                } else {
                    format!(
                        "ended ({}) without a `{} listening` line",
                        finished.ended,
                        parse::KBENCH_MARKER
                    )
                };
                return Err(kbench::failure(who, label, &problem, args, &finished));
            }
        }
    };

    // 2. Connect, retrying for a while: the forward may not be up the instant the guest listens.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let connect_started = session.elapsed();
    let since = Instant::now();
    let stream = loop {
        match TcpStream::connect_timeout(&addr, CONNECT_FOR) {
            Ok(stream) => break stream,
            Err(e) if since.elapsed() >= CONNECT_FOR || session.done() => {
                let problem = format!(
                    "could not connect to {addr} for {:.1} s: {e}",
                    since.elapsed().as_secs_f64()
                );
                return Err(fail(session, problem));
            }
            Err(_) => {
                session.wait(None, Some(Duration::from_millis(50)))?;
            }
        }
    };
    let connected = session.elapsed();

    // 3. Push the bytes, never blocking: the child's pipes are drained in the same `poll`.
    if let Err(e) = stream.set_nonblocking(true) {
        return Err(fail(session, format!("set_nonblocking: {e}")));
    }
    let mut sent = 0u64;
    let mut writer = &stream;
    while sent < bytes {
        if session.done() {
            let problem = format!("the child ended after the host sent {sent} of {bytes} bytes");
            return Err(fail(session, problem));
        }
        let events = session.wait(Some((stream.as_raw_fd(), libc::POLLOUT)), None)?;
        if events == 0 {
            continue;
        }
        while sent < bytes {
            // Each write ends on a chunk boundary: after a partial write the next one completes it.
            let offset = (sent % chunk.len() as u64) as usize;
            let len = (chunk.len() - offset).min((bytes - sent) as usize);
            match writer.write(&chunk[offset..offset + len]) {
                Ok(n) => sent += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let problem = format!("sending, after {sent} of {bytes} bytes: {e}");
                    return Err(fail(session, problem));
                }
            }
        }
    }
    let last_write = session.elapsed();
    if let Err(e) = stream.shutdown(Shutdown::Write) {
        return Err(fail(session, format!("shutdown(Write): {e}")));
    }

    // 4. The guest's result, then its exit.
    let mut result_line = None;
    while let Some((line, at)) = session.next_line()? {
        if let Some(Kbench::Result { name, .. }) = parse::kbench_line(&line)
            && name == "tcp_sink"
            && result_line.is_none()
        {
            result_line = Some(at);
        }
    }
    let finished: Finished = session.finish()?;
    drop(stream);
    let guest_cpus = finished
        .stdout
        .lines()
        .find_map(parse::boot_line)
        .map(|b| b.cpus);
    let measured = kbench::outcome(&finished, "tcp_sink", expected)
        .map_err(|problem| kbench::failure(who, label, &problem, args, &finished))?;
    if measured.bytes != bytes {
        let problem = format!(
            "the guest received {} bytes, but the host sent {bytes}",
            measured.bytes
        );
        return Err(kbench::failure(who, label, &problem, args, &finished));
    }
    if measured.ns == 0 {
        let problem = "the guest measured 0 ns".to_string();
        return Err(kbench::failure(who, label, &problem, args, &finished));
    }
    Ok(Sample {
        bytes,
        listening,
        connect_started,
        connected,
        last_write,
        result_line: result_line.unwrap_or(finished.exit_after),
        exit: finished.exit_after,
        guest_ns: measured.ns,
        guest_cpus,
    })
}

fn host_rate(s: &Sample) -> f64 {
    mib_per_s(s.bytes, (s.exit - s.connected).as_secs_f64())
}

fn guest_rate(s: &Sample) -> f64 {
    mib_per_s(s.bytes, s.guest_ns as f64 / 1e9)
}

fn variant(args: &[OsString], samples: &[Sample]) -> Result<Variant> {
    let summary = |f: &dyn Fn(&Sample) -> f64| {
        Summary::of(&samples.iter().map(f).collect::<Vec<_>>()).context("no samples")
    };
    Ok(Variant {
        command: strings(args),
        guest_cpus: samples.first().and_then(|s| s.guest_cpus),
        host_mib_per_s: summary(&host_rate)?,
        guest_mib_per_s: summary(&guest_rate)?,
        listening_ms: summary(&|s| millis(s.listening))?,
        connect_ms: summary(&|s| millis(s.connected - s.connect_started))?,
        last_write_ms: summary(&|s| millis(s.last_write - s.connected))?,
        result_line_ms: summary(&|s| millis(s.result_line - s.connected))?,
        exit_ms: summary(&|s| millis(s.exit - s.connected))?,
        guest_ms: summary(&|s| s.guest_ns as f64 / 1e6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let vmm = strings(&vmm_command(Path::new("vmm"), Path::new("g.img"), 4242));
        assert_eq!(
            vmm.join(" "),
            "vmm --snapshot --cpus 1 --publish 127.0.0.1:4242:5001 --cmdline noa.kbench=tcp_sink g.img"
        );
        let qemu = strings(&qemu_command(
            Path::new("qemu"),
            Some("host,arch-capabilities=off"),
            Path::new("k.elf"),
            4242,
        ));
        assert_eq!(
            qemu.join(" "),
            "qemu -M microvm,acpi=off -accel kvm -cpu host,arch-capabilities=off -m 512M -nodefaults \
             -no-user-config -display none -serial stdio -no-reboot -device \
             isa-debug-exit,iobase=0xf4,iosize=0x04 -netdev user,id=n0,hostfwd=tcp:127.0.0.1:4242-:5001 \
             -device virtio-net-device,netdev=n0 -kernel k.elf -append noa.kbench=tcp_sink"
        );
        let qemu = strings(&qemu_command(Path::new("qemu"), None, Path::new("k"), 1));
        assert!(!qemu.iter().any(|a| a == "-cpu"));
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    /// The whole host side against a fake guest: a shell script that prints the lines, while a
    /// listener of ours stands in for the forward.
    #[test]
    fn one_run_against_a_fake_guest() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = 3 * WRITE_BYTES as u64 + 5;
        let reader = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            std::io::copy(&mut conn, &mut std::io::sink()).unwrap()
        });
        let script = format!(
            "echo 'NOA-BOOT-OK cpus=2 mem_mib=511'; echo 'NOA-KBENCH listening port=5001'; \
             sleep 0.3; echo 'NOA-KBENCH name=tcp_sink bytes={bytes} ns=1000000'; exit 1"
        );
        let args: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), script.into()];
        let chunk = vec![7u8; WRITE_BYTES];
        let sample = one_run(
            &args,
            "fake",
            "run 1",
            Ended::Exited(1),
            port,
            bytes,
            &chunk,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(reader.join().unwrap(), bytes);
        assert_eq!(sample.guest_ns, 1_000_000);
        assert_eq!(sample.guest_cpus, Some(2));
        assert!(sample.listening <= sample.connected);
        assert!(sample.connected <= sample.last_write);
        assert!(sample.last_write <= sample.result_line && sample.result_line <= sample.exit);

        // The guest counts fewer bytes than were sent: a failure, with the guest's output.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let reader = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            std::io::copy(&mut conn, &mut std::io::sink()).unwrap()
        });
        let script = "echo 'NOA-KBENCH listening port=5001'; sleep 0.2; \
                      echo 'NOA-KBENCH name=tcp_sink bytes=1 ns=5'; exit 1";
        let args: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), script.into()];
        let err = one_run(
            &args,
            "fake",
            "run 2",
            Ended::Exited(1),
            port,
            bytes,
            &chunk,
            Duration::from_secs(10),
        )
        .unwrap_err();
        reader.join().unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("received 1 bytes"), "{text}");
    }

    #[test]
    fn no_listening_line_is_a_failure() {
        let args: Vec<OsString> = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo 'NOA-KBENCH error=no-dhcp-lease'; exit 3".into(),
        ];
        let err = one_run(
            &args,
            "fake",
            "run 1",
            Ended::Exited(1),
            1,
            1,
            &[0; 8],
            Duration::from_secs(10),
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("error=no-dhcp-lease"), "{text}");
        let args: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), "exit 0".into()];
        let err = one_run(
            &args,
            "fake",
            "run 1",
            Ended::Exited(1),
            1,
            1,
            &[0; 8],
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("without a `NOA-KBENCH listening` line"));
    }
}
