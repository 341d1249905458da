//! Measuring the TSC rate against the legacy PIT (channel 2, gated through port 0x61), for hosts
//! without kvmclock (QEMU TCG). Only used once at boot there; our VMM has kvmclock and no PIT.

/// PIT input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// Measurement window: 10 ms.
const WINDOW_TICKS: u16 = (PIT_HZ / 100) as u16;

pub(super) fn measure_tsc_hz() -> u64 {
    // SAFETY: ports 0x42/0x43/0x61 are the PIT and its gate; no memory effects.
    unsafe {
        use x86::io::{inb, outb};
        // Gate channel 2 on, speaker off.
        outb(0x61, (inb(0x61) & !0x02) | 0x01);
        // Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
        outb(0x43, 0xb0);
        outb(0x42, WINDOW_TICKS as u8);
        outb(0x42, (WINDOW_TICKS >> 8) as u8);
        let start = crate::cpu::rdtsc();
        let mut spins = 0u64;
        // Output (bit 5) goes high at terminal count. Bounded, in case there is no PIT at all.
        while inb(0x61) & 0x20 == 0 && spins < 10_000_000 {
            spins += 1;
        }
        let ticks = crate::cpu::rdtsc() - start;
        if spins >= 10_000_000 {
            // No PIT: assume 1 GHz rather than hang; timings will be off, behaviour stays right.
            return 1_000_000_000;
        }
        (u128::from(ticks) * u128::from(PIT_HZ) / u128::from(WINDOW_TICKS)) as u64
    }
}
