//! Interrupts and exceptions: the trap frame, the handler table and the dispatcher.
//!
//! CPU exceptions (vectors 0–31) in the kernel are fatal: a report and power-off with the crash
//! code. Other vectors go to the handler registered for them, then get their EOI.

pub mod apic;
pub mod ioapic;
pub mod stubs;

use core::sync::atomic::{AtomicUsize, Ordering};

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// Vector for cross-CPU wake-ups and tests.
pub const IPI_VECTOR: u8 = 0xf0;
/// The APIC's spurious vector: no EOI, no handler.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Registers saved on every trap, in stack order.
#[repr(C)]
#[derive(Debug, Clone)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rcx: u64,
    // The system-call arguments, in argument order: `UserContext::syscall_args` lends them as
    // one array, without a copy.
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub r8: u64,
    pub r9: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// A handler for a device or IPI vector; runs with interrupts off.
pub type Handler = fn(&mut TrapFrame);

static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Routes `vector` (32..=254) to `handler`.
pub fn set_handler(vector: u8, handler: Handler) {
    assert!(
        (32..SPURIOUS_VECTOR).contains(&vector),
        "vector {vector:#x} is reserved"
    );
    HANDLERS[vector as usize].store(handler as usize, Ordering::Release);
}

/// The handler registered for `vector`, if any.
pub fn handler(vector: u8) -> Option<Handler> {
    let handler = HANDLERS[vector as usize].load(Ordering::Acquire);
    // SAFETY: only `set_handler` stores here, and it stores a `Handler`.
    (handler != 0).then(|| unsafe { core::mem::transmute::<usize, Handler>(handler) })
}

/// A trap taken in the kernel (traps from user mode go back to `user::UserContext::run`).
#[unsafe(no_mangle)]
extern "C" fn hal_trap_dispatch(frame: &mut TrapFrame) {
    if frame.vector < 32 {
        crate::crash::exception(frame);
    }
    dispatch_interrupt(frame);
}

/// An interrupt that arrived in user mode, dispatched by `run` on the kernel stack.
pub(crate) fn dispatch_user_interrupt(frame: &mut TrapFrame) {
    dispatch_interrupt(frame);
}

fn dispatch_interrupt(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector == SPURIOUS_VECTOR {
        return;
    }
    if let Some(handler) = handler(vector) {
        handler(frame);
    }
    apic::eoi();
}
