//! Bringing up the application processors (APs) listed in the MADT.
//!
//! Under the NOA VMM an AP is started directly in 64-bit mode through the paravirtual start port
//! (docs/boot-protocol.md): real-mode start-up is emulated one instruction at a time on PVM hosts.
//! Elsewhere (QEMU) the kernel uses the architectural INIT / SIPI / SIPI sequence with a real-mode
//! trampoline copied to physical page 8. Either way the AP lands in [`hal_ap_start`] with its
//! per-CPU block in RDI and its own stack, then runs the kernel's AP entry.

use crate::cpu::percpu::{IST_STACK_BYTES, PerCpu};
use crate::cpu::{gdt, idt, percpu};
use crate::mm::{PAGE_SIZE, PhysAddr, frames, paging, virt_to_phys};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Stack of each AP's kernel thread (the boot CPU's is 64 KiB too).
const AP_STACK_BYTES: u64 = 64 * 1024;
/// How long to wait for an AP to report in: generous for QEMU TCG.
const AP_TIMEOUT_NS: u64 = 2_000_000_000;
/// Physical page of the real-mode trampoline (INIT/SIPI path).
const TRAMPOLINE_PAGE: u8 = 8;

/// CPUs running, the boot CPU included.
static ONLINE: AtomicU32 = AtomicU32::new(1);
/// The kernel's entry for APs.
static AP_MAIN: AtomicUsize = AtomicUsize::new(0);

/// An `ApStart` block for the VMM; also the parameters the trampoline reads.
#[repr(C, align(8))]
struct ApStart {
    apic_id: u32,
    reserved: u32,
    cr3: u64,
    rip: u64,
    rsp: u64,
    arg: u64,
}

/// Number of CPUs online.
pub fn online_cpus() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

/// APIC IDs of the CPUs the firmware lists.
pub fn cpu_apic_ids() -> &'static [u32] {
    crate::boot::cpus().ids()
}

/// Starts every AP of the MADT; each runs `ap_main` once it is up. Returns the CPUs online.
pub fn start_application_processors(ap_main: fn() -> !) -> u32 {
    AP_MAIN.store(ap_main as usize, Ordering::Release);
    let boot_apic = crate::irq::apic::id();
    percpu::BOOT_PERCPU
        .apic_id
        .store(boot_apic, Ordering::Relaxed);
    let mut next_index = 1;
    for &apic_id in cpu_apic_ids().iter().filter(|&&id| id != boot_apic) {
        let Some(block) = prepare(apic_id, next_index) else {
            crate::println!("smp: out of memory starting cpu with APIC ID {apic_id}");
            break;
        };
        let expected = ONLINE.load(Ordering::Acquire) + 1;
        if crate::pvport::host_is_noa_vmm() {
            crate::pvport::request_ap_start(virt_to_phys(&*block as *const ApStart as u64).0);
        } else {
            start_with_sipi(&block);
        }
        if wait_online(expected) {
            next_index += 1;
        } else {
            crate::println!("smp: cpu with APIC ID {apic_id} did not come up");
        }
    }
    online_cpus()
}

/// Allocates the AP's per-CPU block, interrupt stacks and kernel stack.
fn prepare(apic_id: u32, index: u32) -> Option<Box<ApStart>> {
    // Pristine frames: the stacks need no zeroing.
    let ist = frames::alloc_contiguous(3 * IST_STACK_BYTES as u64 / PAGE_SIZE)?;
    let stack = frames::alloc_contiguous(AP_STACK_BYTES / PAGE_SIZE)?;
    let percpu = PerCpu::new(index, apic_id, ist.to_virt() as u64);
    let percpu: &'static PerCpu = Box::leak(Box::new(percpu));
    Some(Box::new(ApStart {
        apic_id,
        reserved: 0,
        cr3: paging::kernel_root().0,
        rip: hal_ap_start as *const () as u64,
        // As if `hal_ap_start` had been called: RSP + 8 is 16-byte aligned.
        rsp: stack.to_virt() as u64 + AP_STACK_BYTES - 8,
        arg: percpu as *const PerCpu as u64,
    }))
}

fn wait_online(expected: u32) -> bool {
    let deadline = crate::time::now_ns() + AP_TIMEOUT_NS;
    while ONLINE.load(Ordering::Acquire) < expected {
        if crate::time::now_ns() > deadline {
            return false;
        }
        crate::cpu::relax();
    }
    true
}

/// First Rust code of an AP: its own tables, per-CPU block, APIC and clock; then the kernel.
extern "C" fn hal_ap_start(percpu: &'static PerCpu) -> ! {
    // SAFETY: this AP, once, interrupts off; the block and stacks were made for it.
    unsafe {
        x86::controlregs::cr3_write(paging::kernel_root().0);
        gdt::load(percpu, percpu.ist_base);
        percpu::install(percpu);
    }
    idt::load();
    crate::boot::init_control_registers();
    crate::irq::apic::init_this_cpu();
    if crate::cpu::features::get().kvmclock {
        crate::time::kvmclock::enable_this_cpu();
    }
    crate::user::init_this_cpu();
    crate::task::init_this_cpu();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    let main = AP_MAIN.load(Ordering::Acquire);
    // SAFETY: only `start_application_processors` stores here, and it stores a `fn() -> !`.
    let main: fn() -> ! = unsafe { core::mem::transmute::<usize, fn() -> !>(main) };
    main()
}

// The INIT/SIPI path: a real-mode trampoline that reaches long mode over the boot page tables
// (which identity-map its page), then jumps to `ap_trampoline_exit`, which switches to the kernel
// tables and stack. Its parameter slots hold an `ApStart`.
core::arch::global_asm!(
    r#"
    .pushsection .rodata.ap_trampoline, "a"
    .balign 16
    .globl ap_trampoline_start
ap_trampoline_start:
    .code16
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl 0x8000 + (ap_tramp_gdt_ptr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(0x8000 + (ap_tramp32 - ap_trampoline_start))
    .code32
ap_tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    ljmpl $0x18, $(0x8000 + (ap_tramp64 - ap_trampoline_start))
    .code64
ap_tramp64:
    movq 0x8000 + (ap_tramp_params - ap_trampoline_start) + 8, %rcx
    movq 0x8000 + (ap_tramp_params - ap_trampoline_start) + 16, %rax
    movq 0x8000 + (ap_tramp_params - ap_trampoline_start) + 24, %rdx
    movq 0x8000 + (ap_tramp_params - ap_trampoline_start) + 32, %rdi
    movabsq $ap_trampoline_exit, %rsi
    jmpq *%rsi
    .balign 8
ap_tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_tramp_gdt_ptr:
    .word 31
    .long 0x8000 + (ap_tramp_gdt - ap_trampoline_start)
    .balign 8
    .globl ap_tramp_params
ap_tramp_params:
    .fill 40, 1, 0
    .globl ap_trampoline_end
ap_trampoline_end:
    .popsection

    .pushsection .text.ap_trampoline_exit, "ax"
ap_trampoline_exit:
    movq %rcx, %cr3
    movq %rdx, %rsp
    jmpq *%rax
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_tramp_params: u8;
}

fn start_with_sipi(block: &ApStart) {
    // SAFETY: linker symbols bound the trampoline blob; page 8 is low RAM the kernel does not use
    // (frames start above the kernel image), and only one AP starts at a time.
    unsafe {
        let start = &ap_trampoline_start as *const u8;
        let len = &ap_trampoline_end as *const u8 as usize - start as usize;
        let params = &ap_tramp_params as *const u8 as usize - start as usize;
        let dest = PhysAddr(u64::from(TRAMPOLINE_PAGE) * PAGE_SIZE).to_virt();
        core::ptr::copy_nonoverlapping(start, dest, len);
        core::ptr::copy_nonoverlapping(
            block as *const ApStart as *const u8,
            dest.add(params),
            core::mem::size_of::<ApStart>(),
        );
    }
    crate::irq::apic::send_init(block.apic_id);
    spin_ns(10_000_000);
    for _ in 0..2 {
        crate::irq::apic::send_startup(block.apic_id, TRAMPOLINE_PAGE);
        spin_ns(200_000);
    }
}

fn spin_ns(ns: u64) {
    let end = crate::time::now_ns() + ns;
    while crate::time::now_ns() < end {
        crate::cpu::relax();
    }
}
