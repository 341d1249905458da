//! Emulated devices, one folder each. Everything the guest writes to them is hostile input.

pub mod mmio_bus;
pub mod pvport;
pub mod serial;
pub mod virtio;
