//! Reading the guest disk image on the host (read-only).
pub mod ext2;
