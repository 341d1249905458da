//! Requests from the host (the NOA VMM) to the guest, docs/boot-protocol.md "Host requests": the
//! VMM raises an interrupt line it names on the command line (`noa.pvport.irq=N`), and the guest
//! reads port 0xfc (32 bits), which returns the pending request bits and clears them. Bit 0 asks
//! the guest to shut down (the VMM got SIGINT or SIGTERM).
//!
//! This module owns the line (its IOAPIC route and vector) and the port; what a request means is
//! the kernel's (its hook). Under QEMU, or a VMM that passes no such word, nothing is routed and
//! the hook never runs. Ring-0 cost per request: one interrupt and one port read (an exit to the
//! VMM), nothing more.

use core::sync::atomic::{AtomicUsize, Ordering};

/// The port that returns (and clears) the pending requests.
const REQUEST_PORT: u16 = 0xfc;
/// The command-line word that names the line.
const IRQ_WORD: &str = "noa.pvport.irq";
/// The vector of the line (after the virtio devices' 0x30..0x40).
const VECTOR: u8 = 0x40;
/// The IOAPIC's pins.
const LAST_GSI: u32 = 23;

/// Request bit: shut down.
pub const SHUTDOWN: u32 = 1 << 0;

/// The kernel's hook, a `fn(u32)` (0: none yet).
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Starts taking the host's requests announced on `cmdline`: routes the line to this CPU and calls
/// `hook` with the request bits on each interrupt — in interrupt context (interrupts off, on
/// whatever the CPU was doing: the hook must only note the request and defer the work). A request
/// made before this call is seen at once (the hook runs here, in the caller's context). Returns
/// false, doing nothing, when the host offers no request line.
pub fn listen(cmdline: &str, hook: fn(u32)) -> bool {
    let Some(gsi) = request_line(cmdline) else {
        return false;
    };
    if !crate::pvport::host_is_noa_vmm() {
        return false;
    }
    HOOK.store(hook as usize, Ordering::Release);
    crate::irq::set_handler(VECTOR, on_interrupt);
    crate::irq::ioapic::route(gsi, VECTOR, crate::irq::apic::id());
    // An edge before the route was lost; the bits were not.
    let early = take();
    if early != 0 {
        hook(early);
    }
    true
}

/// The line named by the last `noa.pvport.irq=N` word before `--`, if it is an IOAPIC pin.
fn request_line(cmdline: &str) -> Option<u32> {
    let value = cmdline
        .split_ascii_whitespace()
        .take_while(|word| *word != "--")
        .filter_map(|word| word.strip_prefix(IRQ_WORD)?.strip_prefix('='))
        .last()?;
    match value.parse::<u32>() {
        Ok(gsi) if gsi <= LAST_GSI => Some(gsi),
        _ => {
            crate::println!("host requests: ignored {IRQ_WORD}={value} (not an IOAPIC pin)");
            None
        }
    }
}

/// Reads (and so acknowledges) the pending requests.
fn take() -> u32 {
    // SAFETY: reading the NOA VMM's request port has no memory effects (checked to be that VMM).
    unsafe { x86::io::inl(REQUEST_PORT) }
}

fn on_interrupt(_: &mut crate::irq::TrapFrame) {
    let requests = take();
    let hook = HOOK.load(Ordering::Acquire);
    if requests != 0 && hook != 0 {
        // SAFETY: only `listen` stores here, and it stores a `fn(u32)`.
        let hook = unsafe { core::mem::transmute::<usize, fn(u32)>(hook) };
        hook(requests);
    }
}
