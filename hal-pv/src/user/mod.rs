//! User mode: entering ring 3 and coming back, on both kinds of host.
//!
//! The model (as in Asterinas): the kernel holds each thread's registers in a [`UserContext`] and
//! calls [`UserContext::run`], which enters ring 3 and *returns* when the thread traps back — a
//! system call, an exception or an interrupt — with the registers saved in the same context. The
//! kernel then handles the trap in plain Rust and runs the context again. There is no user state
//! on kernel stacks and no assembly in the kernel.
//!
//! How a trap finds its way back (`entry.rs`): before entering, `run` points the TSS's RSP0 (and
//! the `syscall` entry's stack) at the *end* of the context's frame, so the CPU pushes the user's
//! RIP/CS/RFLAGS/RSP/SS straight into it and the common stub pushes the general registers below;
//! then the stub switches to the kernel stack saved by `run` and returns from it.
//!
//! System calls. On VT-x hosts `syscall` enters ring 0 at LSTAR as usual. On PVM hosts a ring-3
//! `syscall` jumps to LSTAR *without* entering ring 0, and since that page is supervisor-only it
//! faults there: a `#PF` with user CS and RIP == CR2 == the LSTAR entry, RCX = return address,
//! R11 = user RFLAGS (FIELD-NOTES). `run` recognises both and reports [`Trap::Syscall`] with RIP
//! already set to the return address. A user `jmp` to the entry can forge RCX and R11: RFLAGS are
//! sanitised at every entry to user mode, and a non-canonical RIP or RSP is refused before `iretq`
//! could fault in ring 0.
//!
//! Vector state (x87/SSE/AVX/AVX-512) never passes through ring 0: ring 0 must not execute SSE or
//! the xsave family on PVM hosts. [`vector`] saves and restores it from ring 3 through a
//! trampoline page mapped into every address space.

mod context;
mod entry;
pub mod vector;

pub use context::{Trap, UserContext};

use crate::mm::address_space::AddressSpace;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU64;

/// Where the vector-state trampoline page is mapped in every address space (the page below
/// [`crate::mm::address_space::USER_END`]).
pub const TRAMPOLINE_VA: u64 = crate::mm::address_space::USER_END - 0x1000;

/// The IPI that pulls a CPU out of user mode so that it catches up with page-table changes.
pub const FLUSH_VECTOR: u8 = 0xf1;

/// Pseudo vector number the VT-x `syscall` entry stores in the frame.
pub(crate) const SYSCALL_VECTOR: u64 = 0x100;

/// Per-CPU user-mode state.
pub(crate) struct CpuUserState {
    /// The address space loaded in CR3 (None: the kernel's tables).
    pub(crate) loaded: UnsafeCell<Option<Arc<AddressSpace>>>,
    /// The generation of `loaded` this CPU's TLB reflects.
    pub(crate) loaded_generation: AtomicU64,
    /// Root of the address space this CPU is in user mode in now, 0 in the kernel.
    pub(crate) in_user: AtomicU64,
    /// The FS base loaded in the MSR.
    pub(crate) fs_base: UnsafeCell<u64>,
    /// The user GS base loaded in KERNEL_GS_BASE.
    pub(crate) gs_base: UnsafeCell<u64>,
}

impl CpuUserState {
    pub(crate) const fn new() -> Self {
        CpuUserState {
            loaded: UnsafeCell::new(None),
            loaded_generation: AtomicU64::new(0),
            in_user: AtomicU64::new(0),
            fs_base: UnsafeCell::new(0),
            gs_base: UnsafeCell::new(0),
        }
    }
}

/// Makes this CPU ready for user mode: the `syscall` MSRs, SMEP/SMAP where the CPU has them, and
/// the vector-state control (CR4.OSXSAVE, XCR0). Runs once per CPU at bring-up.
pub(crate) fn init_this_cpu() {
    let cpuid = raw_cpuid::CpuId::new();
    if let Some(ext) = cpuid.get_extended_feature_info() {
        let mut cr4 = 0;
        if ext.has_smep() {
            cr4 |= 1 << 20;
        }
        if ext.has_smap() {
            cr4 |= 1 << 21;
        }
        // SAFETY: the kernel never executes or touches user pages (it copies through the direct
        // map), so both protections only catch bugs.
        unsafe {
            x86::controlregs::cr4_write(x86::controlregs::Cr4::from_bits_truncate(
                x86::controlregs::cr4().bits() | cr4,
            ))
        };
    }
    entry::init_syscall_msrs();
    vector::init_this_cpu();
    if crate::irq::handler(FLUSH_VECTOR).is_none() {
        // The interruption itself is the point: `run` catches up on the way back in.
        crate::irq::set_handler(FLUSH_VECTOR, |_| {});
    }
}
