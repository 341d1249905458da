//! Processes and threads: `clone` flags and `struct clone_args` (clone3, with size
//! versioning and Linux's validity checks), `struct utsname`, `struct sysinfo`,
//! `struct rlimit` and `RLIMIT_*`, `struct rusage`, `arch_prctl` and basic `prctl` codes,
//! scheduling policies and `getrandom` flags (`include/uapi/linux/{sched,utsname,sysinfo,
//! resource,prctl,random}.h`, `arch/x86/include/uapi/asm/prctl.h`).

use crate::bytes::*;
use crate::errno::Errno;
use crate::time::Timeval;

/// Low byte of `clone` flags: the signal sent to the parent when the child exits.
pub const CSIGNAL: u64 = 0x0000_00ff;
pub const CLONE_NEWTIME: u64 = 0x0000_0080;
pub const CLONE_VM: u64 = 0x0000_0100;
pub const CLONE_FS: u64 = 0x0000_0200;
pub const CLONE_FILES: u64 = 0x0000_0400;
pub const CLONE_SIGHAND: u64 = 0x0000_0800;
pub const CLONE_PIDFD: u64 = 0x0000_1000;
pub const CLONE_PTRACE: u64 = 0x0000_2000;
pub const CLONE_VFORK: u64 = 0x0000_4000;
pub const CLONE_PARENT: u64 = 0x0000_8000;
pub const CLONE_THREAD: u64 = 0x0001_0000;
pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_SYSVSEM: u64 = 0x0004_0000;
pub const CLONE_SETTLS: u64 = 0x0008_0000;
pub const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
pub const CLONE_DETACHED: u64 = 0x0040_0000;
pub const CLONE_UNTRACED: u64 = 0x0080_0000;
pub const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;
pub const CLONE_IO: u64 = 0x8000_0000;
/// clone3 only.
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// clone3 only.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// All 32 legacy flag bits (including `CSIGNAL`).
pub const CLONE_LEGACY_FLAGS: u64 = 0xffff_ffff;

/// Size of the first `struct clone_args` (through `tls`).
pub const CLONE_ARGS_SIZE_VER0: usize = 64;
/// Adds `set_tid`, `set_tid_size` (5.5).
pub const CLONE_ARGS_SIZE_VER1: usize = 80;
/// Adds `cgroup` (5.7).
pub const CLONE_ARGS_SIZE_VER2: usize = 88;
/// Deepest PID namespace nesting (`set_tid_size` limit).
pub const MAX_PID_NS_LEVEL: u64 = 32;

/// `struct clone_args` for clone3 (also built from the legacy `clone` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CloneArgs {
    pub flags: u64,
    /// Where to store the pidfd (`CLONE_PIDFD`).
    pub pidfd: u64,
    /// `CLONE_CHILD_SETTID` / `CLONE_CHILD_CLEARTID` address.
    pub child_tid: u64,
    /// `CLONE_PARENT_SETTID` address.
    pub parent_tid: u64,
    pub exit_signal: u64,
    /// clone3: lowest address of the child stack (the child starts with
    /// `rsp = stack + stack_size`); legacy clone: the new `rsp` itself (`stack_size` 0).
    pub stack: u64,
    pub stack_size: u64,
    /// New FS base (`CLONE_SETTLS`).
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

impl CloneArgs {
    pub const SIZE: usize = CLONE_ARGS_SIZE_VER2;

    /// Decodes clone3's argument with Linux's rules: `size` (the syscall's second argument)
    /// below 64 is `EINVAL`, above 4096 `E2BIG`, unknown trailing bytes must be zero
    /// (`E2BIG`); then the checks of `copy_clone_args_from_user` and `clone3_args_valid`
    /// (`EINVAL`). `b` holds the `size` bytes read from user memory.
    pub fn decode(b: &[u8], size: usize) -> Result<Self, Errno> {
        let b = crate::fcntl::versioned(b, size, CLONE_ARGS_SIZE_VER0, Self::SIZE)?;
        let f = |o: usize| if o + 8 <= size { u64_at(b, o) } else { 0 };
        let a = CloneArgs {
            flags: f(0),
            pidfd: f(8),
            child_tid: f(16),
            parent_tid: f(24),
            exit_signal: f(32),
            stack: f(40),
            stack_size: f(48),
            tls: f(56),
            set_tid: f(64),
            set_tid_size: f(72),
            cgroup: f(80),
        };
        if a.set_tid_size > MAX_PID_NS_LEVEL
            || (a.set_tid == 0 && a.set_tid_size > 0)
            || (a.set_tid != 0 && a.set_tid_size == 0)
        {
            return Err(Errno::EINVAL);
        }
        if a.exit_signal & !CSIGNAL != 0 || a.exit_signal > crate::signal::NSIG as u64 {
            return Err(Errno::EINVAL);
        }
        if a.flags & CLONE_INTO_CGROUP != 0
            && (a.cgroup > i32::MAX as u64 || size < CLONE_ARGS_SIZE_VER2)
        {
            return Err(Errno::EINVAL);
        }
        if a.flags & !(CLONE_LEGACY_FLAGS | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP) != 0
            || a.flags & (CLONE_DETACHED | (CSIGNAL & !CLONE_NEWTIME)) != 0
            || a.flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND)
                == (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND)
            || (a.flags & (CLONE_THREAD | CLONE_PARENT) != 0 && a.exit_signal != 0)
        {
            return Err(Errno::EINVAL);
        }
        // clone3_stack_valid: both or neither, and no wrap.
        if (a.stack == 0) != (a.stack_size == 0) || a.stack.checked_add(a.stack_size).is_none() {
            return Err(Errno::EINVAL);
        }
        validate_clone_flags(a.flags)?;
        Ok(a)
    }

    /// The arguments of legacy `clone(flags, newsp, parent_tid, child_tid, tls)` (x86-64
    /// argument order) as Linux converts them (`pidfd` shares `parent_tid`).
    pub const fn from_legacy(
        flags: u64,
        newsp: u64,
        parent_tid: u64,
        child_tid: u64,
        tls: u64,
    ) -> Self {
        let lo = flags & 0xffff_ffff;
        CloneArgs {
            flags: lo & !CSIGNAL,
            pidfd: parent_tid,
            child_tid,
            parent_tid,
            exit_signal: lo & CSIGNAL,
            stack: newsp,
            stack_size: 0,
            tls,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: 0,
        }
    }

    /// The child's initial `rsp`, or `None` to keep the parent's.
    pub const fn child_sp(&self) -> Option<u64> {
        if self.stack == 0 {
            None
        } else {
            Some(self.stack.wrapping_add(self.stack_size))
        }
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        for (i, v) in [
            self.flags,
            self.pidfd,
            self.child_tid,
            self.parent_tid,
            self.exit_signal,
            self.stack,
            self.stack_size,
            self.tls,
            self.set_tid,
            self.set_tid_size,
            self.cgroup,
        ]
        .iter()
        .enumerate()
        {
            put_u64(&mut b, i * 8, *v);
        }
        b
    }
}

/// The flag combinations `copy_process` refuses (`EINVAL`), for `clone`, `clone3`, `fork`.
pub const fn validate_clone_flags(flags: u64) -> Result<(), Errno> {
    if flags & (CLONE_NEWNS | CLONE_FS) == (CLONE_NEWNS | CLONE_FS)
        || flags & (CLONE_NEWUSER | CLONE_FS) == (CLONE_NEWUSER | CLONE_FS)
        || (flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0)
        || (flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0)
        || (flags & CLONE_PIDFD != 0 && flags & (CLONE_DETACHED | CLONE_THREAD) != 0)
    {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}

/// Length of each `utsname` field, NUL included.
pub const UTSNAME_FIELD: usize = 65;

/// `struct utsname` (6 × 65 bytes): each field is truncated to 64 bytes and NUL padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utsname<'a> {
    pub sysname: &'a [u8],
    pub nodename: &'a [u8],
    pub release: &'a [u8],
    pub version: &'a [u8],
    pub machine: &'a [u8],
    pub domainname: &'a [u8],
}

/// Size of `struct utsname`.
pub const UTSNAME_SIZE: usize = 6 * UTSNAME_FIELD;

impl Utsname<'_> {
    pub const SIZE: usize = UTSNAME_SIZE;
    pub fn encode(&self) -> [u8; UTSNAME_SIZE] {
        let mut b = [0u8; UTSNAME_SIZE];
        for (i, f) in [
            self.sysname,
            self.nodename,
            self.release,
            self.version,
            self.machine,
            self.domainname,
        ]
        .iter()
        .enumerate()
        {
            let n = f.len().min(UTSNAME_FIELD - 1);
            b[i * UTSNAME_FIELD..i * UTSNAME_FIELD + n].copy_from_slice(&f[..n]);
        }
        b
    }
}

/// `struct sysinfo` on x86-64 (112 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sysinfo {
    /// Seconds since boot.
    pub uptime: i64,
    /// 1, 5, 15 minute load averages, fixed point with 16 fractional bits (`SI_LOAD_SHIFT`).
    pub loads: [u64; 3],
    pub totalram: u64,
    pub freeram: u64,
    pub sharedram: u64,
    pub bufferram: u64,
    pub totalswap: u64,
    pub freeswap: u64,
    pub procs: u16,
    pub totalhigh: u64,
    pub freehigh: u64,
    /// Unit of the memory fields, in bytes.
    pub mem_unit: u32,
}

impl Sysinfo {
    pub const SIZE: usize = 112;
    pub const SI_LOAD_SHIFT: u32 = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i64(&mut b, 0, self.uptime);
        for (i, l) in self.loads.iter().enumerate() {
            put_u64(&mut b, 8 + i * 8, *l);
        }
        put_u64(&mut b, 32, self.totalram);
        put_u64(&mut b, 40, self.freeram);
        put_u64(&mut b, 48, self.sharedram);
        put_u64(&mut b, 56, self.bufferram);
        put_u64(&mut b, 64, self.totalswap);
        put_u64(&mut b, 72, self.freeswap);
        put_u16(&mut b, 80, self.procs);
        put_u64(&mut b, 88, self.totalhigh);
        put_u64(&mut b, 96, self.freehigh);
        put_u32(&mut b, 104, self.mem_unit);
        b
    }
}

pub const RLIMIT_CPU: u32 = 0;
pub const RLIMIT_FSIZE: u32 = 1;
pub const RLIMIT_DATA: u32 = 2;
pub const RLIMIT_STACK: u32 = 3;
pub const RLIMIT_CORE: u32 = 4;
pub const RLIMIT_RSS: u32 = 5;
pub const RLIMIT_NPROC: u32 = 6;
pub const RLIMIT_NOFILE: u32 = 7;
pub const RLIMIT_MEMLOCK: u32 = 8;
pub const RLIMIT_AS: u32 = 9;
pub const RLIMIT_LOCKS: u32 = 10;
pub const RLIMIT_SIGPENDING: u32 = 11;
pub const RLIMIT_MSGQUEUE: u32 = 12;
pub const RLIMIT_NICE: u32 = 13;
pub const RLIMIT_RTPRIO: u32 = 14;
pub const RLIMIT_RTTIME: u32 = 15;
pub const RLIM_NLIMITS: u32 = 16;
pub const RLIM_INFINITY: u64 = u64::MAX;

/// `struct rlimit` / `struct rlimit64` (16 bytes: `rlim_cur`, `rlim_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

impl Rlimit {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u64(&mut b, 0, self.cur);
        put_u64(&mut b, 8, self.max);
        b
    }
    /// Decodes; `setrlimit` must then refuse `cur > max` with `EINVAL`.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Rlimit {
            cur: u64_at(b, 0),
            max: u64_at(b, 8),
        })
    }
}

pub const RUSAGE_SELF: i32 = 0;
pub const RUSAGE_CHILDREN: i32 = -1;
pub const RUSAGE_THREAD: i32 = 1;

/// `struct rusage` (144 bytes): two `timeval`s then 14 longs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rusage {
    pub utime: Timeval,
    pub stime: Timeval,
    /// In KiB.
    pub maxrss: i64,
    pub ixrss: i64,
    pub idrss: i64,
    pub isrss: i64,
    pub minflt: i64,
    pub majflt: i64,
    pub nswap: i64,
    pub inblock: i64,
    pub oublock: i64,
    pub msgsnd: i64,
    pub msgrcv: i64,
    pub nsignals: i64,
    pub nvcsw: i64,
    pub nivcsw: i64,
}

impl Rusage {
    pub const SIZE: usize = 144;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..16].copy_from_slice(&self.utime.encode());
        b[16..32].copy_from_slice(&self.stime.encode());
        for (i, v) in [
            self.maxrss,
            self.ixrss,
            self.idrss,
            self.isrss,
            self.minflt,
            self.majflt,
            self.nswap,
            self.inblock,
            self.oublock,
            self.msgsnd,
            self.msgrcv,
            self.nsignals,
            self.nvcsw,
            self.nivcsw,
        ]
        .iter()
        .enumerate()
        {
            put_i64(&mut b, 32 + i * 8, *v);
        }
        b
    }
}

// arch_prctl codes (arch/x86/include/uapi/asm/prctl.h).
pub const ARCH_SET_GS: u32 = 0x1001;
pub const ARCH_SET_FS: u32 = 0x1002;
pub const ARCH_GET_FS: u32 = 0x1003;
pub const ARCH_GET_GS: u32 = 0x1004;
pub const ARCH_GET_CPUID: u32 = 0x1011;
pub const ARCH_SET_CPUID: u32 = 0x1012;
pub const ARCH_GET_XCOMP_SUPP: u32 = 0x1021;
pub const ARCH_GET_XCOMP_PERM: u32 = 0x1022;
pub const ARCH_REQ_XCOMP_PERM: u32 = 0x1023;
pub const ARCH_MAP_VDSO_X32: u32 = 0x2001;
pub const ARCH_MAP_VDSO_32: u32 = 0x2002;
pub const ARCH_MAP_VDSO_64: u32 = 0x2003;

// prctl basics (include/uapi/linux/prctl.h).
pub const PR_SET_PDEATHSIG: u32 = 1;
pub const PR_GET_PDEATHSIG: u32 = 2;
pub const PR_GET_DUMPABLE: u32 = 3;
pub const PR_SET_DUMPABLE: u32 = 4;
pub const PR_GET_KEEPCAPS: u32 = 7;
pub const PR_SET_KEEPCAPS: u32 = 8;
pub const PR_SET_NAME: u32 = 15;
pub const PR_GET_NAME: u32 = 16;
pub const PR_GET_SECCOMP: u32 = 21;
pub const PR_SET_SECCOMP: u32 = 22;
pub const PR_CAPBSET_READ: u32 = 23;
pub const PR_CAPBSET_DROP: u32 = 24;
pub const PR_SET_TIMERSLACK: u32 = 29;
pub const PR_GET_TIMERSLACK: u32 = 30;
pub const PR_SET_MM: u32 = 35;
pub const PR_SET_CHILD_SUBREAPER: u32 = 36;
pub const PR_GET_CHILD_SUBREAPER: u32 = 37;
pub const PR_SET_NO_NEW_PRIVS: u32 = 38;
pub const PR_GET_NO_NEW_PRIVS: u32 = 39;
pub const PR_GET_TID_ADDRESS: u32 = 40;
pub const PR_SET_THP_DISABLE: u32 = 41;
pub const PR_GET_THP_DISABLE: u32 = 42;
pub const PR_CAP_AMBIENT: u32 = 47;
pub const PR_SET_VMA: u32 = 0x5356_4d41;
pub const PR_SET_VMA_ANON_NAME: u32 = 0;
/// Length of the thread name buffer (`PR_SET_NAME`, `/proc/self/comm`), NUL included.
pub const TASK_COMM_LEN: usize = 16;

pub const SCHED_OTHER: u32 = 0;
pub const SCHED_FIFO: u32 = 1;
pub const SCHED_RR: u32 = 2;
pub const SCHED_BATCH: u32 = 3;
pub const SCHED_IDLE: u32 = 5;
pub const SCHED_DEADLINE: u32 = 6;
pub const SCHED_RESET_ON_FORK: u32 = 0x4000_0000;

pub const PRIO_PROCESS: u32 = 0;
pub const PRIO_PGRP: u32 = 1;
pub const PRIO_USER: u32 = 2;

pub const GRND_NONBLOCK: u32 = 0x1;
pub const GRND_RANDOM: u32 = 0x2;
pub const GRND_INSECURE: u32 = 0x4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_versions() {
        let a = CloneArgs {
            flags: CLONE_VM
                | CLONE_FS
                | CLONE_FILES
                | CLONE_SIGHAND
                | CLONE_THREAD
                | CLONE_SYSVSEM
                | CLONE_SETTLS
                | CLONE_PARENT_SETTID
                | CLONE_CHILD_CLEARTID,
            child_tid: 0x1000,
            parent_tid: 0x1000,
            stack: 0x7000_0000,
            stack_size: 0x10_0000,
            tls: 0x7000_0100,
            ..Default::default()
        };
        let b = a.encode();
        assert_eq!(u64_at(&b, 40), 0x7000_0000);
        assert_eq!(u64_at(&b, 56), 0x7000_0100);
        assert_eq!(CloneArgs::decode(&b, 64), Ok(a));
        assert_eq!(CloneArgs::decode(&b, 80), Ok(a));
        assert_eq!(CloneArgs::decode(&b, 88), Ok(a));
        assert_eq!(a.child_sp(), Some(0x7010_0000));
        // Larger struct from a newer libc: zero tail accepted, non-zero tail E2BIG.
        let mut big = [0u8; 128];
        big[..88].copy_from_slice(&b);
        assert_eq!(CloneArgs::decode(&big, 128), Ok(a));
        big[100] = 1;
        assert_eq!(CloneArgs::decode(&big, 128), Err(Errno::E2BIG));
        assert_eq!(CloneArgs::decode(&b, 56), Err(Errno::EINVAL));
        assert_eq!(CloneArgs::decode(&b, 8192), Err(Errno::E2BIG));
        assert_eq!(CloneArgs::decode(&b[..60], 64), Err(Errno::EFAULT));
        // A 64-byte struct must not read set_tid from beyond `size`.
        let mut v0 = [0u8; 88];
        v0[..64].copy_from_slice(&b[..64]);
        v0[64] = 9; // garbage past size
        assert_eq!(CloneArgs::decode(&v0, 64), Ok(a));
        // Invalid combinations.
        let bad = |f: &dyn Fn(&mut CloneArgs)| {
            let mut x = a;
            f(&mut x);
            CloneArgs::decode(&x.encode(), 88)
        };
        assert_eq!(bad(&|x| x.exit_signal = 17), Err(Errno::EINVAL)); // THREAD + exit_signal
        assert_eq!(bad(&|x| x.flags |= 17), Err(Errno::EINVAL)); // CSIGNAL bits in clone3 flags
        assert_eq!(bad(&|x| x.flags &= !CLONE_VM), Err(Errno::EINVAL)); // SIGHAND without VM
        assert_eq!(bad(&|x| x.stack_size = 0), Err(Errno::EINVAL));
        assert_eq!(bad(&|x| x.set_tid_size = 1), Err(Errno::EINVAL));
        assert_eq!(bad(&|x| x.flags |= 1 << 40), Err(Errno::EINVAL));
        assert_eq!(
            bad(&|x| {
                x.flags = 0;
                x.exit_signal = 65
            }),
            Err(Errno::EINVAL)
        );
        let fork = CloneArgs {
            exit_signal: 17,
            ..Default::default()
        };
        assert_eq!(CloneArgs::decode(&fork.encode(), 64), Ok(fork));
        assert_eq!(fork.child_sp(), None);
    }

    #[test]
    fn legacy_clone() {
        let a = CloneArgs::from_legacy(CLONE_VM | CLONE_VFORK | 17, 0x7fff_0000, 1, 2, 3);
        assert_eq!(a.flags, CLONE_VM | CLONE_VFORK);
        assert_eq!(a.exit_signal, 17);
        assert_eq!(a.child_sp(), Some(0x7fff_0000));
        assert_eq!((a.parent_tid, a.child_tid, a.tls, a.pidfd), (1, 2, 3, 1));
        assert_eq!(validate_clone_flags(CLONE_THREAD), Err(Errno::EINVAL));
        assert_eq!(
            validate_clone_flags(CLONE_NEWNS | CLONE_FS),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate_clone_flags(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD),
            Ok(())
        );
    }

    #[test]
    fn small_structs() {
        let u = Utsname {
            sysname: b"Linux",
            nodename: b"noa",
            release: b"6.1.0-noa",
            version: b"#1 SMP",
            machine: b"x86_64",
            domainname: &[b'd'; 80],
        };
        let b = u.encode();
        assert_eq!(b.len(), 390);
        assert_eq!(&b[0..6], b"Linux\0");
        assert_eq!(&b[65..69], b"noa\0");
        assert_eq!(&b[4 * 65..4 * 65 + 7], b"x86_64\0");
        assert_eq!(b[5 * 65 + 63], b'd');
        assert_eq!(b[5 * 65 + 64], 0);
        let s = Sysinfo {
            uptime: 5,
            totalram: 1 << 30,
            procs: 3,
            mem_unit: 1,
            loads: [1, 2, 3],
            ..Default::default()
        };
        let sb = s.encode();
        assert_eq!(u64_at(&sb, 24), 3);
        assert_eq!(u64_at(&sb, 32), 1 << 30);
        assert_eq!(u16_at(&sb, 80), 3);
        assert_eq!(u32_at(&sb, 104), 1);
        let r = Rlimit {
            cur: 1024,
            max: RLIM_INFINITY,
        };
        assert_eq!(Rlimit::decode(&r.encode()), Some(r));
        let ru = Rusage {
            utime: Timeval { sec: 1, usec: 2 },
            nivcsw: 9,
            maxrss: 7,
            ..Default::default()
        };
        let rb = ru.encode();
        assert_eq!(i64_at(&rb, 8), 2);
        assert_eq!(i64_at(&rb, 32), 7);
        assert_eq!(i64_at(&rb, 136), 9);
    }
}
