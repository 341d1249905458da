//! `vmm`: boots a NOA ARK OS disk image on Linux/KVM. See README.md for the CLI and exit codes.
//!
//! `main` reads the image, checks what the user asked for, builds the VM and runs it; every way
//! the run can end becomes one exit code (see [`exit`]).
//!
//! Runner mode (`vmm IMAGE -- CMD ARGS…`) differs in two places only: the command goes to the
//! guest on the kernel command line ([`command`]), and the kernel's log (the serial console) stays
//! off stdout — which then carries nothing but the guest's console 0 — unless `--verbose` sends it
//! to stderr; a failed run shows its tail on stderr.
//!
//! Service mode (no `--`) adds the default port forward and a banner of the guest's endpoints on
//! stderr ([`service`]); either mode gets the access token when the network reaches beyond the
//! host's loopback. SIGINT/SIGTERM ask the guest to shut down ([`vmm::stop`]).

use vmm::{boot, cli, command, devices, exit, image, kvm, memory, service, vm};

use anyhow::Context;
use clap::Parser;
use exit::{Failure, InternalContext, UsageContext};
use std::io::Write;

/// Largest kernel ELF we read from an image.
const MAX_KERNEL_BYTES: u64 = 64 << 20;

fn main() {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    let code = match run(&cli) {
        Ok(code) => i32::from(code),
        Err(failure) => {
            let _ = std::io::stdout().flush();
            eprintln!("vmm: {failure}");
            failure.exit_code()
        }
    };
    if cli.verbose {
        report_memory_use();
    }
    // Exiting tears down the VM and the vCPU threads still in KVM_RUN.
    std::process::exit(code);
}

fn init_logging(verbose: bool) {
    let filter = if verbose {
        tracing_subscriber::EnvFilter::new("vmm=debug")
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "vmm=warn".into())
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn run(cli: &cli::Cli) -> Result<u8, Failure> {
    use devices::serial::LogTo;
    let (kernel, kernel_name, cmdline) = read_image(cli).usage()?;
    let runner = !cli.command.is_empty();
    let command_words = runner
        .then(|| command::cmdline_words(&cmdline, &cli.command))
        .transpose()
        .usage()?;
    let log_to = match (runner, cli.verbose) {
        (false, _) => LogTo::Stdout,
        (true, true) => LogTo::Stderr,
        (true, false) => LogTo::Nowhere,
    };
    let mem_bytes = cli.memory << 20;
    boot::kernel::check(&kernel, &kernel_name, boot::low_ram_end(mem_bytes)).usage()?;

    let hypervisor = kvm::Hypervisor::open().usage()?;
    hypervisor.check_vcpus(cli.cpus).usage()?;
    let mem = memory::create(mem_bytes).internal()?;
    let vm = hypervisor.create_vm(&mem).internal()?;
    let mut cmdline = cmdline;
    let disks = open_disks(cli).usage()?;
    for volume in &cli.volume {
        cmdline.push_str(&volume_word(volume));
    }
    let default_forward =
        service::default_forward(runner, &cli.net, &cli.publish, cli.default_publish);
    let net = open_network(cli, default_forward).usage()?;
    let published: Vec<_> = net
        .iter()
        .flat_map(|net| net.published().iter().copied())
        .collect();
    let token = service::needs_token(&cli.net, &published)
        .then(service::generate_token)
        .transpose()
        .context("cannot read /dev/urandom for the access token")
        .internal()?;
    let has_ip_word = cmdline.split(' ').any(|word| word.starts_with("ip="));
    if matches!(cli.net, devices::virtio::net::NetArg::User) {
        if !has_ip_word {
            cmdline.push_str(&usernet_ip_word());
        }
        cmdline.push_str(&devices::virtio::net::frame::user_network_words());
    }
    let vsock = cli
        .vsock
        .as_ref()
        .map(|v| devices::virtio::vsock::Vsock::new(v.cid, &v.uds))
        .transpose()
        .usage()?;
    let mmio = attach_devices(&vm, &mem, disks, net, vsock, &mut cmdline).internal()?;
    let requests = devices::pvport::requests::HostRequests::attach(&vm).internal()?;
    cmdline.push(' ');
    cmdline.push_str(&devices::pvport::requests::HostRequests::cmdline_word());
    if let Some(token) = &token {
        cmdline.push_str(&format!(" {}={token}", service::TOKEN_WORD));
    }
    if let Some(words) = command_words {
        // Last: the guest takes everything after `--` for the command.
        if !cmdline.is_empty() {
            cmdline.push(' ');
        }
        cmdline.push_str(&words);
        if cmdline.len() >= boot::layout::CMDLINE_MAX {
            return Err(Failure::Usage(anyhow::anyhow!(
                "the command is too long: with it the kernel command line is {} bytes, and the \
                 boot protocol allows {}",
                cmdline.len(),
                boot::layout::CMDLINE_MAX - 1
            )));
        }
    }
    let boot = boot::setup(&mem, mem_bytes, &kernel, &kernel_name, &cmdline, cli.cpus).usage()?;
    tracing::debug!(
        "kernel {kernel_name}: PVH entry {:#x}; cmdline {cmdline:?}",
        boot.entry.0
    );

    let cpuid = hypervisor.supported_cpuid().internal()?;
    let mut vcpus = Vec::with_capacity(cli.cpus as usize);
    for id in 0..cli.cpus {
        vcpus.push(kvm::create_vcpu(&vm, id, &cpuid).internal()?);
    }
    kvm::regs::set_pvh_entry(&vcpus[0], boot.entry.0, boot.start_info.0).internal()?;
    let machine = vm::Vm::new(&vm, mem, mem_bytes, mmio, requests, vcpus, log_to).internal()?;
    for line in service::banner(!runner, &published, token.as_deref()) {
        eprintln!("vmm: {line}");
    }
    let stop = vm::StopPolicy {
        grace: cli.stop_timeout,
        announce: !runner,
    };
    machine.run(cli.timeout, stop)
}

/// The image as /dev/vda (read-write and locked, or a private overlay with `--snapshot`), then
/// each `--volume` in order. Opening them early makes a busy or unwritable disk a usage error.
fn open_disks(cli: &cli::Cli) -> anyhow::Result<Vec<devices::virtio::block::Block>> {
    use devices::virtio::block::Block;
    // The guest routes at most 16 virtio devices (hal-pv's MAX_DEVICES): the image, entropy, two
    // consoles, the network card and vsock leave 10.
    const MAX_VOLUMES: usize = 10;
    if cli.volume.len() > MAX_VOLUMES {
        anyhow::bail!(
            "--volume given {} times; at most {MAX_VOLUMES} disks besides the image",
            cli.volume.len()
        );
    }
    let mut disks = vec![Block::open(&cli.image, false, cli.snapshot)?.with_serial("noa-vda")];
    for (index, volume) in cli.volume.iter().enumerate() {
        let name = format!("noa-vd{}", (b'b' + index as u8) as char);
        let disk = Block::open(&volume.file, volume.read_only, cli.snapshot).context("--volume")?;
        disks.push(disk.with_serial(&name));
    }
    Ok(disks)
}

/// The kernel command-line word telling the guest where to mount a `--volume` disk (the disks
/// after the image, in order): ` noa.volume=rw,PATH` or `ro,PATH`, the path percent-encoded as
/// the command's arguments are (docs/boot-protocol.md).
fn volume_word(volume: &cli::Volume) -> String {
    let mut word = String::from(if volume.read_only {
        " noa.volume=ro,"
    } else {
        " noa.volume=rw,"
    });
    command::encode_arg(volume.guest_path.as_bytes(), &mut word);
    word
}

/// The guest's address on the user network, as Linux's `ip=` parameter
/// (`CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF`): the guest needs no DHCP round
/// trip at boot. Not added when the image's or the user's command line has an `ip=` already.
fn usernet_ip_word() -> String {
    use devices::virtio::net::usernet::{GATEWAY, GUEST, NETMASK};
    format!(" ip={GUEST}::{GATEWAY}:{NETMASK}::eth0:off")
}

/// The network device of `--net` and `--publish` (None for `--net none`). Built before boot, so
/// that a busy `--publish` port or a tap that cannot be opened is a usage error. The default
/// forward (`service::default_forward`) is the exception: if it cannot listen, a warning says so
/// and the guest boots without it.
fn open_network(
    cli: &cli::Cli,
    default_forward: Option<devices::virtio::net::Publish>,
) -> anyhow::Result<Option<devices::virtio::net::Net>> {
    use devices::virtio::net::{DEFAULT_MAC, Net, NetError};
    let mode = |publish: Vec<_>| {
        cli.net
            .clone()
            .into_mode(publish)
            .map_err(anyhow::Error::msg)
    };
    let Some(with_default) = mode(cli.publish.iter().copied().chain(default_forward).collect())?
    else {
        return Ok(None);
    };
    let net = match Net::new(with_default, DEFAULT_MAC) {
        Err(NetError::Publish { publish, source }) if Some(publish) == default_forward => {
            eprintln!(
                "vmm: {}",
                service::default_forward_unavailable(&publish, &source)
            );
            match mode(cli.publish.clone())? {
                Some(without) => Net::new(without, DEFAULT_MAC)?,
                None => return Ok(None),
            }
        }
        other => other?,
    };
    for (publish, addr) in net.published() {
        tracing::debug!("--publish {publish}: listening on {addr}");
    }
    Ok(Some(net))
}

/// The paravirtual devices, each announced on the kernel command line, in this order (the guest
/// finds them by address, so the order is the contract of docs/devices.md): the disks first (so
/// they get the lowest addresses, in order: vda, vdb, …), then entropy, console 0 (the guest's
/// hvc0: stdin and stdout), console 1 (hvc1: stderr, no input), the network card and vsock.
fn attach_devices(
    vm: &kvm_ioctls::VmFd,
    mem: &vm_memory::GuestMemoryMmap,
    disks: Vec<devices::virtio::block::Block>,
    net: Option<devices::virtio::net::Net>,
    vsock: Option<devices::virtio::vsock::Vsock>,
    cmdline: &mut String,
) -> anyhow::Result<devices::mmio_bus::MmioBus> {
    use devices::virtio::console::Console;
    use devices::virtio::rng::Rng;
    let mut bus = devices::mmio_bus::MmioBus::default();
    for disk in disks {
        bus.attach(vm, mem, Box::new(disk), "virtio-blk", cmdline)?;
    }
    bus.attach(vm, mem, Box::new(Rng::new()), "virtio-rng", cmdline)?;
    let console0 = Console::new(host_output(StdStream::Stdout), host_input());
    bus.attach(vm, mem, Box::new(console0), "virtio-console", cmdline)?;
    let console1 = Console::new(host_output(StdStream::Stderr), None);
    bus.attach(vm, mem, Box::new(console1), "virtio-console", cmdline)?;
    if let Some(net) = net {
        bus.attach(vm, mem, Box::new(net), "virtio-net", cmdline)?;
    }
    if let Some(vsock) = vsock {
        bus.attach(vm, mem, Box::new(vsock), "virtio-vsock", cmdline)?;
    }
    Ok(bus)
}

#[derive(Clone, Copy, Debug)]
enum StdStream {
    Stdout,
    Stderr,
}

/// Where a console's output goes: a duplicate of the VMM's stdout or stderr, written without a
/// buffer of ours (every write is a write(2); the console flushes per chain anyway), so that the
/// guest's bytes reach the fd exactly and in order. A stream the VMM lacks (closed by the caller)
/// swallows the output.
fn host_output(stream: StdStream) -> Box<dyn std::io::Write + Send> {
    use std::os::fd::AsFd;
    let fd = match stream {
        StdStream::Stdout => std::io::stdout().as_fd().try_clone_to_owned(),
        StdStream::Stderr => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    match fd {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(e) => {
            tracing::warn!(
                "cannot duplicate the VMM's {stream:?}, the guest's output to it is lost: {e}"
            );
            Box::new(std::io::sink())
        }
    }
}

/// Console 0's input: a duplicate of the VMM's stdin (the console owns its copy). A stdin the
/// caller closed reads as /dev/null would — the guest sees its end at once — rather than never
/// ending.
fn host_input() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::debug!("no stdin ({e}); console 0 reads /dev/null");
            match std::fs::File::open("/dev/null") {
                Ok(null) => Some(null.into()),
                Err(e) => {
                    tracing::warn!("cannot open /dev/null; the guest gets no input: {e}");
                    None
                }
            }
        }
    }
}

/// The kernel (bytes and a name for errors) and the full command line.
fn read_image(cli: &cli::Cli) -> anyhow::Result<(Vec<u8>, String, String)> {
    let image = image::ext2::Ext2Image::open(&cli.image)?;
    let (kernel, name) = match &cli.kernel {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read --kernel {}", path.display()))?;
            (bytes, path.display().to_string())
        }
        None => (
            image.read_file("/boot/kernel", MAX_KERNEL_BYTES)?,
            format!("{}:/boot/kernel", cli.image.display()),
        ),
    };
    let mut cmdline = match image.read_file("/boot/cmdline", boot::layout::CMDLINE_MAX as u64) {
        Ok(bytes) => String::from_utf8(bytes)
            .with_context(|| format!("{}:/boot/cmdline is not UTF-8", cli.image.display()))?
            .trim()
            .to_string(),
        Err(image::ext2::ImageError::NotFound { .. }) => String::new(),
        Err(e) => return Err(e.into()),
    };
    if let Some(extra) = &cli.cmdline {
        if !cmdline.is_empty() {
            cmdline.push(' ');
        }
        cmdline.push_str(extra.trim());
    }
    Ok((kernel, name, cmdline))
}

/// Logs the VMM's peak RSS with guest memory left out (for `cargo xtask bench boot`).
fn report_memory_use() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    let guest_kib = memory::guest_resident_kib();
    if let (Some(peak), Some(guest)) = (peak_kib, guest_kib) {
        tracing::info!(
            "peak RSS {peak} KiB, guest memory resident {guest} KiB, VMM own peak RSS {} KiB",
            peak.saturating_sub(guest)
        );
    }
}
