//! The interrupt descriptor table, shared by all CPUs.
//!
//! Every vector has a 16-byte entry stub (see [`crate::irq::stubs`]) that pushes the vector and a
//! uniform error code and jumps to the common trap path. Only the vectors we use get gates — each
//! gate written is ~10 emulated instructions at boot on PVM hosts — the rest stay not-present, and
//! a stray interrupt there shows up as a reported `#NP` naming the vector.

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE};
use core::cell::UnsafeCell;

/// Vectors that get a gate: the 32 exceptions, device interrupts, and the APIC's own vectors.
const GATED: [core::ops::Range<usize>; 2] = [0..0x40, 0xf0..0x100];

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    kind: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        kind: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist,
            kind: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);
// SAFETY: written once by the boot CPU before any CPU loads it.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));

/// Fills the gates. Boot CPU, once, before [`load`].
pub(crate) fn init() {
    let stubs = crate::irq::stubs::base();
    // SAFETY: nobody has loaded the IDT yet.
    let idt = unsafe { &mut *IDT.0.get() };
    for vector in GATED.into_iter().flatten() {
        let ist = match vector {
            2 => IST_NMI,
            8 => IST_DOUBLE_FAULT,
            18 => IST_MACHINE_CHECK,
            _ => 0,
        };
        idt[vector] = Gate::interrupt(stubs + (vector as u64) * crate::irq::stubs::STUB_BYTES, ist);
    }
}

/// Loads the IDT on this CPU.
pub(crate) fn load() {
    // SAFETY: the table is fully built and lives forever.
    unsafe {
        let pointer = x86::dtables::DescriptorTablePointer::new(&*IDT.0.get());
        x86::dtables::lidt(&pointer);
    }
}
