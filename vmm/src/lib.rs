//! The NOA ARK OS virtual machine monitor, as a library: the `vmm` binary (`main.rs`) and the
//! fuzz targets (`fuzz/`) are its users.
//!
//! Rooms: `kvm` and `memory` hold all the `unsafe` (with `// SAFETY:` notes); `boot` writes what the
//! guest finds at its first instruction; `devices` are the emulated and paravirtual devices;
//! `vm` runs the vCPUs; `image` reads the guest disk image on the host; `command` encodes the
//! command of runner mode (`vmm IMAGE -- CMD ARGS…`) for the guest; `service` is what service mode
//! adds (the default forward, the endpoint banner, the access token); `signals` and `stop` are how
//! SIGINT/SIGTERM end a run.

pub mod boot;
pub mod cli;
pub mod command;
pub mod devices;
pub mod exit;
pub mod image;
pub mod kvm;
pub mod memory;
pub mod service;
pub mod signals;
pub mod stop;
pub mod vm;
