//! The NOA ARK OS kernel: safe Rust over hal-pv.
//!
//! Boot ends here: the HAL calls [`kernel_main`] on the boot CPU with the hardware up. The kernel
//! parses its command line, brings the other CPUs online, prints the boot line, mounts the root
//! file system and starts `/sbin/init` (or runs the in-guest tests or benchmarks if asked); then
//! every CPU becomes a scheduler idle loop. init's exit powers the machine off with its status.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod cmdline;
mod exec;
mod fs;
mod host_request;
mod kbench;
mod ktest;
mod mm;
mod net;
mod random;
mod shutdown;
mod syscall;
mod task;

/// A kernel log line on the serial console (the VMM shows it with --verbose or on failure).
#[macro_export]
macro_rules! klog {
    ($($arg:tt)*) => {
        hal_pv::println!("kernel: {}", format_args!($($arg)*))
    };
}

use hal_pv::pvport::{PowerOffReason, power_off};
use hal_pv::{BootInfo, println};

hal_pv::entry_point!(kernel_main);

fn kernel_main(info: BootInfo) -> ! {
    let cmdline = cmdline::Cmdline::parse(info.cmdline);
    fs::procfs::set_boot_cmdline(info.cmdline);
    let online = hal_pv::smp::start_application_processors(ap_main);
    let mem_mib = info.usable_ram_bytes >> 20;
    println!("NOA-BOOT-OK cpus={online} mem_mib={mem_mib}");
    if let Some(action) = cmdline.test_action {
        test_action(action);
    }
    let code = match (cmdline.ktest, cmdline.kbench) {
        (Some(filter), _) => ktest::run_all(filter, info.cmdline),
        (None, Some(name)) => kbench::run(name, info.cmdline),
        (None, None) => {
            start_init(info.cmdline);
            task::sched::idle_loop()
        }
    };
    shutdown::power_off(code)
}

/// Mounts the root and starts `/sbin/init` as process 1, with the command after `--` if any.
fn start_init(line: &str) {
    let start = hal_pv::time::now_ns();
    let devices = fs::init(line);
    net::init(devices, line);
    let mounted = hal_pv::time::now_ns();
    // Seed the kernel generator (AT_RANDOM, getrandom) from the entropy device.
    let mut seed = [0u8; 32];
    fs::devfs::fill_random(&mut seed);
    random::seed(&seed);
    let args = cmdline::init_args(line);
    if let Some(level) = cmdline::Cmdline::values(line, "noa.strace").find_map(|v| v.parse().ok()) {
        syscall::TRACE.store(level, core::sync::atomic::Ordering::Relaxed);
    }
    let mut argv = alloc::vec![b"/sbin/init".to_vec()];
    if !args.is_empty() {
        argv.push(b"--".to_vec());
        argv.extend(args);
    }
    let envp = alloc::vec![
        b"TERM=linux".to_vec(),
        b"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_vec(),
    ];
    if let Err(e) = task::spawn_init(argv, envp) {
        klog!("cannot start /sbin/init: {e:?}");
        shutdown::power_off(shutdown::NO_INIT_EXIT_CODE);
    }
    let loaded = hal_pv::time::now_ns();
    klog!(
        "file systems up in {} us, /sbin/init loaded in {} us",
        (mounted - start) / 1000,
        (loaded - mounted) / 1000
    );
    host_request::listen(line);
}

/// Deliberate endings for the VMM's tests of its exit codes and crash reports.
fn test_action(action: &str) {
    match action.split_once(':').unwrap_or((action, "")) {
        ("panic", _) => panic!("requested by noa.test=panic"),
        ("fault", _) => hal_pv::debug::page_fault(),
        ("triple", _) => hal_pv::debug::triple_fault(),
        ("hang", _) => loop {
            hal_pv::cpu::wait_for_interrupt();
        },
        ("exit", code) => power_off(code.parse().unwrap_or(1), PowerOffReason::Normal),
        _ => println!("noa.test={action}: unknown action, ignored"),
    }
}

/// Where every other CPU ends up: the scheduler's idle loop.
fn ap_main() -> ! {
    task::sched::idle_loop()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hal_pv::crash::panic(info)
}
