//! The paravirtual ports of the NOA VMM (docs/boot-protocol.md): power-off with an exit code,
//! the VMM signature, direct 64-bit start of application processors, and memory copies made by
//! the host.
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

/// Port 0xf0: the VMM copies the ranges a `Copy` block lists (docs/boot-protocol.md).
const COPY_PORT: u16 = 0xf0;
/// Entries one request may hold, and the longest range of one (the VMM refuses more).
pub const COPY_MAX_ENTRIES: usize = 64;
pub const COPY_MAX_LEN: usize = 4096;

/// One copy for the VMM: `len` bytes (at most [`COPY_MAX_LEN`]) from guest-physical `src` to
/// guest-physical `dst`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct CopyRange {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
}

/// The `Copy` block: `count` entries; the VMM writes how many it copied into `status`.
#[repr(C, align(8))]
struct CopyBlock {
    count: u32,
    status: u32,
    entries: [CopyRange; COPY_MAX_ENTRIES],
}

/// One block for every CPU, in the kernel image: the port takes a 32-bit address, and the image
/// lies in the first GiB. A request holds it for one port write.
static COPY_BLOCK: spin::Mutex<CopyBlock> = spin::Mutex::new(CopyBlock {
    count: 0,
    status: 0,
    entries: [CopyRange {
        dst: 0,
        src: 0,
        len: 0,
    }; COPY_MAX_ENTRIES],
});

/// Whether copies by the host pay here: under the NOA VMM, on a host whose ring 0 is emulated
/// (a 4 KiB `rep movsq` costs ~323 µs there, a port write ~16 µs). Elsewhere the kernel copies
/// itself, faster than an exit.
pub fn host_copy_available() -> bool {
    crate::cpu::ring0_is_emulated() && host_is_noa_vmm()
}

/// Has the VMM make `count` copies (at most [`COPY_MAX_ENTRIES`]), the `i`th being `range(i)`,
/// in order; returns how many it made (all of them unless one was refused: a bug, the caller
/// copies the rest itself). The entries are written straight into the block. Only where
/// [`host_copy_available`]; every destination must be memory the caller may write.
pub(crate) fn copy_ranges(count: usize, mut range: impl FnMut(usize) -> CopyRange) -> usize {
    let count = count.min(COPY_MAX_ENTRIES);
    let mut block = COPY_BLOCK.lock();
    for (i, entry) in block.entries[..count].iter_mut().enumerate() {
        *entry = range(i);
    }
    block.count = count as u32;
    block.status = 0;
    let phys = crate::mm::virt_to_phys(&*block as *const CopyBlock as u64).0;
    debug_assert!(phys < 1 << 32, "the kernel image lies in the first GiB");
    // SAFETY: the VMM reads the block and writes the destinations during this port write (the
    // asm is a compiler barrier for memory, and the destinations' addresses were exposed when
    // the caller turned them into physical ones).
    unsafe { x86::io::outl(COPY_PORT, phys as u32) };
    (block.status as usize).min(count)
}
