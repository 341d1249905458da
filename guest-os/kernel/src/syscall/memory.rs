//! Memory system calls: brk, mmap, munmap, mprotect, mremap, madvise, msync, mlock and friends.

use super::Caller;
use crate::mm::{self, Backing, MMAP_END, Vma, page_align_down, page_align_up};
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::mm::*;
use noa_linux_abi::syscalls as nr;

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_BRK, brk),
    (nr::SYS_MMAP, mmap),
    (nr::SYS_MUNMAP, munmap),
    (nr::SYS_MPROTECT, mprotect),
    (nr::SYS_MREMAP, mremap),
    (nr::SYS_MADVISE, madvise),
    (nr::SYS_MSYNC, msync),
    (nr::SYS_MLOCK, ok),
    (nr::SYS_MUNLOCK, ok),
    (nr::SYS_MLOCKALL, ok),
    (nr::SYS_MUNLOCKALL, ok),
    (nr::SYS_MINCORE, mincore),
];

const RLIMIT_AS: usize = 9;

fn ok(_: &Caller, _: &[u64; 6]) -> SysResult<u64> {
    Ok(0)
}

fn current_mm() -> alloc::sync::Arc<mm::Mm> {
    crate::task::current().process.mm()
}

/// Checks `[addr, addr + len)` is a page-aligned user range; returns its end.
fn user_range(addr: u64, len: u64) -> SysResult<u64> {
    if !addr.is_multiple_of(4096) {
        return Err(Errno::EINVAL);
    }
    let end = page_align_up(addr.checked_add(len).ok_or(Errno::EINVAL)?).ok_or(Errno::EINVAL)?;
    if end > MMAP_END {
        return Err(Errno::EINVAL);
    }
    Ok(end)
}

fn mapped_bytes(mm: &mm::Mm) -> u64 {
    mm.state.lock().vmas.values().map(|v| v.end - v.start).sum()
}

fn brk(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let mm = current_mm();
    let (start, old) = {
        let state = mm.state.lock();
        (state.brk_start, state.brk)
    };
    let wanted = a[0];
    if wanted < start || wanted >= mm::STACK_TOP - mm::STACK_BYTES {
        return Ok(old);
    }
    let old_end = page_align_up(old).unwrap_or(old);
    let new_end = page_align_up(wanted).ok_or(Errno::ENOMEM)?;
    if new_end > old_end {
        let overlap = mm
            .state
            .lock()
            .vmas
            .values()
            .any(|v| v.start < new_end && old_end < v.end);
        if overlap {
            return Ok(old);
        }
        mm.insert(Vma {
            start: old_end,
            end: new_end,
            prot: PROT_READ | PROT_WRITE,
            shared: false,
            backing: Backing::Anon,
        });
    } else if new_end < old_end {
        mm.unmap(new_end, old_end);
    }
    mm.state.lock().brk = wanted;
    Ok(wanted)
}

fn mmap(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (addr, len, prot, flags, fd, offset) =
        (a[0], a[1], a[2] as u32, a[3] as u32, a[4] as i32, a[5]);
    if len == 0 || offset % 4096 != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_align_up(len).ok_or(Errno::ENOMEM)?;
    if len > MMAP_END {
        return Err(Errno::ENOMEM);
    }
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let shared = match flags & MAP_TYPE {
        MAP_SHARED | MAP_SHARED_VALIDATE => true,
        MAP_PRIVATE => false,
        _ => return Err(Errno::EINVAL),
    };
    let anonymous = flags & MAP_ANONYMOUS != 0;
    let backing = if anonymous {
        Backing::Anon
    } else {
        let file = crate::task::current()
            .process
            .files
            .lock()
            .get(super::fd_arg(fd as u64)?)?;
        if !file.readable() {
            return Err(Errno::EACCES);
        }
        if shared && prot & PROT_WRITE != 0 {
            if !file.writable() {
                return Err(Errno::EACCES);
            }
            // Stores must reach the file: only files whose pages the page cache shares
            // (ext2, tmpfs) can be mapped so.
            if file.inode().cache_key().is_none() {
                return Err(Errno::ENODEV);
            }
        }
        Backing::File { file, offset }
    };
    let mm = current_mm();
    if let Some(limit) = Some(crate::task::current().process.rlimit(RLIMIT_AS))
        && limit != u64::MAX
        && mapped_bytes(&mm).saturating_add(len) > limit
    {
        return Err(Errno::ENOMEM);
    }
    let vma = Vma {
        start: 0,
        end: len,
        prot,
        shared,
        backing,
    };
    let start = if flags & MAP_FIXED != 0 {
        user_range(addr, len)?;
        mm.insert(Vma {
            start: addr,
            end: addr + len,
            ..vma
        });
        addr
    } else if flags & MAP_FIXED_NOREPLACE != 0 {
        user_range(addr, len)?;
        // Chosen and inserted under one lock: the hint is taken only if free.
        let start = mm.insert_anywhere(vma, addr)?;
        if start != addr {
            mm.unmap(start, start + len);
            return Err(Errno::EEXIST);
        }
        start
    } else {
        mm.insert_anywhere(vma, page_align_down(addr))?
    };
    let populate = flags & MAP_POPULATE != 0
        || (anonymous && !shared && len <= mm::POPULATE_SMALL && prot & PROT_WRITE != 0);
    if populate && prot != PROT_NONE {
        // Best effort, as Linux: a failure here leaves the mapping to fault in later.
        let _ = mm.populate(start, start + len, false);
    }
    Ok(start)
}

fn munmap(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    if a[1] == 0 {
        return Err(Errno::EINVAL);
    }
    let end = user_range(a[0], a[1])?;
    current_mm().unmap(a[0], end);
    Ok(0)
}

fn mprotect(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let prot = a[2] as u32;
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP) != 0 {
        return Err(Errno::EINVAL);
    }
    let end = user_range(a[0], a[1])?;
    if end == a[0] {
        return Ok(0);
    }
    current_mm().protect(a[0], end, prot & (PROT_READ | PROT_WRITE | PROT_EXEC))?;
    Ok(0)
}

fn mremap(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let (old_addr, old_len, new_len, flags, new_addr) = (a[0], a[1], a[2], a[3] as u32, a[4]);
    if old_addr % 4096 != 0 || new_len == 0 || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 {
        return Err(Errno::EINVAL);
    }
    let old_len = page_align_up(old_len).ok_or(Errno::EINVAL)?;
    let new_len = page_align_up(new_len).ok_or(Errno::ENOMEM)?;
    let old_end = user_range(old_addr, old_len)?;
    let mm = current_mm();
    let vma = {
        let state = mm.state.lock();
        mm::find(&state.vmas, old_addr)
            .cloned()
            .ok_or(Errno::EFAULT)?
    };
    if old_end > vma.end {
        return Err(Errno::EFAULT);
    }
    if new_len <= old_len {
        mm.unmap(old_addr + new_len, old_end);
        return Ok(old_addr);
    }
    // Grow in place if the space after is free.
    let grow_end = old_addr.checked_add(new_len).ok_or(Errno::ENOMEM)?;
    let free_after = grow_end <= MMAP_END
        && !mm
            .state
            .lock()
            .vmas
            .values()
            .any(|v| v.start < grow_end && old_end < v.end);
    if flags & MREMAP_FIXED == 0 && free_after && old_end == vma.end {
        let mut extension = vma.clone();
        extension.start = old_end;
        extension.end = grow_end;
        if let Backing::File { offset, .. } = &mut extension.backing {
            *offset += old_end - vma.start;
        }
        mm.insert(extension);
        return Ok(old_addr);
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::ENOMEM);
    }
    let mut moved = vma.clone();
    moved.start = 0;
    moved.end = new_len;
    if let Backing::File { offset, .. } = &mut moved.backing {
        *offset += old_addr - vma.start;
    }
    let target = if flags & MREMAP_FIXED != 0 {
        user_range(new_addr, new_len)?;
        moved.start = new_addr;
        moved.end = new_addr + new_len;
        mm.insert(moved);
        new_addr
    } else {
        mm.insert_anywhere(moved, 0)?
    };
    // Move the pages themselves: the mappings are shared references, no copying.
    for at in (0..old_len).step_by(4096) {
        if let Some((page, flags)) = mm.space.query(old_addr + at) {
            mm.space
                .map(target + at, page, flags)
                .map_err(|_| Errno::ENOMEM)?;
        }
    }
    mm.unmap(old_addr, old_end);
    Ok(target)
}

fn madvise(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let end = user_range(a[0], a[1])?;
    match a[2] as u32 {
        MADV_DONTNEED => {
            let mm = current_mm();
            let private_anon = {
                let state = mm.state.lock();
                state
                    .vmas
                    .values()
                    .filter(|v| v.start < end && a[0] < v.end)
                    .all(|v| !v.shared)
            };
            if private_anon {
                mm.discard(a[0], end);
            }
            Ok(0)
        }
        MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED | MADV_FREE => Ok(0),
        _ => Ok(0),
    }
}

/// msync: writes back the shared file pages of the range (MS_ASYNC too: the write-back is
/// cheap next to the trap, and a later crash then loses less). MS_INVALIDATE is a no-op: every
/// mapping of a file shares its cached pages.
fn msync(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    let (start, flags) = (a[0], a[2]);
    if start % 4096 != 0
        || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || flags & (MS_ASYNC | MS_SYNC) == (MS_ASYNC | MS_SYNC)
    {
        return Err(Errno::EINVAL);
    }
    let end = user_range(start, a[1])?;
    let mm = current_mm();
    let mut files = Vec::new();
    {
        let state = mm.state.lock();
        let mut at = start;
        while at < end {
            let vma = crate::mm::find(&state.vmas, at).ok_or(Errno::ENOMEM)?;
            if let Backing::File { file, offset } = &vma.backing
                && vma.shared
            {
                let from = offset + (at.max(vma.start) - vma.start);
                let to = offset + (end.min(vma.end) - vma.start);
                files.push((file.clone(), from, to));
            }
            at = vma.end;
        }
    }
    for (file, from, to) in files {
        if let Some(key) = file.inode().cache_key() {
            crate::mm::page_cache::write_back(key, from, to)?;
            if flags & MS_SYNC != 0 {
                file.inode().sync()?;
            }
        }
    }
    Ok(0)
}

fn mincore(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let end = user_range(a[0], a[1])?;
    let mm = current_mm();
    let pages = ((end - a[0]) / 4096) as usize;
    let mut vec = alloc::vec![0u8; pages];
    for (i, byte) in vec.iter_mut().enumerate() {
        *byte = u8::from(mm.space.is_mapped(a[0] + i as u64 * 4096));
    }
    crate::mm::uaccess::copy_to_user(a[2], &vec)?;
    Ok(0)
}
