//! The assembly between the kernel and user mode: enter ring 3 from a context's frame, the way
//! back from every trap taken in ring 3, and the VT-x `syscall` entry. See the module doc of
//! `user` for the frame's journey; the layout is [`crate::irq::TrapFrame`] (176 bytes).
//!
//! Kept to the minimum: on PVM hosts each instruction here is emulated (~0.6 µs).

use crate::cpu::gdt::{KERNEL_CODE, USER_CODE, USER_DATA};
use crate::cpu::percpu::{GS_USER_CR2, GS_USER_FRAME_END, GS_USER_RETURN_RSP, GS_USER_RSP_SCRATCH};

core::arch::global_asm!(
    r#"
    .pushsection .text.hal_user_entry, "ax"

    /* hal_enter_user(frame: *mut TrapFrame): saves the kernel's callee-saved registers, records
       the kernel stack for the way back, and irets into the frame. "Returns" through
       hal_user_trap when ring 3 traps. */
    .globl hal_enter_user
hal_enter_user:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov gs:[{return_rsp}], rsp
    mov rsp, rdi
    swapgs
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

    /* Reached from trap_common (irq/stubs.rs) when the trap came from ring 3: the general
       registers are in the frame already. */
    .globl hal_user_trap
hal_user_trap:
    swapgs
    cld
    cmp qword ptr [rsp + 120], 14
    jne hal_user_return
    mov rax, cr2
    mov gs:[{cr2}], rax
hal_user_return:
    mov rsp, gs:[{return_rsp}]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

    /* LSTAR on hosts where `syscall` enters ring 0 (SFMASK has cleared IF, DF, TF, AC). Builds
       the same frame a trap would, with RIP = RCX and RFLAGS = R11. On PVM hosts this code never
       runs: the user's fetch of this supervisor page faults instead (see `run`). */
    .balign 16
    .globl hal_syscall_entry
hal_syscall_entry:
    swapgs
    mov gs:[{rsp_scratch}], rsp
    mov rsp, gs:[{frame_end}]
    push {user_data}
    push qword ptr gs:[{rsp_scratch}]
    push r11
    push {user_code}
    push rcx
    push 0
    push {syscall_vector}
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
    jmp hal_user_return
    .popsection
"#,
    return_rsp = const GS_USER_RETURN_RSP,
    cr2 = const GS_USER_CR2,
    frame_end = const GS_USER_FRAME_END,
    rsp_scratch = const GS_USER_RSP_SCRATCH,
    user_data = const USER_DATA as u64,
    user_code = const USER_CODE as u64,
    syscall_vector = const super::SYSCALL_VECTOR,
);

unsafe extern "C" {
    pub(super) fn hal_enter_user(frame: *mut crate::irq::TrapFrame);
    pub(super) static hal_syscall_entry: u8;
}

/// The LSTAR target (also what a PVM `syscall` fault reports as RIP and CR2).
pub(super) fn syscall_entry_address() -> u64 {
    // SAFETY: only the symbol's address is taken.
    unsafe { &hal_syscall_entry as *const u8 as u64 }
}

const IA32_EFER: u32 = 0xc000_0080;
const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_FMASK: u32 = 0xc000_0084;
const EFER_SCE: u64 = 1;
/// RFLAGS bits `syscall` clears: CF PF AF ZF SF TF IF DF OF IOPL NT RF AC ID (as Linux).
const SYSCALL_FLAG_MASK: u64 = 0x0025_7fd5;

/// EFER.SCE, STAR (kernel CS 0x08; `sysret` base 0x18 → user SS 0x23, CS 0x2b), LSTAR, SFMASK.
pub(super) fn init_syscall_msrs() {
    let star = (u64::from(USER_DATA - 8) << 48) | (u64::from(KERNEL_CODE) << 32);
    // SAFETY: these MSRs only define where `syscall` goes; the entry is in place.
    unsafe {
        use x86::msr::{rdmsr, wrmsr};
        wrmsr(IA32_STAR, star);
        wrmsr(IA32_LSTAR, syscall_entry_address());
        wrmsr(IA32_FMASK, SYSCALL_FLAG_MASK);
        wrmsr(IA32_EFER, rdmsr(IA32_EFER) | EFER_SCE);
    }
}
