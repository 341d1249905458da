//! Reading the guest disk image on the host (read-only): `ext2` opens it and reads the boot
//! files with the shared `noa-ext2` reader, over `file_device`, the image file as a block device.
pub mod ext2;
mod file_device;
