//! Emulated devices, one folder each. Everything the guest writes to them is hostile input.

pub mod pvport;
pub mod serial;
