//! Per-CPU data, reached through the GS base. The boot CPU's block is static (it is needed before
//! the heap exists); each application processor gets one from the heap when it is started.

use super::gdt::{Gdt, Tss};
use crate::time::kvmclock::PvClock;
use core::cell::UnsafeCell;

/// Size of each interrupt stack (double fault, NMI, machine check).
pub const IST_STACK_BYTES: usize = 16 * 1024;

/// GS offsets of the fields the user-mode entry and exit assembly uses (`user/entry.rs`).
pub(crate) const GS_USER_RETURN_RSP: usize = 16;
pub(crate) const GS_USER_CR2: usize = 24;
pub(crate) const GS_USER_FRAME_END: usize = 32;
pub(crate) const GS_USER_RSP_SCRATCH: usize = 40;

/// Most CPUs the HAL manages (the TLB shoot-down keeps one bit per CPU's state).
pub const MAX_CPUS: usize = 64;

#[repr(C, align(64))]
pub struct PerCpu {
    /// Points at this block: `gs:[0]` (lets us turn GS into a reference).
    self_ptr: u64,
    /// Dense CPU number, 0 = boot CPU: `gs:[8]`.
    pub index: u32,
    pub apic_id: core::sync::atomic::AtomicU32,
    /// `gs:[16]`: the kernel stack pointer a trap from user mode returns to (inside `run`).
    pub(crate) user_return_rsp: UnsafeCell<u64>,
    /// `gs:[24]`: CR2 of the last page fault from user mode.
    pub(crate) user_cr2: UnsafeCell<u64>,
    /// `gs:[32]`: the end of the running user context's trap frame (the `syscall` entry's stack).
    pub(crate) user_frame_end: UnsafeCell<u64>,
    /// `gs:[40]`: the user stack pointer, briefly, in the `syscall` entry.
    pub(crate) user_rsp_scratch: UnsafeCell<u64>,
    /// User-mode state of this CPU: loaded address space, FS base (`user/`).
    pub(crate) user: crate::user::CpuUserState,
    /// The kernel context running here and the one it switched from (`task.rs`).
    pub(crate) task: crate::task::CpuTaskState,
    /// Base of this CPU's three interrupt stacks (0 for the boot CPU, whose stacks are static).
    pub(crate) ist_base: u64,
    pub(crate) gdt: UnsafeCell<Gdt>,
    pub(crate) tss: UnsafeCell<Tss>,
    pub(crate) pvclock: PvClock,
}

// SAFETY: the cells are written only by the owning CPU (at bring-up, and with interrupts off in
// the user-mode and task-switch paths); other CPUs read only the atomics.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    pub(crate) const fn new(index: u32, apic_id: u32, ist_base: u64) -> Self {
        PerCpu {
            self_ptr: 0,
            index,
            apic_id: core::sync::atomic::AtomicU32::new(apic_id),
            user_return_rsp: UnsafeCell::new(0),
            user_cr2: UnsafeCell::new(0),
            user_frame_end: UnsafeCell::new(0),
            user_rsp_scratch: UnsafeCell::new(0),
            user: crate::user::CpuUserState::new(),
            task: crate::task::CpuTaskState::new(),
            ist_base,
            gdt: UnsafeCell::new(Gdt::new()),
            tss: UnsafeCell::new(Tss::new()),
            pvclock: PvClock::new(),
        }
    }
}

#[repr(C, align(16))]
pub(crate) struct IstStacks(pub [[u8; IST_STACK_BYTES]; 3]);

/// The boot CPU's interrupt stacks; all zero, so they live in `.bss` and cost nothing until used.
pub(crate) struct BootIst(pub UnsafeCell<IstStacks>);
// SAFETY: only the boot CPU uses them, as stacks.
unsafe impl Sync for BootIst {}

pub(crate) static BOOT_IST: BootIst =
    BootIst(UnsafeCell::new(IstStacks([[0; IST_STACK_BYTES]; 3])));
pub(crate) static BOOT_PERCPU: PerCpu = PerCpu::new(0, 0, 0);

/// Points GS at `percpu` on this CPU.
///
/// # Safety
/// `percpu` lives forever and belongs to this CPU; the GS selector must already be loaded.
pub(crate) unsafe fn install(percpu: &'static PerCpu) {
    let ptr = percpu as *const PerCpu as u64;
    // SAFETY: the block is ours; writing its self pointer before anyone reads through GS.
    unsafe {
        (ptr as *mut u64).write_volatile(ptr);
        x86::msr::wrmsr(x86::msr::IA32_GS_BASE, ptr);
    }
    if let Some(slot) = ALL.get(percpu.index as usize) {
        slot.store(ptr as *mut PerCpu, core::sync::atomic::Ordering::Release);
        INSTALLED.fetch_max(
            percpu.index as usize + 1,
            core::sync::atomic::Ordering::AcqRel,
        );
    }
}

/// Every installed per-CPU block, by index (for cross-CPU work such as TLB shoot-downs).
static ALL: [core::sync::atomic::AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// One past the highest index installed: how much of [`ALL`] to look at. CPUs are numbered from
/// 0 as they come up, so on a 2-vCPU guest a walk over all CPUs (a TLB shoot-down, a wake-up)
/// looks at 2 slots, not 64 — each an emulated instruction or more on PVM hosts.
static INSTALLED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The per-CPU blocks of all CPUs online.
pub fn all_cpus() -> impl Iterator<Item = &'static PerCpu> {
    let installed = INSTALLED.load(core::sync::atomic::Ordering::Acquire);
    ALL[..installed.min(MAX_CPUS)].iter().filter_map(|slot| {
        let ptr = slot.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: only `install` stores here, pointers to blocks that live forever.
        (!ptr.is_null()).then(|| unsafe { &*ptr })
    })
}

/// This CPU's per-CPU block.
#[inline]
pub fn this_cpu() -> &'static PerCpu {
    let ptr: u64;
    // SAFETY: GS points at this CPU's block from bring-up on; gs:[0] is its address.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: as above; blocks are never freed.
    unsafe { &*(ptr as *const PerCpu) }
}

/// This CPU's index if its per-CPU block is installed; for crash reports, which must not fault
/// again when GS is what broke.
pub fn cpu_index_checked() -> Option<u32> {
    // SAFETY: reading IA32_GS_BASE has no side effects.
    let base = unsafe { x86::msr::rdmsr(x86::msr::IA32_GS_BASE) };
    (base >= crate::mm::KERNEL_IMAGE_BASE.min(crate::mm::DIRECT_MAP_BASE)).then(cpu_index)
}

/// This CPU's dense index (0 = boot CPU).
#[inline]
pub fn cpu_index() -> u32 {
    let index: u32;
    // SAFETY: as in `this_cpu`.
    unsafe {
        core::arch::asm!("mov {:e}, gs:[8]", out(reg) index, options(nostack, readonly, preserves_flags))
    };
    index
}
