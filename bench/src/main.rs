//! `noa-bench`: NOA ARK OS benchmarks, each run side by side with its reference in one invocation
//! (variants interleaved run by run), reported as medians (with min and p90) in a table and as JSON.
//!
//! This module owns the command line and the exit status only: 0 when the benchmark ran, non-zero
//! when it could not (a guest that fails to boot is an error). Figures never decide the exit status;
//! targets are printed as notes (DESIGN.md §10: benchmarks report, they are not timed assertions).
//! `boot`, `block`, `net`, `linux`, `python`, `files`, `http`, `llama` and `mcp_start` are the
//! benchmarks; `child` times one process, `kbench` judges the guest's in-guest benchmark runs,
//! `mcp_probe` asks a starting server for MCP tools/list and /health, `parse` reads guest and VMM
//! output, `stats` computes order statistics, `load` reads the host's load average, `common` has
//! what they share, `report` prints.

mod block;
mod boot;
mod child;
mod common;
mod files;
mod http;
mod kbench;
mod linux;
mod llama;
mod load;
mod mcp_probe;
mod mcp_start;
mod net;
mod parse;
mod python;
mod report;
mod stats;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// NOA ARK OS benchmarks, side by side with their reference in one run.
///
/// Variants are interleaved run by run, so that drift on the host hits all of them alike; results
/// are medians with min and p90. Targets are printed as notes, never asserted: the exit status says
/// only whether the benchmark could run. Usually started by `cargo xtask bench <name>`.
#[derive(Debug, Parser)]
#[command(name = "noa-bench", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Boot time: our VMM vs QEMU microvm (KVM) on the same kernel, and the VMM's own memory.
    ///
    /// Interleaves, run by run: `VMM --cmdline noa.services=off --default-publish off IMAGE` (init's
    /// shell, no services; default machine: 2 vCPUs, 512 MiB), timing spawn -> the
    /// guest's `NOA-BOOT-OK cpus=N mem_mib=M` line on stdout and spawn -> process exit (status must be
    /// 0); `qemu-system-x86_64 -M microvm -accel kvm -m 512M -smp 2 ... -kernel KERNEL`, the same two
    /// times (status must be 1: isa-debug-exit's (0 << 1) | 1); and `VMM --verbose IMAGE`, whose log
    /// line "VMM own peak RSS N KiB" gives the VMM's peak RSS without guest memory. QEMU's `-cpu` is
    /// probed first (`host`, then `host,arch-capabilities=off`, then none). A run that does not print
    /// the boot line within the deadline is killed and fails the benchmark.
    Boot(BootArgs),

    /// Block I/O: sequential 1 MiB requests (reads also in 4 MiB ones) through the VMM's
    /// virtio-blk vs the host reading the same file.
    ///
    /// Makes a file of --mib MiB of random bytes in a temporary directory (once), warms the page
    /// cache with it, then interleaves, run by run: `VMM --snapshot --volume FILE:/bench --cmdline
    /// "noa.kbench=block_read noa.kbench.mib=N noa.kbench.disk=vdb" IMAGE` (the guest times its
    /// reads, first request to last completion, and prints `NOA-KBENCH name=block_read bytes=B
    /// ns=T`); the same with `block_write` (into the VMM's copy-on-write overlay); `block_write`
    /// without --snapshot on scratch copies of the file and the image (writes reach the file and
    /// are flushed); the host reading the file with `read_exact`, 1 MiB at a time; and the guest
    /// and host reads again in 4 MiB requests. Reports MiB/s and the guest/host read ratios.
    Block(BlockArgs),

    /// Network: TCP host -> guest through a port forward, our VMM's `--publish` vs QEMU's slirp
    /// `hostfwd`, the same kernel.
    ///
    /// Interleaves, run by run: `VMM --snapshot --publish 127.0.0.1:PORT:5001 --cmdline
    /// noa.kbench=tcp_sink IMAGE` and `qemu-system-x86_64 -M microvm,acpi=off ... -netdev
    /// user,id=n0,hostfwd=tcp:127.0.0.1:PORT-:5001 -device virtio-net-device,netdev=n0 -kernel
    /// KERNEL -append noa.kbench=tcp_sink`. The host waits for the guest's `NOA-KBENCH listening`
    /// line, connects (retrying for 5 s), sends --mib MiB in 64 KiB writes, half-closes, and waits
    /// for the guest's `NOA-KBENCH name=tcp_sink bytes=B ns=T` and exit (0 for the VMM, 1 for
    /// QEMU). Reports MiB/s from the host's view (connect -> exit) and the guest's (first byte ->
    /// last byte), and the vmm/QEMU ratio. Slow on PVM hosts: the guest's TCP stack runs in
    /// emulated ring 0.
    Net(NetArgs),

    /// The Linux ABI: one static program (bench/programs/linux_abi.c) in the guest and natively.
    ///
    /// Interleaves, run by run: `VMM --snapshot --timeout SECS IMAGE -- PROGRAM NAME N` and
    /// `PROGRAM NAME N` on the host (the same binary, --program) for NAME = getpid (raw getpid
    /// calls), forkexec (fork + exec of the program as a static hello + wait) and pingpong (a pipe
    /// round trip between two processes on one CPU: the guest runs it with --cpus 1); the program
    /// times its loop with clock_gettime and prints `NOA-LINUX name=NAME iters=N ns=T pinned=P`.
    /// Where `perf stat -e kvm:kvm_emulate_insn` works, two more guest getpid runs under it (N calls
    /// and 0 calls; the VMM process only) give the emulated ring-0 instructions per getpid;
    /// elsewhere that figure is reported as unavailable. Also times `VMM TRUE_IMAGE -- /bin/true`,
    /// spawn to exit. Reports µs per iteration and guest/native ratios.
    Linux(LinuxArgs),

    /// CPython start-up: Debian's python3.11 in the guest (guest.img) and natively, side by side.
    ///
    /// Interleaves, run by run: a driver (`python3 -c DRIVER`) that starts `python3 -c pass` and
    /// an import-heavy program (json, re, datetime, subprocess, sqlite3, zipfile, …) N+1 times
    /// each with subprocess.run and prints each start's time to exit (the first untimed), in the
    /// guest (`VMM --snapshot IMAGE -- /usr/bin/python3 -c DRIVER …`) and natively (--python);
    /// the whole `VMM --snapshot IMAGE -- /usr/bin/python3 -c pass` (and the imports), spawn to
    /// exit, next to `VMM --snapshot IMAGE -- /bin/true` and the native process; and, where
    /// `perf stat -e kvm:kvm_emulate_insn` works, the emulated ring-0 instructions of a cold
    /// `-c pass` run less a /bin/true run. Reports medians in ms and guest/native ratios.
    Python(PythonArgs),

    /// File systems: one static program (bench/programs/files.c) on the guest's ext2 and natively.
    ///
    /// Each round makes a fresh ext2 disk (mke2fs -t ext2) in a temporary directory, then
    /// interleaves `VMM --volume DISK:/bench BOOT -- PROGRAM /bench create=N append=N write=MIB`,
    /// the same program natively in a fresh directory beside the disk, and one more run of each
    /// with `read=MIB` (for the guest a fresh boot). BOOT is a private copy of --image (the VMM's
    /// --snapshot would cover the volume too). Reports µs per create, unlink and 4 KiB
    /// append + fsync, MiB/s of a file written in 1 MiB writes + fsync and read back, medians and
    /// guest/native ratios.
    Files(FilesArgs),

    /// HTTP: one small static server (bench/programs/http_server.c: epoll, keep-alive) natively,
    /// in our VMM behind --publish, and in QEMU microvm (our kernel, the same image) behind slirp.
    ///
    /// Interleaves, run by run: PROGRAM 0 127.0.0.1 on the host; `VMM --snapshot --cpus N
    /// --timeout T --publish 127.0.0.1:PORT:8000 IMAGE -- GUEST_PROGRAM 8000`; and
    /// `qemu-system-x86_64 -M microvm,acpi=off,auto-kernel-cmdline=off ... -netdev
    /// user,id=n0,hostfwd=tcp:127.0.0.1:PORT-:8000 ... -kernel KERNEL -append "<the image's
    /// /boot/cmdline> ip=... virtio_mmio.device=... -- GUEST_PROGRAM 8000"`. Each run waits for the
    /// server's `NOA-HTTP listening port=P` line, then the client (here, one thread) measures
    /// GET /small requests/s on --connections keep-alive connections for --seconds each, a
    /// --download-mib download (every byte checked) and a --upload-mib POST, then GET /quit and the
    /// exit. A variant that fails (e.g. a guest without sockets) is reported as failed with its
    /// output and left out of later rounds; the benchmark then exits non-zero after the table.
    Http(HttpArgs),

    /// llama.cpp tokens/s: prompt (pp) and generation (tg), noa-server's `bench` in the guest vs
    /// the same binary natively, with the same thread count.
    ///
    /// Interleaves, run by run and strictly one at a time: `VMM --snapshot --memory 1024 --cpus N
    /// --timeout T IMAGE -- /usr/bin/noa-server bench --model /storage/models/MODEL --threads N
    /// --prompt-tokens P --gen-tokens G --repetitions R` and `SERVER bench --model MODEL …` (the
    /// same binary, --server; the same model from the host's cache, --model). noa-server times
    /// one batch of P prompt tokens and G single-token decodes, R times after an untimed round,
    /// and prints one JSON line of medians (pp_tokens_per_s, tg_tokens_per_s, load_ms). Reports
    /// pp, tg and the model's load time for both, and guest/native ratios, with the host's load
    /// average: ggml's thread pool spins, so a busy host spoils the figures.
    Llama(LlamaArgs),

    /// MCP start-up: spawn -> the first MCP tools/list answered, our VMM in service mode vs
    /// noa-server natively.
    ///
    /// Interleaves, run by run: `VMM --snapshot --cpus N --publish 127.0.0.1:PORT:8080 IMAGE` (a
    /// free port; the explicit forward turns the default one off) and `SERVER serve --listen
    /// 127.0.0.1:PORT --model MODEL --workspace DIR --threads N`. From just before spawn, two
    /// probes side by side, each retried every --poll-ms: `POST /mcp` with a stateless
    /// (2026-07-28) tools/list, until a 200 whose result lists the `generate` tool, and `GET
    /// /health`, until its first 200 and then (every --ready-poll-ms, or ten times the last
    /// check's duration if longer) until the model is `"state":"ready"`. Then SIGTERM, timed to the exit, which must be status 0: an unclean
    /// stop is reported and makes the benchmark exit non-zero after its report.
    McpStart(McpStartArgs),
}

#[derive(Debug, clap::Args)]
struct LlamaArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest image with noa-server and the model (target/noa/guest.img).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// noa-server on the host: the same binary as in the image
    /// (target/noa-server/x86_64-unknown-linux-gnu/release/noa-server).
    #[arg(long, value_name = "FILE")]
    server: PathBuf,

    /// The model on the host: the same GGUF as in the image (the bundled model in the cache).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,

    /// noa-server in the guest.
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/noa-server")]
    guest_server: String,

    /// The model in the guest (default: /storage/models/ and --model's file name).
    #[arg(long, value_name = "PATH")]
    guest_model: Option<String>,

    /// llama.cpp threads, natively and in the guest, which gets as many vCPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,

    /// The guest's memory, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(256..))]
    memory: u32,

    /// Prompt tokens, decoded as one batch.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    prompt_tokens: u32,

    /// Generated tokens, one decode each.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    gen_tokens: u32,

    /// Timed repetitions inside each noa-server bench run (after its untimed one).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repetitions: u32,

    /// Measured runs of each variant (guest runs take tens of seconds: boot and model load).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Unmeasured runs of each variant before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The VMM's --timeout for each guest run, and (10 s later) the kill of any run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct McpStartArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest image whose init starts noa-server on port 8080 (target/noa/guest.img).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// noa-server on the host: the same binary as in the image.
    #[arg(long, value_name = "FILE")]
    server: PathBuf,

    /// The model the native server loads: the same GGUF as in the image.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,

    /// The guest's vCPUs, and the native server's llama.cpp threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    cpus: u32,

    /// Time between two attempts of a probe until the server answers, ms.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    poll_ms: u64,

    /// Time between two readiness checks once /health answers, ms (at least: also ten times the
    /// last check's duration).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    ready_poll_ms: u64,

    /// Measured runs of each variant.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Unmeasured runs of each variant before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Fail a run whose model is not ready SECS seconds after spawn.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,

    /// Kill a process still running SECS seconds after SIGTERM (an unclean stop; the VMM's own
    /// --stop-timeout is 10 s).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    stop_timeout: u64,
}

#[derive(Debug, clap::Args)]
struct BootArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest disk image the VMM boots (target/noa/guest.img).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// The kernel ELF QEMU boots with -kernel: the same kernel as the image's /boot/kernel
    /// (target/noa/kernel.elf).
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,

    /// Measured runs of each variant (at least 20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(20..=100_000))]
    runs: u32,

    /// Unmeasured runs of each variant before the measured ones.
    #[arg(long, default_value_t = 1)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The QEMU binary.
    #[arg(long, value_name = "FILE", default_value = "qemu-system-x86_64")]
    qemu: PathBuf,

    /// QEMU -cpu value ("none": no -cpu flag). Default: the first of host,
    /// host,arch-capabilities=off and none that boots.
    #[arg(long, value_name = "CPU")]
    qemu_cpu: Option<String>,

    /// Kill a run (and fail the benchmark) that has not exited after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct BlockArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest disk image the VMM boots (target/noa/guest.img).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// Size of the test file, and what each run reads or writes, in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    mib: u64,

    /// Measured runs of each variant.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Unmeasured runs of each variant before the measured ones.
    #[arg(long, default_value_t = 1)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Kill a run (and fail the benchmark) that has not exited after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct NetArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest disk image the VMM boots (target/noa/guest.img).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// The kernel ELF QEMU boots with -kernel: the same kernel as the image's /boot/kernel
    /// (target/noa/kernel.elf).
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,

    /// What each run sends, in MiB (small by default: about 0.3 MiB/s on PVM hosts).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    mib: u64,

    /// Measured runs of each variant.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Unmeasured runs of each variant before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The QEMU binary.
    #[arg(long, value_name = "FILE", default_value = "qemu-system-x86_64")]
    qemu: PathBuf,

    /// QEMU -cpu value ("none": no -cpu flag). `host` aborts QEMU 7.2 on PVM hosts.
    #[arg(long, value_name = "CPU", default_value = "host,arch-capabilities=off")]
    qemu_cpu: String,

    /// Kill a run (and fail the benchmark) that has not exited after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct LinuxArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest image holding the program at --guest-program (`cargo xtask bench linux` writes
    /// target/noa/bench-linux.img: guest.img plus the program).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// The image of the `VMM IMAGE -- /bin/true` runs (default: --image).
    #[arg(long, value_name = "FILE")]
    true_image: Option<PathBuf>,

    /// The program on the host: the same binary as --guest-program in the image (built with
    /// `gcc -O2 -static bench/programs/linux_abi.c`).
    #[arg(long, value_name = "FILE")]
    program: PathBuf,

    /// Where the program is in the guest.
    #[arg(long, value_name = "PATH", default_value = "/opt/noa-bench/linux_abi")]
    guest_program: String,

    /// The perf binary; if it or the kvm:kvm_emulate_insn event is missing, the emulated
    /// instruction count is reported as unavailable.
    #[arg(long, value_name = "FILE", default_value = "perf")]
    perf: PathBuf,

    /// getpid calls per run.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    getpid_iters: u64,

    /// fork + exec + wait rounds per run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    forkexec_iters: u64,

    /// Pipe round trips per run.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pingpong_iters: u64,

    /// Measured runs of each variant (guest runs are slow: about 1-8 s each on PVM hosts).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Measured `VMM TRUE_IMAGE -- /bin/true` runs, spread over the rounds.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    true_runs: u32,

    /// Unmeasured rounds before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The VMM's --timeout for each guest run, and (10 s later) the kill of any run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct PythonArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest image with python3 (target/noa/guest.img).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// The interpreter in the guest.
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/python3")]
    guest_python: String,

    /// The host's interpreter: the one the image carries.
    #[arg(long, value_name = "FILE", default_value = "/usr/bin/python3.11")]
    python: PathBuf,

    /// The perf binary; without it (or the kvm:kvm_emulate_insn event) the emulated instruction
    /// count is reported as unavailable.
    #[arg(long, value_name = "FILE", default_value = "perf")]
    perf: PathBuf,

    /// Measured rounds (guest runs are slow: seconds each on PVM hosts).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Timed starts of each program per driver run (after one untimed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    warm_starts: u64,

    /// Unmeasured rounds before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The VMM's --timeout for each guest run, and (10 s later) the kill of any run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct FilesArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest image holding the program at --guest-program (`cargo xtask bench files` writes
    /// target/noa/bench-files.img); the guest boots a private copy.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// The program on the host: the same binary as --guest-program in the image (built with
    /// `gcc -O2 -static bench/programs/files.c`).
    #[arg(long, value_name = "FILE")]
    program: PathBuf,

    /// Where the program is in the guest.
    #[arg(long, value_name = "PATH", default_value = "/opt/noa-bench/files")]
    guest_program: String,

    /// The mke2fs that makes each round's disk.
    #[arg(long, value_name = "FILE", default_value = "mke2fs")]
    mke2fs: PathBuf,

    /// Files created (then unlinked) per run; in the guest each costs more as the directory grows.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    creates: u64,

    /// 4 KiB appends, each followed by fsync, per run.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    appends: u64,

    /// Size of the file written and read back, in MiB (the guest moves about 1-2 MiB/s on PVM
    /// hosts: 64 takes about a minute and a half per round).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    mib: u64,

    /// Size of each round's ext2 disk, in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(8..=1_048_576))]
    disk_mib: u64,

    /// Measured rounds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Unmeasured rounds before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The VMM's --timeout for each guest run, and (10 s later) the kill of any run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct HttpArgs {
    /// The VMM binary (target/noa/vmm).
    #[arg(long, value_name = "FILE")]
    vmm: PathBuf,

    /// The guest image holding the server at --guest-program (`cargo xtask bench http` writes
    /// target/noa/bench-http.img); booted with --snapshot (QEMU: snapshot=on), never written.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// The kernel ELF QEMU boots with -kernel: the image's own /boot/kernel (target/noa/kernel.elf).
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,

    /// The server on the host: the same binary as --guest-program in the image (built with
    /// `gcc -O2 -static bench/programs/http_server.c`).
    #[arg(long, value_name = "FILE")]
    program: PathBuf,

    /// Where the server is in the guest.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/opt/noa-bench/http_server"
    )]
    guest_program: String,

    /// Which variants to run, in this order in the first round.
    #[arg(long, value_delimiter = ',', default_value = "native,vmm,qemu")]
    variants: Vec<http::Kind>,

    /// Keep-alive connection counts of the GET /small phases, one phase each.
    #[arg(long, value_delimiter = ',', default_value = "1,8",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: Vec<u16>,

    /// Length of each GET /small phase, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,

    /// Size of the download (GET /bytes?n=N), in MiB; 0 skips it. Small by default: guests move
    /// about 0.1-0.3 MiB/s on PVM hosts (64 MiB would take minutes per run); use 64 on VT-x.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    download_mib: u64,

    /// Size of the upload (POST /upload), in MiB; 0 skips it (small by default, as the download).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    upload_mib: u64,

    /// The VMM's --cpus (QEMU's microvm with acpi=off gives the guest 1).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    vmm_cpus: u32,

    /// Measured runs of each variant.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,

    /// Unmeasured runs of each variant before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u32,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The QEMU binary.
    #[arg(long, value_name = "FILE", default_value = "qemu-system-x86_64")]
    qemu: PathBuf,

    /// QEMU -cpu value ("none": no -cpu flag). `host` aborts QEMU 7.2 on PVM hosts.
    #[arg(long, value_name = "CPU", default_value = "host,arch-capabilities=off")]
    qemu_cpu: String,

    /// The debugfs that reads the image's /boot/cmdline for QEMU's kernel command line.
    #[arg(long, value_name = "FILE", default_value = "debugfs")]
    debugfs: PathBuf,

    /// Kill a run (and fail its variant) that has not ended after SECS seconds; also the VMM's
    /// --timeout (the kill then comes 10 s later).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message carries the command line and the child's stderr; a backtrace of the
            // benchmark itself would only bury it.
            eprintln!("noa-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a benchmark's table and writes its JSON file when asked.
fn finish<T: serde::Serialize>(result: &T, table: String, json: Option<&Path>) -> Result<()> {
    print!("{table}");
    if let Some(path) = json {
        report::write_json(result, path)?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.bench {
        Bench::Boot(args) => {
            let config = boot::Config {
                vmm: args.vmm,
                image: args.image,
                kernel: args.kernel,
                qemu: args.qemu,
                qemu_cpu: args.qemu_cpu,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = boot::run(&config)?;
            finish(&result, report::boot_table(&result), args.json.as_deref())
        }
        Bench::Block(args) => {
            let config = block::Config {
                vmm: args.vmm,
                image: args.image,
                mib: args.mib,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = block::run(&config)?;
            finish(&result, report::block_table(&result), args.json.as_deref())
        }
        Bench::Net(args) => {
            let config = net::Config {
                vmm: args.vmm,
                image: args.image,
                kernel: args.kernel,
                qemu: args.qemu,
                qemu_cpu: Some(args.qemu_cpu).filter(|c| c != "none"),
                mib: args.mib,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = net::run(&config)?;
            finish(&result, report::net_table(&result), args.json.as_deref())
        }
        Bench::Linux(args) => {
            let config = linux::Config {
                true_image: args.true_image.unwrap_or_else(|| args.image.clone()),
                vmm: args.vmm,
                image: args.image,
                program: args.program,
                guest_program: args.guest_program,
                perf: args.perf,
                getpid_iters: args.getpid_iters,
                forkexec_iters: args.forkexec_iters,
                pingpong_iters: args.pingpong_iters,
                runs: args.runs as usize,
                true_runs: args.true_runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = linux::run(&config)?;
            finish(&result, report::linux_table(&result), args.json.as_deref())
        }
        Bench::Python(args) => {
            let config = python::Config {
                vmm: args.vmm,
                image: args.image,
                guest_python: args.guest_python,
                python: args.python,
                perf: args.perf,
                runs: args.runs as usize,
                warm_starts: args.warm_starts,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = python::run(&config)?;
            finish(&result, report::python_table(&result), args.json.as_deref())
        }
        Bench::Files(args) => {
            if args.mib * 2 > args.disk_mib {
                anyhow::bail!(
                    "--disk-mib {} is too small for a {} MiB file: give at least twice its size",
                    args.disk_mib,
                    args.mib
                );
            }
            let config = files::Config {
                vmm: args.vmm,
                image: args.image,
                program: args.program,
                guest_program: args.guest_program,
                mke2fs: args.mke2fs,
                creates: args.creates,
                appends: args.appends,
                mib: args.mib,
                disk_mib: args.disk_mib,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = files::run(&config)?;
            finish(&result, report::files_table(&result), args.json.as_deref())
        }
        Bench::Http(args) => {
            anyhow::ensure!(
                args.seconds > 0.0 && args.seconds <= 3600.0,
                "--seconds must be above 0 and at most 3600"
            );
            let config = http::Config {
                vmm: args.vmm,
                image: args.image,
                kernel: args.kernel,
                program: args.program,
                guest_program: args.guest_program,
                qemu: args.qemu,
                qemu_cpu: Some(args.qemu_cpu).filter(|c| c != "none"),
                debugfs: args.debugfs,
                vmm_cpus: args.vmm_cpus,
                variants: args.variants,
                connections: args.connections.iter().map(|&k| usize::from(k)).collect(),
                seconds: args.seconds,
                download_mib: args.download_mib,
                upload_mib: args.upload_mib,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = http::run(&config)?;
            finish(
                &result,
                http::table::http_table(&result),
                args.json.as_deref(),
            )?;
            let failed = http::failures(&result);
            anyhow::ensure!(
                failed.is_empty(),
                "{} variant(s) failed (see FAILED above; the JSON has their output):\n{}",
                failed.len(),
                failed.join("\n")
            );
            Ok(())
        }
        Bench::Llama(args) => {
            let guest_model = match args.guest_model {
                Some(path) => path,
                None => {
                    let name = args.model.file_name().context("--model has no file name")?;
                    format!("/storage/models/{}", name.to_string_lossy())
                }
            };
            let config = llama::Config {
                vmm: args.vmm,
                image: args.image,
                guest_server: args.guest_server,
                guest_model,
                server: args.server,
                model: args.model,
                threads: args.threads,
                memory_mib: args.memory,
                prompt_tokens: args.prompt_tokens,
                gen_tokens: args.gen_tokens,
                repetitions: args.repetitions,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                deadline: Duration::from_secs(args.timeout),
            };
            let result = llama::run(&config)?;
            finish(&result, llama::table(&result), args.json.as_deref())
        }
        Bench::McpStart(args) => {
            let config = mcp_start::Config {
                vmm: args.vmm,
                image: args.image,
                server: args.server,
                model: args.model,
                cpus: args.cpus,
                runs: args.runs as usize,
                warmup: args.warmup as usize,
                poll: Duration::from_millis(args.poll_ms),
                ready_poll: Duration::from_millis(args.ready_poll_ms),
                deadline: Duration::from_secs(args.timeout),
                stop_deadline: Duration::from_secs(args.stop_timeout),
            };
            let result = mcp_start::run(&config)?;
            finish(&result, mcp_start::table(&result), args.json.as_deref())?;
            anyhow::ensure!(
                result.unclean_stops.is_empty(),
                "{} stop(s) after SIGTERM were not clean (exit status 0):\n{}",
                result.unclean_stops.len(),
                result.unclean_stops.join("\n")
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn boot_defaults_and_minimum_runs() {
        let cli = Cli::try_parse_from([
            "noa-bench",
            "boot",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
        ])
        .unwrap();
        let Bench::Boot(args) = cli.bench else {
            panic!("not boot")
        };
        assert_eq!((args.runs, args.warmup, args.timeout), (20, 1, 10));
        assert!(args.json.is_none());
        let few = [
            "noa-bench",
            "boot",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
            "--runs",
            "5",
        ];
        assert!(Cli::try_parse_from(few).is_err());
    }

    #[test]
    fn block_and_net_defaults() {
        let cli =
            Cli::try_parse_from(["noa-bench", "block", "--vmm", "v", "--image", "i"]).unwrap();
        let Bench::Block(args) = cli.bench else {
            panic!("not block")
        };
        assert_eq!((args.mib, args.runs, args.warmup), (256, 5, 1));
        let cli = Cli::try_parse_from([
            "noa-bench",
            "net",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
            "--mib",
            "2",
        ])
        .unwrap();
        let Bench::Net(args) = cli.bench else {
            panic!("not net")
        };
        assert_eq!(
            (args.mib, args.runs, args.warmup, args.timeout),
            (2, 3, 0, 120)
        );
        assert_eq!(args.qemu_cpu, "host,arch-capabilities=off");
        assert!(
            Cli::try_parse_from([
                "noa-bench",
                "block",
                "--vmm",
                "v",
                "--image",
                "i",
                "--mib",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn linux_defaults() {
        let cli = Cli::try_parse_from([
            "noa-bench",
            "linux",
            "--vmm",
            "v",
            "--image",
            "i",
            "--program",
            "p",
        ])
        .unwrap();
        let Bench::Linux(args) = cli.bench else {
            panic!("not linux")
        };
        assert_eq!(
            (
                args.getpid_iters,
                args.forkexec_iters,
                args.pingpong_iters,
                args.runs,
                args.true_runs,
                args.warmup
            ),
            (2000, 10, 200, 3, 9, 0)
        );
        assert_eq!(args.guest_program, "/opt/noa-bench/linux_abi");
        assert!(args.true_image.is_none());
        assert!(
            Cli::try_parse_from([
                "noa-bench",
                "linux",
                "--vmm",
                "v",
                "--image",
                "i",
                "--program",
                "p",
                "--getpid-iters",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn http_defaults() {
        let cli = Cli::try_parse_from([
            "noa-bench",
            "http",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
            "--program",
            "p",
        ])
        .unwrap();
        let Bench::Http(args) = cli.bench else {
            panic!("not http")
        };
        assert_eq!(
            args.variants,
            [http::Kind::Native, http::Kind::Vmm, http::Kind::Qemu]
        );
        assert_eq!(args.connections, [1, 8]);
        assert_eq!(
            (args.download_mib, args.upload_mib, args.runs, args.vmm_cpus),
            (4, 4, 3, 2)
        );
        let cli = Cli::try_parse_from([
            "noa-bench",
            "http",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
            "--program",
            "p",
            "--variants",
            "native,qemu",
            "--connections",
            "2,16,4",
        ])
        .unwrap();
        let Bench::Http(args) = cli.bench else {
            panic!("not http")
        };
        assert_eq!(args.variants, [http::Kind::Native, http::Kind::Qemu]);
        assert_eq!(args.connections, [2, 16, 4]);
        let zero = [
            "noa-bench",
            "http",
            "--vmm",
            "v",
            "--image",
            "i",
            "--kernel",
            "k",
            "--program",
            "p",
            "--connections",
            "0",
        ];
        assert!(Cli::try_parse_from(zero).is_err());
    }

    #[test]
    fn files_defaults() {
        let cli = Cli::try_parse_from([
            "noa-bench",
            "files",
            "--vmm",
            "v",
            "--image",
            "i",
            "--program",
            "p",
        ])
        .unwrap();
        let Bench::Files(args) = cli.bench else {
            panic!("not files")
        };
        assert_eq!(
            (
                args.creates,
                args.appends,
                args.mib,
                args.disk_mib,
                args.runs
            ),
            (100, 50, 16, 256, 3)
        );
        assert_eq!(args.guest_program, "/opt/noa-bench/files");
        let zero = [
            "noa-bench",
            "files",
            "--vmm",
            "v",
            "--image",
            "i",
            "--program",
            "p",
            "--mib",
            "0",
        ];
        assert!(Cli::try_parse_from(zero).is_err());
    }

    #[test]
    fn llama_and_mcp_start_defaults() {
        let cli = Cli::try_parse_from([
            "noa-bench",
            "llama",
            "--vmm",
            "v",
            "--image",
            "i",
            "--server",
            "s",
            "--model",
            "/cache/m.gguf",
        ])
        .unwrap();
        let Bench::Llama(args) = cli.bench else {
            panic!("not llama")
        };
        assert_eq!(
            (
                args.threads,
                args.memory,
                args.prompt_tokens,
                args.gen_tokens,
                args.repetitions,
                args.runs
            ),
            (2, 1024, 128, 32, 3, 3)
        );
        assert_eq!(args.guest_server, "/usr/bin/noa-server");
        assert!(args.guest_model.is_none());
        let cli = Cli::try_parse_from([
            "noa-bench",
            "mcp-start",
            "--vmm",
            "v",
            "--image",
            "i",
            "--server",
            "s",
            "--model",
            "m",
        ])
        .unwrap();
        let Bench::McpStart(args) = cli.bench else {
            panic!("not mcp-start")
        };
        assert_eq!(
            (
                args.cpus,
                args.poll_ms,
                args.ready_poll_ms,
                args.runs,
                args.stop_timeout
            ),
            (2, 2, 20, 3, 30)
        );
        let zero = [
            "noa-bench",
            "llama",
            "--vmm",
            "v",
            "--image",
            "i",
            "--server",
            "s",
            "--model",
            "m",
            "--threads",
            "0",
        ];
        assert!(Cli::try_parse_from(zero).is_err());
    }
}
