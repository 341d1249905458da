//! The global descriptor table and task-state segment, one pair per CPU.
//!
//! Selector layout follows what `syscall`/`sysret` need (STAR): kernel code 0x08, kernel data 0x10,
//! a 32-bit user code placeholder 0x18, user data 0x23, user code 0x2b, the TSS at 0x30. The TSS
//! carries the interrupt stacks: IST1 double fault, IST2 NMI, IST3 machine check — so those
//! exceptions get a good stack even when the kernel stack is what broke.

use super::percpu::{IST_STACK_BYTES, PerCpu};

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
pub const USER_DATA: u16 = 0x23;
pub const USER_CODE: u16 = 0x2b;
pub const TSS_SELECTOR: u16 = 0x30;

/// IST slots (1-based, as the IDT encodes them).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

#[repr(C, align(16))]
pub(crate) struct Gdt([u64; 8]);

impl Gdt {
    pub const fn new() -> Self {
        Gdt([
            0,
            0x00af_9a00_0000_ffff, // kernel code, 64-bit
            0x00cf_9200_0000_ffff, // kernel data
            0x00cf_fa00_0000_ffff, // user code, 32-bit (placeholder for the STAR layout)
            0x00cf_f200_0000_ffff, // user data
            0x00af_fa00_0000_ffff, // user code, 64-bit
            0,                     // TSS, low
            0,                     // TSS, high
        ])
    }
}

#[repr(C, packed(4))]
pub(crate) struct Tss {
    reserved0: u32,
    pub rsp: [u64; 3],
    reserved1: u64,
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

impl Tss {
    pub const fn new() -> Self {
        Tss {
            reserved0: 0,
            rsp: [0; 3],
            reserved1: 0,
            ist: [0; 7],
            reserved2: 0,
            reserved3: 0,
            // No I/O bitmap: user code never gets port access.
            iomap_base: core::mem::size_of::<Tss>() as u16,
        }
    }
}

/// Fills this CPU's TSS and GDT and loads them, then reloads the segment registers.
///
/// # Safety
/// Runs on the CPU that owns `percpu`, once, with interrupts off; `ist_base` points at three
/// `IST_STACK_BYTES` stacks that live forever.
pub(crate) unsafe fn load(percpu: &'static PerCpu, ist_base: u64) {
    // SAFETY: bring-up of this CPU; nothing else looks at its GDT or TSS yet.
    let (gdt, tss) = unsafe { (&mut *percpu.gdt.get(), &mut *percpu.tss.get()) };
    let mut ist = [0u64; 7];
    for (i, slot) in ist.iter_mut().take(3).enumerate() {
        *slot = ist_base + ((i + 1) * IST_STACK_BYTES) as u64;
    }
    tss.ist = ist;
    let base = tss as *const Tss as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    gdt.0[6] = limit
        | (base & 0xff_ffff) << 16
        | 0x89 << 40 // present, 64-bit TSS (available)
        | ((base >> 24) & 0xff) << 56;
    gdt.0[7] = base >> 32;

    let pointer = x86::dtables::DescriptorTablePointer::new(&gdt.0);
    // SAFETY: the GDT is valid and lives forever; the far return reloads CS with the same flat
    // 64-bit code segment; data selectors are flat.
    unsafe {
        x86::dtables::lgdt(&pointer);
        core::arch::asm!(
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:x}",
            "mov gs, {tmp:x}",
            code = in(reg) u64::from(KERNEL_CODE),
            data = in(reg) u64::from(KERNEL_DATA),
            tmp = out(reg) _,
        );
        x86::task::load_tr(x86::segmentation::SegmentSelector::from_raw(TSS_SELECTOR));
    }
}
