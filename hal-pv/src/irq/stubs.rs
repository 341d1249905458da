//! The assembly side of interrupts: one 16-byte stub per vector and the common save/restore path.
//!
//! The stubs give every vector the same frame (a zero error code where the CPU pushes none), so
//! one Rust function, [`super::dispatch`], sees them all. The path is kept short: on PVM hosts each
//! of its instructions is emulated.

use core::arch::global_asm;

pub const STUB_BYTES: u64 = 16;

global_asm!(
    r#"
    .pushsection .text.trap_stubs, "ax"
    .balign 16
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
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    test qword ptr [rsp + 144], 3
    jz 1f
    swapgs
1:
    mov rdi, rsp
    cld
    call hal_trap_dispatch
    test qword ptr [rsp + 144], 3
    jz 2f
    swapgs
2:
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
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
