//! The interrupt descriptor table, shared by all CPUs.
//!
//! It is assembled into the image (`irq/stubs.rs`), not built at boot: on PVM hosts each of the
//! 512 stores that building it takes would be an emulated instruction. Every vector has a gate to
//! its 16-byte entry stub; the double fault, NMI and machine check run on their own IST stacks.

unsafe extern "C" {
    static noa_idt: [u64; 512];
}

/// Loads the IDT on this CPU.
pub(crate) fn load() {
    // SAFETY: the table is static, complete and read-only.
    unsafe {
        let pointer = x86::dtables::DescriptorTablePointer::new(&noa_idt);
        x86::dtables::lidt(&pointer);
    }
}
