//! The paravirtual ports of the NOA VMM (docs/boot-protocol.md): power-off with an exit code,
//! the VMM signature, and direct 64-bit start of application processors.
//!
//! Port 0xf4 is also QEMU's `isa-debug-exit` port, so powering off works there when the device is
//! configured; otherwise the CPU halts for good and the host's timeout ends the run.

use core::sync::atomic::{AtomicU8, Ordering};

const EXIT_PORT: u16 = 0xf4;
const AP_START_PORT: u16 = 0xf8;
const NOA_SIGNATURE: u32 = 0x4E4F_4101;

/// Why the guest powers off; the VMM turns anything but `Normal` into its crash exit code (125).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PowerOffReason {
    Normal = 0,
    KernelPanic = 1,
    CpuException = 2,
}

static HOST_IS_NOA: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 2;

/// Whether we run under the NOA VMM (which answers the signature on port 0xf4).
pub fn host_is_noa_vmm() -> bool {
    match HOST_IS_NOA.load(Ordering::Relaxed) {
        UNKNOWN => {
            // SAFETY: reading a port has no memory effects; unknown ports read as all-ones.
            let found = unsafe { x86::io::inl(EXIT_PORT) } == NOA_SIGNATURE;
            HOST_IS_NOA.store(found as u8, Ordering::Relaxed);
            found
        }
        known => known == 1,
    }
}

/// Powers the machine off with `code`; never returns.
pub fn power_off(code: u8, reason: PowerOffReason) -> ! {
    let value = u32::from(code) | (reason as u32) << 8;
    // SAFETY: the exit port has no memory effects; the VMM stops every vCPU on this write.
    unsafe { x86::io::outl(EXIT_PORT, value) };
    halt_forever()
}

/// Stops this CPU for good (interrupts off).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops this CPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Asks the NOA VMM to start a CPU in 64-bit mode from the `ApStart` block at `block_phys`.
pub(crate) fn request_ap_start(block_phys: u64) {
    debug_assert!(block_phys < 1 << 32);
    // SAFETY: the VMM reads the block from guest memory; the port write itself touches nothing.
    unsafe { x86::io::outl(AP_START_PORT, block_phys as u32) };
}
