//! The CPU: feature detection, descriptor tables (GDT, TSS, IDT) and per-CPU data.

pub mod emulation;
pub mod features;
pub mod gdt;
pub mod idt;
pub mod percpu;

pub use emulation::ring0_is_emulated;
pub use features::Features;
pub use percpu::{cpu_index, this_cpu};

/// Spins politely (the `pause` hint).
pub fn relax() {
    core::hint::spin_loop();
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Enables interrupts and halts until one arrives, atomically (`sti; hlt`), then disables them.
pub fn wait_for_interrupt() {
    // SAFETY: `sti` takes effect after the next instruction, so no interrupt slips in between and
    // the wake-up cannot be lost; handlers run on this stack.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Disables interrupts on this CPU.
pub fn disable_interrupts() {
    // SAFETY: only masks interrupts.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// Enables interrupts on this CPU.
pub fn enable_interrupts() {
    // SAFETY: handlers are installed before any CPU enables interrupts.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
}
