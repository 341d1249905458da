//! kvmclock: KVM's paravirtual clock. Each CPU registers a 32-byte `pvclock_vcpu_time_info`
//! (MSR_KVM_SYSTEM_TIME_NEW) that the hypervisor keeps current; time is read from it and the TSC
//! without leaving the guest.

use core::cell::UnsafeCell;
use core::sync::atomic::{Ordering, fence};

const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;

/// `pvclock_vcpu_time_info`, as the hypervisor writes it.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
struct TimeInfo {
    version: u32,
    pad0: u32,
    tsc_timestamp: u64,
    system_time: u64,
    tsc_to_system_mul: u32,
    tsc_shift: i8,
    flags: u8,
    pad: [u8; 2],
}

/// A CPU's kvmclock area (lives in its per-CPU block).
#[repr(C, align(32))]
pub struct PvClock(UnsafeCell<TimeInfo>);

impl PvClock {
    pub(crate) const fn new() -> Self {
        PvClock(UnsafeCell::new(TimeInfo {
            version: 0,
            pad0: 0,
            tsc_timestamp: 0,
            system_time: 0,
            tsc_to_system_mul: 0,
            tsc_shift: 0,
            flags: 0,
            pad: [0; 2],
        }))
    }

    /// A consistent copy: the hypervisor makes `version` odd while it updates.
    fn snapshot(&self) -> TimeInfo {
        loop {
            // SAFETY: the area is only written by the hypervisor; volatile reads see its updates.
            let version = unsafe { core::ptr::addr_of!((*self.0.get()).version).read_volatile() };
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let info = unsafe { self.0.get().read_volatile() };
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let again = unsafe { core::ptr::addr_of!((*self.0.get()).version).read_volatile() };
            if version & 1 == 0 && version == again {
                return info;
            }
            crate::cpu::relax();
        }
    }
}

/// Registers this CPU's area with the hypervisor.
pub(crate) fn enable_this_cpu() {
    let area = &crate::cpu::this_cpu().pvclock as *const PvClock as u64;
    let phys = crate::mm::virt_to_phys(area).0;
    // SAFETY: the area is 32-byte aligned, inside one page, and lives forever.
    unsafe { x86::msr::wrmsr(MSR_KVM_SYSTEM_TIME_NEW, phys | 1) };
}

fn scale(delta: u64, info: &TimeInfo) -> u64 {
    let shifted = if info.tsc_shift >= 0 {
        delta << info.tsc_shift
    } else {
        delta >> -info.tsc_shift
    };
    ((u128::from(shifted) * u128::from(info.tsc_to_system_mul)) >> 32) as u64
}

/// Nanoseconds of guest time, from this CPU's area.
pub(crate) fn now_ns() -> u64 {
    let info = crate::cpu::this_cpu().pvclock.snapshot();
    let delta = crate::cpu::rdtsc().wrapping_sub(info.tsc_timestamp);
    info.system_time.wrapping_add(scale(delta, &info))
}

/// The TSC rate the hypervisor advertises.
pub(crate) fn tsc_hz() -> u64 {
    let info = crate::cpu::this_cpu().pvclock.snapshot();
    // ns = ((ticks << shift) * mul) >> 32  ⇒  hz = 1e9 * 2^32 / mul / 2^shift
    let mut hz = (1_000_000_000u128 << 32) / u128::from(info.tsc_to_system_mul.max(1));
    if info.tsc_shift >= 0 {
        hz >>= info.tsc_shift;
    } else {
        hz <<= -info.tsc_shift;
    }
    hz as u64
}

const MSR_KVM_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;

/// `struct pvclock_wall_clock`: the wall-clock time at which guest time (kvmclock) was zero.
#[repr(C, align(16))]
struct WallClock(UnsafeCell<[u32; 3]>);
// SAFETY: written by the hypervisor when the boot CPU asks, read once right after.
unsafe impl Sync for WallClock {}

static WALL_CLOCK: WallClock = WallClock(UnsafeCell::new([0; 3]));

/// Nanoseconds since the Unix epoch at which kvmclock read zero (asks the hypervisor once).
pub(crate) fn wall_clock_at_zero_ns() -> u64 {
    let area = WALL_CLOCK.0.get();
    let phys = crate::mm::virt_to_phys(area as u64).0;
    // SAFETY: the area is ours, 12 bytes inside one page; KVM fills it on this write.
    unsafe { x86::msr::wrmsr(MSR_KVM_WALL_CLOCK_NEW, phys) };
    loop {
        // SAFETY: plain reads of the area the hypervisor filled; the version makes them
        // consistent (odd while being written).
        let (version, sec, nsec, again) = unsafe {
            let words = area as *const u32;
            let version = words.read_volatile();
            let sec = words.add(1).read_volatile();
            let nsec = words.add(2).read_volatile();
            (version, sec, nsec, words.read_volatile())
        };
        if version & 1 == 0 && version == again {
            return u64::from(sec) * 1_000_000_000 + u64::from(nsec);
        }
        crate::cpu::relax();
    }
}
