//! `/proc/<pid>/cmdline` and `environ`: the argv and envp strings (NUL-separated, as exec laid
//! them out), read from the process's own memory between the addresses exec recorded — so a
//! program that rewrites its argv in place shows the change, as in Linux. A zombie has none.

use super::process;
use crate::mm::{ExecInfo, uaccess};
use alloc::vec::Vec;
use noa_linux_abi::errno::SysResult;

/// The most bytes either file shows (the stack builder's own limit on argv + envp is 2 MiB).
const MAX_BYTES: u64 = 256 * 1024;

pub fn cmdline(pid: u32) -> SysResult<Vec<u8>> {
    strings(pid, |info| (info.arg_start, info.arg_end))
}

pub fn environ(pid: u32) -> SysResult<Vec<u8>> {
    strings(pid, |info| (info.env_start, info.env_end))
}

fn strings(pid: u32, range: impl Fn(&ExecInfo) -> (u64, u64)) -> SysResult<Vec<u8>> {
    let process = process(pid)?;
    if process.exit_status.lock().is_some() {
        return Ok(Vec::new());
    }
    let mm = process.mm();
    let (start, end) = range(&mm.exec_info());
    if end <= start {
        return Ok(Vec::new());
    }
    let mut bytes = alloc::vec![0u8; (end - start).min(MAX_BYTES) as usize];
    // A process that unmapped its own strings shows none (Linux reads what it can).
    match uaccess::copy_from_mm(&mm, start, &mut bytes) {
        Ok(()) => Ok(bytes),
        Err(_) => Ok(Vec::new()),
    }
}
