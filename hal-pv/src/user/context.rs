//! [`UserContext`]: a user thread's registers, and [`UserContext::run`], which runs them in ring 3
//! until the next trap.

use super::entry::{hal_enter_user, syscall_entry_address};
use crate::cpu::gdt::{USER_CODE, USER_DATA};
use crate::irq::TrapFrame;

/// RFLAGS bits user mode may choose: CF PF AF ZF SF DF OF and ID. IF is always set; IOPL, NT, RF,
/// AC, TF and VM are always clear.
const USER_FLAGS: u64 = 0x0020_0cd5;
const FLAG_IF: u64 = 1 << 9;
const FLAG_RESERVED: u64 = 1 << 1;
const PAGE_FAULT: u64 = 14;

/// Why [`UserContext::run`] came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// A system call: number in `rax`, arguments in `rdi rsi rdx r10 r8 r9`; RIP is already the
    /// return address. Put the result with [`UserContext::set_return`].
    Syscall,
    /// A CPU exception in user mode (`addr` is CR2 for a page fault).
    Exception { vector: u8, error: u64, addr: u64 },
    /// An interrupt arrived (its handler has run): check for work, then run again.
    Interrupt,
    /// The context cannot be entered: RIP or RSP is not a canonical user address.
    BadState,
}

/// A user thread's registers.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct UserContext {
    /// Laid out as a trap frame; its end is where the CPU pushes on a trap from ring 3.
    frame: TrapFrame,
    fs_base: u64,
    gs_base: u64,
    /// The frame's RIP, RSP, RFLAGS or selectors may need sanitising before the next entry: the
    /// kernel set them (exec, a signal frame, sigreturn, a new thread), or the last trap was not
    /// a system call. After a system call there is nothing to do but what `classify` did (the
    /// return RIP and RFLAGS come from RCX and R11, checked there), so the common round trip
    /// skips [`UserContext::run`]'s checks.
    unchecked: bool,
}

fn is_user_canonical(addr: u64) -> bool {
    addr < crate::mm::address_space::USER_END
}

/// RFLAGS as user mode may have them (see [`USER_FLAGS`]).
#[inline]
fn sanitised_flags(rflags: u64) -> u64 {
    (rflags & USER_FLAGS) | FLAG_IF | FLAG_RESERVED
}

impl Default for UserContext {
    fn default() -> Self {
        UserContext::new(0, 0)
    }
}

impl UserContext {
    /// A context that starts at `rip` with stack `rsp`, other registers zero.
    pub fn new(rip: u64, rsp: u64) -> UserContext {
        UserContext {
            frame: TrapFrame {
                r15: 0,
                r14: 0,
                r13: 0,
                r12: 0,
                r11: 0,
                r10: 0,
                r9: 0,
                r8: 0,
                rbp: 0,
                rdi: 0,
                rsi: 0,
                rdx: 0,
                rcx: 0,
                rbx: 0,
                rax: 0,
                vector: 0,
                error_code: 0,
                rip,
                cs: u64::from(USER_CODE),
                rflags: FLAG_IF | FLAG_RESERVED,
                rsp,
                ss: u64::from(USER_DATA),
            },
            fs_base: 0,
            gs_base: 0,
            unchecked: true,
        }
    }

    /// Enters user mode with these registers, in the address space loaded on this CPU, and returns
    /// at the next trap (interrupt handlers have run by then).
    ///
    /// Panics if no user address space is loaded on this CPU.
    pub fn run(&mut self) -> Trap {
        if self.unchecked {
            let frame = &mut self.frame;
            frame.cs = u64::from(USER_CODE);
            frame.ss = u64::from(USER_DATA);
            frame.rflags = sanitised_flags(frame.rflags);
            if !is_user_canonical(frame.rip) || !is_user_canonical(frame.rsp) {
                return Trap::BadState;
            }
            self.unchecked = false;
        }
        let frame = &mut self.frame;
        let cpu = crate::cpu::this_cpu();
        let state = &cpu.user;
        // SAFETY: this CPU's own state, interrupts off in the kernel.
        let space = unsafe { (*state.loaded.get()).as_ref() }
            .expect("UserContext::run with no address space loaded");
        let frame_end = frame as *mut TrapFrame as u64 + core::mem::size_of::<TrapFrame>() as u64;
        // The CPU aligns RSP0 down to 16 before pushing: a misaligned frame would be corrupted.
        assert!(
            frame_end.is_multiple_of(16),
            "user context not 16-byte aligned"
        );
        // SAFETY: this CPU's own fields; no trap can use them before we enter ring 3. The frame
        // is 16-byte aligned and 176 bytes long, so the CPU's pushes land in it exactly.
        unsafe {
            (*cpu.tss.get()).rsp[0] = frame_end;
            *cpu.user_frame_end.get() = frame_end;
            let loaded_fs = &mut *state.fs_base.get();
            if *loaded_fs != self.fs_base {
                x86::msr::wrmsr(x86::msr::IA32_FS_BASE, self.fs_base);
                *loaded_fs = self.fs_base;
            }
            // User GS lives in KERNEL_GS_BASE while the kernel runs; `swapgs` brings it in.
            let loaded_gs = &mut *state.gs_base.get();
            if *loaded_gs != self.gs_base {
                x86::msr::wrmsr(x86::msr::IA32_KERNEL_GSBASE, self.gs_base);
                *loaded_gs = self.gs_base;
            }
        }
        space.enter_user_mode(state);
        // SAFETY: the frame holds sanitised user state (user selectors, IF set, IOPL 0,
        // canonical RIP and RSP); the entry returns here when ring 3 traps.
        unsafe { hal_enter_user(frame) };
        state
            .in_user
            .store(0, core::sync::atomic::Ordering::Release);
        self.classify()
    }

    fn classify(&mut self) -> Trap {
        let frame = &mut self.frame;
        let vector = frame.vector;
        if vector == super::SYSCALL_VECTOR {
            self.take_syscall_return();
            return Trap::Syscall;
        }
        if vector == PAGE_FAULT {
            // SAFETY: this CPU's own field, written by the trap path just now.
            let addr = unsafe { *crate::cpu::this_cpu().user_cr2.get() };
            let entry = syscall_entry_address();
            if frame.rip == entry && addr == entry {
                // The PVM form of `syscall` (see the module doc).
                self.take_syscall_return();
                return Trap::Syscall;
            }
            self.unchecked = true;
            return Trap::Exception {
                vector: PAGE_FAULT as u8,
                error: frame.error_code,
                addr,
            };
        }
        // Traps other than system calls are rare next to them: their frames are sanitised as a
        // precaution (a PVM host's frame is not always the user's own RFLAGS).
        self.unchecked = true;
        if vector < 32 {
            return Trap::Exception {
                vector: vector as u8,
                error: frame.error_code,
                addr: 0,
            };
        }
        crate::irq::dispatch_user_interrupt(frame);
        Trap::Interrupt
    }

    /// After `syscall`: the return address and flags are RCX and R11, which the user chose (a
    /// `jmp` to the entry forges both). The flags are sanitised here; a non-canonical RCX is
    /// left for `run` to refuse.
    #[inline]
    fn take_syscall_return(&mut self) {
        let frame = &mut self.frame;
        frame.rip = frame.rcx;
        frame.rflags = sanitised_flags(frame.r11);
        if !is_user_canonical(frame.rip) {
            self.unchecked = true;
        }
    }

    /// The system call number (RAX) and its six arguments.
    #[inline]
    pub fn syscall_args(&self) -> (u64, [u64; 6]) {
        let f = &self.frame;
        (f.rax, [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9])
    }

    /// The six system-call arguments (RDI RSI RDX R10 R8 R9), lent from the frame: no copy on
    /// the hot path.
    #[inline]
    pub fn syscall_arg_regs(&self) -> &[u64; 6] {
        const RDI: usize = core::mem::offset_of!(TrapFrame, rdi);
        const _: () = {
            use core::mem::offset_of;
            assert!(offset_of!(TrapFrame, rsi) == RDI + 8);
            assert!(offset_of!(TrapFrame, rdx) == RDI + 16);
            assert!(offset_of!(TrapFrame, r10) == RDI + 24);
            assert!(offset_of!(TrapFrame, r8) == RDI + 32);
            assert!(offset_of!(TrapFrame, r9) == RDI + 40);
        };
        let frame = &self.frame as *const TrapFrame as *const u8;
        // SAFETY: the six fields are consecutive u64s of the repr(C) frame (asserted above at
        // compile time), so they are one aligned [u64; 6] inside the borrowed frame.
        unsafe { &*(frame.add(RDI) as *const [u64; 6]) }
    }

    /// The system call number (RAX, before the call) — one load, for the hot path.
    #[inline]
    pub fn syscall_number(&self) -> u64 {
        self.frame.rax
    }

    /// RAX: the system call's result once handled.
    #[inline]
    pub fn return_value(&self) -> u64 {
        self.frame.rax
    }

    /// Sets the system call's return value (RAX).
    #[inline]
    pub fn set_return(&mut self, value: u64) {
        self.frame.rax = value;
    }

    #[inline]
    pub fn rip(&self) -> u64 {
        self.frame.rip
    }
    #[inline]
    pub fn set_rip(&mut self, rip: u64) {
        self.frame.rip = rip;
        self.unchecked = true;
    }
    #[inline]
    pub fn rsp(&self) -> u64 {
        self.frame.rsp
    }
    #[inline]
    pub fn set_rsp(&mut self, rsp: u64) {
        self.frame.rsp = rsp;
        self.unchecked = true;
    }
    #[inline]
    pub fn rflags(&self) -> u64 {
        self.frame.rflags
    }
    /// Sets RFLAGS (sanitised when the context next runs).
    #[inline]
    pub fn set_rflags(&mut self, rflags: u64) {
        self.frame.rflags = rflags;
        self.unchecked = true;
    }
    #[inline]
    pub fn fs_base(&self) -> u64 {
        self.fs_base
    }
    #[inline]
    pub fn set_fs_base(&mut self, base: u64) {
        self.fs_base = base;
    }
    #[inline]
    pub fn gs_base(&self) -> u64 {
        self.gs_base
    }
    #[inline]
    pub fn set_gs_base(&mut self, base: u64) {
        self.gs_base = base;
    }

    /// The general registers in `struct sigcontext` order: r8–r15, rdi, rsi, rbp, rbx, rdx, rax,
    /// rcx, rsp, rip.
    #[inline]
    pub fn general(&self) -> [u64; 17] {
        let f = &self.frame;
        [
            f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx,
            f.rdx, f.rax, f.rcx, f.rsp, f.rip,
        ]
    }

    /// Sets the general registers from `struct sigcontext` order (see [`Self::general`]).
    #[inline]
    pub fn set_general(&mut self, r: [u64; 17]) {
        let f = &mut self.frame;
        [
            f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx,
            f.rdx, f.rax, f.rcx, f.rsp, f.rip,
        ] = r;
        self.unchecked = true;
    }

    /// Sets the argument registers for a function call (signal handlers, thread starts).
    #[inline]
    pub fn set_args(&mut self, rdi: u64, rsi: u64, rdx: u64) {
        self.frame.rdi = rdi;
        self.frame.rsi = rsi;
        self.frame.rdx = rdx;
    }

    /// Sets RAX and RDX (the trampoline's xsave mask) — HAL-internal uses.
    pub(crate) fn set_rax_rdx(&mut self, rax: u64, rdx: u64) {
        self.frame.rax = rax;
        self.frame.rdx = rdx;
    }
}
