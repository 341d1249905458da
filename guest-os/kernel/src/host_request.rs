//! What the kernel does with the host's requests (`hal_pv::host_request`, docs/boot-protocol.md):
//! a shutdown request — the VMM got SIGINT or SIGTERM — becomes SIGTERM to PID 1, as a container
//! runtime's stop does. init stops its programs and exits; init's exit powers the machine off
//! with its code, the disks written back (`shutdown`).
//!
//! As on Linux, PID 1 only gets the signals it has a handler for. A request that comes before
//! init handles SIGTERM (a Ctrl-C during boot) waits until it does, looked at again every
//! [`RETRY_NS`]; an init that never handles it is stopped by the VMM after its grace period.
//!
//! The interrupt hook only notes the request. The signal is sent from a timer callback, which runs
//! where the scheduler expires deadlines — on the way between user mode and the kernel, or in a
//! CPU's idle loop — never inside kernel code that was waiting for a device with locks held.

use crate::task::{process, signal, timer};
use core::sync::atomic::{AtomicBool, Ordering};
use hal_pv::host_request::SHUTDOWN;
use noa_linux_abi::signal::{SIG_DFL, SIG_IGN, SIGTERM, SigInfo};

/// How often a waiting shutdown request looks again whether init handles SIGTERM.
const RETRY_NS: u64 = 50_000_000;

/// A shutdown request is on its way to init.
static SHUTDOWN_PENDING: AtomicBool = AtomicBool::new(false);
/// The wait for init's handler has been logged.
static WAIT_LOGGED: AtomicBool = AtomicBool::new(false);

/// Starts taking the host's requests, if the host offers them (our VMM does; QEMU does not).
pub fn listen(cmdline: &str) {
    hal_pv::host_request::listen(cmdline, on_request);
}

/// The interrupt hook: note, defer. A request while one is pending adds nothing.
fn on_request(requests: u32) {
    if requests & SHUTDOWN != 0 && !SHUTDOWN_PENDING.swap(true, Ordering::AcqRel) {
        timer::call_at(0, deliver_shutdown);
    }
}

/// SIGTERM to init once init handles it.
fn deliver_shutdown() {
    let Some(init) = process::find(1) else {
        return;
    };
    if init.exit_status.lock().is_some() {
        // Already ending: the power-off is on its way.
        return;
    }
    let handler = init.actions.lock()[(SIGTERM - 1) as usize].handler;
    if handler == SIG_DFL || handler == SIG_IGN {
        if !WAIT_LOGGED.swap(true, Ordering::Relaxed) {
            crate::klog!("the host asks for a shutdown; waiting for init to handle SIGTERM");
        }
        timer::call_at(hal_pv::time::now_ns() + RETRY_NS, deliver_shutdown);
        return;
    }
    SHUTDOWN_PENDING.store(false, Ordering::Release);
    crate::klog!("the host asks for a shutdown: SIGTERM to init");
    signal::send_to_process(&init, SIGTERM, SigInfo::kernel(SIGTERM));
}
