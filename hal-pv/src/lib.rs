//! hal-pv: the NOA ARK OS paravirtual hardware abstraction layer.
//!
//! This crate owns **all** `unsafe` code of the guest: the PVH boot entry, the CPU tables (GDT, IDT,
//! TSS), paging, the frame allocator and kernel heap, the local APIC and its timer, the clock
//! (kvmclock or TSC), the serial console, CPU bring-up and the paravirtual ports of our VMM (the
//! host's requests among them). The kernel (`guest-os/`) is written in safe Rust against the API
//! exported here.
//!
//! Rules for ring-0 code in this crate (see `shared/FIELD-NOTES.md`): on PVM hosts every ring-0
//! instruction is emulated (~0.6 µs), so boot and interrupt paths stay short; never execute SSE,
//! x87 state saves of the xsave family or `cmpxchg16b` (they kill the VM); never `rep movsb`; and
//! don't zero memory the VMM handed over already zeroed.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod acpi;
pub mod boot;
pub mod console;
pub mod cpu;
pub mod crash;
pub mod debug;
pub mod host_request;
pub mod irq;
pub mod mm;
pub mod pvport;
pub mod smp;
pub mod task;
pub mod time;
pub mod user;
pub mod virtio;

pub use boot::BootInfo;

/// Declares the kernel's entry point: `fn(BootInfo) -> !`, called on the boot CPU once the HAL is
/// up (paging, heap, interrupts, clock, local APIC). The kernel crate stays `forbid(unsafe_code)`:
/// the exported symbol is generated here.
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        #[unsafe(export_name = "noa_kernel_main")]
        extern "Rust" fn __noa_kernel_main(info: $crate::BootInfo) -> ! {
            let main: fn($crate::BootInfo) -> ! = $main;
            main(info)
        }
    };
}
