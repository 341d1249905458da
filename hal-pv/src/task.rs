//! Kernel execution contexts and the switch between them.
//!
//! A [`Context`] is a kernel stack plus the stack pointer saved when it is not running. The
//! kernel's scheduler gives each thread one and calls [`switch_to`]; everything about *which*
//! context runs next is the kernel's business, this file only makes the switch sound:
//!
//! - contexts are reference counted, and the one running on a CPU is held by that CPU
//!   ([`CpuTaskState`]), so a stack is never freed while something runs on it;
//! - a context is marked running from just before the switch into it until the CPU has left its
//!   stack, and a CPU waits for that mark to clear before entering, so two CPUs never share a stack
//!   (a thread woken on CPU 1 while CPU 0 is still switching away from it);
//! - the context that ran before is handed to the code that resumes, which drops it once it is off
//!   that stack (so an exiting thread's stack is freed by whoever runs next).
//!
//! Interrupts stay off in the kernel, so nothing preempts a switch half-way.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

/// A kernel stack and its saved stack pointer.
pub struct Context {
    rsp: UnsafeCell<u64>,
    running: AtomicBool,
    /// None for a CPU's boot context, which runs on a stack the HAL set up at bring-up.
    _stack: Option<Box<[MaybeUninit<u128>]>>,
}

// SAFETY: `rsp` is written only by the CPU switching away from the context, while `running` keeps
// every other CPU out; it is read only by the CPU switching into it, after `running` was claimed.
unsafe impl Sync for Context {}
unsafe impl Send for Context {}

/// Per-CPU: what runs here now, and what ran before (until the resumed code takes it).
pub(crate) struct CpuTaskState {
    current: UnsafeCell<Option<Arc<Context>>>,
    previous: UnsafeCell<Option<Arc<Context>>>,
}

impl CpuTaskState {
    pub(crate) const fn new() -> Self {
        CpuTaskState {
            current: UnsafeCell::new(None),
            previous: UnsafeCell::new(None),
        }
    }
}

/// Where a new context starts: `entry(arg)`.
pub type Entry = fn(usize) -> !;

impl Context {
    /// A new context with a `stack_bytes` stack that will run `entry(arg)` when first switched to.
    pub fn new(stack_bytes: usize, entry: Entry, arg: usize) -> Arc<Context> {
        let words = stack_bytes.max(4096) / 16;
        // Not zeroed: a stack is written before it is read, and zeroing 64 KiB in ring 0 costs
        // ~3 ms on PVM hosts.
        let mut stack: Box<[MaybeUninit<u128>]> = Box::new_uninit_slice(words);
        let top = stack.as_mut_ptr_range().end as u64;
        // Initial frame popped by `hal_context_switch`: r15 r14 r13 r12 rbp rbx, then the return
        // address (the start trampoline), which finds `entry` in r12 and `arg` in r13. After the
        // `ret` RSP is the 16-aligned top, so the trampoline's `call` lands correctly aligned.
        let frame: [u64; 7] = [
            0,
            0,
            arg as u64,
            entry as usize as u64,
            0,
            0,
            hal_context_start as *const () as u64,
        ];
        let rsp = top - (frame.len() as u64) * 8;
        // SAFETY: the eight words are inside the stack we own, which is 16-byte aligned.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len()) };
        Arc::new(Context {
            rsp: UnsafeCell::new(rsp),
            running: AtomicBool::new(false),
            _stack: Some(stack),
        })
    }
}

impl Context {
    /// Whether a CPU is on this context's stack (from just before a switch into it until the
    /// switch away from it is complete).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

/// Adopts what this CPU is running now (its bring-up stack) as its first context.
pub fn init_this_cpu() -> Arc<Context> {
    let context = Arc::new(Context {
        rsp: UnsafeCell::new(0),
        running: AtomicBool::new(true),
        _stack: None,
    });
    let state = &crate::cpu::this_cpu().task;
    // SAFETY: this CPU's own state, interrupts off.
    unsafe { *state.current.get() = Some(context.clone()) };
    context
}

/// The context running on this CPU. Panics if [`init_this_cpu`] was not called here.
pub fn current() -> Arc<Context> {
    // SAFETY: this CPU's own state, interrupts off in the kernel.
    unsafe { (*crate::cpu::this_cpu().task.current.get()).clone() }
        .expect("task::init_this_cpu not called on this CPU")
}

/// Switches this CPU to `next`. Returns when something switches back to the calling context,
/// with the context that ran just before (drop it to free an exited thread's stack).
pub fn switch_to(next: Arc<Context>) -> Arc<Context> {
    let state = &crate::cpu::this_cpu().task;
    // SAFETY: this CPU's own state, interrupts off.
    let current = unsafe { (*state.current.get()).take() }.expect("task::init_this_cpu not called");
    if Arc::ptr_eq(&current, &next) {
        // SAFETY: as above.
        unsafe { *state.current.get() = Some(current.clone()) };
        return current;
    }
    // Another CPU may still be switching away from `next`: wait until it is off that stack.
    while next
        .running
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let save = current.rsp.get();
    let load = next.rsp.get();
    // SAFETY: as above; the contexts stay alive in the two slots across the switch.
    unsafe {
        *state.current.get() = Some(next);
        *state.previous.get() = Some(current);
        hal_context_switch(save, load);
    }
    finish_switch()
}

/// The first thing after landing on a stack: release the previous context's `running` mark.
fn finish_switch() -> Arc<Context> {
    let state = &crate::cpu::this_cpu().task;
    // SAFETY: this CPU's own state; `switch_to` filled it just before switching stacks.
    let previous = unsafe { (*state.previous.get()).take() }.expect("switch without a previous");
    previous.running.store(false, Ordering::Release);
    previous
}

extern "C" fn context_start(entry: usize, arg: usize) -> ! {
    drop(finish_switch());
    // SAFETY: `Context::new` stored an `Entry` in this slot.
    let entry: Entry = unsafe { core::mem::transmute::<usize, Entry>(entry) };
    entry(arg)
}

unsafe extern "C" {
    /// Saves the callee-saved registers and RSP to `*save`, loads RSP from `*load`, restores.
    fn hal_context_switch(save: *mut u64, load: *const u64);
    fn hal_context_start();
}

core::arch::global_asm!(
    r#"
    .pushsection .text.hal_context_switch, "ax"
    .globl hal_context_switch
hal_context_switch:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, [rsi]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

    .globl hal_context_start
hal_context_start:
    mov rdi, r12
    mov rsi, r13
    call {start}
    ud2
    .popsection
"#,
    start = sym context_start,
);
