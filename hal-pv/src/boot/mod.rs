//! Boot: from the PVH entry to the kernel's `main`, on the boot CPU.
//!
//! Order matters and is kept short (every ring-0 instruction is emulated on PVM hosts): CPU tables
//! first so that any fault is reported, then the start info, frames, the direct map of RAM above
//! 1 GiB, the clock and the local APIC, and the CPU list from ACPI (the heap grows on first use).

pub mod pvh;
pub mod start_info;

use crate::cpu::{gdt, idt, percpu};
use crate::mm::{PhysAddr, frames, paging};
use core::cell::UnsafeCell;
use start_info::StartInfo;

/// What the HAL hands the kernel.
#[derive(Debug)]
pub struct BootInfo {
    /// The kernel command line (from the VMM or QEMU's `-append`).
    pub cmdline: &'static str,
    /// Usable RAM in the memory map, in bytes.
    pub usable_ram_bytes: u64,
    /// How many CPUs the firmware tables list (the boot CPU included).
    pub cpu_count: usize,
    /// Whether we run under the NOA VMM (its paravirtual ports are there).
    pub noa_vmm: bool,
}

struct BootState(UnsafeCell<StartInfo>);
// SAFETY: written once by the boot CPU before any other CPU runs, read-only afterwards.
unsafe impl Sync for BootState {}

static START_INFO: BootState = BootState(UnsafeCell::new(StartInfo {
    memmap: [start_info::MemmapEntry {
        addr: 0,
        size: 0,
        kind: 0,
        reserved: 0,
    }; start_info::MAX_MEMMAP],
    memmap_len: 0,
    cmdline: [0; start_info::MAX_CMDLINE],
    cmdline_len: 0,
    rsdp: PhysAddr(0),
}));

struct CpuListCell(UnsafeCell<crate::acpi::CpuList>);
// SAFETY: written once by the boot CPU before any other CPU runs, read-only afterwards.
unsafe impl Sync for CpuListCell {}

static CPUS: CpuListCell = CpuListCell(UnsafeCell::new(crate::acpi::CpuList {
    apic_ids: [0; crate::acpi::MAX_CPUS],
    count: 0,
}));

unsafe extern "Rust" {
    /// Defined by the kernel with [`crate::entry_point!`].
    fn noa_kernel_main(info: BootInfo) -> !;
}

/// Sets up the machine control registers every CPU needs: write-protect in ring 0, and the FPU /
/// SSE enables that user programs need (the kernel itself never executes SSE).
pub(crate) fn init_control_registers() {
    use x86::controlregs::{Cr0, Cr4, cr0, cr0_write, cr4, cr4_write};
    // SAFETY: these bits keep the current mappings and code valid.
    unsafe {
        let c0 = (cr0()
            | Cr0::CR0_MONITOR_COPROCESSOR
            | Cr0::CR0_NUMERIC_ERROR
            | Cr0::CR0_WRITE_PROTECT)
            - Cr0::CR0_EMULATE_COPROCESSOR
            - Cr0::CR0_TASK_SWITCHED;
        cr0_write(c0);
        cr4_write(
            cr4() | Cr4::CR4_ENABLE_SSE | Cr4::CR4_UNMASKED_SSE | Cr4::CR4_ENABLE_GLOBAL_PAGES,
        );
    }
}

/// The CPU list from the MADT (available once the kernel runs).
pub(crate) fn cpus() -> &'static crate::acpi::CpuList {
    // SAFETY: filled before the kernel runs, never written again.
    unsafe { &*CPUS.0.get() }
}

#[unsafe(no_mangle)]
extern "C" fn hal_start64(start_info_phys: u64) -> ! {
    // CPU tables first: from here on a fault prints a report instead of resetting the machine.
    let ist = percpu::BOOT_IST.0.get() as u64;
    // SAFETY: boot CPU, once, interrupts off; the per-CPU block and IST stacks are static.
    unsafe {
        gdt::load(&percpu::BOOT_PERCPU, ist);
        percpu::install(&percpu::BOOT_PERCPU);
    }
    idt::load();
    init_control_registers();

    // SAFETY: the loader passed this address in EBX; the assembled direct map covers it.
    let info = unsafe {
        start_info::read(start_info_phys, &mut *START_INFO.0.get());
        &*START_INFO.0.get()
    };
    if info.memmap().is_empty() {
        crate::crash::early_panic("PVH start info has no memory map");
    }

    let (_, kernel_end) = crate::mm::kernel_phys_range();
    frames::init(info.memmap(), kernel_end.max(PhysAddr(1 << 20)));
    let features = crate::cpu::features::get();
    let ram = info
        .memmap()
        .iter()
        .filter(|e| e.kind == start_info::MEMMAP_RAM);
    paging::init(
        ram.map(|e| (e.addr, e.addr.saturating_add(e.size))),
        features.gib_pages,
    );
    frames::init_refcounts();

    crate::time::init();
    crate::cpu::emulation::measure();
    crate::irq::apic::init_this_cpu();
    crate::irq::apic::calibrate_timer();
    crate::user::init_this_cpu();
    crate::task::init_this_cpu();
    // SAFETY: boot CPU, once, before anyone reads the list.
    let cpus = unsafe { &mut *CPUS.0.get() };
    if crate::acpi::find_cpus(info.rsdp, cpus).is_none() || cpus.count == 0 {
        // No usable MADT: run on the boot CPU alone.
        cpus.apic_ids[0] = crate::irq::apic::id();
        cpus.count = 1;
    }

    let boot = BootInfo {
        cmdline: info.cmdline(),
        usable_ram_bytes: frames::usable_ram_bytes(),
        cpu_count: cpus.count,
        noa_vmm: crate::pvport::host_is_noa_vmm(),
    };
    // SAFETY: the kernel defines this symbol with `entry_point!`, with this signature.
    unsafe { noa_kernel_main(boot) }
}
