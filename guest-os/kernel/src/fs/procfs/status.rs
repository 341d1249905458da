//! `/proc/<pid>/status` (and a thread's): Linux's fields in Linux's order and layout — names,
//! IDs, memory sizes (`VmSize:\t%8lu kB`), thread count, signal sets as 16 hex digits, the CPUs
//! allowed. Everything runs as root with every capability; memory sizes are the approximations
//! [`super::task_info`] describes.

use super::process;
use super::task_info::{self, cpu_count};
use super::text::TextBuf;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use noa_linux_abi::errno::SysResult;

/// Capabilities of root (CAP_LAST_CAP 40).
const ALL_CAPS: u64 = (1 << 41) - 1;
/// RLIMIT_SIGPENDING.
const RLIMIT_SIGPENDING: usize = 11;

pub fn generate(pid: u32, tid: Option<u32>) -> SysResult<Vec<u8>> {
    let process = process(pid)?;
    let thread = task_info::view_thread(&process, tid);
    let (state, state_word) = task_info::state(&process, thread.as_deref());
    let signals = task_info::signals(&process, thread.as_deref());
    let threads = process.threads.lock().len();
    let umask = process.fs.lock().umask;
    let fd_size = process
        .files
        .lock()
        .fds()
        .last()
        .map_or(0, |(fd, _)| fd as usize + 1)
        .next_power_of_two()
        .max(64);
    let mem = task_info::mem_sizes(&process);
    let cpus = cpu_count();

    let comm = task_info::comm(&process);
    let (pid, shown) = (
        u64::from(process.pid),
        u64::from(tid.unwrap_or(process.pid)),
    );
    let mut out = TextBuf::with_capacity(1400);
    out.str("Name:\t")
        .bytes(&comm)
        .str("\nUmask:\t")
        .octal(umask, 4);
    out.str("\nState:\t")
        .byte(state as u8)
        .str(" (")
        .str(state_word);
    out.str(")\nTgid:\t")
        .num(pid)
        .str("\nNgid:\t0\nPid:\t")
        .num(shown);
    out.str("\nPPid:\t").num(u64::from(process.ppid()));
    out.str("\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t");
    out.num(fd_size as u64)
        .str("\nGroups:\t \nNStgid:\t")
        .num(pid);
    out.str("\nNSpid:\t").num(shown).str("\nNSpgid:\t");
    out.num(u64::from(process.pgid.load(Ordering::Relaxed)));
    out.str("\nNSsid:\t")
        .num(u64::from(process.sid.load(Ordering::Relaxed)));
    out.str("\nKthread:\t0\n");
    let sizes = [
        ("VmPeak:\t", mem.size),
        ("VmSize:\t", mem.size),
        ("VmLck:\t", 0),
        ("VmPin:\t", 0),
        ("VmHWM:\t", mem.resident),
        ("VmRSS:\t", mem.resident),
        ("RssAnon:\t", mem.anon),
        ("RssFile:\t", mem.file),
        ("RssShmem:\t", mem.shmem),
        ("VmData:\t", mem.data),
        ("VmStk:\t", mem.stack),
        ("VmExe:\t", mem.exe),
        ("VmLib:\t", mem.lib),
        ("VmPTE:\t", 0),
        ("VmSwap:\t", 0),
        ("HugetlbPages:\t", 0),
    ];
    for (name, bytes) in sizes {
        out.str(name).num_padded(bytes / 1024, 8).str(" kB\n");
    }
    out.str("CoreDumping:\t0\nTHP_enabled:\t0\nThreads:\t")
        .num(threads as u64);
    out.str("\nSigQ:\t0/")
        .num(process.rlimit(RLIMIT_SIGPENDING));
    let sets = [
        ("\nSigPnd:\t", signals.thread_pending),
        ("\nShdPnd:\t", signals.shared_pending),
        ("\nSigBlk:\t", signals.blocked),
        ("\nSigIgn:\t", signals.ignored),
        ("\nSigCgt:\t", signals.caught),
        ("\nCapInh:\t", 0),
        ("\nCapPrm:\t", ALL_CAPS),
        ("\nCapEff:\t", ALL_CAPS),
        ("\nCapBnd:\t", ALL_CAPS),
        ("\nCapAmb:\t", 0),
    ];
    for (name, set) in sets {
        out.str(name).hex(set, 16);
    }
    out.str(
        "\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n\
         Speculation_Store_Bypass:\tvulnerable\nSpeculationIndirectBranch:\talways enabled\n\
         Cpus_allowed:\t",
    );
    cpu_mask(&mut out, cpus);
    out.str("\nCpus_allowed_list:\t");
    task_info::cpu_list(&mut out, cpus);
    out.str(
        "\nMems_allowed:\t1\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t0\n\
         nonvoluntary_ctxt_switches:\t0\n",
    );
    Ok(out.into_bytes())
}

/// A mask of the first `count` CPUs as Linux prints a cpumask: hex, a comma every 32 bits.
fn cpu_mask(out: &mut TextBuf, count: u32) {
    let words = count.div_ceil(32).max(1);
    for word in (0..words).rev() {
        let bits = count.saturating_sub(word * 32).min(32);
        let mask = if bits == 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        };
        if word == words - 1 {
            out.hex(u64::from(mask), 1);
        } else {
            out.byte(b',').hex(u64::from(mask), 8);
        }
    }
}
