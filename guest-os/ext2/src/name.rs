//! Names: the ones a change may create or remove (1..=255 bytes, no `/` or NUL, not `.` or `..`,
//! the entries every directory keeps for itself), and the two checks every directory scan leans
//! on, written to cost a few instructions in ring 0: whether a name could be an entry's, eight
//! bytes at a time, and whether two names are equal, lengths first and then the last eight
//! bytes (names in one directory often share a prefix, rarely a suffix).

use crate::NAME_MAX;
use crate::error::{Error, Result};

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
const SLASHES: u64 = u64::from_ne_bytes([b'/'; 8]);

/// Checks a name to create, remove or rename: [`Error::NameTooLong`] past 255 bytes,
/// [`Error::InvalidName`] for the rest.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if name == b"." || name == b".." || !is_entry_name(name) {
        return Err(Error::InvalidName);
    }
    Ok(())
}

/// Whether `name` can be a directory entry's: not empty, no `/` and no NUL.
pub(crate) fn is_entry_name(name: &[u8]) -> bool {
    let (words, rest) = name.as_chunks::<8>();
    let Some(last) = name.last_chunk::<8>() else {
        // Shorter than a word: at most 7 bytes.
        return !name.is_empty() && !rest.iter().any(|&b| b == b'/' || b == 0);
    };
    // The last word overlaps the whole words when the length is not a multiple of 8: a byte
    // checked twice is harmless.
    !words.iter().chain([last]).any(|word| {
        let word = u64::from_ne_bytes(*word);
        has_zero_byte(word) || has_zero_byte(word ^ SLASHES)
    })
}

/// Whether some byte of `word` is 0 (exact: a borrow only runs past a zero byte).
fn has_zero_byte(word: u64) -> bool {
    word.wrapping_sub(ONES) & !word & HIGHS != 0
}

/// Whether names `a` and `b` are the same: lengths first, then the last eight bytes, then all.
#[inline]
pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(x), Some(y)) => u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y) && a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// The plain per-byte rule, to check the word-at-a-time one against.
    fn is_entry_name_bytewise(name: &[u8]) -> bool {
        !name.is_empty() && !name.iter().any(|&b| b == b'/' || b == 0)
    }

    #[test]
    fn entry_names_match_the_bytewise_rule() {
        // Every length up to 40, each bad byte at every position, and bytes near the bad ones
        // (a borrow across bytes must not make a good name look bad).
        for len in 0..40 {
            for fill in [b'a', 0x01, 0x2e, 0x30, 0x80, 0xff] {
                let good: Vec<u8> = std::vec![fill; len];
                assert_eq!(is_entry_name(&good), is_entry_name_bytewise(&good));
                for at in 0..len {
                    for bad in [0u8, b'/', 0x01, 0x2f ^ 0x80, 0xaf] {
                        let mut name = good.clone();
                        name[at] = bad;
                        assert_eq!(
                            is_entry_name(&name),
                            is_entry_name_bytewise(&name),
                            "{name:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn same_name_is_slice_equality() {
        let names: [&[u8]; 8] = [
            b"",
            b"a",
            b"ab",
            b"entry-with-a-longish-name-17",
            b"entry-with-a-longish-name-18",
            b"fntry-with-a-longish-name-17",
            b"12345678",
            b"12345679",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
