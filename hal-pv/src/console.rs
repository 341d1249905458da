//! The kernel console: a 16550 UART at COM1 (port 0x3f8), which our VMM (vm-superio) and QEMU
//! both emulate. Output only.
//!
//! Every port access is an exit to the VMM (~10 µs on PVM hosts), so a string goes out with one
//! `rep outsb` — KVM hands the VMM the whole string in one exit — and the console never polls the
//! line-status register: both emulations accept bytes at any time (their transmit holding
//! register is always empty from the guest's point of view).

use core::fmt::{self, Write};
use spin::Mutex;

const COM1_DATA: u16 = 0x3f8;

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: `rep outsb` reads `s` and writes it to the COM1 data register; DF is clear (the
        // ABI guarantees it). No other memory is touched.
        unsafe {
            core::arch::asm!(
                "rep outsb",
                in("dx") COM1_DATA,
                inout("rsi") s.as_ptr() => _,
                inout("rcx") s.len() => _,
                options(nostack, readonly, preserves_flags)
            );
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Serial> = Mutex::new(Serial);

/// Writes formatted text to the console. Used by [`crate::println!`].
pub fn write_fmt(args: fmt::Arguments) {
    let _ = CONSOLE.lock().write_fmt(args);
}

/// Writes to the console without taking its lock: for crash reports, where the lock may be held
/// by the CPU that crashed.
pub fn write_fmt_unlocked(args: fmt::Arguments) {
    let _ = Serial.write_fmt(args);
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
