//! [`TextBuf`]: builds the text of generated files without `core::fmt`. Ring 0 is emulated here
//! instruction by instruction, and a `write!` of one padded line cost about a millisecond
//! (measured: /proc/meminfo took 28 ms with `core::fmt`); appending static pieces and numbers
//! converted by hand costs a few instructions per byte.

use alloc::vec::Vec;

pub struct TextBuf(Vec<u8>);

impl TextBuf {
    pub fn with_capacity(bytes: usize) -> TextBuf {
        TextBuf(Vec::with_capacity(bytes))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn str(&mut self, text: &str) -> &mut Self {
        self.0.extend_from_slice(text.as_bytes());
        self
    }

    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub fn byte(&mut self, byte: u8) -> &mut Self {
        self.0.push(byte);
        self
    }

    /// `n` in decimal.
    pub fn num(&mut self, n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let at = decimal(n, &mut digits);
        self.0.extend_from_slice(&digits[at..]);
        self
    }

    /// `n` in decimal, with a `-` when negative.
    pub fn signed(&mut self, n: i64) -> &mut Self {
        if n < 0 {
            self.0.push(b'-');
        }
        self.num(n.unsigned_abs())
    }

    /// `n` in decimal, right-aligned in `width` columns (`%*lu`).
    pub fn num_padded(&mut self, n: u64, width: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let at = decimal(n, &mut digits);
        self.spaces(width.saturating_sub(digits.len() - at));
        self.0.extend_from_slice(&digits[at..]);
        self
    }

    /// `n` in decimal with exactly `width` digits, zero-padded (the `%02u` of a fraction).
    pub fn num_zeroed(&mut self, n: u64, width: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let at = decimal(n, &mut digits);
        let len = digits.len() - at;
        for _ in len..width {
            self.0.push(b'0');
        }
        self.0.extend_from_slice(&digits[at..]);
        self
    }

    /// `n` in lowercase hex, zero-padded to at least `width` digits (`%0*lx`).
    pub fn hex(&mut self, n: u64, width: usize) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            digits[at] = b"0123456789abcdef"[(rest & 0xf) as usize];
            rest >>= 4;
            if rest == 0 {
                break;
            }
        }
        for _ in (digits.len() - at)..width {
            self.0.push(b'0');
        }
        self.0.extend_from_slice(&digits[at..]);
        self
    }

    /// `n` in octal, zero-padded to `width` digits (the `%04o` of a umask).
    pub fn octal(&mut self, n: u32, width: usize) -> &mut Self {
        let mut digits = [0u8; 11];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest & 7) as u8;
            rest >>= 3;
            if rest == 0 {
                break;
            }
        }
        for _ in (digits.len() - at)..width {
            self.0.push(b'0');
        }
        self.0.extend_from_slice(&digits[at..]);
        self
    }

    /// `count` spaces.
    pub fn spaces(&mut self, count: usize) -> &mut Self {
        const SPACES: &[u8; 64] = &[b' '; 64];
        let mut left = count;
        while left > 0 {
            let n = left.min(SPACES.len());
            self.0.extend_from_slice(&SPACES[..n]);
            left -= n;
        }
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Writes `n` in decimal at the end of `buf`; returns where it starts.
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}
