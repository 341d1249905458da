//! The kernel's random numbers (AT_RANDOM, getrandom): a xoshiro256** generator seeded from the
//! entropy device at boot (and the TSC, mixed in on each call).
//!
//! Why not a crate: `rand_xoshiro` would do, but these ten lines avoid `rand_core`'s trait
//! machinery in the kernel. The output is not a CSPRNG stream; getrandom hands user space bytes
//! straight from virtio-rng when the device is present (fs/devfs).

use spin::Mutex;

static STATE: Mutex<[u64; 4]> = Mutex::new([
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x2545_f491_4f6c_dd1d,
]);

/// Mixes `seed` into the generator (called with device entropy at boot).
pub fn seed(seed: &[u8]) {
    let mut state = STATE.lock();
    for (i, chunk) in seed.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        state[i % 4] ^= u64::from_le_bytes(word);
    }
}

fn next(s: &mut [u64; 4]) -> u64 {
    let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
    let t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3].rotate_left(45);
    result
}

/// Fills `buf` with pseudo-random bytes.
pub fn fill(buf: &mut [u8]) {
    let mut state = STATE.lock();
    state[0] ^= hal_pv::cpu::rdtsc();
    for chunk in buf.chunks_mut(8) {
        let word = next(&mut state).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}
