//! The scheduler: one run queue for all CPUs, each CPU's idle loop, blocking and waking, time
//! slices — tickless.
//!
//! Interrupts are off whenever the kernel runs, so a CPU is only ever interrupted in user mode or
//! in its idle `hlt`; scheduling decisions happen at those points and when a thread blocks. A CPU
//! with nothing to run sleeps in `hlt` with its timer armed only for the next sleeper's deadline;
//! a thread entering user mode arms a 10 ms slice only when others are waiting for a CPU.
//!
//! Vector registers belong to whichever user thread last ran on the CPU; a thread leaving the
//! CPU saves them (from ring 3, `hal_pv::user::vector`), and restores them when it next enters
//! user mode somewhere its state is not already live.

use super::thread::Thread;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use hal_pv::cpu::percpu::MAX_CPUS;
use hal_pv::task::Context;
use spin::{Mutex, Once};

/// A thread's share of a CPU when others wait.
const TIME_SLICE_NS: u64 = 10_000_000;
/// The IPI that wakes an idle CPU (its handler does nothing: waking up is the point).
pub const WAKE_VECTOR: u8 = 0xf2;

struct CpuSched {
    current: Mutex<Option<Arc<Thread>>>,
    idle: Once<Arc<Context>>,
    idle_now: AtomicBool,
    slice_end: AtomicU64,
    /// The deadline the timer is armed for (u64::MAX: disarmed), to skip redundant MSR writes.
    armed: AtomicU64,
    /// The thread whose vector state this CPU's registers hold (0: none).
    vector_owner: AtomicU32,
    /// The thread this CPU just switched away from, looked at once the CPU is off its stack.
    switched_from: Mutex<Option<Arc<Thread>>>,
}

static CPUS: [CpuSched; MAX_CPUS] = [const {
    CpuSched {
        current: Mutex::new(None),
        idle: Once::new(),
        idle_now: AtomicBool::new(false),
        slice_end: AtomicU64::new(u64::MAX),
        armed: AtomicU64::new(u64::MAX),
        vector_owner: AtomicU32::new(0),
        switched_from: Mutex::new(None),
    }
}; MAX_CPUS];

static RUN_QUEUE: Mutex<VecDeque<Arc<Thread>>> = Mutex::new(VecDeque::new());
/// How many threads the run queue holds, readable without its lock (the user-entry fast path).
static QUEUED: AtomicUsize = AtomicUsize::new(0);

fn push(thread: Arc<Thread>) {
    let mut queue = RUN_QUEUE.lock();
    queue.push_back(thread);
    QUEUED.store(queue.len(), Ordering::Release);
}

fn pop() -> Option<Arc<Thread>> {
    let mut queue = RUN_QUEUE.lock();
    let thread = queue.pop_front();
    QUEUED.store(queue.len(), Ordering::Release);
    thread
}

fn this() -> &'static CpuSched {
    on(hal_pv::cpu::cpu_index())
}

/// CPU `index`'s scheduler state. Indices are below `MAX_CPUS` (a power of two), so the mask
/// changes nothing but spares the bounds check on the way into user mode.
fn on(index: u32) -> &'static CpuSched {
    const _: () = assert!(MAX_CPUS.is_power_of_two());
    &CPUS[index as usize % MAX_CPUS]
}

/// The thread running on this CPU. Panics on an idle CPU.
pub fn current() -> Arc<Thread> {
    try_current().expect("no current thread on this CPU")
}

pub fn try_current() -> Option<Arc<Thread>> {
    this().current.lock().clone()
}

/// Makes a new thread runnable.
pub fn start(thread: Arc<Thread>) {
    enqueue(thread);
}

/// Wakes `thread` if it sleeps.
///
/// The run queue only ever holds threads that no CPU is running: a thread woken while still on
/// its CPU (between marking itself asleep and switching away) is queued once it is off. Were it
/// queued earlier, a CPU could pick it and wait in `switch_to` for it to stop running while its
/// own CPU waits the same way for this one's thread — both CPUs stuck.
pub fn wake(thread: &Arc<Thread>) {
    if !thread.take_sleep() {
        return;
    }
    if !thread.context.is_running() {
        enqueue(thread.clone());
        return;
    }
    // Still on its CPU: that CPU queues it once it has switched away (`after_switch_here`).
    // Whichever side sees both "woken" and "off its CPU" first claims the flag.
    thread.requeue_when_off.store(true, Ordering::SeqCst);
    if !thread.context.is_running() && thread.requeue_when_off.swap(false, Ordering::SeqCst) {
        enqueue(thread.clone());
    }
}

/// Makes `thread` notice something at once (a signal, an exit): wakes it if it sleeps, and pulls
/// every busy CPU out of user mode so that a running thread checks too.
pub fn kick(thread: &Arc<Thread>) {
    wake(thread);
    let me = hal_pv::cpu::cpu_index();
    for cpu in hal_pv::cpu::percpu::all_cpus().filter(|c| c.index != me) {
        if !CPUS[cpu.index as usize].idle_now.load(Ordering::Acquire) {
            hal_pv::irq::apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), WAKE_VECTOR);
        }
    }
}

fn enqueue(thread: Arc<Thread>) {
    push(thread);
    let me = hal_pv::cpu::cpu_index();
    if let Some(cpu) = hal_pv::cpu::percpu::all_cpus()
        .find(|c| c.index != me && CPUS[c.index as usize].idle_now.load(Ordering::Acquire))
    {
        hal_pv::irq::apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), WAKE_VECTOR);
    }
}

/// Whether threads wait for a CPU.
pub fn others_waiting() -> bool {
    QUEUED.load(Ordering::Acquire) != 0
}

/// The current thread sleeps (it marked itself with `prepare_to_sleep`); returns once woken.
pub fn block() {
    switch_away(false);
}

/// The current thread changes its mind about sleeping (its condition came true first). If a
/// waker already put it on the run queue, it must leave the CPU once so that it is never queued
/// and running at the same time (another CPU would wait for it to switch away).
pub fn abort_sleep(me: &Thread) {
    if !me.take_sleep() {
        switch_away(false);
    }
}

/// Gives the CPU to a waiting thread, if any.
pub fn yield_now() {
    if others_waiting() {
        switch_away(true);
    }
}

/// The current thread has exited: leave its stack for good.
pub fn exit_current() -> ! {
    switch_away(false);
    unreachable!("an exited thread was scheduled again");
}

fn switch_away(requeue: bool) {
    let me = current();
    // The queue never holds a running thread (see `wake`), so `next` is never `me`.
    let next = pop();
    if requeue {
        if next.is_none() {
            return;
        }
        // Queued again after the switch (see `wake`), by whoever runs here next.
        me.requeue_when_off.store(true, Ordering::SeqCst);
    }
    save_vector_state(&me);
    let cpu = this();
    let target = match &next {
        Some(thread) => thread.context.clone(),
        None => cpu
            .idle
            .get()
            .expect("scheduler not started on this CPU")
            .clone(),
    };
    *cpu.current.lock() = next;
    *cpu.switched_from.lock() = Some(me);
    drop(hal_pv::task::switch_to(target));
    after_switch();
}

/// Right after a switch on this CPU: the thread it switched away from is off its stack now; if
/// it yielded or was woken meanwhile, it goes on the run queue.
fn after_switch_here() {
    let previous = this().switched_from.lock().take();
    if let Some(thread) = previous
        && thread.requeue_when_off.swap(false, Ordering::SeqCst)
    {
        enqueue(thread);
    }
}

/// On a thread's stack after a switch: its memory is the one loaded.
pub(super) fn after_switch() {
    after_switch_here();
    if let Some(me) = try_current() {
        me.process.mm().space.activate();
    }
}

/// Whether this CPU's vector registers hold `thread`'s current state (else its save area does).
pub fn vector_state_live(thread: &Thread) -> bool {
    let here = hal_pv::cpu::cpu_index();
    vector_state_live_on(thread, here, on(here))
}

#[inline]
fn vector_state_live_on(thread: &Thread, here: u32, cpu: &CpuSched) -> bool {
    thread.vector_live_on.load(Ordering::Acquire) == here + 1
        && cpu.vector_owner.load(Ordering::Acquire) == thread.tid
}

/// Records that this CPU's registers now hold `thread`'s vector state.
pub fn set_vector_state_live(thread: &Thread) {
    thread
        .vector_live_on
        .store(hal_pv::cpu::cpu_index() + 1, Ordering::Release);
    this().vector_owner.store(thread.tid, Ordering::Release);
}

fn save_vector_state(thread: &Thread) {
    if thread.exiting.load(Ordering::Acquire) || !vector_state_live(thread) {
        return;
    }
    // The thread's memory is loaded (it is the current thread). A failure means the thread
    // unmapped or corrupted its own save area: it loses its vector state, nothing else.
    if hal_pv::user::vector::save(thread.vector_area.load(Ordering::Acquire)).is_err() {
        thread.vector_live_on.store(0, Ordering::Release);
    }
}

/// Before `thread` enters user mode on this CPU: its vector state is live here, and the timer is
/// armed for its slice (if others wait) and the next sleeper.
pub(super) fn prepare_user_entry(thread: &Thread) -> Result<(), hal_pv::user::vector::AreaFault> {
    let here = hal_pv::cpu::cpu_index();
    let cpu = on(here);
    if !vector_state_live_on(thread, here, cpu) {
        // Another thread's state may be live here: ours must come from memory.
        hal_pv::user::vector::restore(thread.vector_area.load(Ordering::Acquire))?;
        set_vector_state_live(thread);
    }
    let waiting = others_waiting();
    let earliest = super::timer::earliest();
    if !waiting
        && earliest.is_none()
        && cpu.armed.load(Ordering::Relaxed) == u64::MAX
        && cpu.slice_end.load(Ordering::Relaxed) == u64::MAX
    {
        // Nothing to time: the common case, without reading the clock.
        return Ok(());
    }
    let now = hal_pv::time::now_ns();
    let slice_end = if waiting {
        let end = cpu.slice_end.load(Ordering::Relaxed);
        if end == u64::MAX {
            cpu.slice_end.store(now + TIME_SLICE_NS, Ordering::Relaxed);
            now + TIME_SLICE_NS
        } else {
            end
        }
    } else {
        cpu.slice_end.store(u64::MAX, Ordering::Relaxed);
        u64::MAX
    };
    arm_timer(now, slice_end.min(earliest.unwrap_or(u64::MAX)));
    Ok(())
}

/// After an interrupt in user mode: sleepers whose time has come, and the end of a slice.
pub(super) fn after_user_interrupt() {
    super::timer::expire();
    let cpu = this();
    let slice_end = cpu.slice_end.load(Ordering::Relaxed);
    if slice_end != u64::MAX && hal_pv::time::now_ns() >= slice_end {
        cpu.slice_end.store(u64::MAX, Ordering::Relaxed);
        yield_now();
    }
}

fn arm_timer(now: u64, deadline: u64) {
    let armed = &this().armed;
    let previous = armed.load(Ordering::Relaxed);
    // Only "nothing to arm, nothing armed" is skipped: the HAL's device waits use the same
    // one-shot timer (and disarm it), so a finite deadline is always programmed again.
    if deadline == u64::MAX && previous == u64::MAX {
        return;
    }
    armed.store(deadline, Ordering::Relaxed);
    if deadline == u64::MAX {
        hal_pv::irq::apic::cancel_timer();
    } else {
        hal_pv::time::set_timer_in_ns(deadline.saturating_sub(now).max(1));
    }
}

/// The timer fired on this CPU: it is disarmed now.
fn timer_fired(_: &mut hal_pv::irq::TrapFrame) {
    this().armed.store(u64::MAX, Ordering::Relaxed);
}

/// Every CPU ends here once the kernel is up: run what is runnable, else sleep until an interrupt.
pub fn idle_loop() -> ! {
    let cpu = this();
    cpu.idle.call_once(hal_pv::task::current);
    if hal_pv::irq::handler(WAKE_VECTOR).is_none() {
        hal_pv::irq::set_handler(WAKE_VECTOR, |_| {});
    }
    hal_pv::irq::set_handler(hal_pv::irq::TIMER_VECTOR, timer_fired);
    loop {
        super::timer::expire();
        let next = pop();
        if let Some(thread) = next {
            let context = thread.context.clone();
            *cpu.current.lock() = Some(thread);
            drop(hal_pv::task::switch_to(context));
            after_switch_here();
            continue;
        }
        hal_pv::mm::address_space::activate_kernel_space();
        cpu.idle_now.store(true, Ordering::SeqCst);
        if !others_waiting() {
            let now = hal_pv::time::now_ns();
            arm_timer(now, super::timer::earliest().unwrap_or(u64::MAX));
            hal_pv::cpu::wait_for_interrupt();
        }
        cpu.idle_now.store(false, Ordering::SeqCst);
    }
}
