//! Mapping one ELF image — the program or its interpreter (`ld.so`) — into a new memory map:
//! reading and validating its headers, choosing where an interpreter goes, and turning its
//! `PT_LOAD` segments into VMAs.
//!
//! Segments are mapped, not copied: each `PT_LOAD` becomes a file-backed VMA (pages come in on
//! first touch, private and copy-on-write where writable) plus an anonymous VMA for its bss. The
//! part of a writable segment's last file page past `p_filesz` is zeroed at exec (Linux's
//! `padzero`), from a static zero page: a fresh heap buffer would cost a ring-0 zeroing.
//!
//! Owns no state; touches only the `Mm` it is given (a new one nobody else sees yet).

use crate::fs::FileRef;
use crate::mm::{Backing, Mm, Vma, page_align_up};
use alloc::vec::Vec;
use hal_pv::mm::PAGE_SIZE;
use noa_linux_abi::elf::{ElfError, ElfInfo, PAGE_SIZE as ELF_PAGE};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::mm::{PROT_NONE, PROT_WRITE};

/// The first read of a file to exec: enough for the ELF header, the program headers and
/// `PT_INTERP` of every normally linked program (and for a `#!` line). Small, because a fresh
/// heap buffer is zeroed in ring 0 (~195 µs per 4 KiB here).
pub const FIRST_READ: usize = 1024;
/// The most of a file's head we read to find its program headers and `PT_INTERP` (they may
/// lie anywhere in a hostile file; Linux reads them where they are, we read a prefix). A file
/// that needs more gets ENOEXEC.
const MAX_HEAD: u64 = 64 * 1024;

/// Zeros for the bss tails (read-only data: no zeroing per exec).
static ZERO_PAGE: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// Reads the first `len` bytes of `file` (fewer at its end).
pub fn read_head(file: &FileRef, len: usize) -> SysResult<Vec<u8>> {
    let mut head = alloc::vec![0u8; len];
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read_at(filled as u64, &mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok(head)
}

/// Parses `file`'s ELF headers from `head` (its first bytes), reading a longer prefix once when
/// the program headers or `PT_INTERP` lie past it (up to [`MAX_HEAD`]).
pub fn parse(file: &FileRef, head: &[u8]) -> Result<ElfInfo, ElfError> {
    let len = file.inode().stat().map_err(|_| ElfError::TooShort)?.size as u64;
    match ElfInfo::parse(head, len) {
        Err(ElfError::NeedBytes(need)) if need <= MAX_HEAD && need > head.len() as u64 => {
            let longer = read_head(file, need as usize).map_err(|_| ElfError::TooShort)?;
            ElfInfo::parse(&longer, len)
        }
        other => other,
    }
}

/// Maps `info`'s `PT_LOAD` segments of `file` at `bias` into `mm`. Returns the end of the
/// highest segment (where the brk heap of a program starts).
pub fn map_segments(mm: &Mm, file: &FileRef, info: &ElfInfo, bias: u64) -> SysResult<u64> {
    let mut end = 0;
    for seg in &info.loads {
        let prot = seg.prot();
        let start = seg.map_start(bias);
        let file_len = seg.file_map_len();
        if file_len != 0 {
            mm.insert(Vma {
                start,
                end: start + file_len,
                prot,
                shared: false,
                backing: Backing::File {
                    file: file.clone(),
                    offset: seg.file_page_offset(),
                },
            });
        }
        let anon_start = seg.anon_start(bias);
        let anon_end = seg.anon_end(bias);
        if anon_end > anon_start {
            mm.insert(Vma {
                start: anon_start,
                end: anon_end,
                prot,
                shared: false,
                backing: Backing::Anon,
            });
        }
        end = end.max(anon_end);
    }
    Ok(end)
}

/// Zeros the tail of each writable segment's last file page (the bss that shares that page
/// with file data). Call once the segments are mapped.
pub fn zero_bss_tails(mm: &Mm, info: &ElfInfo, bias: u64) -> SysResult<()> {
    for seg in &info.loads {
        let zero_from = seg.zero_start(bias);
        if seg.memsz > seg.filesz
            && seg.prot() & PROT_WRITE != 0
            && !zero_from.is_multiple_of(ELF_PAGE)
        {
            let page_end = page_align_up(zero_from).ok_or(Errno::ENOEXEC)?;
            let len = (page_end - zero_from) as usize;
            mm.populate(zero_from, zero_from + 1, true)?;
            mm.space
                .write(zero_from, &ZERO_PAGE[..len])
                .map_err(|_| Errno::EFAULT)?;
        }
    }
    Ok(())
}

/// Whether anything is mapped in `[start, end)` of `mm`.
pub fn overlaps(mm: &Mm, start: u64, end: u64) -> bool {
    mm.state
        .lock()
        .vmas
        .values()
        .any(|v| v.start < end && start < v.end)
}

/// The load bias for an interpreter: an `ET_DYN` one goes where mmap would put a mapping of its
/// whole span (top down in the mmap area, below what is mapped already), aligned to its
/// largest `p_align`, as Linux's `load_elf_interp`; an `ET_EXEC` one stays at its addresses,
/// which must be free (EINVAL otherwise).
pub fn interp_bias(mm: &Mm, interp: &ElfInfo) -> SysResult<u64> {
    let (lo, hi) = interp.span();
    if !interp.is_pie() {
        if overlaps(mm, lo, hi) {
            return Err(Errno::EINVAL);
        }
        return Ok(0);
    }
    // Reserve the span plus room to align it, note where that went, and give it back: the
    // segments are placed inside it next (nobody else can map into this new memory meanwhile).
    let reserve = (hi - lo)
        .checked_add(interp.max_align - ELF_PAGE)
        .ok_or(Errno::ENOMEM)?;
    let placeholder = Vma {
        start: 0,
        end: reserve,
        prot: PROT_NONE,
        shared: false,
        backing: Backing::Anon,
    };
    let start = mm.insert_anywhere(placeholder, 0)?;
    mm.unmap(start, start + reserve);
    interp.load_bias(start).map_err(Errno::from)
}
