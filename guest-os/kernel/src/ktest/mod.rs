//! The in-guest kernel test harness (`noa.ktest=FILTER` on the command line).
//!
//! Tests run on the boot CPU after boot, against the real HAL on the real (virtual) machine —
//! frames, heap, page tables, clock, timer interrupts, IPIs to every other CPU, the virtio devices.
//! Each prints `ktest NAME ... ok`, `... FAILED: why` or `... skipped: why`; the run ends with
//! `NOA-KTEST passed=P failed=F` and the kernel powers off with 0 only if nothing failed and
//! something passed.

mod cpu;
mod memory;
mod user;
mod virtio;

use alloc::string::String;
use hal_pv::println;

/// Why a test did not pass.
pub enum Failure {
    Failed(String),
    /// The test cannot run here (e.g. no scratch disk given); it counts neither way.
    Skipped(&'static str),
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Failure::Failed(why)
    }
}

impl From<&str> for Failure {
    fn from(why: &str) -> Self {
        Failure::Failed(why.into())
    }
}

impl From<hal_pv::virtio::Error> for Failure {
    fn from(e: hal_pv::virtio::Error) -> Self {
        Failure::Failed(alloc::format!("{e}"))
    }
}

type TestResult = Result<(), Failure>;
/// A test: its name and its body.
type KernelTest = (&'static str, fn() -> TestResult);

/// Fails the test with a formatted reason unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err($crate::ktest::Failure::Failed(alloc::format!($($why)+)));
        }
    };
}
pub(crate) use ensure;

const TESTS: &[KernelTest] = &[
    ("cmdline_parse", cpu::cmdline_parse),
    ("frames_alloc_free", memory::frames_alloc_free),
    ("frames_zeroed_and_owned", memory::frames_zeroed_and_owned),
    ("pages_duplicate_exactly", memory::pages_duplicate_exactly),
    ("heap_small_and_large", memory::heap_small_and_large),
    (
        "paging_kernel_permissions",
        memory::paging_kernel_permissions,
    ),
    ("paging_direct_map", memory::paging_direct_map),
    ("clock_monotonic", cpu::clock_monotonic),
    ("timer_one_shot_deadline", cpu::timer_one_shot_deadline),
    ("smp_ipi_every_cpu", cpu::smp_ipi_every_cpu),
    ("user_syscall_round_trip", user::syscall_round_trip),
    (
        "user_page_fault_reports_address",
        user::page_fault_reports_address,
    ),
    (
        "user_vector_state_survives_a_round_trip",
        user::vector_state_survives_a_round_trip,
    ),
    ("virtio_rng_gives_entropy", virtio::rng_gives_entropy),
    ("virtio_console_writes", virtio::console_writes),
    (
        "virtio_block_reads_the_root_disk",
        virtio::block_reads_the_root_disk,
    ),
    (
        "virtio_block_scratch_write_flush_read",
        virtio::block_scratch_write_flush_read,
    ),
    (
        "virtio_net_dhcp_and_tcp_echo",
        virtio::net_dhcp_and_tcp_echo,
    ),
    (
        "virtio_vsock_echo_with_the_host",
        virtio::vsock_echo_with_the_host,
    ),
];

/// Runs the tests whose names contain one of the comma-separated words of `filter` (`all`: every
/// test); returns the exit code.
pub fn run_all(filter: &str, cmdline: &str) -> u8 {
    virtio::set_up(cmdline);
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
            Err(Failure::Failed(why)) => {
                println!("ktest {name} ... FAILED: {why}");
                failed += 1;
            }
            Err(Failure::Skipped(why)) => println!("ktest {name} ... skipped: {why}"),
        }
    }
    println!("NOA-KTEST passed={passed} failed={failed}");
    if failed == 0 && passed > 0 { 0 } else { 1 }
}
