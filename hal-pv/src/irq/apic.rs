//! The local APIC: x2APIC through MSRs where the CPU has it (our VMM, QEMU with KVM), xAPIC through
//! MMIO at 0xfee00000 otherwise (QEMU TCG has no x2APIC). Both expose the same registers; only
//! the access differs, so one set of functions serves both.
//!
//! The timer runs one-shot: TSC-deadline mode where available, else the APIC's own count-down
//! (calibrated against the TSC). There is no periodic tick — each timer interrupt costs ~65 µs of
//! guest time on PVM hosts — so an idle CPU sleeps until its next deadline or an IPI.

use super::{SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::mm::PhysAddr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const XAPIC_PHYS: u64 = 0xfee0_0000;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const IA32_TSC_DEADLINE: u32 = 0x6e0;

// Register offsets (xAPIC MMIO offsets; the x2APIC MSR is 0x800 + offset / 16).
const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;

static X2APIC: AtomicBool = AtomicBool::new(false);
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);
/// APIC timer ticks per millisecond (count-down mode only).
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC registers are MSRs 0x800..0x8ff; reading has no memory effects.
        unsafe { x86::msr::rdmsr(0x800 + reg / 16) as u32 }
    } else {
        // SAFETY: the direct map covers the xAPIC page, uncached (3..4 GiB window).
        unsafe { (PhysAddr(XAPIC_PHYS + u64::from(reg)).to_virt() as *const u32).read_volatile() }
    }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in `read`.
        unsafe { x86::msr::wrmsr(0x800 + reg / 16, u64::from(value)) };
    } else {
        // SAFETY: as in `read`.
        unsafe {
            (PhysAddr(XAPIC_PHYS + u64::from(reg)).to_virt() as *mut u32).write_volatile(value)
        };
    }
}

/// Enables this CPU's local APIC (x2APIC mode if the CPU has it) with the timer masked.
pub(crate) fn init_this_cpu() {
    let features = crate::cpu::features::get();
    X2APIC.store(features.x2apic, Ordering::Relaxed);
    TSC_DEADLINE.store(features.tsc_deadline, Ordering::Relaxed);
    let mode = if features.x2apic {
        APIC_BASE_ENABLE | APIC_BASE_X2APIC
    } else {
        APIC_BASE_ENABLE
    };
    // SAFETY: IA32_APIC_BASE keeps its base address; we only set the enable bits.
    unsafe {
        let base = x86::msr::rdmsr(x86::msr::IA32_APIC_BASE);
        if base & mode != mode {
            x86::msr::wrmsr(x86::msr::IA32_APIC_BASE, base | mode);
        }
    }
    write(REG_TPR, 0);
    // LINT0 carries the legacy 8259 PIC (virtual-wire mode, as firmware leaves it): mask it, or
    // the PIT's tick arrives on vector 8 — the double-fault vector — under QEMU.
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    let timer_mode = if features.tsc_deadline {
        LVT_TSC_DEADLINE
    } else {
        0
    };
    write(
        REG_LVT_TIMER,
        LVT_MASKED | timer_mode | u32::from(TIMER_VECTOR),
    );
}

/// This CPU's APIC ID.
pub fn id() -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        read(REG_ID)
    } else {
        read(REG_ID) >> 24
    }
}

/// Whether the x2APIC interface is in use.
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Sends a fixed interrupt `vector` to the CPU with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    send_icr(apic_id, u32::from(vector) | ICR_LEVEL_ASSERT);
}

/// Sends an INIT (level assert) IPI.
pub(crate) fn send_init(apic_id: u32) {
    send_icr(apic_id, 0b101 << 8 | ICR_LEVEL_ASSERT);
}

/// Sends a start-up IPI with the real-mode entry page `page` (entry = page * 4096).
pub(crate) fn send_startup(apic_id: u32, page: u8) {
    send_icr(apic_id, 0b110 << 8 | ICR_LEVEL_ASSERT | u32::from(page));
}

fn send_icr(apic_id: u32, low: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: the x2APIC ICR is one 64-bit MSR: destination in the high half.
        unsafe {
            x86::msr::wrmsr(
                0x800 + REG_ICR_LOW / 16,
                u64::from(apic_id) << 32 | u64::from(low),
            )
        };
    } else {
        write(REG_ICR_HIGH, apic_id << 24);
        write(REG_ICR_LOW, low);
        while read(REG_ICR_LOW) & ICR_DELIVERY_PENDING != 0 {
            crate::cpu::relax();
        }
    }
}

/// Arms this CPU's one-shot timer to fire at TSC value `deadline` (now or in the past fires at
/// once). Replaces any earlier deadline.
pub fn set_deadline_tsc(deadline: u64) {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        write(REG_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR));
        // SAFETY: writing IA32_TSC_DEADLINE only arms the timer.
        unsafe { x86::msr::wrmsr(IA32_TSC_DEADLINE, deadline.max(1)) };
    } else {
        let now = crate::cpu::rdtsc();
        let ns = crate::time::tsc_delta_to_ns(deadline.saturating_sub(now));
        let ticks = (u128::from(ns) * u128::from(TICKS_PER_MS.load(Ordering::Relaxed)) / 1_000_000)
            .clamp(1, u128::from(u32::MAX)) as u32;
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
        write(REG_TIMER_INITIAL, ticks);
    }
}

/// Disarms this CPU's timer.
pub fn cancel_timer() {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        // SAFETY: a zero deadline disarms the timer.
        unsafe { x86::msr::wrmsr(IA32_TSC_DEADLINE, 0) };
    } else {
        write(REG_TIMER_INITIAL, 0);
    }
}

/// Measures the APIC timer's rate against the TSC when there is no TSC-deadline mode (QEMU TCG).
/// Boot CPU, once, after the clock is calibrated; all CPUs share the bus clock.
pub(crate) fn calibrate_timer() {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        return;
    }
    write(REG_TIMER_DIVIDE, 0b1011); // divide by 1
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_TIMER_INITIAL, u32::MAX);
    let start = crate::cpu::rdtsc();
    let window = crate::time::ns_to_tsc_delta(1_000_000);
    while crate::cpu::rdtsc() - start < window {
        crate::cpu::relax();
    }
    let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INITIAL, 0);
    TICKS_PER_MS.store(u64::from(elapsed.max(1)), Ordering::Relaxed);
}
