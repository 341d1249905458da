//! The kernel command line: `key=value` words separated by spaces, as Linux writes them. Unknown
//! words are ignored (the VMM and QEMU add their own, e.g. `virtio_mmio.device=`).

/// What the kernel understands of its command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cmdline<'a> {
    /// `noa.ktest=FILTER`: run the in-guest tests whose names contain FILTER (`all` = every test).
    pub ktest: Option<&'a str>,
    /// `noa.test=ACTION`: a deliberate failure for the VMM's crash-path tests.
    pub test_action: Option<&'a str>,
    /// `noa.kbench=NAME`: run an in-guest benchmark.
    pub kbench: Option<&'a str>,
}

impl<'a> Cmdline<'a> {
    pub fn parse(line: &'a str) -> Self {
        let mut cmdline = Cmdline::default();
        // Only `noa.` words matter here; skipping the rest by prefix keeps this cheap at boot
        // (the VMM adds a long `virtio_mmio.device=` word per device).
        // Words after `--` belong to init (as on Linux), never to the kernel.
        let words = line.split(' ').take_while(|word| *word != "--");
        for word in words.filter(|word| word.starts_with("noa.")) {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            match key {
                "noa.ktest" => cmdline.ktest = Some(value),
                "noa.test" => cmdline.test_action = Some(value),
                "noa.kbench" => cmdline.kbench = Some(value),
                _ => {}
            }
        }
        cmdline
    }

    /// All `key=value` words of `line` with the given key, in order.
    pub fn values<'l>(line: &'l str, key: &'l str) -> impl Iterator<Item = &'l str> + 'l {
        line.split_ascii_whitespace()
            .take_while(|word| *word != "--")
            .filter_map(move |word| word.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The arguments after ` -- ` on the command line (what init runs), percent-decoded: the VMM
/// encodes each argument's bytes outside `[A-Za-z0-9_./,:=+@-]` as `%XX`, and an empty argument
/// as a lone `%` (docs/boot-protocol.md). Malformed escapes are kept literally.
pub fn init_args(line: &str) -> alloc::vec::Vec<alloc::vec::Vec<u8>> {
    let rest = if let Some(rest) = line.strip_prefix("-- ") {
        rest
    } else if let Some((_, rest)) = line.split_once(" -- ") {
        rest
    } else {
        return alloc::vec::Vec::new();
    };
    rest.split(' ')
        .filter(|w| !w.is_empty())
        .map(decode_arg)
        .collect()
}

/// One percent-encoded word back to its bytes (see [`init_args`]).
pub fn decode_arg(word: &str) -> alloc::vec::Vec<u8> {
    if word == "%" {
        return alloc::vec::Vec::new();
    }
    let bytes = word.as_bytes();
    let mut out = alloc::vec::Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
