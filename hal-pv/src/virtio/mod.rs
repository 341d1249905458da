//! Virtio devices over virtio-mmio, driven by the `virtio-drivers` crate (the disk by our own
//! leaner driver, [`block`]), handed to the kernel as safe handles.
//!
//! Devices are found on the kernel command line (`virtio_mmio.device=SIZE@ADDR:IRQ`, which our
//! VMM and QEMU's microvm both write). [`discover`] maps each register window, routes its line
//! through the IOAPIC to its own vector, and identifies the device; drivers start when the kernel
//! opens a device, not at boot (every register access is an exit to the VMM).
//!
//! Requests are interrupt-driven where the crate allows: the driver submits, the CPU sleeps in
//! `hlt` until the device's interrupt, then collects the result. Driver calls run on the boot CPU,
//! where the IOAPIC delivers the interrupts.

pub mod block;
mod dma;
pub mod hal;
pub mod misc;
pub mod net;
mod ring;
pub mod vsock;

use crate::mm::{PhysAddr, paging};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

/// The transport type of every device here.
pub type Mmio = MmioTransport<'static>;

/// First vector for virtio interrupts; device `i` (in discovery order) uses `FIRST_VECTOR + i`.
const FIRST_VECTOR: u8 = 0x30;
/// Most devices we route (vectors 0x30..0x40).
pub const MAX_DEVICES: usize = 16;
/// Device windows must lie in the MMIO hole above RAM (both our VMM and QEMU put them there).
const MMIO_HOLE_START: u64 = 0xc000_0000;

/// Interrupts seen per device slot.
static INTERRUPTS: [AtomicU32; MAX_DEVICES] = [const { AtomicU32::new(0) }; MAX_DEVICES];
/// Per device slot: a `fn()` the interrupt handler calls (0: none), for drivers whose users sleep
/// between requests (console input).
static HOOKS: [AtomicUsize; MAX_DEVICES] = [const { AtomicUsize::new(0) }; MAX_DEVICES];

/// The kinds of device we have drivers for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Block,
    Console,
    Entropy,
    Network,
    Socket,
    Other(u32),
}

/// A device found on the command line, not yet opened.
pub struct Device {
    pub kind: Kind,
    /// Physical address of its register window.
    pub addr: u64,
    /// Its interrupt line (GSI).
    pub irq: u32,
    slot: usize,
    transport: Mmio,
}

impl core::fmt::Debug for Device {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "virtio {:?} at {:#x} irq {}",
            self.kind, self.addr, self.irq
        )
    }
}

/// An error from a device or its driver.
#[derive(Debug)]
pub struct Error(pub virtio_drivers::Error);

impl From<virtio_drivers::Error> for Error {
    fn from(e: virtio_drivers::Error) -> Self {
        Error(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "virtio: {:?}", self.0)
    }
}

/// Parses one `SIZE@ADDR:IRQ[:ID]` (sizes may end in K or M; numbers may be hex with 0x).
fn parse_spec(spec: &str) -> Option<(u64, u64, u32)> {
    let (size, rest) = spec.split_once('@')?;
    let mut fields = rest.split(':');
    let addr = parse_number(fields.next()?)?;
    let irq = u32::try_from(parse_number(fields.next()?)?).ok()?;
    let size = match size.as_bytes().last()? {
        b'K' | b'k' => parse_number(&size[..size.len() - 1])?.checked_mul(1024)?,
        b'M' | b'm' => parse_number(&size[..size.len() - 1])?.checked_mul(1024 * 1024)?,
        _ => parse_number(size)?,
    };
    Some((size, addr, irq))
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Finds the devices `cmdline` lists, in address order. Words after a `--` word are not the
/// kernel's (they are the command for init, docs/boot-protocol.md) and are not looked at.
pub fn discover(cmdline: &str) -> Vec<Device> {
    let mut specs: Vec<(u64, u64, u32)> = cmdline
        .split_ascii_whitespace()
        .take_while(|word| *word != "--")
        .filter_map(|word| word.strip_prefix("virtio_mmio.device="))
        .filter_map(|spec| {
            let parsed = parse_spec(spec);
            if parsed.is_none() {
                crate::println!("virtio: ignored malformed virtio_mmio.device={spec}");
            }
            parsed
        })
        .collect();
    specs.sort_by_key(|&(_, addr, _)| addr);
    let boot_apic = crate::irq::apic::id();
    let mut devices = Vec::new();
    for (size, addr, irq) in specs {
        if devices.len() == MAX_DEVICES || addr < MMIO_HOLE_START || size < 0x100 || irq > 23 {
            crate::println!("virtio: ignored device at {addr:#x} (size {size:#x}, irq {irq})");
            continue;
        }
        paging::map_mmio(addr, size);
        let header = NonNull::new(PhysAddr(addr).to_virt() as *mut VirtIOHeader).expect("non-null");
        // SAFETY: the window is mapped uncached, exclusively for this transport, and lives forever.
        let transport = match unsafe { MmioTransport::new(header, size as usize) } {
            Ok(transport) => transport,
            Err(e) => {
                crate::println!("virtio: no device at {addr:#x}: {e:?}");
                continue;
            }
        };
        let kind = match transport.device_type() {
            DeviceType::Block => Kind::Block,
            DeviceType::Console => Kind::Console,
            DeviceType::EntropySource => Kind::Entropy,
            DeviceType::Network => Kind::Network,
            DeviceType::Socket => Kind::Socket,
            other => Kind::Other(other as u32),
        };
        let slot = devices.len();
        let vector = FIRST_VECTOR + slot as u8;
        crate::irq::set_handler(vector, on_interrupt);
        crate::irq::ioapic::route(irq, vector, boot_apic);
        devices.push(Device {
            kind,
            addr,
            irq,
            slot,
            transport,
        });
    }
    devices
}

fn interrupts_seen(slot: usize) -> u32 {
    INTERRUPTS[slot].load(Ordering::Acquire)
}

fn set_interrupt_hook(slot: usize, hook: Option<fn()>) {
    HOOKS[slot].store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

fn on_interrupt(frame: &mut crate::irq::TrapFrame) {
    let slot = (frame.vector as u8).wrapping_sub(FIRST_VECTOR) as usize;
    if let Some(count) = INTERRUPTS.get(slot) {
        count.fetch_add(1, Ordering::AcqRel);
        let hook = HOOKS[slot].load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: only `set_interrupt_hook` stores here, and it stores a `fn()`.
            let hook = unsafe { core::mem::transmute::<usize, fn()>(hook) };
            hook();
        }
    }
}

/// How long to sleep before looking again even without an interrupt: a lost or suppressed
/// interrupt then costs latency, never a hang.
const RECHECK_NS: u64 = 20_000_000;

/// Sleeps until `done()` holds, waking on interrupts (the device's among them). Interrupts are
/// only taken inside the `sti; hlt` window, so a completion can't slip between check and sleep.
fn wait_until(mut done: impl FnMut() -> bool) {
    if done() {
        return;
    }
    while !done() {
        crate::time::set_timer_in_ns(RECHECK_NS);
        crate::cpu::wait_for_interrupt();
    }
    crate::irq::apic::cancel_timer();
}
