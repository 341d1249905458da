//! `/proc/cmdline`: the kernel command line the machine booted with, whole — the words after `--`
//! (init's command) included, as Linux shows them — and a newline. init reads the VMM's words
//! here (`noa.token=`, docs/boot-protocol.md).

use super::node::Text;
use alloc::sync::Arc;
use noa_linux_abi::errno::SysResult;
use spin::Once;

static LINE: Once<&'static str> = Once::new();

/// Records the boot command line (once, at boot).
pub fn set(line: &'static str) {
    LINE.call_once(|| line);
}

pub fn generate() -> SysResult<Text> {
    let line = LINE.get().copied().unwrap_or_default();
    let mut text = alloc::vec::Vec::with_capacity(line.len() + 1);
    text.extend_from_slice(line.as_bytes());
    text.push(b'\n');
    Ok(Arc::new(text))
}
