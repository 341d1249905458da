//! The assembly side of interrupts: one 16-byte stub per vector, the common save/restore path, and
//! the IDT itself.
//!
//! The stubs give every vector the same frame (a zero error code where the CPU pushes none), so
//! one Rust function, `hal_trap_dispatch`, sees them all — or, for a trap from ring 3, the frame is
//! the user context's and the stub leaves for `hal_user_trap` (`user/entry.rs`). The path is kept short: on PVM hosts each
//! of its instructions is emulated.

use core::arch::global_asm;

pub const STUB_BYTES: u64 = 16;

global_asm!(
    r#"
    .pushsection .text.trap_stubs, "ax"
    .balign 4096
    .globl trap_stubs
trap_stubs:
    .set trap_vec, 0
    .rept 256
    .balign 16
    .if ((trap_vec == 8) | (trap_vec == 10) | (trap_vec == 11) | (trap_vec == 12) | (trap_vec == 13) | (trap_vec == 14) | (trap_vec == 17) | (trap_vec == 21) | (trap_vec == 29) | (trap_vec == 30))
    .else
    push 0
    .endif
    push trap_vec
    jmp trap_common
    .set trap_vec, trap_vec + 1
    .endr

trap_common:
    push rax
    push r9
    push r8
    push r10
    push rdx
    push rsi
    push rdi
    push rcx
    push rbx
    push rbp
    push r11
    push r12
    push r13
    push r14
    push r15
    test qword ptr [rsp + 144], 3
    jnz hal_user_trap
    mov rdi, rsp
    cld
    call hal_trap_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop rbp
    pop rbx
    pop rcx
    pop rdi
    pop rsi
    pop rdx
    pop r10
    pop r8
    pop r9
    pop rax
    add rsp, 16
    iretq
    .popsection

    /* The IDT: 256 interrupt gates (present, DPL 0, selector 0x08), each pointing at its stub.
       linker.ld splits the stubs' address into trap_stubs_low/mid/high; the stub block is 4 KiB
       aligned, so low + 16 * vector never carries. IST 1: double fault, 2: NMI, 3: machine check
       (cpu/gdt.rs). */
    .pushsection .rodata.noa_idt, "a"
    .balign 4096
    .globl noa_idt
noa_idt:
    .set trap_vec, 0
    .rept 256
    .word trap_stubs_low + trap_vec * 16
    .word 0x08
    .if trap_vec == 8
    .byte 1
    .elseif trap_vec == 2
    .byte 2
    .elseif trap_vec == 18
    .byte 3
    .else
    .byte 0
    .endif
    .byte 0x8e
    .word trap_stubs_mid
    .long trap_stubs_high
    .long 0
    .set trap_vec, trap_vec + 1
    .endr
    .popsection
"#
);

unsafe extern "C" {
    static trap_stubs: u8;
}

/// Address of the stub of vector 0; vector `v`'s stub is at `base() + v * STUB_BYTES`.
pub fn base() -> u64 {
    // SAFETY: only the symbol's address is taken.
    unsafe { &trap_stubs as *const u8 as u64 }
}
