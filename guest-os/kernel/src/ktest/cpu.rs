//! Kernel tests of the CPUs: the clock, the one-shot timer, IPIs to every other CPU, and the
//! command line the kernel runs with.

use super::{TestResult, ensure};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use hal_pv::irq::{self, TrapFrame};

pub fn cmdline_parse() -> TestResult {
    use crate::cmdline::Cmdline;
    let line = "console=ttyS0 noa.ktest=all virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6";
    ensure!(
        Cmdline::parse(line).ktest == Some("all"),
        "noa.ktest not found"
    );
    ensure!(
        Cmdline::parse("quiet").ktest.is_none(),
        "noa.ktest found in 'quiet'"
    );
    let devices: Vec<&str> = Cmdline::values(line, "virtio_mmio.device").collect();
    ensure!(
        devices == ["4K@0xd0000000:5", "4K@0xd0001000:6"],
        "values: {devices:?}"
    );
    Ok(())
}

pub fn clock_monotonic() -> TestResult {
    let hz = hal_pv::time::tsc_hz();
    ensure!(
        (100_000_000..20_000_000_000).contains(&hz),
        "implausible TSC rate {hz} Hz"
    );
    let mut last = hal_pv::time::now_ns();
    for _ in 0..1000 {
        let now = hal_pv::time::now_ns();
        ensure!(now >= last, "clock went back: {last} -> {now}");
        last = now;
    }
    Ok(())
}

static TIMER_FIRED: AtomicU32 = AtomicU32::new(0);

fn on_timer(_: &mut TrapFrame) {
    TIMER_FIRED.fetch_add(1, Ordering::AcqRel);
}

pub fn timer_one_shot_deadline() -> TestResult {
    const DELAY_NS: u64 = 2_000_000;
    irq::set_handler(irq::TIMER_VECTOR, on_timer);
    let before = TIMER_FIRED.load(Ordering::Acquire);
    let start = hal_pv::time::now_ns();
    hal_pv::time::set_timer_in_ns(DELAY_NS);
    while TIMER_FIRED.load(Ordering::Acquire) == before {
        ensure!(
            hal_pv::time::now_ns() - start < 1_000_000_000,
            "timer did not fire within 1 s"
        );
        hal_pv::cpu::wait_for_interrupt();
    }
    let elapsed = hal_pv::time::now_ns() - start;
    ensure!(
        elapsed >= DELAY_NS,
        "timer fired early: after {elapsed} ns, asked for {DELAY_NS}"
    );
    // One-shot: no second interrupt without re-arming.
    let fired = TIMER_FIRED.load(Ordering::Acquire);
    hal_pv::time::set_timer_in_ns(DELAY_NS);
    hal_pv::irq::apic::cancel_timer();
    let quiet_until = hal_pv::time::now_ns() + 2 * DELAY_NS;
    while hal_pv::time::now_ns() < quiet_until {
        hal_pv::cpu::relax();
    }
    hal_pv::cpu::enable_interrupts();
    hal_pv::cpu::disable_interrupts();
    ensure!(
        TIMER_FIRED.load(Ordering::Acquire) == fired,
        "cancelled timer fired"
    );
    Ok(())
}

static IPIS: AtomicU32 = AtomicU32::new(0);

fn on_ipi(_: &mut TrapFrame) {
    IPIS.fetch_add(1, Ordering::AcqRel);
}

pub fn smp_ipi_every_cpu() -> TestResult {
    irq::set_handler(irq::IPI_VECTOR, on_ipi);
    let me = irq::apic::id();
    let others: Vec<u32> = hal_pv::smp::cpu_apic_ids()
        .iter()
        .copied()
        .filter(|&id| id != me)
        .collect();
    ensure!(
        others.len() + 1 == hal_pv::smp::online_cpus() as usize,
        "{} CPUs listed but {} online",
        others.len() + 1,
        hal_pv::smp::online_cpus()
    );
    let before = IPIS.load(Ordering::Acquire);
    for &id in &others {
        irq::apic::send_ipi(id, irq::IPI_VECTOR);
    }
    let start = hal_pv::time::now_ns();
    while IPIS.load(Ordering::Acquire) - before < others.len() as u32 {
        ensure!(
            hal_pv::time::now_ns() - start < 1_000_000_000,
            "{} of {} CPUs answered the IPI",
            IPIS.load(Ordering::Acquire) - before,
            others.len()
        );
        hal_pv::cpu::relax();
    }
    Ok(())
}
