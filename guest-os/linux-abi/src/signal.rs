//! Signals: numbers and default actions, `sigaction` flags, the kernel `struct sigaction`,
//! `siginfo_t`, `stack_t`, and the x86-64 signal frame (`struct rt_sigframe`) with its
//! `ucontext`/`sigcontext`, byte-exact (`arch/x86/include/uapi/asm/{signal,sigcontext}.h`,
//! `include/uapi/asm-generic/{siginfo,ucontext}.h`, `arch/x86/include/asm/sigframe.h`).
//!
//! Delivering a handler on x86-64 (what Linux does, with the helpers here):
//! 1. `sp` = the alternate stack top if `SA_ONSTACK` and not already on it, else `rsp - 128`
//!    (red zone); [`place_rt_sigframe`] gives the FPU save area (64-byte aligned) and the frame
//!    address (`frame % 16 == 8`, as after a `call`).
//! 2. Write [`RtSigframe::encode`] at the frame: `pretcode` = `sa_restorer` (user space must set
//!    `SA_RESTORER`; glibc and musl always do), `uc.mcontext` = the interrupted registers with
//!    `fpstate` pointing at the FPU area (or 0), `uc.sigmask` = the mask to restore.
//! 3. Enter the handler with `rsp = frame`, `rdi = sig`, `rsi = &frame.info`
//!    ([`RtSigframe::INFO_OFFSET`]), `rdx = &frame.uc` ([`RtSigframe::UC_OFFSET`]), `rax = 0`,
//!    `rip = handler`; block `sa_mask` plus the signal unless `SA_NODEFER`; reset to `SIG_DFL` if
//!    `SA_RESETHAND`.
//!
//! `rt_sigreturn` reads the [`UContext`] at `rsp - 8 + UC_OFFSET` (the handler's `ret` popped
//! `pretcode`), i.e. at `rsp` itself, and restores registers, the mask and the alternate stack.

use crate::bytes::*;

/// Number of signals (`_NSIG`); valid signals are `1..=NSIG`.
pub const NSIG: usize = 64;
/// Size of the kernel `sigset_t` in bytes (`rt_sig*` calls require `sigsetsize == 8`).
pub const SIGSET_SIZE: usize = 8;

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGABRT: u32 = 6;
pub const SIGIOT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGUSR1: u32 = 10;
pub const SIGSEGV: u32 = 11;
pub const SIGUSR2: u32 = 12;
pub const SIGPIPE: u32 = 13;
pub const SIGALRM: u32 = 14;
pub const SIGTERM: u32 = 15;
pub const SIGSTKFLT: u32 = 16;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGTSTP: u32 = 20;
pub const SIGTTIN: u32 = 21;
pub const SIGTTOU: u32 = 22;
pub const SIGURG: u32 = 23;
pub const SIGXCPU: u32 = 24;
pub const SIGXFSZ: u32 = 25;
pub const SIGVTALRM: u32 = 26;
pub const SIGPROF: u32 = 27;
pub const SIGWINCH: u32 = 28;
pub const SIGIO: u32 = 29;
pub const SIGPOLL: u32 = SIGIO;
pub const SIGPWR: u32 = 30;
pub const SIGSYS: u32 = 31;
/// First real-time signal as the kernel sees it (glibc reserves 32 and 33 for itself, so its
/// `SIGRTMIN` is 34; musl's is 35).
pub const SIGRTMIN: u32 = 32;
pub const SIGRTMAX: u32 = 64;

/// What happens when a signal with `SIG_DFL` is delivered (signal(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Terminate the process.
    Terminate,
    /// Terminate and dump core (the wait status gets the 0x80 core flag).
    Core,
    /// Discard the signal.
    Ignore,
    /// Stop the process.
    Stop,
    /// Continue the process if stopped.
    Continue,
}

/// Default action of `sig` (1..=64); real-time signals terminate. `None` for an invalid number.
pub const fn default_action(sig: u32) -> Option<DefaultAction> {
    use DefaultAction::*;
    Some(match sig {
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => Core,
        SIGCHLD | SIGURG | SIGWINCH => Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => Stop,
        SIGCONT => Continue,
        1..=64 => Terminate,
        _ => return None,
    })
}

/// Whether `sig` is a valid signal number (1..=64).
pub const fn valid_signal(sig: u32) -> bool {
    sig >= 1 && sig as usize <= NSIG
}

/// The `SIGxxx` name of a signal (`"SIGRTMIN+3"`-style names are not produced: RT signals
/// give `"SIGRT"`).
pub const fn signal_name(sig: u32) -> Option<&'static str> {
    Some(match sig {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGILL => "SIGILL",
        SIGTRAP => "SIGTRAP",
        SIGABRT => "SIGABRT",
        SIGBUS => "SIGBUS",
        SIGFPE => "SIGFPE",
        SIGKILL => "SIGKILL",
        SIGUSR1 => "SIGUSR1",
        SIGSEGV => "SIGSEGV",
        SIGUSR2 => "SIGUSR2",
        SIGPIPE => "SIGPIPE",
        SIGALRM => "SIGALRM",
        SIGTERM => "SIGTERM",
        SIGSTKFLT => "SIGSTKFLT",
        SIGCHLD => "SIGCHLD",
        SIGCONT => "SIGCONT",
        SIGSTOP => "SIGSTOP",
        SIGTSTP => "SIGTSTP",
        SIGTTIN => "SIGTTIN",
        SIGTTOU => "SIGTTOU",
        SIGURG => "SIGURG",
        SIGXCPU => "SIGXCPU",
        SIGXFSZ => "SIGXFSZ",
        SIGVTALRM => "SIGVTALRM",
        SIGPROF => "SIGPROF",
        SIGWINCH => "SIGWINCH",
        SIGIO => "SIGIO",
        SIGPWR => "SIGPWR",
        SIGSYS => "SIGSYS",
        32..=64 => "SIGRT",
        _ => return None,
    })
}

/// The `sigset_t` bit of a signal: `1 << (sig - 1)` (0 for an invalid number).
pub const fn sig_bit(sig: u32) -> u64 {
    if valid_signal(sig) {
        1u64 << (sig - 1)
    } else {
        0
    }
}

/// Signals that can be neither blocked, caught nor ignored.
pub const UNBLOCKABLE: u64 = sig_bit(SIGKILL) | sig_bit(SIGSTOP);
/// Signals whose default action stops the process.
pub const STOP_SIGNALS: u64 =
    sig_bit(SIGSTOP) | sig_bit(SIGTSTP) | sig_bit(SIGTTIN) | sig_bit(SIGTTOU);
/// Synchronous fault signals (delivered to the faulting thread, before others).
pub const SYNCHRONOUS: u64 = sig_bit(SIGSEGV)
    | sig_bit(SIGBUS)
    | sig_bit(SIGILL)
    | sig_bit(SIGTRAP)
    | sig_bit(SIGFPE)
    | sig_bit(SIGSYS);

/// `sa_handler` values.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

/// `sa_flags`.
pub const SA_NOCLDSTOP: u64 = 0x0000_0001;
pub const SA_NOCLDWAIT: u64 = 0x0000_0002;
pub const SA_SIGINFO: u64 = 0x0000_0004;
pub const SA_UNSUPPORTED: u64 = 0x0000_0400;
pub const SA_EXPOSE_TAGBITS: u64 = 0x0000_0800;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_NOMASK: u64 = SA_NODEFER;
pub const SA_ONESHOT: u64 = SA_RESETHAND;

/// `rt_sigprocmask` `how`.
pub const SIG_BLOCK: u32 = 0;
pub const SIG_UNBLOCK: u32 = 1;
pub const SIG_SETMASK: u32 = 2;

/// `sigaltstack`.
pub const SS_ONSTACK: i32 = 1;
pub const SS_DISABLE: i32 = 2;
pub const SS_AUTODISARM: i32 = 1 << 31;
/// Smallest alternate stack accepted (`MINSIGSTKSZ`); also the default `AT_MINSIGSTKSZ`.
pub const MINSIGSTKSZ: u64 = 2048;
pub const SIGSTKSZ: u64 = 8192;

// si_code values (asm-generic/siginfo.h).
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TIMER: i32 = -2;
pub const SI_MESGQ: i32 = -3;
pub const SI_ASYNCIO: i32 = -4;
pub const SI_SIGIO: i32 = -5;
pub const SI_TKILL: i32 = -6;
pub const ILL_ILLOPC: i32 = 1;
pub const ILL_ILLOPN: i32 = 2;
pub const ILL_ILLADR: i32 = 3;
pub const ILL_ILLTRP: i32 = 4;
pub const ILL_PRVOPC: i32 = 5;
pub const ILL_PRVREG: i32 = 6;
pub const ILL_COPROC: i32 = 7;
pub const ILL_BADSTK: i32 = 8;
pub const FPE_INTDIV: i32 = 1;
pub const FPE_INTOVF: i32 = 2;
pub const FPE_FLTDIV: i32 = 3;
pub const FPE_FLTOVF: i32 = 4;
pub const FPE_FLTUND: i32 = 5;
pub const FPE_FLTRES: i32 = 6;
pub const FPE_FLTINV: i32 = 7;
pub const FPE_FLTSUB: i32 = 8;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const SEGV_BNDERR: i32 = 3;
pub const SEGV_PKUERR: i32 = 4;
pub const BUS_ADRALN: i32 = 1;
pub const BUS_ADRERR: i32 = 2;
pub const BUS_OBJERR: i32 = 3;
pub const BUS_MCEERR_AR: i32 = 4;
pub const BUS_MCEERR_AO: i32 = 5;
pub const TRAP_BRKPT: i32 = 1;
pub const TRAP_TRACE: i32 = 2;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_TRAPPED: i32 = 4;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;
pub const POLL_IN: i32 = 1;
pub const POLL_OUT: i32 = 2;
pub const POLL_MSG: i32 = 3;
pub const POLL_ERR: i32 = 4;
pub const POLL_PRI: i32 = 5;
pub const POLL_HUP: i32 = 6;
pub const SYS_SECCOMP: i32 = 1;

/// `uc_flags` bits.
pub const UC_FP_XSTATE: u64 = 0x1;
pub const UC_SIGCONTEXT_SS: u64 = 0x2;
pub const UC_STRICT_RESTORE_SS: u64 = 0x4;
/// Magic in the FXSAVE area's software-reserved bytes (offset 464) marking an XSAVE frame.
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// Magic written right after the XSAVE area (at `fpstate + xstate_size`).
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Offset of `struct _fpx_sw_bytes` inside the 512-byte FXSAVE image.
pub const FPX_SW_BYTES_OFFSET: usize = 464;

/// `struct _fpx_sw_bytes` (48 bytes at [`FPX_SW_BYTES_OFFSET`] of the FPU area) describing an
/// XSAVE signal frame: `extended_size` = `xstate_size + 4` (the trailing magic2).
pub fn encode_fpx_sw_bytes(xstate_size: u32, xfeatures: u64) -> [u8; 48] {
    let mut b = [0u8; 48];
    put_u32(&mut b, 0, FP_XSTATE_MAGIC1);
    put_u32(&mut b, 4, xstate_size + 4);
    put_u64(&mut b, 8, xfeatures);
    put_u32(&mut b, 16, xstate_size);
    b
}

/// The kernel `struct sigaction` for `rt_sigaction` on x86-64 (32 bytes):
/// `sa_handler`, `sa_flags`, `sa_restorer`, `sa_mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    pub const SIZE: usize = 32;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u64(&mut b, 0, self.handler);
        put_u64(&mut b, 8, self.flags);
        put_u64(&mut b, 16, self.restorer);
        put_u64(&mut b, 24, self.mask);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(SigAction {
            handler: u64_at(b, 0),
            flags: u64_at(b, 8),
            restorer: u64_at(b, 16),
            mask: u64_at(b, 24),
        })
    }
}

/// `stack_t` (24 bytes): `ss_sp`, `ss_flags` (int, then 4 bytes padding), `ss_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackT {
    pub sp: u64,
    pub flags: i32,
    pub size: u64,
}

impl StackT {
    pub const SIZE: usize = 24;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        self.write(&mut b);
        b
    }
    fn write(&self, b: &mut [u8]) {
        put_u64(b, 0, self.sp);
        put_i32(b, 8, self.flags);
        put_u64(b, 16, self.size);
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(StackT {
            sp: u64_at(b, 0),
            flags: i32_at(b, 8),
            size: u64_at(b, 16),
        })
    }
}

/// The union part of `siginfo_t`, by layout (Linux `enum siginfo_layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigFields {
    /// `kill`, `tkill`, `SI_USER`/`SI_TKILL`: sender pid and uid.
    Kill { pid: i32, uid: u32 },
    /// POSIX timers: timer id, overrun count, `sigval`.
    Timer { tid: i32, overrun: i32, value: u64 },
    /// `rt_sigqueueinfo`, `SI_QUEUE`, `SI_MESGQ`: sender and `sigval`.
    Rt { pid: i32, uid: u32, value: u64 },
    /// `SIGCHLD`: child pid/uid, status (exit code for `CLD_EXITED`, else the signal), and
    /// its user/system time in clock ticks.
    Chld {
        pid: i32,
        uid: u32,
        status: i32,
        utime: i64,
        stime: i64,
    },
    /// `SIGSEGV`/`SIGBUS`/`SIGILL`/`SIGFPE`/`SIGTRAP`: faulting address.
    Fault { addr: u64 },
    /// `SIGPOLL`/`SIGIO`: band event and fd.
    Poll { band: i64, fd: i32 },
    /// `SIGSYS` (seccomp): call address, syscall number, audit arch.
    Sys {
        call_addr: u64,
        syscall: i32,
        arch: u32,
    },
}

/// `siginfo_t` (128 bytes): `si_signo`, `si_errno`, `si_code` at 0, 4, 8, the union at 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    pub fields: SigFields,
}

/// Offsets inside `siginfo_t` (checked against glibc in the host tests).
pub mod siginfo_off {
    pub const SIGNO: usize = 0;
    pub const ERRNO: usize = 4;
    pub const CODE: usize = 8;
    pub const PID: usize = 16;
    pub const UID: usize = 20;
    pub const STATUS: usize = 24;
    pub const UTIME: usize = 32;
    pub const STIME: usize = 40;
    pub const ADDR: usize = 16;
    pub const VALUE: usize = 24;
    pub const TIMERID: usize = 16;
    pub const OVERRUN: usize = 20;
    pub const BAND: usize = 16;
    pub const FD: usize = 24;
    pub const CALL_ADDR: usize = 16;
    pub const SYSCALL: usize = 24;
    pub const ARCH: usize = 28;
}

impl SigInfo {
    pub const SIZE: usize = 128;

    /// Sent by `kill()` (`SI_USER`).
    pub const fn kill(sig: u32, pid: i32, uid: u32) -> Self {
        SigInfo {
            signo: sig as i32,
            errno: 0,
            code: SI_USER,
            fields: SigFields::Kill { pid, uid },
        }
    }
    /// Sent by `tkill()`/`tgkill()` (`SI_TKILL`).
    pub const fn tkill(sig: u32, pid: i32, uid: u32) -> Self {
        SigInfo {
            signo: sig as i32,
            errno: 0,
            code: SI_TKILL,
            fields: SigFields::Kill { pid, uid },
        }
    }
    /// Sent by the kernel itself (`SI_KERNEL`, e.g. `SIGPIPE` from a write, `SIGKILL` on OOM).
    pub const fn kernel(sig: u32) -> Self {
        SigInfo {
            signo: sig as i32,
            errno: 0,
            code: SI_KERNEL,
            fields: SigFields::Kill { pid: 0, uid: 0 },
        }
    }
    /// A fault (`SIGSEGV` with `SEGV_MAPERR`/`SEGV_ACCERR`, `SIGBUS`, `SIGILL`, `SIGFPE`, …).
    pub const fn fault(sig: u32, code: i32, addr: u64) -> Self {
        SigInfo {
            signo: sig as i32,
            errno: 0,
            code,
            fields: SigFields::Fault { addr },
        }
    }
    /// `SIGCHLD` for a child state change (`CLD_EXITED` with the exit code, `CLD_KILLED`,
    /// `CLD_DUMPED`, `CLD_STOPPED`, `CLD_CONTINUED` with the signal).
    pub const fn chld(code: i32, pid: i32, uid: u32, status: i32, utime: i64, stime: i64) -> Self {
        SigInfo {
            signo: SIGCHLD as i32,
            errno: 0,
            code,
            fields: SigFields::Chld {
                pid,
                uid,
                status,
                utime,
                stime,
            },
        }
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        self.write(&mut b);
        b
    }

    fn write(&self, b: &mut [u8]) {
        use siginfo_off::*;
        put_i32(b, SIGNO, self.signo);
        put_i32(b, ERRNO, self.errno);
        put_i32(b, CODE, self.code);
        match self.fields {
            SigFields::Kill { pid, uid } => {
                put_i32(b, PID, pid);
                put_u32(b, UID, uid);
            }
            SigFields::Timer {
                tid,
                overrun,
                value,
            } => {
                put_i32(b, TIMERID, tid);
                put_i32(b, OVERRUN, overrun);
                put_u64(b, VALUE, value);
            }
            SigFields::Rt { pid, uid, value } => {
                put_i32(b, PID, pid);
                put_u32(b, UID, uid);
                put_u64(b, VALUE, value);
            }
            SigFields::Chld {
                pid,
                uid,
                status,
                utime,
                stime,
            } => {
                put_i32(b, PID, pid);
                put_u32(b, UID, uid);
                put_i32(b, STATUS, status);
                put_i64(b, UTIME, utime);
                put_i64(b, STIME, stime);
            }
            SigFields::Fault { addr } => put_u64(b, ADDR, addr),
            SigFields::Poll { band, fd } => {
                put_i64(b, BAND, band);
                put_i32(b, FD, fd);
            }
            SigFields::Sys {
                call_addr,
                syscall,
                arch,
            } => {
                put_u64(b, CALL_ADDR, call_addr);
                put_i32(b, SYSCALL, syscall);
                put_u32(b, ARCH, arch);
            }
        }
    }

    /// Decodes a `siginfo_t` (e.g. from `rt_sigqueueinfo`), choosing the union member the way
    /// Linux `siginfo_layout()` does from `si_signo` and `si_code`.
    pub fn decode(b: &[u8]) -> Option<Self> {
        use siginfo_off::*;
        if b.len() < Self::SIZE {
            return None;
        }
        let signo = i32_at(b, SIGNO);
        let code = i32_at(b, CODE);
        let fields = match layout(signo, code) {
            Layout::Kill => SigFields::Kill {
                pid: i32_at(b, PID),
                uid: u32_at(b, UID),
            },
            Layout::Timer => SigFields::Timer {
                tid: i32_at(b, TIMERID),
                overrun: i32_at(b, OVERRUN),
                value: u64_at(b, VALUE),
            },
            Layout::Rt => SigFields::Rt {
                pid: i32_at(b, PID),
                uid: u32_at(b, UID),
                value: u64_at(b, VALUE),
            },
            Layout::Chld => SigFields::Chld {
                pid: i32_at(b, PID),
                uid: u32_at(b, UID),
                status: i32_at(b, STATUS),
                utime: i64_at(b, UTIME),
                stime: i64_at(b, STIME),
            },
            Layout::Fault => SigFields::Fault {
                addr: u64_at(b, ADDR),
            },
            Layout::Poll => SigFields::Poll {
                band: i64_at(b, BAND),
                fd: i32_at(b, FD),
            },
            Layout::Sys => SigFields::Sys {
                call_addr: u64_at(b, CALL_ADDR),
                syscall: i32_at(b, SYSCALL),
                arch: u32_at(b, ARCH),
            },
        };
        Some(SigInfo {
            signo,
            errno: i32_at(b, ERRNO),
            code,
            fields,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Kill,
    Timer,
    Poll,
    Fault,
    Chld,
    Rt,
    Sys,
}

/// Linux `siginfo_layout()` (kernel/signal.c); the MCE/BNDERR/PKUERR/perf fault variants
/// share the `si_addr` prefix and are folded into `Fault`.
fn layout(sig: i32, code: i32) -> Layout {
    if code > SI_USER && code < SI_KERNEL {
        let (limit, l) = match sig as u32 {
            SIGILL => (11, Layout::Fault),
            SIGFPE => (15, Layout::Fault),
            SIGSEGV => (10, Layout::Fault),
            SIGBUS => (5, Layout::Fault),
            SIGTRAP => (6, Layout::Fault),
            SIGCHLD => (6, Layout::Chld),
            SIGPOLL => (6, Layout::Poll),
            SIGSYS => (2, Layout::Sys),
            _ => (0, Layout::Kill),
        };
        if code <= limit {
            l
        } else if code <= 6 {
            Layout::Poll
        } else {
            Layout::Kill
        }
    } else if code == SI_TIMER {
        Layout::Timer
    } else if code == SI_SIGIO {
        Layout::Poll
    } else if code < 0 {
        Layout::Rt
    } else {
        Layout::Kill
    }
}

/// The 64-bit `struct sigcontext` (256 bytes): general registers in Linux order, segment
/// selectors, fault information and the FPU state pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigContext {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs: u16,
    pub gs: u16,
    pub fs: u16,
    /// `ss` (named `__pad0` in the uapi header; used when `UC_SIGCONTEXT_SS` is set).
    pub ss: u16,
    pub err: u64,
    pub trapno: u64,
    pub oldmask: u64,
    pub cr2: u64,
    /// User address of the FPU/XSAVE area, 0 if none.
    pub fpstate: u64,
}

impl SigContext {
    pub const SIZE: usize = 256;
    /// Offsets of the fields after the 18 register slots.
    pub const CS_OFFSET: usize = 144;
    pub const ERR_OFFSET: usize = 152;
    pub const FPSTATE_OFFSET: usize = 184;

    fn regs(&self) -> [u64; 18] {
        [
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.rdi,
            self.rsi,
            self.rbp,
            self.rbx,
            self.rdx,
            self.rax,
            self.rcx,
            self.rsp,
            self.rip,
            self.eflags,
        ]
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        self.write(&mut b);
        b
    }

    fn write(&self, b: &mut [u8]) {
        for (i, r) in self.regs().iter().enumerate() {
            put_u64(b, i * 8, *r);
        }
        put_u16(b, 144, self.cs);
        put_u16(b, 146, self.gs);
        put_u16(b, 148, self.fs);
        put_u16(b, 150, self.ss);
        put_u64(b, 152, self.err);
        put_u64(b, 160, self.trapno);
        put_u64(b, 168, self.oldmask);
        put_u64(b, 176, self.cr2);
        put_u64(b, 184, self.fpstate);
        // 192..256: reserved1[8], zero.
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let r = |i: usize| u64_at(b, i * 8);
        Some(SigContext {
            r8: r(0),
            r9: r(1),
            r10: r(2),
            r11: r(3),
            r12: r(4),
            r13: r(5),
            r14: r(6),
            r15: r(7),
            rdi: r(8),
            rsi: r(9),
            rbp: r(10),
            rbx: r(11),
            rdx: r(12),
            rax: r(13),
            rcx: r(14),
            rsp: r(15),
            rip: r(16),
            eflags: r(17),
            cs: u16_at(b, 144),
            gs: u16_at(b, 146),
            fs: u16_at(b, 148),
            ss: u16_at(b, 150),
            err: u64_at(b, 152),
            trapno: u64_at(b, 160),
            oldmask: u64_at(b, 168),
            cr2: u64_at(b, 176),
            fpstate: u64_at(b, 184),
        })
    }
}

/// The kernel `struct ucontext` (304 bytes): `uc_flags`, `uc_link`, `uc_stack` (16),
/// `uc_mcontext` (40), `uc_sigmask` (296, the 8-byte kernel sigset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UContext {
    pub flags: u64,
    pub link: u64,
    pub stack: StackT,
    pub mcontext: SigContext,
    pub sigmask: u64,
}

impl UContext {
    pub const SIZE: usize = 304;
    pub const STACK_OFFSET: usize = 16;
    pub const MCONTEXT_OFFSET: usize = 40;
    pub const SIGMASK_OFFSET: usize = 296;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        self.write(&mut b);
        b
    }
    fn write(&self, b: &mut [u8]) {
        put_u64(b, 0, self.flags);
        put_u64(b, 8, self.link);
        self.stack.write(&mut b[16..40]);
        self.mcontext.write(&mut b[40..296]);
        put_u64(b, 296, self.sigmask);
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(UContext {
            flags: u64_at(b, 0),
            link: u64_at(b, 8),
            stack: StackT::decode(&b[16..40])?,
            mcontext: SigContext::decode(&b[40..296])?,
            sigmask: u64_at(b, 296),
        })
    }
}

/// x86-64 `struct rt_sigframe` (440 bytes): `pretcode` (return address = `sa_restorer`),
/// `uc` at 8, `info` at 312. The FPU area is separate ([`place_rt_sigframe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtSigframe {
    pub pretcode: u64,
    pub uc: UContext,
    pub info: SigInfo,
}

impl RtSigframe {
    pub const SIZE: usize = 440;
    pub const UC_OFFSET: usize = 8;
    pub const INFO_OFFSET: usize = 8 + UContext::SIZE;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u64(&mut b, 0, self.pretcode);
        self.uc.write(&mut b[8..8 + UContext::SIZE]);
        self.info.write(&mut b[Self::INFO_OFFSET..]);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(RtSigframe {
            pretcode: u64_at(b, 0),
            uc: UContext::decode(&b[8..8 + UContext::SIZE])?,
            info: SigInfo::decode(&b[Self::INFO_OFFSET..])?,
        })
    }
}

/// Where the signal frame goes, Linux `get_sigframe()` for 64-bit tasks. `sp` is where the
/// frame may start growing down: the alternate stack top (`ss_sp + ss_size`) when switching to
/// it, otherwise the interrupted `rsp - 128` (red zone). `fpstate_size` is the size of the
/// FPU image to save (512 for FXSAVE; XSAVE size + 4 for the trailing magic; 0 for none).
/// Returns `(frame, fpstate)`: `fpstate` is 64-byte aligned, `frame % 16 == 8`, and the frame
/// (`RtSigframe::SIZE` bytes) ends at or below `fpstate`. `None` on underflow.
pub fn place_rt_sigframe(sp: u64, fpstate_size: u64) -> Option<(u64, u64)> {
    let fpstate = sp.checked_sub(fpstate_size)? & !63;
    let frame = (fpstate.checked_sub(RtSigframe::SIZE as u64)? & !15).checked_sub(8)?;
    Some((frame, fpstate))
}

/// Whether `sp` is on the alternate stack (Linux `on_sig_stack`: `ss_sp < sp <= ss_sp +
/// ss_size`, and never while the stack is disabled or `SS_AUTODISARM`).
pub fn on_sig_stack(sp: u64, ss: &StackT) -> bool {
    ss.flags & (SS_DISABLE | SS_AUTODISARM) == 0 && sp > ss.sp && sp - ss.sp <= ss.size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_actions() {
        use DefaultAction::*;
        assert_eq!(default_action(SIGSEGV), Some(Core));
        assert_eq!(default_action(SIGKILL), Some(Terminate));
        assert_eq!(default_action(SIGCHLD), Some(Ignore));
        assert_eq!(default_action(SIGWINCH), Some(Ignore));
        assert_eq!(default_action(SIGURG), Some(Ignore));
        assert_eq!(default_action(SIGTSTP), Some(Stop));
        assert_eq!(default_action(SIGCONT), Some(Continue));
        assert_eq!(default_action(SIGPIPE), Some(Terminate));
        assert_eq!(default_action(SIGSYS), Some(Core));
        assert_eq!(default_action(40), Some(Terminate));
        assert_eq!(default_action(0), None);
        assert_eq!(default_action(65), None);
        for s in 1..=64 {
            assert!(signal_name(s).is_some());
        }
        assert_eq!(sig_bit(SIGKILL), 1 << 8);
        assert_eq!(sig_bit(64), 1 << 63);
        assert_eq!(sig_bit(0), 0);
        assert_eq!(UNBLOCKABLE, 0x40100);
    }

    #[test]
    fn sigaction_layout() {
        let a = SigAction {
            handler: 0x1111,
            flags: SA_SIGINFO | SA_RESTORER,
            restorer: 0x2222,
            mask: 0x8000,
        };
        let b = a.encode();
        assert_eq!(&b[0..8], &0x1111u64.to_le_bytes());
        assert_eq!(&b[8..16], &0x0400_0004u64.to_le_bytes());
        assert_eq!(&b[16..24], &0x2222u64.to_le_bytes());
        assert_eq!(&b[24..32], &0x8000u64.to_le_bytes());
        assert_eq!(SigAction::decode(&b), Some(a));
        assert_eq!(SigAction::decode(&b[..31]), None);
    }

    #[test]
    fn siginfo_layouts() {
        let s = SigInfo::fault(SIGSEGV, SEGV_MAPERR, 0xdead_beef);
        let b = s.encode();
        assert_eq!(i32_at(&b, 0), 11);
        assert_eq!(i32_at(&b, 8), 1);
        assert_eq!(u64_at(&b, 16), 0xdead_beef);
        assert_eq!(SigInfo::decode(&b), Some(s));

        let c = SigInfo::chld(CLD_EXITED, 42, 1000, 3, 7, 9);
        let b = c.encode();
        assert_eq!(i32_at(&b, 16), 42);
        assert_eq!(u32_at(&b, 20), 1000);
        assert_eq!(i32_at(&b, 24), 3);
        assert_eq!(i64_at(&b, 32), 7);
        assert_eq!(i64_at(&b, 40), 9);
        assert_eq!(SigInfo::decode(&b), Some(c));

        for s in [
            SigInfo::kill(SIGTERM, 5, 0),
            SigInfo::kernel(SIGPIPE),
            SigInfo {
                signo: 40,
                errno: 0,
                code: SI_QUEUE,
                fields: SigFields::Rt {
                    pid: 1,
                    uid: 2,
                    value: 3,
                },
            },
            SigInfo {
                signo: 34,
                errno: 0,
                code: SI_TIMER,
                fields: SigFields::Timer {
                    tid: 1,
                    overrun: 2,
                    value: 3,
                },
            },
            SigInfo {
                signo: SIGIO as i32,
                errno: 0,
                code: POLL_IN,
                fields: SigFields::Poll { band: 1, fd: 4 },
            },
            SigInfo {
                signo: SIGSYS as i32,
                errno: 0,
                code: SYS_SECCOMP,
                fields: SigFields::Sys {
                    call_addr: 1,
                    syscall: 2,
                    arch: 0xc000_003e,
                },
            },
            SigInfo::fault(SIGBUS, BUS_ADRERR, 0x1000),
            SigInfo::fault(SIGFPE, FPE_INTDIV, 0x401000),
        ] {
            assert_eq!(SigInfo::decode(&s.encode()), Some(s), "{s:?}");
        }
        assert_eq!(SigInfo::decode(&[0u8; 127]), None);
        // Negative codes use the RT layout (pid, uid, sigval), as Linux's siginfo_layout().
        let t = SigInfo::decode(&SigInfo::tkill(SIGUSR1, 6, 1).encode()).unwrap();
        assert_eq!(
            t.fields,
            SigFields::Rt {
                pid: 6,
                uid: 1,
                value: 0
            }
        );
        // A kernel-internal code (SI_KERNEL) and unknown positive codes use the kill layout;
        // codes 1..=6 of a signal without its own table use the poll layout.
        assert_eq!(
            SigInfo::decode(&SigInfo::kernel(SIGPIPE).encode())
                .unwrap()
                .fields,
            SigFields::Kill { pid: 0, uid: 0 }
        );
        let mut odd = SigInfo::fault(SIGUSR1, 3, 0).encode();
        odd[16] = 9;
        assert_eq!(
            SigInfo::decode(&odd).unwrap().fields,
            SigFields::Poll { band: 9, fd: 0 }
        );
    }

    #[test]
    fn sigframe_layout() {
        let mc = SigContext {
            r8: 8,
            r15: 15,
            rdi: 100,
            rax: 0xaa,
            rsp: 0x7fff_0000,
            rip: 0x40_1000,
            eflags: 0x202,
            cs: 0x33,
            ss: 0x2b,
            err: 4,
            trapno: 14,
            cr2: 0xbad,
            fpstate: 0x7ffe_f000,
            ..Default::default()
        };
        let f = RtSigframe {
            pretcode: 0x40_2000,
            uc: UContext {
                flags: UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
                link: 0,
                stack: StackT {
                    sp: 0x1000,
                    flags: SS_DISABLE,
                    size: 0x2000,
                },
                mcontext: mc,
                sigmask: 0x5,
            },
            info: SigInfo::fault(SIGSEGV, SEGV_ACCERR, 0xbad),
        };
        let b = f.encode();
        assert_eq!(b.len(), 440);
        assert_eq!(u64_at(&b, 0), 0x40_2000);
        assert_eq!(u64_at(&b, 8), 7);
        assert_eq!(u64_at(&b, 8 + 16), 0x1000); // uc_stack.ss_sp
        assert_eq!(i32_at(&b, 8 + 24), SS_DISABLE);
        let m = 8 + 40;
        assert_eq!(u64_at(&b, m), 8); // r8 first
        assert_eq!(u64_at(&b, m + 7 * 8), 15); // r15
        assert_eq!(u64_at(&b, m + 8 * 8), 100); // rdi
        assert_eq!(u64_at(&b, m + 13 * 8), 0xaa); // rax
        assert_eq!(u64_at(&b, m + 15 * 8), 0x7fff_0000); // rsp
        assert_eq!(u64_at(&b, m + 16 * 8), 0x40_1000); // rip
        assert_eq!(u64_at(&b, m + 17 * 8), 0x202); // eflags
        assert_eq!(u16_at(&b, m + 144), 0x33);
        assert_eq!(u16_at(&b, m + 150), 0x2b);
        assert_eq!(u64_at(&b, m + 160), 14);
        assert_eq!(u64_at(&b, m + 176), 0xbad);
        assert_eq!(u64_at(&b, m + 184), 0x7ffe_f000);
        assert_eq!(u64_at(&b, 8 + 296), 5); // uc_sigmask
        assert_eq!(i32_at(&b, 312), SIGSEGV as i32);
        assert_eq!(u64_at(&b, 312 + 16), 0xbad);
        assert_eq!(RtSigframe::decode(&b), Some(f));
        assert_eq!(UContext::decode(&b[8..]), Some(f.uc));
    }

    #[test]
    fn frame_placement() {
        let rsp = 0x7fff_ffff_e123u64;
        let (frame, fp) = place_rt_sigframe(rsp - 128, 512).unwrap();
        assert_eq!(fp % 64, 0);
        assert!(fp + 512 <= rsp - 128);
        assert_eq!(frame % 16, 8);
        assert!(frame + RtSigframe::SIZE as u64 <= fp);
        assert!(fp - (frame + RtSigframe::SIZE as u64) < 16 + 8);
        assert_eq!(place_rt_sigframe(100, 512), None);
        let ss = StackT {
            sp: 0x1000,
            flags: 0,
            size: 0x1000,
        };
        assert!(on_sig_stack(0x1800, &ss));
        assert!(on_sig_stack(0x2000, &ss));
        assert!(!on_sig_stack(0x1000, &ss));
        assert!(!on_sig_stack(0x2001, &ss));
        assert!(!on_sig_stack(
            0x1800,
            &StackT {
                flags: SS_DISABLE,
                ..ss
            }
        ));
        let sw = encode_fpx_sw_bytes(832, 7);
        assert_eq!(u32_at(&sw, 0), FP_XSTATE_MAGIC1);
        assert_eq!(u32_at(&sw, 4), 836);
    }
}
