//! Copies between the kernel and the current process's memory. Every user pointer is suspect:
//! the copy walks the page tables (never dereferencing a user address), faults pages in as a
//! user access would (demand paging, copy-on-write), and answers EFAULT where user mode would
//! have got SIGSEGV.

use super::Mm;
use alloc::vec::Vec;
use hal_pv::mm::address_space::Fault;
use noa_linux_abi::errno::{Errno, SysResult};

/// Most retries of one copy (each retry resolved one fault).
const MAX_FAULTS: usize = 4096;

fn with_faults(mm: &Mm, mut attempt: impl FnMut() -> Result<(), Fault>) -> SysResult<()> {
    for _ in 0..MAX_FAULTS {
        match attempt() {
            Ok(()) => return Ok(()),
            Err(fault) => mm
                .handle_fault(fault.addr, fault.write, false)
                .map_err(|_| Errno::EFAULT)?,
        }
    }
    Err(Errno::EFAULT)
}

pub fn copy_from_user(addr: u64, buf: &mut [u8]) -> SysResult<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let mm = crate::task::current().process.mm();
    with_faults(&mm, || mm.space.read(addr, buf))
}

pub fn copy_to_user(addr: u64, bytes: &[u8]) -> SysResult<()> {
    copy_to_mm(&crate::task::current().process.mm(), addr, bytes)
}

/// Copies `mm`'s memory at `addr` into `buf`; `mm` need not be the current process's
/// (/proc/<pid>/cmdline reads another process's argv).
pub fn copy_from_mm(mm: &Mm, addr: u64, buf: &mut [u8]) -> SysResult<()> {
    if buf.is_empty() {
        return Ok(());
    }
    with_faults(mm, || mm.space.read(addr, buf))
}

/// Copies `bytes` into `mm` at `addr`, which need not be the current process's (a child's
/// memory before it runs).
pub fn copy_to_mm(mm: &Mm, addr: u64, bytes: &[u8]) -> SysResult<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    with_faults(mm, || mm.space.write(addr, bytes))
}

pub fn read_u32(addr: u64) -> SysResult<u32> {
    let mut b = [0u8; 4];
    copy_from_user(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

pub fn read_u64(addr: u64) -> SysResult<u64> {
    let mut b = [0u8; 8];
    copy_from_user(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

pub fn write_u32(addr: u64, value: u32) -> SysResult<()> {
    copy_to_user(addr, &value.to_le_bytes())
}

pub fn write_u64(addr: u64, value: u64) -> SysResult<()> {
    copy_to_user(addr, &value.to_le_bytes())
}

/// A NUL-terminated string of at most `max` bytes (without the NUL); ENAMETOOLONG beyond.
pub fn read_cstring(addr: u64, max: usize) -> SysResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        // Read up to the end of the page, so a string ending just before unmapped memory works.
        let chunk = (4096 - (at % 4096)) as usize;
        let mut buf = alloc::vec![0u8; chunk];
        copy_from_user(at, &mut buf)?;
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..nul]);
            if out.len() > max {
                return Err(Errno::ENAMETOOLONG);
            }
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        at = at.checked_add(chunk as u64).ok_or(Errno::EFAULT)?;
    }
}

/// A NULL-terminated array of string pointers (argv, envp), at most `max_count` entries and
/// `max_bytes` in all.
pub fn read_string_array(addr: u64, max_count: usize, max_bytes: usize) -> SysResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut total = 0;
    for i in 0..=max_count {
        let ptr = read_u64(addr.checked_add(i as u64 * 8).ok_or(Errno::EFAULT)?)?;
        if ptr == 0 {
            return Ok(out);
        }
        let s = read_cstring(ptr, max_bytes)?;
        total += s.len() + 1;
        if total > max_bytes {
            return Err(Errno::E2BIG);
        }
        out.push(s);
    }
    Err(Errno::E2BIG)
}

/// The physical address behind user `addr` (shared futexes), faulting it in for reading.
pub fn physical_address(addr: u64) -> SysResult<u64> {
    let mut b = [0u8; 4];
    copy_from_user(addr, &mut b)?;
    let mm = crate::task::current().process.mm();
    let (page, _) = mm.space.query(addr).ok_or(Errno::EFAULT)?;
    Ok(page.phys().0 + addr % 4096)
}
