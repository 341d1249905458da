//! The PVH entry: the first instructions the boot CPU runs, in 32-bit protected mode with paging
//! off and `EBX` = physical address of `hvm_start_info` (Xen's PVH boot ABI, which our VMM and
//! QEMU's `-kernel` both speak).
//!
//! It switches to long mode and jumps to `hal_start64` in the higher half. Everything here is
//! linked at its physical address (section `.boot.*`). The page tables are assembled, not
//! computed — on PVM hosts every store the boot CPU makes is an emulated instruction — which the
//! fixed kernel layout of `linker.ld` makes possible:
//!
//! - `boot_pml4`: physical 0..1 GiB identity-mapped (executable, for the mode switch and the
//!   INIT/SIPI trampoline) plus the kernel image; used only while switching modes;
//! - `kernel_pml4`: the kernel's own tables, loaded before any Rust runs — the kernel image in
//!   three 2 MiB pages (text RX, rodata R, data+bss RW, the last two NX) and the direct map of
//!   physical 0..1 GiB (RW, NX) plus the IOAPIC and local APIC pages (uncached). No identity map:
//!   the lower half belongs to user programs. [`crate::mm::paging`] adds RAM above 1 GiB.

use core::arch::global_asm;

// The Xen PVH note: type XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen", desc = 32-bit entry address.
global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4
    .popsection
"#
);

global_asm!(
    r#"
    .pushsection .boot.text, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %edi

    /* CR4.PAE */
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4

    movl $boot_pml4, %eax
    movl %eax, %cr3

    /* EFER.LME | EFER.NXE */
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr

    /* CR0.PG | CR0.WP | CR0.PE */
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $boot_long_mode

    .code64
boot_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_high_half, %rax
    jmpq *%rax
    .popsection

    /* In the kernel image mapping, which both tables share: drop the identity map. */
    .pushsection .text.boot_high_half, "ax"
boot_high_half:
    movl $kernel_pml4, %eax
    movq %rax, %cr3
    movabsq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movabsq $hal_start64, %rax
    /* Enter as if called (RSP + 8 16-byte aligned): Rust's 16-byte-aligned locals rely on it. */
    callq *%rax
    ud2
    .popsection

    .pushsection .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff   /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff   /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    /* Entry bits: P=0x1 W=0x2 PWT=0x8 PCD=0x10 PS=0x80 G=0x100 NX=1<<63. */
    .balign 4096
    .globl boot_pml4
boot_pml4:
    .quad boot_pdpt_identity + 0x3
    .fill 510, 8, 0
    .quad kernel_pdpt_image + 0x3

    .globl kernel_pml4
kernel_pml4:
    .fill 256, 8, 0
    .quad kernel_pdpt_direct + 0x3      /* 0xffff_8000_0000_0000: direct map */
    .fill 254, 8, 0
    .quad kernel_pdpt_image + 0x3       /* 0xffff_ff80_0000_0000: kernel image */

boot_pdpt_identity:
    .quad boot_pd_identity + 0x3
    .fill 511, 8, 0

kernel_pdpt_image:
    .fill 510, 8, 0
    .quad kernel_pd_image + 0x3         /* 0xffff_ffff_8000_0000 */
    .quad 0

    .globl kernel_pdpt_direct
kernel_pdpt_direct:
    .quad kernel_pd_direct_low + 0x3    /* physical 0..1 GiB */
    .quad 0
    .quad 0
    .quad kernel_pd_mmio + 0x3          /* physical 3..4 GiB: the APIC pages only */
    .fill 508, 8, 0

boot_pd_identity:
    .set boot_pd_i, 0
    .rept 512
    .quad (boot_pd_i << 21) | 0x83
    .set boot_pd_i, boot_pd_i + 1
    .endr

kernel_pd_direct_low:
    .set boot_pd_i, 0
    .rept 512
    .quad (boot_pd_i << 21) | 0x183 | (1 << 63)
    .set boot_pd_i, boot_pd_i + 1
    .endr

kernel_pd_mmio:
    .fill 0x1f6, 8, 0
    .quad 0xfec00000 | 0x19b | (1 << 63)  /* IOAPIC, uncached */
    .quad 0xfee00000 | 0x19b | (1 << 63)  /* local APIC, uncached */
    .fill 8, 8, 0

    /* The kernel image: slots fixed by linker.ld at physical 4, 6 and 8 MiB. */
kernel_pd_image:
    .quad 0
    .quad 0
    .quad 0x400000 | 0x181              /* text: read, execute */
    .quad 0x600000 | 0x181 | (1 << 63)  /* rodata: read */
    .quad 0x800000 | 0x183 | (1 << 63)  /* data, bss: read, write */
    .fill 507, 8, 0
    .popsection

    .pushsection .bss.boot_stack, "aw", @nobits
    .balign 4096
    .globl boot_stack_bottom
boot_stack_bottom:
    .skip 65536
    .globl boot_stack_top
boot_stack_top:
    .popsection
"#,
    options(att_syntax)
);
