//! Deliberate failures, for the tests of the crash paths (`noa.test=` on the kernel command
//! line): a CPU exception in the kernel and a triple fault. The VMM must turn each into its crash
//! exit code with a report; these let the tests prove it does.

/// A page fault in the kernel: a read of an address nothing maps.
pub fn page_fault() -> ! {
    const UNMAPPED: u64 = 0x0000_0000_dead_0000;
    // SAFETY: deliberately faults; the exception handler reports it and powers off.
    let value = unsafe { (UNMAPPED as *const u64).read_volatile() };
    panic!("read of unmapped {UNMAPPED:#x} returned {value:#x}")
}

/// A triple fault: with an empty IDT, an exception cannot be delivered, nor can the double fault
/// that follows, and the CPU shuts down.
pub fn triple_fault() -> ! {
    let empty = x86::dtables::DescriptorTablePointer::<u64> {
        limit: 0,
        base: core::ptr::null(),
    };
    // SAFETY: deliberately brings the machine down; nothing runs after this.
    unsafe {
        x86::dtables::lidt(&empty);
        core::arch::asm!("ud2", options(noreturn));
    }
}
