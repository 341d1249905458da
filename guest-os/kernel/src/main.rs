//! The NOA ARK OS kernel: safe Rust over hal-pv.
//!
//! Boot ends here: the HAL calls [`kernel_main`] on the boot CPU with the hardware up. The kernel
//! parses its command line, brings the other CPUs online, prints the boot line and then — until an
//! init program exists — runs the in-guest tests if asked, and powers off.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod cmdline;
mod kbench;
mod ktest;
mod net;

use hal_pv::pvport::{PowerOffReason, power_off};
use hal_pv::{BootInfo, println};

hal_pv::entry_point!(kernel_main);

fn kernel_main(info: BootInfo) -> ! {
    let cmdline = cmdline::Cmdline::parse(info.cmdline);
    let online = hal_pv::smp::start_application_processors(ap_main);
    let mem_mib = info.usable_ram_bytes >> 20;
    println!("NOA-BOOT-OK cpus={online} mem_mib={mem_mib}");
    if let Some(action) = cmdline.test_action {
        test_action(action);
    }
    let code = match (cmdline.ktest, cmdline.kbench) {
        (Some(filter), _) => ktest::run_all(filter, info.cmdline),
        (None, Some(name)) => kbench::run(name, info.cmdline),
        (None, None) => 0,
    };
    power_off(code, PowerOffReason::Normal)
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

/// Where every other CPU ends up: an idle loop that sleeps until an interrupt.
fn ap_main() -> ! {
    loop {
        hal_pv::cpu::wait_for_interrupt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hal_pv::crash::panic(info)
}
