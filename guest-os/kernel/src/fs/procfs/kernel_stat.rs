//! `/proc/stat` and `/proc/uptime`: time since boot and how the CPUs spent it.
//!
//! Only user time is counted (per thread, not per CPU): each CPU is shown an equal share of
//! all live processes' user time, and the rest of the time since boot as idle. System time,
//! interrupts and context switches are not counted: 0. `processes` counts the IDs handed out
//! (forks and threads since boot).

use super::node::Text;
use super::text::TextBuf;
use alloc::sync::Arc;
use noa_linux_abi::errno::SysResult;

/// Nanoseconds per clock tick (USER_HZ 100).
const NS_PER_TICK: u64 = 10_000_000;

/// Time since boot and the idle time of each CPU, in ns, and the CPU count.
struct Times {
    uptime: u64,
    user_per_cpu: u64,
    idle_per_cpu: u64,
    cpus: u64,
}

fn times() -> Times {
    let uptime = hal_pv::time::now_ns();
    let cpus = u64::from(super::task_info::cpu_count());
    let user: u64 = crate::task::process::all().iter().map(|p| p.cpu_ns()).sum();
    let user_per_cpu = (user / cpus).min(uptime);
    Times {
        uptime,
        user_per_cpu,
        idle_per_cpu: uptime - user_per_cpu,
        cpus,
    }
}

pub fn generate_stat() -> SysResult<Text> {
    let t = times();
    let ticks = |ns: u64| ns / NS_PER_TICK;
    let mut out = TextBuf::with_capacity(200 + 40 * t.cpus as usize);
    out.str("cpu  ")
        .num(ticks(t.user_per_cpu) * t.cpus)
        .str(" 0 0 ");
    out.num(ticks(t.idle_per_cpu) * t.cpus)
        .str(" 0 0 0 0 0 0\n");
    for cpu in 0..t.cpus {
        out.str("cpu")
            .num(cpu)
            .byte(b' ')
            .num(ticks(t.user_per_cpu))
            .str(" 0 0 ");
        out.num(ticks(t.idle_per_cpu)).str(" 0 0 0 0 0 0\n");
    }
    let boot_time = hal_pv::time::realtime_ns().saturating_sub(t.uptime) / 1_000_000_000;
    let running = crate::task::process::all()
        .iter()
        .map(|p| p.threads.lock().iter().filter(|t| !t.is_asleep()).count())
        .sum::<usize>();
    out.str("intr 0\nctxt 0\nbtime ").num(boot_time);
    out.str("\nprocesses ")
        .num(u64::from(crate::task::ids_issued()));
    out.str("\nprocs_running ").num(running as u64);
    out.str("\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n");
    Ok(Arc::new(out.into_bytes()))
}

pub fn generate_uptime() -> SysResult<Text> {
    let t = times();
    let centis = |ns: u64| ns / NS_PER_TICK;
    let (up, idle) = (centis(t.uptime), centis(t.idle_per_cpu * t.cpus));
    let mut out = TextBuf::with_capacity(32);
    out.num(up / 100)
        .byte(b'.')
        .num_zeroed(up % 100, 2)
        .byte(b' ');
    out.num(idle / 100)
        .byte(b'.')
        .num_zeroed(idle % 100, 2)
        .byte(b'\n');
    Ok(Arc::new(out.into_bytes()))
}
