//! Whether ring 0 runs natively or is emulated instruction by instruction (PVM hosts), measured
//! once at boot: the kernel then picks, for the few jobs where the two differ by orders of
//! magnitude, the way that is cheap here (a page copy by the host rather than `rep movsq`).
//!
//! A CPUID bit would be simpler, but PVM hosts pass the host's CPUID through unchanged, and a
//! measurement answers the question that matters. 65 plain instructions take ~20 ns natively,
//! ~40 µs emulated (~0.6 µs each); QEMU's TCG falls in between and counts as native.

use core::sync::atomic::{AtomicBool, Ordering};

static EMULATED: AtomicBool = AtomicBool::new(false);

/// Above this a 65-instruction loop was emulated (natively it takes ~20 ns, even under TCG a
/// few µs at most).
const EMULATED_ABOVE_NS: u64 = 10_000;

/// Times a short loop three times and keeps the fastest (boot CPU, interrupts off, after the
/// clock is calibrated): a native run that the host happened to preempt is not mistaken for an
/// emulated one.
pub(crate) fn measure() {
    let fastest = (0..3).map(|_| time_loop()).min().unwrap_or(0);
    EMULATED.store(fastest > EMULATED_ABOVE_NS, Ordering::Relaxed);
}

/// Nanoseconds a 65-instruction register loop takes.
fn time_loop() -> u64 {
    let start = super::rdtsc();
    // SAFETY: a register-only loop: `ecx` counts down to zero, nothing else is touched.
    unsafe {
        core::arch::asm!(
            "mov ecx, 32",
            "2:",
            "dec ecx",
            "jnz 2b",
            out("ecx") _,
            options(nomem, nostack),
        );
    }
    crate::time::tsc_delta_to_ns(super::rdtsc().wrapping_sub(start))
}

/// Whether ring-0 instructions are emulated one by one on this host (see the module doc).
#[inline]
pub fn ring0_is_emulated() -> bool {
    EMULATED.load(Ordering::Relaxed)
}
