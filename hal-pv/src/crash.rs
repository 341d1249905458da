//! Fatal errors: kernel panics and CPU exceptions in the kernel. Each prints one clear report on
//! the console and powers off with the crash code, which the VMM turns into its exit code 125.
//!
//! Reports bypass the console lock — the crashing CPU may hold it — and a CPU that crashes while
//! another is already reporting just stops, so two reports never interleave.

use crate::console::write_fmt_unlocked as write;
use crate::irq::TrapFrame;
use crate::pvport::{PowerOffReason, halt_forever, power_off};
use core::sync::atomic::{AtomicBool, Ordering};

/// Exit code reported with a crash (the VMM maps the crash reason to its own code, 125).
const CRASH_EXIT_CODE: u8 = 125;

static CRASHING: AtomicBool = AtomicBool::new(false);

fn claim_report() {
    if CRASHING.swap(true, Ordering::AcqRel) {
        halt_forever();
    }
}

/// A kernel panic: the message and where it came from.
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    claim_report();
    write(format_args!("\nKERNEL PANIC: {}", info.message()));
    if let Some(location) = info.location() {
        write(format_args!(" at {}:{}", location.file(), location.line()));
    }
    write(format_args!("\n"));
    power_off(CRASH_EXIT_CODE, PowerOffReason::KernelPanic)
}

/// A fatal error before the console and the panic machinery can be trusted.
pub fn early_panic(message: &str) -> ! {
    claim_report();
    write(format_args!("\nKERNEL PANIC (early boot): {message}\n"));
    power_off(CRASH_EXIT_CODE, PowerOffReason::KernelPanic)
}

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// A CPU exception in the kernel: vector, error code, RIP, CR2 and the registers.
pub fn exception(frame: &TrapFrame) -> ! {
    claim_report();
    // SAFETY: reading CR2 has no side effects.
    let cr2 = unsafe { x86::controlregs::cr2() };
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("?");
    write(format_args!(
        "\nCPU EXCEPTION: vector {} ({name}) error={:#x} on cpu {}\n\
         rip={:#018x} cs={:#x} rflags={:#x} rsp={:#018x} ss={:#x} cr2={:#018x}\n\
         rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
         rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}\n\
         r9 ={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}\n\
         r13={:#018x} r14={:#018x} r15={:#018x}\n",
        frame.vector,
        frame.error_code,
        crate::cpu::percpu::cpu_index_checked().map_or(-1, i64::from),
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
        cr2 as u64,
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
    ));
    power_off(CRASH_EXIT_CODE, PowerOffReason::CpuException)
}
