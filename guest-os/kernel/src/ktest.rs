//! The in-guest kernel test harness (`noa.ktest=FILTER` on the command line).
//!
//! Tests run on the boot CPU after boot, against the real HAL on the real (virtual) machine:
//! frames, heap, page tables, clock, timer interrupts, IPIs to every other CPU. Each prints
//! `ktest NAME ... ok` or `... FAILED: why`; the run ends with `NOA-KTEST passed=P failed=F` and the
//! kernel powers off with 0 only if nothing failed.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use hal_pv::irq::{self, TrapFrame};
use hal_pv::mm::{PAGE_SIZE, frames, paging};
use hal_pv::println;

type TestResult = Result<(), String>;
/// A test: its name and its body.
type KernelTest = (&'static str, fn() -> TestResult);

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

const TESTS: &[KernelTest] = &[
    ("cmdline_parse", cmdline_parse),
    ("frames_alloc_free", frames_alloc_free),
    ("frames_zeroed_and_owned", frames_zeroed_and_owned),
    ("heap_small_and_large", heap_small_and_large),
    ("paging_kernel_permissions", paging_kernel_permissions),
    ("paging_direct_map", paging_direct_map),
    ("clock_monotonic", clock_monotonic),
    ("timer_one_shot_deadline", timer_one_shot_deadline),
    ("smp_ipi_every_cpu", smp_ipi_every_cpu),
];

/// Runs the tests whose names contain one of the comma-separated words of `filter` (`all`: every
/// test); returns the exit code.
pub fn run_all(filter: &str) -> u8 {
    let (mut passed, mut failed) = (0, 0);
    let selected = |name: &str| {
        filter == "all"
            || filter
                .split(',')
                .any(|word| !word.is_empty() && name.contains(word))
    };
    for (name, test) in TESTS.iter().filter(|(name, _)| selected(name)) {
        match test() {
            Ok(()) => {
                println!("ktest {name} ... ok");
                passed += 1;
            }
            Err(why) => {
                println!("ktest {name} ... FAILED: {why}");
                failed += 1;
            }
        }
    }
    println!("NOA-KTEST passed={passed} failed={failed}");
    if failed == 0 && passed > 0 { 0 } else { 1 }
}

fn cmdline_parse() -> TestResult {
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

fn frames_alloc_free() -> TestResult {
    let before = frames::free_bytes();
    let a = frames::alloc().ok_or("alloc failed")?;
    let b = frames::alloc().ok_or("alloc failed")?;
    let (a_phys, b_phys) = (a.phys(), b.phys());
    ensure!(a_phys != b_phys, "same frame twice: {a_phys:?}");
    ensure!(
        a_phys.0 % PAGE_SIZE == 0 && b_phys.0 % PAGE_SIZE == 0,
        "unaligned frames {a_phys:?} {b_phys:?}"
    );
    ensure!(frames::free_bytes() == before - 2 * PAGE_SIZE, "two allocations not counted");
    drop(a);
    drop(b);
    ensure!(frames::free_bytes() == before, "leak: {} -> {} bytes free", before, frames::free_bytes());
    let c = frames::alloc().ok_or("alloc failed")?;
    ensure!(c.phys() == b_phys, "last freed frame not reused first: got {:?}, freed {b_phys:?}", c.phys());
    ensure!(
        frames::usable_ram_bytes() > before / 2,
        "usable RAM {} below free {}",
        frames::usable_ram_bytes(),
        before
    );
    Ok(())
}

fn frames_zeroed_and_owned() -> TestResult {
    let mut frame = frames::alloc_zeroed().ok_or("alloc_zeroed failed")?;
    ensure!(frame.words().iter().all(|&w| w == 0), "alloc_zeroed gave a dirty frame");
    for (i, word) in frame.words_mut().iter_mut().enumerate() {
        *word = 0xa5a5_0000 + i as u64;
    }
    let phys = frame.phys();
    drop(frame);
    // A recycled frame comes back from `alloc` as it was (only the free-list link in word 0).
    let again = frames::alloc().ok_or("alloc failed")?;
    ensure!(again.phys() == phys, "freed frame not reused");
    let intact = again.words()[1..].iter().enumerate().all(|(i, &w)| w == 0xa5a5_0001 + i as u64);
    ensure!(intact, "a frame's content changed while it was free");
    Ok(())
}

fn heap_small_and_large() -> TestResult {
    let small: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
    ensure!(
        small.iter().enumerate().all(|(i, b)| **b == i as u64),
        "small boxes corrupted"
    );
    // Larger than a heap chunk: the heap must grow. Touch one byte per page only: every ring-0
    // instruction is emulated on PVM hosts, so a byte-by-byte fill of megabytes takes seconds.
    let len = (2 << 20) + (512 << 10);
    let mut big: Vec<u8> = alloc::vec![0; len];
    for (i, page) in big.chunks_mut(PAGE_SIZE as usize).enumerate() {
        page[0] = i as u8;
    }
    let intact = big
        .chunks(PAGE_SIZE as usize)
        .enumerate()
        .all(|(i, page)| page[0] == i as u8);
    ensure!(intact, "large allocation corrupted");
    drop(big);
    let again: Box<[u64; 512]> = Box::new([9; 512]);
    ensure!(again[511] == 9, "allocation after a large free corrupted");
    Ok(())
}

fn paging_kernel_permissions() -> TestResult {
    let code = kernel_main_address();
    let (_, code_flags) = paging::translate(code).ok_or("kernel code unmapped")?;
    ensure!(code_flags & paging::NO_EXECUTE == 0, "kernel code is NX");
    ensure!(
        code_flags & paging::WRITABLE == 0,
        "kernel code is writable"
    );
    static DATA: AtomicU32 = AtomicU32::new(0);
    let data = &DATA as *const AtomicU32 as u64;
    let (_, data_flags) = paging::translate(data).ok_or("kernel data unmapped")?;
    ensure!(
        data_flags & paging::NO_EXECUTE != 0,
        "kernel data is executable"
    );
    ensure!(
        data_flags & paging::WRITABLE != 0,
        "kernel data is read-only"
    );
    let text: &str = "rodata";
    let (_, ro_flags) = paging::translate(text.as_ptr() as u64).ok_or("rodata unmapped")?;
    ensure!(
        ro_flags & (paging::NO_EXECUTE | paging::WRITABLE) == paging::NO_EXECUTE,
        "rodata flags {ro_flags:#x}"
    );
    ensure!(
        paging::translate(0x1000).is_none(),
        "the lower half is mapped in the kernel tables"
    );
    Ok(())
}

fn kernel_main_address() -> u64 {
    let f: fn(hal_pv::BootInfo) -> ! = crate::kernel_main;
    f as usize as u64
}

fn paging_direct_map() -> TestResult {
    let frame = frames::alloc().ok_or("alloc failed")?;
    let virt = frame.words().as_ptr() as u64;
    let (phys, flags) = paging::translate(virt).ok_or("direct map misses a frame")?;
    ensure!(phys == frame.phys(), "direct map of {:?} translates to {phys:?}", frame.phys());
    ensure!(flags & paging::NO_EXECUTE != 0, "direct map is executable");
    Ok(())
}

fn clock_monotonic() -> TestResult {
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

fn timer_one_shot_deadline() -> TestResult {
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

fn smp_ipi_every_cpu() -> TestResult {
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
