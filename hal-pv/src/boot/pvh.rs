//! The PVH entry: the first instructions the boot CPU runs, in 32-bit protected mode with paging
//! off and `EBX` = physical address of `hvm_start_info` (Xen's PVH boot ABI, which our VMM and
//! QEMU's `-kernel` both speak).
//!
//! It switches to long mode over static boot page tables and jumps to [`super::start64`] in the
//! higher half. Everything here is linked at its physical address (section `.boot.*`, identity
//! mapped); the page tables are assembled, not computed, so the boot CPU writes no table entry.
//!
//! Boot page tables: one page directory of 2 MiB pages covering physical 0..1 GiB, mapped twice —
//! at 0 (identity, for the jump) and at `0xffff_ffff_8000_0000` (the kernel image). Paging setup in
//! [`crate::mm::paging`] replaces them with fine-grained, NX-enforcing tables.

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
    movabsq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movabsq $hal_start64, %rax
    jmpq *%rax
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

    .balign 4096
    .globl boot_pml4
boot_pml4:
    .quad boot_pdpt_low + 0x3
    .fill 510, 8, 0
    .quad boot_pdpt_high + 0x3
boot_pdpt_low:
    .quad boot_pd + 0x3
    .fill 511, 8, 0
boot_pdpt_high:
    .fill 510, 8, 0
    .quad boot_pd + 0x3
    .quad 0
boot_pd:
    .set boot_pd_i, 0
    .rept 512
    .quad (boot_pd_i << 21) | 0x83
    .set boot_pd_i, boot_pd_i + 1
    .endr
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
