//! Reading the guest disk image on the host (read-only).
pub mod ext2;

// The boot path (not wired up yet) names these as `image::Ext2Image` / `image::ImageError`.
#[allow(unused_imports)]
pub use ext2::{Ext2Image, ImageError};
