//! The clock: monotonic nanoseconds since boot, and conversions to TSC deadlines for the timer.
//!
//! Under KVM (our VMM, QEMU `-accel kvm`) the paravirtual kvmclock gives both the time and the TSC
//! rate without any calibration. Elsewhere (QEMU TCG) the TSC rate is measured once against the
//! PIT. Either way, reading the clock is one `rdtsc` plus arithmetic — no exit.

pub mod kvmclock;
mod pit;

use core::sync::atomic::{AtomicU64, Ordering};

/// TSC ticks per second.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// TSC value at boot (TSC fallback only).
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Which source the clock uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockSource {
    KvmClock,
    Tsc,
}

/// Sets the clock up on the boot CPU.
pub(crate) fn init() {
    TSC_AT_BOOT.store(crate::cpu::rdtsc(), Ordering::Relaxed);
    let hz = if crate::cpu::features::get().kvmclock {
        KVMCLOCK.store(true, Ordering::Relaxed);
        kvmclock::enable_this_cpu();
        kvmclock::tsc_hz()
    } else {
        pit::measure_tsc_hz()
    };
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
    if crate::cpu::features::get().kvmclock {
        WALL_AT_ZERO.store(kvmclock::wall_clock_at_zero_ns(), Ordering::Relaxed);
    }
}

/// Wall-clock ns since the epoch when [`now_ns`] was zero (0 where the host gives no wall clock:
/// then the realtime clock starts at the epoch).
static WALL_AT_ZERO: AtomicU64 = AtomicU64::new(0);

/// Wall-clock time: nanoseconds since the Unix epoch (the host's clock, via kvmclock).
pub fn realtime_ns() -> u64 {
    WALL_AT_ZERO.load(Ordering::Relaxed) + now_ns()
}

/// Whether kvmclock is the source (set once at boot; read on every clock read).
static KVMCLOCK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The clock source in use.
pub fn source() -> ClockSource {
    if KVMCLOCK.load(Ordering::Relaxed) {
        ClockSource::KvmClock
    } else {
        ClockSource::Tsc
    }
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Monotonic nanoseconds since boot (for kvmclock: since the VM started).
pub fn now_ns() -> u64 {
    match source() {
        ClockSource::KvmClock => kvmclock::now_ns(),
        ClockSource::Tsc => {
            tsc_delta_to_ns(crate::cpu::rdtsc() - TSC_AT_BOOT.load(Ordering::Relaxed))
        }
    }
}

/// Converts TSC ticks to nanoseconds.
pub fn tsc_delta_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(tsc_hz())) as u64
}

/// Converts nanoseconds to TSC ticks.
pub fn ns_to_tsc_delta(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(tsc_hz()) / 1_000_000_000) as u64
}

/// Arms this CPU's timer to fire `ns` nanoseconds from now.
pub fn set_timer_in_ns(ns: u64) {
    crate::irq::apic::set_deadline_tsc(crate::cpu::rdtsc().saturating_add(ns_to_tsc_delta(ns)));
}
