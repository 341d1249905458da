//! NOA ARK OS: the Linux x86-64 user ABI as plain data.
//!
//! Everything the kernel needs to speak Linux to unmodified static (and dynamic) x86-64
//! programs that is not kernel state: errno values, syscall numbers, ELF executable
//! validation, the initial process stack, `#!` scripts, and byte-exact encoders/decoders for
//! every structure the kernel copies to or from user memory, with the constants that go with
//! them. No `unsafe`, no hardware, no global state: each item is checked by host unit tests,
//! many against the host's real Linux headers (compiled with `gcc`) and binaries.
//!
//! Conventions:
//! - Structures are plain Rust structs with `SIZE`, `encode(&self) -> [u8; SIZE]` and
//!   `decode(&[u8]) -> Option<Self>` (`None` when the slice is shorter than `SIZE`);
//!   extensible ones (`clone_args`, `open_how`) decode with the user-supplied size and return
//!   Linux's errno. All little-endian, x86-64 layouts only.
//! - Flags and numbers are `pub const`s named exactly as in the C headers, typed as the
//!   kernel receives them (`u32` for int flags, `u64` for `unsigned long` ones).
//! - The auxv keys (`AT_PHDR`, …) live in [`stack`]; the path flags (`AT_FDCWD`, …) in
//!   [`fcntl`].
//!
//! Modules: [`errno`], [`syscalls`], [`elf`], [`stack`], [`shebang`], [`signal`], [`stat`],
//! [`time`], [`process`], [`wait`], [`io`], [`tty`], [`futex`], [`fcntl`], [`mm`], [`socket`].

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod bytes;
pub mod elf;
pub mod errno;
pub mod fcntl;
pub mod futex;
pub mod io;
pub mod mm;
pub mod process;
pub mod shebang;
pub mod signal;
pub mod socket;
pub mod stack;
pub mod stat;
pub mod syscalls;
pub mod time;
pub mod tty;
pub mod wait;

#[cfg(test)]
mod host_check;

pub use errno::{Errno, SysResult};
