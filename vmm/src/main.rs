//! `vmm`: boots a NOA ARK OS disk image on Linux/KVM. See README.md for the CLI and exit codes.
mod boot;
mod image;

fn main() {}
