//! `#!` script recognition, following Linux `fs/binfmt_script.c` (5.0+) byte for byte.
//!
//! Linux looks only at the first [`BINPRM_BUF_SIZE`] (256) bytes of the file (zero padded when
//! the file is shorter). The line ends at the first `\n`; without one in the buffer, the line is
//! accepted only if the interpreter name is followed by a space, tab or NUL inside the buffer
//! (otherwise the path might be truncated and Linux fails with `ENOEXEC`). Trailing spaces and
//! tabs are trimmed, leading ones skipped; the interpreter name ends at the first space, tab
//! or NUL; everything after the following run of spaces/tabs up to the end of the line is the
//! single optional argument (internal spaces kept; it stops at a NUL, as a C string would).
//! One faithful oddity: a file shorter than 256 bytes with no newline and a trailing space
//! after the name (`"#!/bin/sh "`) yields an empty argument, as on Linux.
//!
//! The new argv is `[interp, arg?, script path, argv[1..]]` ([`script_argv`]); the interpreter
//! may itself be a script, up to [`BINPRM_MAX_RECURSION`] levels deep (then `ELOOP`).

use alloc::vec::Vec;

/// Bytes of the file examined (`BINPRM_BUF_SIZE`).
pub const BINPRM_BUF_SIZE: usize = 256;
/// Interpreter nesting limit (`BINPRM_MAX_RECURSION`); deeper gives `ELOOP`.
pub const BINPRM_MAX_RECURSION: usize = 4;

const fn spacetab(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Parses a `#!` line from the first bytes of a file: `Some((interpreter, optional_argument))`
/// with both borrowed from `first_bytes`, or `None` when the file is not a valid script (Linux
/// then returns `ENOEXEC`). Passing more than 256 bytes is fine; only the first 256 count.
pub fn parse_shebang(first_bytes: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let n = first_bytes.len().min(BINPRM_BUF_SIZE);
    let at = |i: usize| if i < n { first_bytes[i] } else { 0 };
    if at(0) != b'#' || at(1) != b'!' {
        return None;
    }
    // Inclusive searches over [first, last], like the kernel's helpers.
    let next_non_spacetab = |first: usize, last: usize| (first..=last).find(|&i| !spacetab(at(i)));
    let next_terminator =
        |first: usize, last: usize| (first..=last).find(|&i| spacetab(at(i)) || at(i) == 0);
    let buf_end = BINPRM_BUF_SIZE - 1;
    let mut i_end = match (0..BINPRM_BUF_SIZE).find(|&i| at(i) == b'\n') {
        Some(i) => i,
        None => {
            let i = next_non_spacetab(2, buf_end)?;
            next_terminator(i, buf_end)?;
            buf_end
        }
    };
    while spacetab(at(i_end - 1)) {
        i_end -= 1;
    }
    let i_name = next_non_spacetab(2, i_end)?;
    if i_name == i_end {
        return None;
    }
    let i_sep = next_terminator(i_name, i_end);
    let i_arg = match i_sep {
        Some(s) if at(s) != 0 => next_non_spacetab(s, i_end),
        _ => None,
    };
    // The kernel writes NUL at i_end and i_sep, then reads C strings.
    let cstr = |start: usize, stop: usize| {
        let stop = stop.min(n);
        let start = start.min(stop);
        let s = &first_bytes[start..stop];
        match s.iter().position(|&c| c == 0) {
            Some(z) => &s[..z],
            None => s,
        }
    };
    let name_end = i_sep.unwrap_or(i_end);
    let interp = cstr(i_name, name_end);
    let arg = i_arg.map(|a| cstr(a, i_end));
    if interp.is_empty() {
        return None;
    }
    Some((interp, arg))
}

/// The argv Linux builds for a script: `[interp, arg?, script_path, argv[1..]]`.
pub fn script_argv<A: AsRef<[u8]>>(
    interp: &[u8],
    arg: Option<&[u8]>,
    script_path: &[u8],
    argv: &[A],
) -> Vec<Vec<u8>> {
    let mut v = Vec::with_capacity(argv.len() + 2);
    v.push(interp.to_vec());
    if let Some(a) = arg {
        v.push(a.to_vec());
    }
    v.push(script_path.to_vec());
    v.extend(argv.iter().skip(1).map(|s| s.as_ref().to_vec()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn p(s: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
        parse_shebang(s)
    }

    #[test]
    fn common_forms() {
        assert_eq!(p(b"#!/bin/sh\necho"), Some((&b"/bin/sh"[..], None)));
        assert_eq!(p(b"#! /bin/sh \t\n"), Some((&b"/bin/sh"[..], None)));
        assert_eq!(
            p(b"#!/usr/bin/env python3\n"),
            Some((&b"/usr/bin/env"[..], Some(&b"python3"[..])))
        );
        // One argument, internal spaces kept, trailing trimmed.
        assert_eq!(
            p(b"#!/bin/awk -f  -x y  \nBEGIN"),
            Some((&b"/bin/awk"[..], Some(&b"-f  -x y"[..])))
        );
        assert_eq!(
            p(b"#!\t/bin/sh\t-e\n"),
            Some((&b"/bin/sh"[..], Some(&b"-e"[..])))
        );
        // No newline in a short file: zero padding terminates it.
        assert_eq!(p(b"#!/bin/sh"), Some((&b"/bin/sh"[..], None)));
        assert_eq!(
            p(b"#!/bin/sh -x"),
            Some((&b"/bin/sh"[..], Some(&b"-x"[..])))
        );
        // CR is not whitespace for Linux.
        assert_eq!(p(b"#!/bin/sh\r\n"), Some((&b"/bin/sh\r"[..], None)));
        // A NUL ends the name and there is no argument after it.
        assert_eq!(p(b"#!/bin/sh\0 -x\n"), Some((&b"/bin/sh"[..], None)));
    }

    /// Without a newline, a short file is NUL padded to 256 bytes and trailing spaces are not
    /// trimmed (Linux trims back from byte 255, which is NUL): the argument is then "".
    #[test]
    fn quirks() {
        assert_eq!(p(b"#!/bin/sh "), Some((&b"/bin/sh"[..], Some(&b""[..]))));
        assert_eq!(p(b"#!/bin/sh \n"), Some((&b"/bin/sh"[..], None)));
        assert_eq!(
            p(b"#!/bin/sh \0\n"),
            Some((&b"/bin/sh"[..], Some(&b""[..])))
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(p(b""), None);
        assert_eq!(p(b"#"), None);
        assert_eq!(p(b"\x7fELF"), None);
        assert_eq!(p(b"#!\n"), None);
        assert_eq!(p(b"#!   \n/bin/sh"), None);
        assert_eq!(p(b"#!"), None);
        // 256 bytes without newline and without a terminator after the name: truncated.
        let mut long = vec![b'a'; 300];
        long[0] = b'#';
        long[1] = b'!';
        assert_eq!(p(&long), None);
        // All spaces.
        let mut sp = vec![b' '; 300];
        sp[0] = b'#';
        sp[1] = b'!';
        assert_eq!(p(&sp), None);
    }

    #[test]
    fn long_lines() {
        // Name followed by a space inside the buffer, no newline: accepted, argument cut at 255.
        let mut v = b"#!/bin/sh ".to_vec();
        v.extend(std::iter::repeat_n(b'z', 400));
        let (i, a) = p(&v).unwrap();
        assert_eq!(i, b"/bin/sh");
        assert_eq!(a.unwrap().len(), 255 - 10);
        // A newline beyond 256 bytes does not count.
        let mut w = b"#!/bin/sh -".to_vec();
        w.extend(std::iter::repeat_n(b'q', 300));
        w.push(b'\n');
        assert_eq!(p(&w).unwrap().1.unwrap().len(), 255 - 10);
        // Newline at exactly index 255.
        let mut x = b"#!/bin/sh ".to_vec();
        x.extend(std::iter::repeat_n(b'r', 245));
        x.push(b'\n');
        assert_eq!(x.len(), 256);
        assert_eq!(p(&x).unwrap().1.unwrap().len(), 245);
    }

    #[test]
    fn no_panic_on_any_short_input() {
        let alphabet = [b'#', b'!', b' ', b'\t', b'\n', 0, b'a', b'/'];
        for len in 0..7u32 {
            for code in 0..8u32.pow(len) {
                let mut v = vec![];
                let mut c = code;
                for _ in 0..len {
                    v.push(alphabet[(c % 8) as usize]);
                    c /= 8;
                }
                if let Some((i, a)) = parse_shebang(&v) {
                    assert!(!i.is_empty());
                    assert!(!i.iter().any(|&c| c == b' ' || c == b'\t' || c == 0));
                    // An empty argument happens only without a newline or with a NUL in the
                    // line (see `quirks`).
                    if a.is_some_and(|a| a.is_empty()) {
                        assert!(!v.contains(&b'\n') || v.contains(&0), "{v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn argv_rewrite() {
        let v = script_argv(b"/bin/sh", Some(b"-e"), b"./s.sh", &[&b"s.sh"[..], b"x"]);
        assert_eq!(
            v,
            vec![
                b"/bin/sh".to_vec(),
                b"-e".to_vec(),
                b"./s.sh".to_vec(),
                b"x".to_vec()
            ]
        );
        let v = script_argv(b"/bin/sh", None, b"./s.sh", &[] as &[&[u8]]);
        assert_eq!(v, vec![b"/bin/sh".to_vec(), b"./s.sh".to_vec()]);
    }
}
