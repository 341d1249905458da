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
        for word in line.split(' ').filter(|word| word.starts_with("noa.")) {
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
            .filter_map(move |word| word.strip_prefix(key)?.strip_prefix('='))
    }
}
