//! Tests of the whole device: a test-side virtqueue driver ([`driver`]) and a smoltcp "guest"
//! on top of it ([`guest`]) exercise the user network ([`usernet`]) and the tap backend ([`tap`])
//! through the `VirtioDevice` trait, as the VMM does — no guest kernel needed.

mod driver;
mod guest;
mod tap;
mod usernet;
