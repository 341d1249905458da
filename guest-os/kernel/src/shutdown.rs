//! The end of the machine: the disks are unmounted cleanly and init's exit status becomes the
//! VMM's exit code.

use hal_pv::pvport::{PowerOffReason, power_off as port_power_off};

/// The exit code when there is no init to run (like a shell's "command not found").
pub const NO_INIT_EXIT_CODE: u8 = 127;

/// Powers off with `code` (init's exit status, or 128 + signal), after writing everything back
/// to the disks and marking their file systems clean.
pub fn power_off(code: u8) -> ! {
    crate::fs::unmount_all();
    port_power_off(code, PowerOffReason::Normal)
}
