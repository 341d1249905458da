//! One virtual machine: its memory, devices and vCPU threads, and the run that ends with the
//! guest's exit code or a [`Failure`].
//!
//! Every vCPU runs on its own thread. The boot vCPU starts at the PVH entry; the others wait until
//! the guest asks for them on the start port, then start in 64-bit mode. The first vCPU that sees
//! the end of the run (power-off, crash, internal error) reports it; the main thread waits for
//! that report or the timeout, and the process exits — which also tears the VM down.
//!
//! SIGINT and SIGTERM reach the main thread as events too (`signals`): the first asks the guest
//! to shut down (a host request on its own line, `pvport::requests`), and the guest's power-off
//! ends the run as usual; past the grace period, or on a second signal, the run ends without it
//! (`stop` decides which).
//!
//! When the kernel's log was shown nowhere as it came (runner mode without `--verbose`), a failed
//! run (crash, timeout, internal error) shows its tail on stderr before the VMM's own line.

use crate::devices::mmio_bus::MmioBus;
use crate::devices::pvport::requests::{self, HostRequests};
use crate::devices::pvport::{self, PowerOff, copy};
use crate::devices::serial::{COM1_GSI, COM1_PORTS, LogTo, SerialConsole};
use crate::exit::Failure;
use crate::kvm::regs::{self, ApStart};
use crate::signals::{self, Signal};
use crate::stop::{Step, Stopping};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// How a run ends.
pub type Outcome = Result<u8, Failure>;

/// What the main thread waits for.
enum Event {
    /// A vCPU saw the end of the run.
    Ended(Outcome),
    /// The VMM got SIGINT or SIGTERM.
    Signal(Signal),
}

/// How a run ends on SIGINT/SIGTERM (see `stop.rs`).
#[derive(Debug, Clone, Copy)]
pub struct StopPolicy {
    /// How long the guest may take to power off once asked (`--stop-timeout`).
    pub grace: Duration,
    /// Say on stderr that the guest was asked to shut down (service mode: a person is watching;
    /// in runner mode stderr is the command's).
    pub announce: bool,
}

/// What vCPU threads share.
struct Shared {
    mem: GuestMemoryMmap,
    mem_bytes: u64,
    serial: SerialConsole,
    mmio: MmioBus,
    /// Requests to the guest (shutdown), read on `requests::REQUEST_PORT`.
    requests: HostRequests,
    /// Per vCPU: the channel that starts it, until it is used.
    ap_start: Vec<Mutex<Option<Sender<ApStart>>>>,
    events: Mutex<Sender<Event>>,
}

impl Shared {
    fn finish(&self, outcome: Outcome) {
        self.send(Event::Ended(outcome));
    }

    fn send(&self, event: Event) {
        if let Ok(sender) = self.events.lock() {
            let _ = sender.send(event);
        }
    }
}

/// A configured VM, ready to run.
pub struct Vm {
    shared: Arc<Shared>,
    vcpus: Vec<VcpuFd>,
    ap_receivers: Vec<Option<Receiver<ApStart>>>,
    events: Receiver<Event>,
    log_to: LogTo,
}

impl Vm {
    /// Wires devices and vCPUs, and takes over SIGINT/SIGTERM. `vcpus[0]` must already be at the
    /// kernel's entry. The kernel's log (the serial console) goes to `log_to`.
    pub fn new(
        vm: &kvm_ioctls::VmFd,
        mem: GuestMemoryMmap,
        mem_bytes: u64,
        mmio: MmioBus,
        requests: HostRequests,
        vcpus: Vec<VcpuFd>,
        log_to: LogTo,
    ) -> anyhow::Result<Vm> {
        use anyhow::Context;
        let serial_irq = EventFd::new(libc::EFD_NONBLOCK).context("eventfd for the serial IRQ")?;
        vm.register_irqfd(&serial_irq, COM1_GSI)
            .context("KVM_IRQFD for the serial IRQ")?;
        let (events_tx, events_rx) = mpsc::channel();
        let (mut senders, mut receivers) = (Vec::new(), Vec::new());
        for index in 0..vcpus.len() {
            if index == 0 {
                senders.push(Mutex::new(None));
                receivers.push(None);
            } else {
                let (tx, rx) = mpsc::channel();
                senders.push(Mutex::new(Some(tx)));
                receivers.push(Some(rx));
            }
        }
        let shared = Arc::new(Shared {
            mem,
            mem_bytes,
            serial: SerialConsole::new(serial_irq, log_to),
            mmio,
            requests,
            ap_start: senders,
            events: Mutex::new(events_tx),
        });
        // From here on SIGINT/SIGTERM are events of the run, however early they come.
        let signalled = Arc::clone(&shared);
        signals::forward(move |signal| signalled.send(Event::Signal(signal)))?;
        Ok(Vm {
            shared,
            vcpus,
            ap_receivers: receivers,
            events: events_rx,
            log_to,
        })
    }

    /// Runs the guest until it ends, `timeout` passes, or a signal ends it (`stop`).
    pub fn run(self, timeout: Option<Duration>, stop: StopPolicy) -> Outcome {
        for (index, (vcpu, start)) in self.vcpus.into_iter().zip(self.ap_receivers).enumerate() {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn(move || vcpu_thread(index as u32, vcpu, start, &shared));
            if let Err(e) = spawned {
                return Err(Failure::Internal(anyhow::anyhow!(
                    "cannot start the thread of vCPU {index}: {e}"
                )));
            }
        }
        let outcome = wait(&self.events, &self.shared, timeout, stop);
        self.shared.serial.flush();
        // A stop the user asked for is no failure of the guest: no kernel log for it.
        let failed = matches!(outcome, Err(ref f) if !matches!(f, Failure::Stopped { .. }));
        if failed && self.log_to == LogTo::Nowhere {
            show_kernel_log(&self.shared.serial.tail_bytes());
        }
        match outcome {
            Err(Failure::GuestCrash(how)) => Err(Failure::GuestCrash(crash_text(
                &how,
                &self.shared.serial.tail(),
            ))),
            other => other,
        }
    }
}

/// The main thread's wait for the end: the guest's, `timeout`'s, or a signal's.
fn wait(
    events: &Receiver<Event>,
    shared: &Shared,
    timeout: Option<Duration>,
    stop: StopPolicy,
) -> Outcome {
    let timeout_at = timeout.map(|limit| (Instant::now() + limit, limit));
    let mut stopping = Stopping::new(stop.grace);
    loop {
        let deadline = [timeout_at.map(|(at, _)| at), stopping.deadline()]
            .into_iter()
            .flatten()
            .min();
        let event = match deadline {
            Some(at) => events.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(Event::Ended(outcome)) => return outcome,
            Ok(Event::Signal(signal)) => match stopping.on_signal(signal, Instant::now()) {
                Step::AskGuest => {
                    tracing::info!("{signal}: asking the guest to shut down");
                    if stop.announce {
                        eprintln!(
                            "vmm: {signal}: asking the guest to shut down (up to {}s; \
                                 send it again to stop the guest at once)",
                            stop.grace.as_secs_f64()
                        );
                    }
                    shared.requests.raise(requests::SHUTDOWN);
                }
                Step::StopNow(failure) => return Err(failure),
            },
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if let Some(failure) = stopping.grace_over(now) {
                    return Err(failure);
                }
                if let Some((at, limit)) = timeout_at
                    && now >= at
                {
                    return Err(Failure::Timeout(limit));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Failure::Internal(anyhow::anyhow!(
                    "every vCPU thread ended without a result"
                )));
            }
        }
    }
}

/// Writes the kernel's log tail to stderr, between marker lines (the VMM's own line follows).
fn show_kernel_log(tail: &[u8]) {
    use crate::devices::serial::TAIL_BYTES;
    use std::io::Write;
    let what = if tail.len() >= TAIL_BYTES {
        format!("last {} KiB of the ", TAIL_BYTES / 1024)
    } else {
        String::new()
    };
    let newline: &[u8] = if tail.ends_with(b"\n") || tail.is_empty() {
        b""
    } else {
        b"\n"
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "--- {what}kernel log (serial console) ---")
        .and_then(|_| stderr.write_all(tail))
        .and_then(|_| stderr.write_all(newline))
        .and_then(|_| stderr.write_all(b"--- end of kernel log ---\n"));
}

/// The crash description plus the kernel's own report, if the console shows one.
fn crash_text(how: &str, console_tail: &str) -> String {
    let report = ["KERNEL PANIC", "CPU EXCEPTION"]
        .iter()
        .filter_map(|marker| console_tail.rfind(marker))
        .max()
        .map(|at| console_tail[at..].trim_end());
    match report {
        Some(report) => format!("{how}\n{report}"),
        None => how.to_string(),
    }
}

fn vcpu_thread(index: u32, mut vcpu: VcpuFd, start: Option<Receiver<ApStart>>, shared: &Shared) {
    if let Some(start) = start {
        // Wait for the guest to ask for this CPU; a closed channel means the run is over.
        let Ok(request) = start.recv() else { return };
        if let Err(e) = regs::set_long_mode_entry(&vcpu, &request) {
            shared.finish(Err(Failure::Internal(
                e.context(format!("starting vCPU {index}")),
            )));
            return;
        }
        tracing::debug!("vcpu{index}: started at {:#x}", request.rip);
    }
    let outcome = run_vcpu(index, &mut vcpu, shared);
    shared.finish(outcome);
}

/// Runs one vCPU until the run ends for it.
fn run_vcpu(index: u32, vcpu: &mut VcpuFd, shared: &Shared) -> Outcome {
    loop {
        let exit = match vcpu.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => {
                return Err(Failure::Internal(anyhow::anyhow!(
                    "KVM_RUN on vCPU {index} failed: {e}"
                )));
            }
        };
        match exit {
            VcpuExit::IoOut(port, data) => {
                if let Some(end) = port_out(index, port, data, shared) {
                    return end;
                }
            }
            VcpuExit::IoIn(port, data) => port_in(port, data, shared),
            VcpuExit::MmioRead(addr, data) => {
                if !shared.mmio.read(addr, data) {
                    tracing::debug!(
                        "vcpu{index}: read of unknown MMIO {addr:#x} ({} bytes)",
                        data.len()
                    );
                    data.fill(0xff);
                }
            }
            VcpuExit::MmioWrite(addr, data) => {
                if !shared.mmio.write(addr, data) {
                    tracing::debug!(
                        "vcpu{index}: write of unknown MMIO {addr:#x} ({} bytes)",
                        data.len()
                    );
                }
            }
            VcpuExit::Hlt => {
                // The in-kernel APIC handles HLT; seeing it means the CPU halted for good.
                tracing::debug!("vcpu{index}: halted");
                return Err(Failure::GuestCrash(format!(
                    "vCPU {index} halted with interrupts off"
                )));
            }
            VcpuExit::Shutdown => {
                return Err(Failure::GuestCrash(format!(
                    "triple fault on vCPU {index}\n{}",
                    regs::dump(vcpu)
                )));
            }
            VcpuExit::InternalError => {
                return Err(Failure::GuestCrash(format!(
                    "KVM internal error on vCPU {index} (an instruction this host cannot emulate)\n{}",
                    regs::dump(vcpu)
                )));
            }
            VcpuExit::FailEntry(reason, cpu) => {
                return Err(Failure::GuestCrash(format!(
                    "KVM entry failure on vCPU {index} (reason {reason:#x}, host cpu {cpu})\n{}",
                    regs::dump(vcpu)
                )));
            }
            VcpuExit::SystemEvent(kind, _) => {
                return Err(Failure::GuestCrash(format!(
                    "vCPU {index} asked for a system event {kind} (reset?)"
                )));
            }
            other => tracing::debug!("vcpu{index}: ignored exit {other:?}"),
        }
    }
}

/// A guest port write. Returns the end of the run if the write ends it.
fn port_out(index: u32, port: u16, data: &[u8], shared: &Shared) -> Option<Outcome> {
    match port {
        p if COM1_PORTS.contains(&p) => shared.serial.write(p, data),
        pvport::EXIT_PORT if data.len() == 4 => {
            let value = u32::from_le_bytes(data.try_into().expect("4 bytes"));
            return Some(match PowerOff::decode(value) {
                PowerOff::Normal(code) => Ok(code),
                PowerOff::KernelPanic => Err(Failure::GuestCrash("kernel panic".into())),
                PowerOff::CpuException => {
                    Err(Failure::GuestCrash("CPU exception in the kernel".into()))
                }
                PowerOff::Unknown(reason) => Err(Failure::GuestCrash(format!(
                    "power-off with unknown reason {reason}"
                ))),
            });
        }
        pvport::AP_START_PORT if data.len() == 4 => {
            let addr = u64::from(u32::from_le_bytes(data.try_into().expect("4 bytes")));
            start_ap(index, addr, shared);
        }
        copy::COPY_PORT if data.len() == 4 => {
            let addr = u64::from(u32::from_le_bytes(data.try_into().expect("4 bytes")));
            if let Err(why) = copy::copy_ranges(&shared.mem, addr) {
                // A kernel bug, not ours to stop for: the guest sees the short count.
                tracing::debug!("vcpu{index}: memory copy stopped: {why}");
            }
        }
        _ => tracing::debug!(
            "vcpu{index}: write to unknown port {port:#x} ({} bytes)",
            data.len()
        ),
    }
    None
}

fn start_ap(index: u32, addr: u64, shared: &Shared) {
    let (apic_id, start) = match pvport::read_ap_start(&shared.mem, addr, shared.mem_bytes) {
        Ok(request) => request,
        Err(why) => {
            tracing::warn!("vcpu{index}: ignored CPU start request: {why}");
            return;
        }
    };
    // APIC IDs are vCPU indices (see boot/acpi.rs).
    let sender = shared
        .ap_start
        .get(apic_id as usize)
        .and_then(|slot| slot.lock().ok()?.take());
    match sender {
        Some(sender) => {
            let _ = sender.send(start);
        }
        None => tracing::warn!(
            "vcpu{index}: ignored start of APIC ID {apic_id}: no such CPU, or already started"
        ),
    }
}

fn port_in(port: u16, data: &mut [u8], shared: &Shared) {
    match port {
        p if COM1_PORTS.contains(&p) => shared.serial.read(p, data),
        pvport::EXIT_PORT if data.len() == 4 => {
            data.copy_from_slice(&pvport::SIGNATURE.to_le_bytes())
        }
        requests::REQUEST_PORT if data.len() == 4 => {
            data.copy_from_slice(&shared.requests.take().to_le_bytes())
        }
        _ => {
            tracing::debug!("read of unknown port {port:#x} ({} bytes)", data.len());
            data.fill(0xff);
        }
    }
}
