//! The NOA ARK OS virtual machine monitor, as a library: the `vmm` binary (`main.rs`) and the
//! fuzz targets (`fuzz/`) are its users.
//!
//! Rooms: `kvm` and `memory` hold all the `unsafe` (with `// SAFETY:` notes); `boot` writes what the
//! guest finds at its first instruction; `devices` are the emulated and paravirtual devices;
//! `vm` runs the vCPUs; `image` reads the guest disk image on the host; `command` encodes the
//! command of runner mode (`vmm IMAGE -- CMD ARGS…`) for the guest.

pub mod boot;
pub mod cli;
pub mod command;
pub mod devices;
pub mod exit;
pub mod image;
pub mod kvm;
pub mod memory;
pub mod vm;
