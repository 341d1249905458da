//! Tests of the whole device: a test-side virtqueue driver ([`driver`]) and a smoltcp "guest"
//! on top of it ([`guest`]) exercise the user network ([`usernet`], and its clean-up of
//! connections that end badly, [`cleanup`]) and the tap backend ([`tap`]) through the
//! `VirtioDevice` trait, as the VMM does — no guest kernel needed. [`raw`] speaks to the user
//! network in hand-made segments, for sequences no well-behaved stack sends on request.

mod cleanup;
mod driver;
mod guest;
mod raw;
mod tap;
mod usernet;
