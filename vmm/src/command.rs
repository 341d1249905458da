//! The command of `vmm IMAGE -- CMD ARGS…` (runner mode), as the guest receives it: on the kernel
//! command line, after a `--` word, one word per argument (docs/boot-protocol.md is the contract).
//!
//! Linux passes the words after `--` to init; so does our kernel, which decodes them. Each argument
//! is percent-encoded so that it is one word of printable ASCII whatever bytes it holds: every byte
//! outside `[A-Za-z0-9_./,:=+@-]` becomes `%XX` (uppercase hex), and an empty argument is a lone
//! `%`. This module owns that encoding and nothing else; it does not know the rest of the line.

use std::ffi::OsString;

/// Most bytes the encoded command (the words after `--`, with their spaces) may take. The kernel
/// command line as a whole is also bounded by the boot protocol (see `boot::layout::CMDLINE_MAX`).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The separator word between the kernel's own words and the command.
pub const SEPARATOR: &str = "--";

/// Whether `byte` stands for itself in an encoded argument.
pub fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"_./,:=+@-".contains(&byte)
}

/// Appends the encoding of one argument to `out`.
pub fn encode_arg(arg: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if arg.is_empty() {
        out.push('%');
        return;
    }
    for &byte in arg {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

/// The encoded words of `args`, separated by single spaces.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        encode_arg(arg.as_ref(), &mut out);
    }
    out
}

/// What runner mode adds at the end of the kernel command line for `command`: the `--` word and
/// the encoded arguments. Fails (a usage error for the caller) if the encoded command exceeds
/// [`MAX_COMMAND_BYTES`], or if `kernel_cmdline` (the words before it) already holds a `--` word:
/// the guest would take what follows that one for the command.
pub fn cmdline_words(kernel_cmdline: &str, command: &[OsString]) -> anyhow::Result<String> {
    use std::os::unix::ffi::OsStrExt;
    if kernel_cmdline
        .split_ascii_whitespace()
        .any(|w| w == SEPARATOR)
    {
        anyhow::bail!(
            "the kernel command line already has a `{SEPARATOR}` word, so the guest could not \
             tell the command from it: {kernel_cmdline:?}"
        );
    }
    let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let encoded = encode(&args);
    if encoded.len() > MAX_COMMAND_BYTES {
        anyhow::bail!(
            "the command after `--` is {} bytes encoded; at most {MAX_COMMAND_BYTES} are allowed",
            encoded.len()
        );
    }
    Ok(format!("{SEPARATOR} {encoded}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guest's side, written independently: one word back to its bytes.
    fn decode_word(word: &str) -> Option<Vec<u8>> {
        if word == "%" {
            return Some(Vec::new());
        }
        let bytes = word.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                    if !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
                    {
                        return None;
                    }
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                }
                b if is_plain(b) => {
                    out.push(b);
                    i += 1;
                }
                _ => return None,
            }
        }
        Some(out)
    }

    fn decode(line: &str) -> Vec<Vec<u8>> {
        if line.is_empty() {
            return Vec::new();
        }
        line.split(' ')
            .map(|w| decode_word(w).unwrap_or_else(|| panic!("bad word {w:?} in {line:?}")))
            .collect()
    }

    fn round_trip(args: &[&[u8]]) {
        let encoded = encode(args);
        assert!(
            encoded.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
            "{encoded:?}"
        );
        assert_eq!(decode(&encoded), args, "through {encoded:?}");
    }

    #[test]
    fn plain_words_stay_as_they_are() {
        assert_eq!(
            encode(&["echo", "a-b_c.d/e,f:g=h+i@j", "AZaz09"]),
            "echo a-b_c.d/e,f:g=h+i@j AZaz09"
        );
    }

    #[test]
    fn spaces_quotes_and_percent_are_escaped() {
        assert_eq!(encode(&["hello world"]), "hello%20world");
        assert_eq!(encode(&["'\"`"]), "%27%22%60");
        assert_eq!(encode(&["100%"]), "100%25");
        assert_eq!(encode(&["a\tb\nc"]), "a%09b%0Ac");
        assert_eq!(encode(&["~$*?"]), "%7E%24%2A%3F");
    }

    #[test]
    fn empty_arguments_are_a_lone_percent() {
        assert_eq!(encode(&["", "x", ""]), "% x %");
        assert_eq!(encode::<&str>(&[]), "");
    }

    #[test]
    fn utf8_is_escaped_byte_by_byte_in_uppercase_hex() {
        assert_eq!(encode(&["é"]), "%C3%A9");
        assert_eq!(encode(&["日本"]), "%E6%97%A5%E6%9C%AC");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (1..=255).collect();
        round_trip(&[&all]);
        round_trip(&[b"", b"%", b"%%", b"%25", b"--", b" ", b"  a  "]);
        round_trip(&[b"sh", b"-c", b"echo \"$HOME\" 'x y' | wc -c; exit 3"]);
        round_trip(&[
            "grüße".as_bytes(),
            "日本語".as_bytes(),
            b"\xff\xfe not utf-8",
        ]);
        round_trip(&[]);
    }

    #[test]
    fn words_start_with_a_separator() {
        let words = cmdline_words(
            "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5",
            &["echo".into(), "hi there".into(), "".into()],
        )
        .unwrap();
        assert_eq!(words, "-- echo hi%20there %");
        let command = words.strip_prefix("-- ").unwrap();
        assert_eq!(decode(command), [&b"echo"[..], b"hi there", b""]);
        assert_eq!(cmdline_words("", &["true".into()]).unwrap(), "-- true");
    }

    #[test]
    fn a_second_separator_or_a_huge_command_is_refused() {
        let err = cmdline_words("console=ttyS0 -- init-arg", &["true".into()]).unwrap_err();
        assert!(err.to_string().contains("already has a `--` word"), "{err}");
        // `--` inside a word is not a separator, and `--` as an argument is just an argument.
        assert_eq!(cmdline_words("noa.x=--", &["--".into()]).unwrap(), "-- --");

        let big = "x".repeat(MAX_COMMAND_BYTES);
        cmdline_words("", std::slice::from_ref(&big.clone().into())).unwrap();
        let err = cmdline_words("", &[big.into(), "y".into()]).unwrap_err();
        assert!(err.to_string().contains("at most 65536"), "{err}");
        // Encoding counts: 30000 spaces are 90000 bytes.
        assert!(cmdline_words("", &[" ".repeat(30_000).into()]).is_err());
    }
}
