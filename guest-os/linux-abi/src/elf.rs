//! ELF64 x86-64 executable header parsing and validation, for `execve`.
//!
//! Hand-written rather than a crate: `goblin` pulls `scroll`/`plain` (unsafe casts) and a lot of
//! code for formats we never load; `xmas-elf` reads through the `zero` crate's unsafe
//! transmutes; `elf` (0.8) is safe and `no_std`, but it only *reads* tables — every check an
//! exec path needs (user-space bounds, page congruence, `filesz <= memsz`, ascending segments,
//! file bounds, entry, load bias, `AT_PHDR`) would still be ours. The ELF header and program
//! headers are two fixed little-endian layouts, so the parser is ~150 lines with no
//! dependencies and no `unsafe`.
//!
//! Use: read the first [`HEADER_READ`] bytes of the file (or the whole file when shorter) and
//! call [`ElfInfo::parse`]. Standard linkers put the program headers and `PT_INTERP` right after
//! the ELF header, so that is enough in practice; when it is not, `parse` returns
//! [`ElfError::NeedBytes`] with the prefix length it needs (never more than the file length) and
//! the caller may read that much and call again, or give up with `ENOEXEC`.
//!
//! Then, for each [`LoadSegment`], map `[file_page_offset .. +file_map_len)` of the file at
//! `map_start(bias)` with `prot()`, zero `[zero_start(bias) .. page end)` when `memsz > filesz`,
//! and map anonymous zero pages `[anon_start(bias) .. anon_end(bias))`. [`ElfInfo::load_bias`]
//! gives the bias for `ET_DYN` (0 for `ET_EXEC`), [`ElfInfo::phdr_addr`] the `AT_PHDR` value and
//! [`ElfInfo::entry`] the entry point.
//!
//! Error mapping follows Linux `load_elf_binary`: format problems give `ENOEXEC`; a segment
//! that cannot be placed in user space, `filesz > memsz`, or a misaligned file offset (which
//! `mmap` would refuse) give `EINVAL`.

use alloc::vec::Vec;

use crate::bytes::{get_u16, get_u32, get_u64};
use crate::errno::Errno;

/// How many bytes of the file to read before calling [`ElfInfo::parse`]: one page.
pub const HEADER_READ: usize = 4096;
/// The page size segments are mapped with.
pub const PAGE_SIZE: u64 = 4096;
/// End (exclusive) of x86-64 user space with 4-level paging (`TASK_SIZE_MAX`): the last page
/// below the canonical hole is left unmapped, as Linux does.
pub const USER_SPACE_END: u64 = 0x7fff_ffff_f000;
/// Where Linux puts an `ET_DYN` program that has an interpreter (`ELF_ET_DYN_BASE`, 2/3 of the
/// 47-bit window, page aligned): `0x5555_5555_4000`.
pub const ELF_ET_DYN_BASE: u64 = ((USER_SPACE_END / 3) * 2) & !(PAGE_SIZE - 1);
/// Largest `PT_INTERP` path Linux accepts, NUL included (`PATH_MAX`).
pub const MAX_INTERP_LEN: u64 = 4096;
/// Linux refuses program header tables larger than a page (`load_elf_phdrs`).
pub const MAX_PHDR_TABLE: u64 = 4096;

/// Size of the ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
pub const PHDR_SIZE: usize = 56;

/// `e_type`: executable at a fixed address.
pub const ET_EXEC: u16 = 2;
/// `e_type`: position independent (PIE, static-pie, or a shared object such as `ld.so`).
pub const ET_DYN: u16 = 3;
/// `e_machine` for x86-64.
pub const EM_X86_64: u16 = 62;

/// Program header types.
pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_NOTE: u32 = 4;
pub const PT_PHDR: u32 = 6;
pub const PT_TLS: u32 = 7;
pub const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
pub const PT_GNU_PROPERTY: u32 = 0x6474_e553;

/// Segment permission flags (`p_flags`).
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// Why an ELF image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF header.
    TooShort,
    /// Not `\x7fELF`.
    BadMagic,
    /// Not ELFCLASS64.
    NotElf64,
    /// Not little-endian.
    NotLittleEndian,
    /// `EI_VERSION` is not 1.
    BadVersion,
    /// `e_machine` is not x86-64.
    WrongMachine,
    /// Neither `ET_EXEC` nor `ET_DYN`.
    NotExecutable,
    /// `e_phentsize` is not 56.
    BadPhentsize,
    /// No program headers, or a table larger than a page.
    BadPhnum,
    /// The program header table (or `PT_INTERP`) lies (partly) outside the file.
    OutsideFile,
    /// The buffer passed is too short: pass at least this many leading bytes of the file.
    NeedBytes(u64),
    /// No `PT_LOAD` segment.
    NoLoadSegment,
    /// More than one `PT_INTERP`, or a malformed one (empty, too long, not NUL-terminated).
    BadInterp,
    /// `PT_LOAD` segments not in ascending, non-overlapping `p_vaddr` order.
    SegmentsUnordered,
    /// `p_vaddr % 4096 != p_offset % 4096`: the file offset cannot be mapped.
    Misaligned,
    /// `p_filesz > p_memsz`.
    FileszExceedsMemsz,
    /// An address computation overflowed, or a segment does not fit in user space.
    OutsideUserSpace,
    /// `PT_TLS` is malformed.
    BadTls,
    /// The entry point is outside user space.
    BadEntry,
}

impl ElfError {
    /// The errno Linux returns for this case from `execve`.
    pub const fn errno(self) -> Errno {
        match self {
            ElfError::Misaligned
            | ElfError::FileszExceedsMemsz
            | ElfError::OutsideUserSpace
            | ElfError::BadEntry => Errno::EINVAL,
            _ => Errno::ENOEXEC,
        }
    }
}

impl From<ElfError> for Errno {
    fn from(e: ElfError) -> Errno {
        e.errno()
    }
}

/// What kind of program this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC` without an interpreter: a classic static binary.
    Static,
    /// `ET_DYN` without an interpreter: static-pie (or `ld.so` run directly).
    StaticPie,
    /// Has `PT_INTERP`: the interpreter must be loaded too (`ET_EXEC` or `ET_DYN`).
    Dynamic,
}

/// One `PT_LOAD` segment (addresses unbiased, as in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
    /// `PF_R | PF_W | PF_X` bits.
    pub flags: u32,
    pub align: u64,
}

impl LoadSegment {
    /// `PROT_READ | PROT_WRITE | PROT_EXEC` bits for `mmap`/page tables.
    pub const fn prot(&self) -> u32 {
        let mut p = 0;
        if self.flags & PF_R != 0 {
            p |= crate::mm::PROT_READ;
        }
        if self.flags & PF_W != 0 {
            p |= crate::mm::PROT_WRITE;
        }
        if self.flags & PF_X != 0 {
            p |= crate::mm::PROT_EXEC;
        }
        p
    }
    /// First page of the segment in memory.
    pub const fn map_start(&self, bias: u64) -> u64 {
        page_down(self.vaddr.wrapping_add(bias))
    }
    /// Page-aligned file offset that maps at [`map_start`](Self::map_start).
    pub const fn file_page_offset(&self) -> u64 {
        page_down(self.offset)
    }
    /// Bytes of file to map from `file_page_offset` (page rounded; 0 when `filesz == 0`).
    /// The part of the last page past `filesz` must read as zero when `memsz > filesz`.
    pub const fn file_map_len(&self) -> u64 {
        if self.filesz == 0 {
            0
        } else {
            page_up((self.vaddr % PAGE_SIZE) + self.filesz)
        }
    }
    /// First byte that must be zero (end of file data, the `.bss` start).
    pub const fn zero_start(&self, bias: u64) -> u64 {
        self.vaddr.wrapping_add(bias) + self.filesz
    }
    /// First byte of anonymous zero memory (page after the file-backed part).
    pub const fn anon_start(&self, bias: u64) -> u64 {
        self.map_start(bias) + self.file_map_len()
    }
    /// End (exclusive, page aligned) of the segment in memory.
    pub const fn anon_end(&self, bias: u64) -> u64 {
        page_up(self.vaddr.wrapping_add(bias) + self.memsz)
    }
    /// End (exclusive, not rounded) of the segment in memory.
    pub const fn mem_end(&self, bias: u64) -> u64 {
        self.vaddr.wrapping_add(bias) + self.memsz
    }
}

/// `PT_TLS`: the initial TLS image (libc sets TLS up itself; kept for completeness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsInfo {
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

/// A validated ELF64 x86-64 executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// `ET_EXEC` or `ET_DYN`.
    pub e_type: u16,
    /// `e_entry` (unbiased).
    pub entry: u64,
    /// `e_phoff`.
    pub phoff: u64,
    /// `e_phnum`.
    pub phnum: u16,
    /// `e_phentsize` (always 56).
    pub phentsize: u16,
    /// `PT_LOAD` segments with `memsz > 0`, in ascending address order.
    pub loads: Vec<LoadSegment>,
    /// `PT_INTERP` path without its terminating NUL.
    pub interp: Option<Vec<u8>>,
    /// `PT_PHDR` `p_vaddr`, if present.
    pub phdr_vaddr: Option<u64>,
    /// `PT_GNU_STACK` `p_flags`, if present.
    pub gnu_stack_flags: Option<u32>,
    /// `PT_TLS`, if present.
    pub tls: Option<TlsInfo>,
    /// Largest power-of-two `p_align` of the `PT_LOAD`s (at least a page).
    pub max_align: u64,
}

const fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}
const fn page_up(x: u64) -> u64 {
    // Callers have checked `x <= USER_SPACE_END` (or use wrapping semantics knowingly).
    (x.wrapping_add(PAGE_SIZE - 1)) & !(PAGE_SIZE - 1)
}

impl ElfInfo {
    /// Parses and validates the executable. `buf` is a prefix of the file (at least the ELF
    /// header; [`HEADER_READ`] bytes is enough for every normally linked binary), `file_len`
    /// the file's full length (bounds for `p_offset + p_filesz`).
    pub fn parse(buf: &[u8], file_len: u64) -> Result<ElfInfo, ElfError> {
        if buf.len() < EHDR_SIZE || file_len < EHDR_SIZE as u64 {
            return Err(ElfError::TooShort);
        }
        // Bytes past the end of the file do not exist, whatever the caller's buffer holds.
        let buf = &buf[..buf
            .len()
            .min(usize::try_from(file_len).unwrap_or(usize::MAX))];
        if &buf[0..4] != b"\x7fELF" {
            return Err(ElfError::BadMagic);
        }
        if buf[4] != 2 {
            return Err(ElfError::NotElf64);
        }
        if buf[5] != 1 {
            return Err(ElfError::NotLittleEndian);
        }
        if buf[6] != 1 {
            return Err(ElfError::BadVersion);
        }
        let rd16 = |o| get_u16(buf, o).ok_or(ElfError::TooShort);
        let rd64 = |o| get_u64(buf, o).ok_or(ElfError::TooShort);
        let e_type = rd16(16)?;
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(ElfError::NotExecutable);
        }
        if rd16(18)? != EM_X86_64 {
            return Err(ElfError::WrongMachine);
        }
        let entry = rd64(24)?;
        let phoff = rd64(32)?;
        let phentsize = rd16(54)?;
        let phnum = rd16(56)?;
        if phentsize as usize != PHDR_SIZE {
            return Err(ElfError::BadPhentsize);
        }
        let table = phnum as u64 * PHDR_SIZE as u64;
        if phnum == 0 || table > MAX_PHDR_TABLE {
            return Err(ElfError::BadPhnum);
        }
        let ph_end = phoff.checked_add(table).ok_or(ElfError::OutsideFile)?;
        if ph_end > file_len {
            return Err(ElfError::OutsideFile);
        }
        if ph_end > buf.len() as u64 {
            return Err(ElfError::NeedBytes(ph_end));
        }

        let mut info = ElfInfo {
            e_type,
            entry,
            phoff,
            phnum,
            phentsize,
            loads: Vec::new(),
            interp: None,
            phdr_vaddr: None,
            gnu_stack_flags: None,
            tls: None,
            max_align: PAGE_SIZE,
        };
        let mut interp_range: Option<(u64, u64)> = None;
        for i in 0..phnum as usize {
            let p = phoff as usize + i * PHDR_SIZE;
            let r32 = |o: usize| get_u32(buf, p + o).ok_or(ElfError::TooShort);
            let r64 = |o: usize| get_u64(buf, p + o).ok_or(ElfError::TooShort);
            let p_type = r32(0)?;
            let p_flags = r32(4)?;
            let p_offset = r64(8)?;
            let p_vaddr = r64(16)?;
            let p_filesz = r64(32)?;
            let p_memsz = r64(40)?;
            let p_align = r64(48)?;
            match p_type {
                PT_LOAD => {
                    if p_filesz > p_memsz {
                        return Err(ElfError::FileszExceedsMemsz);
                    }
                    if p_vaddr % PAGE_SIZE != p_offset % PAGE_SIZE {
                        return Err(ElfError::Misaligned);
                    }
                    let fend = p_offset
                        .checked_add(p_filesz)
                        .ok_or(ElfError::OutsideFile)?;
                    if fend > file_len {
                        return Err(ElfError::OutsideFile);
                    }
                    let mend = p_vaddr
                        .checked_add(p_memsz)
                        .ok_or(ElfError::OutsideUserSpace)?;
                    if mend > USER_SPACE_END {
                        return Err(ElfError::OutsideUserSpace);
                    }
                    if p_memsz == 0 {
                        continue;
                    }
                    if let Some(prev) = info.loads.last()
                        && p_vaddr < prev.vaddr + prev.memsz
                    {
                        return Err(ElfError::SegmentsUnordered);
                    }
                    if p_align.is_power_of_two() && p_align > info.max_align {
                        info.max_align = p_align;
                    }
                    info.loads.push(LoadSegment {
                        vaddr: p_vaddr,
                        offset: p_offset,
                        filesz: p_filesz,
                        memsz: p_memsz,
                        flags: p_flags,
                        align: p_align,
                    });
                }
                PT_INTERP => {
                    if interp_range.is_some() || !(2..=MAX_INTERP_LEN).contains(&p_filesz) {
                        return Err(ElfError::BadInterp);
                    }
                    let end = p_offset
                        .checked_add(p_filesz)
                        .ok_or(ElfError::OutsideFile)?;
                    if end > file_len {
                        return Err(ElfError::OutsideFile);
                    }
                    interp_range = Some((p_offset, end));
                }
                PT_PHDR => info.phdr_vaddr = Some(p_vaddr),
                PT_GNU_STACK => info.gnu_stack_flags = Some(p_flags),
                PT_TLS => {
                    if p_filesz > p_memsz || (p_align != 0 && !p_align.is_power_of_two()) {
                        return Err(ElfError::BadTls);
                    }
                    p_vaddr.checked_add(p_memsz).ok_or(ElfError::BadTls)?;
                    info.tls = Some(TlsInfo {
                        vaddr: p_vaddr,
                        filesz: p_filesz,
                        memsz: p_memsz,
                        align: p_align,
                    });
                }
                _ => {}
            }
        }
        if info.loads.is_empty() {
            return Err(ElfError::NoLoadSegment);
        }
        if let Some((start, end)) = interp_range {
            if end > buf.len() as u64 {
                return Err(ElfError::NeedBytes(end));
            }
            let path = &buf[start as usize..end as usize];
            // Linux: the last byte must be NUL; the path is what precedes the first NUL.
            if path[path.len() - 1] != 0 {
                return Err(ElfError::BadInterp);
            }
            let n = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            if n == 0 {
                return Err(ElfError::BadInterp);
            }
            info.interp = Some(path[..n].to_vec());
        }
        if e_type == ET_EXEC && entry >= USER_SPACE_END {
            return Err(ElfError::BadEntry);
        }
        // The whole image must fit in user space once placed (checked per segment above for
        // the unbiased addresses; for ET_DYN also the span, which the bias keeps).
        let (lo, hi) = info.span();
        if hi - lo > USER_SPACE_END {
            return Err(ElfError::OutsideUserSpace);
        }
        Ok(info)
    }

    /// Static, static-pie or dynamic.
    pub fn kind(&self) -> ElfKind {
        match (self.interp.is_some(), self.e_type) {
            (true, _) => ElfKind::Dynamic,
            (false, ET_DYN) => ElfKind::StaticPie,
            _ => ElfKind::Static,
        }
    }

    /// Whether the image is position independent (`ET_DYN`) and needs a load bias.
    pub fn is_pie(&self) -> bool {
        self.e_type == ET_DYN
    }

    /// Whether `PT_GNU_STACK` asks for an executable stack. As on x86-64 Linux, a missing
    /// `PT_GNU_STACK` means a non-executable stack for 64-bit programs.
    pub fn exec_stack(&self) -> bool {
        self.gnu_stack_flags.is_some_and(|f| f & PF_X != 0)
    }

    /// The page-aligned unbiased address range `[lo, hi)` covered by the `PT_LOAD`s.
    pub fn span(&self) -> (u64, u64) {
        let lo = page_down(self.loads[0].vaddr);
        let hi = self
            .loads
            .iter()
            .map(|s| page_up(s.vaddr + s.memsz))
            .max()
            .unwrap_or(lo);
        (lo, hi)
    }

    /// Size of the mapping `[lo, hi)` of [`span`](Self::span).
    pub fn total_mapping_size(&self) -> u64 {
        let (lo, hi) = self.span();
        hi - lo
    }

    /// The bias to add to every `p_vaddr`: 0 for `ET_EXEC`; for `ET_DYN` the image is placed so
    /// that its lowest page is at or just above `base` (rounded up to [`max_align`]), keeping
    /// every segment congruent to its file offset. Errors with `OutsideUserSpace` when the
    /// placed image would not end below [`USER_SPACE_END`] (the caller may retry lower).
    ///
    /// [`max_align`]: ElfInfo::max_align
    pub fn load_bias(&self, base: u64) -> Result<u64, ElfError> {
        if self.e_type == ET_EXEC {
            return Ok(0);
        }
        let a = self.max_align;
        let start = base.checked_add(a - 1).ok_or(ElfError::OutsideUserSpace)? & !(a - 1);
        let (lo, hi) = self.span();
        let lo_aligned = lo & !(a - 1);
        let bias = start.wrapping_sub(lo_aligned);
        let end = hi.checked_add(bias).ok_or(ElfError::OutsideUserSpace)?;
        if end > USER_SPACE_END || lo.wrapping_add(bias) < start {
            return Err(ElfError::OutsideUserSpace);
        }
        if self.entry.wrapping_add(bias) >= USER_SPACE_END {
            return Err(ElfError::BadEntry);
        }
        Ok(bias)
    }

    /// The entry point once loaded with `bias`.
    pub fn entry(&self, bias: u64) -> u64 {
        self.entry.wrapping_add(bias)
    }

    /// `AT_PHDR`: where the program headers are in memory with `bias`, as Linux ≥ 5.18
    /// computes it (the `PT_LOAD` that maps `e_phoff` from the file; `PT_PHDR` as a
    /// fallback). `None` if the headers are not mapped (then glibc/musl cannot find TLS and
    /// `dl_iterate_phdr` fails, but Linux still runs the program with `AT_PHDR` = 0).
    pub fn phdr_addr(&self, bias: u64) -> Option<u64> {
        let table = self.phnum as u64 * PHDR_SIZE as u64;
        for s in &self.loads {
            if s.offset <= self.phoff && self.phoff + table <= s.offset + s.filesz {
                return Some((s.vaddr + (self.phoff - s.offset)).wrapping_add(bias));
            }
        }
        self.phdr_vaddr.map(|v| v.wrapping_add(bias))
    }

    /// The initial program break: page-rounded end of the highest segment (Linux then adds a
    /// random offset when ASLR is on).
    pub fn brk_start(&self, bias: u64) -> u64 {
        self.span().1.wrapping_add(bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    use std::vec;

    /// A minimal valid static ET_EXEC image: ehdr, 2 phdrs (LOAD text, LOAD data+bss), GNU_STACK.
    fn synth(e_type: u16) -> Vec<u8> {
        let mut b = vec![0u8; 0x2000];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        let base = if e_type == ET_EXEC { 0x40_0000u64 } else { 0 };
        b[24..32].copy_from_slice(&(base + 0x1000).to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&3u16.to_le_bytes());
        let ph =
            |b: &mut Vec<u8>, i: usize, t: u32, f: u32, off: u64, va: u64, fs: u64, ms: u64| {
                let p = 64 + i * 56;
                b[p..p + 4].copy_from_slice(&t.to_le_bytes());
                b[p + 4..p + 8].copy_from_slice(&f.to_le_bytes());
                b[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
                b[p + 16..p + 24].copy_from_slice(&va.to_le_bytes());
                b[p + 24..p + 32].copy_from_slice(&va.to_le_bytes());
                b[p + 32..p + 40].copy_from_slice(&fs.to_le_bytes());
                b[p + 40..p + 48].copy_from_slice(&ms.to_le_bytes());
                b[p + 48..p + 56].copy_from_slice(&0x1000u64.to_le_bytes());
            };
        ph(&mut b, 0, PT_LOAD, PF_R | PF_X, 0, base, 0x1800, 0x1800);
        ph(
            &mut b,
            1,
            PT_LOAD,
            PF_R | PF_W,
            0x1800,
            base + 0x2800,
            0x800,
            0x3000,
        );
        ph(&mut b, 2, PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0);
        b
    }

    fn set_ph_u64(b: &mut [u8], i: usize, field_off: usize, v: u64) {
        let p = 64 + i * 56 + field_off;
        b[p..p + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn synthetic_static() {
        let b = synth(ET_EXEC);
        let e = ElfInfo::parse(&b, b.len() as u64).unwrap();
        assert_eq!(e.kind(), ElfKind::Static);
        assert_eq!(e.loads.len(), 2);
        assert_eq!(e.load_bias(0x1234_5000).unwrap(), 0);
        assert_eq!(e.entry(0), 0x40_1000);
        assert_eq!(e.phdr_addr(0), Some(0x40_0040));
        assert!(!e.exec_stack());
        let d = e.loads[1];
        assert_eq!(d.map_start(0), 0x40_2000);
        assert_eq!(d.file_page_offset(), 0x1000);
        assert_eq!(d.file_map_len(), 0x1000);
        assert_eq!(d.zero_start(0), 0x40_3000);
        assert_eq!(d.anon_start(0), 0x40_3000);
        assert_eq!(d.anon_end(0), 0x40_6000);
        assert_eq!(d.prot(), crate::mm::PROT_READ | crate::mm::PROT_WRITE);
        assert_eq!(e.brk_start(0), 0x40_6000);
        assert_eq!(e.span(), (0x40_0000, 0x40_6000));
    }

    #[test]
    fn synthetic_pie_bias() {
        let b = synth(ET_DYN);
        let e = ElfInfo::parse(&b, b.len() as u64).unwrap();
        assert_eq!(e.kind(), ElfKind::StaticPie);
        let bias = e.load_bias(ELF_ET_DYN_BASE).unwrap();
        assert_eq!(bias, 0x5555_5555_4000);
        assert_eq!(e.entry(bias), 0x5555_5555_5000);
        assert_eq!(e.phdr_addr(bias), Some(0x5555_5555_4040));
        // Unaligned base is rounded up to a page.
        assert_eq!(e.load_bias(0x1001).unwrap(), 0x2000);
        // Would not fit.
        assert_eq!(
            e.load_bias(USER_SPACE_END - 0x1000),
            Err(ElfError::OutsideUserSpace)
        );
        assert_eq!(e.load_bias(u64::MAX - 10), Err(ElfError::OutsideUserSpace));
    }

    #[test]
    fn malformed_synthetic() {
        let good = synth(ET_EXEC);
        let n = good.len() as u64;
        let check = |b: &[u8], len: u64, want: ElfError| {
            assert_eq!(ElfInfo::parse(b, len), Err(want));
        };
        check(&good[..10], 10, ElfError::TooShort);
        let mut b = good.clone();
        b[0] = 0;
        check(&b, n, ElfError::BadMagic);
        let mut b = good.clone();
        b[4] = 1;
        check(&b, n, ElfError::NotElf64);
        let mut b = good.clone();
        b[5] = 2;
        check(&b, n, ElfError::NotLittleEndian);
        let mut b = good.clone();
        b[18] = 3; // EM_386
        check(&b, n, ElfError::WrongMachine);
        let mut b = good.clone();
        b[16] = 1; // ET_REL
        check(&b, n, ElfError::NotExecutable);
        let mut b = good.clone();
        b[54] = 32;
        check(&b, n, ElfError::BadPhentsize);
        let mut b = good.clone();
        b[56] = 0;
        check(&b, n, ElfError::BadPhnum);
        let mut b = good.clone();
        b[56..58].copy_from_slice(&1000u16.to_le_bytes());
        check(&b, n, ElfError::BadPhnum);
        // phoff overflowing u64.
        let mut b = good.clone();
        b[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        check(&b, n, ElfError::OutsideFile);
        // phdrs beyond the buffer but inside the file.
        let mut b = good.clone();
        b[32..40].copy_from_slice(&0x1000u64.to_le_bytes());
        check(&b[..0x800], n, ElfError::NeedBytes(0x1000 + 3 * 56));
        // filesz > memsz
        let mut b = good.clone();
        set_ph_u64(&mut b, 1, 40, 0x100);
        check(&b, n, ElfError::FileszExceedsMemsz);
        // vaddr/offset not congruent
        let mut b = good.clone();
        set_ph_u64(&mut b, 1, 8, 0x1808);
        check(&b, n, ElfError::Misaligned);
        // segment beyond end of file
        let mut b = good.clone();
        set_ph_u64(&mut b, 1, 32, 0x2000);
        check(&b, n, ElfError::OutsideFile);
        // memsz overflowing
        let mut b = good.clone();
        set_ph_u64(&mut b, 1, 40, u64::MAX);
        check(&b, n, ElfError::OutsideUserSpace);
        // vaddr in kernel space
        let mut b = good.clone();
        set_ph_u64(&mut b, 1, 16, 0xffff_8000_0000_0800);
        check(&b, n, ElfError::OutsideUserSpace);
        // overlapping / unordered loads
        let mut b = good.clone();
        set_ph_u64(&mut b, 1, 16, 0x40_0800);
        check(&b, n, ElfError::SegmentsUnordered);
        // entry in kernel space
        let mut b = good.clone();
        b[24..32].copy_from_slice(&0xffff_ffff_8000_0000u64.to_le_bytes());
        check(&b, n, ElfError::BadEntry);
        // no PT_LOAD
        let mut b = good.clone();
        b[64] = PT_NOTE as u8;
        b[64 + 56] = PT_NOTE as u8;
        check(&b, n, ElfError::NoLoadSegment);
        // PT_INTERP not NUL terminated, then good, then too far.
        let mut b = good.clone();
        b[64 + 112..64 + 116].copy_from_slice(&PT_INTERP.to_le_bytes());
        set_ph_u64(&mut b, 2, 8, 0x200);
        set_ph_u64(&mut b, 2, 32, 4);
        b[0x200..0x204].copy_from_slice(b"/abc");
        check(&b, n, ElfError::BadInterp);
        b[0x203] = 0;
        let e = ElfInfo::parse(&b, n).unwrap();
        assert_eq!(e.interp.as_deref(), Some(&b"/ab"[..]));
        assert_eq!(e.kind(), ElfKind::Dynamic);
        check(&b[..0x100], n, ElfError::NeedBytes(0x204));
        set_ph_u64(&mut b, 2, 32, 1 << 20);
        check(&b, n, ElfError::BadInterp);
        // errno mapping
        assert_eq!(ElfError::BadMagic.errno(), Errno::ENOEXEC);
        assert_eq!(ElfError::FileszExceedsMemsz.errno(), Errno::EINVAL);
    }

    /// Every truncation and every single-byte corruption of the header area must be refused
    /// or accepted without panicking.
    #[test]
    fn fuzz_no_panic() {
        let good = synth(ET_DYN);
        for len in 0..good.len().min(400) {
            let _ = ElfInfo::parse(&good[..len], len as u64);
            let _ = ElfInfo::parse(&good[..len], good.len() as u64);
        }
        let mut seed = 0x1234_5678_9abc_def0u64;
        for i in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..1 + i % 4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pos = (seed as usize) % (64 + 56 * 3); // ehdr and the phdrs
                b[pos] = (seed >> 32) as u8;
            }
            if let Ok(e) = ElfInfo::parse(&b, b.len() as u64) {
                let bias = e.load_bias(ELF_ET_DYN_BASE).unwrap_or(0);
                let _ = (
                    e.phdr_addr(bias),
                    e.entry(bias),
                    e.brk_start(bias),
                    e.span(),
                );
                for s in &e.loads {
                    let _ = (s.map_start(bias), s.file_map_len(), s.anon_end(bias));
                }
            }
        }
    }

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(std::format!("noa-linux-abi-elf-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn parse_file(path: &std::path::Path) -> ElfInfo {
        let data = std::fs::read(path).unwrap();
        let head = &data[..data.len().min(HEADER_READ)];
        let e = ElfInfo::parse(head, data.len() as u64).unwrap();
        // Every segment's file range lies in the file, so a loader can read it.
        for s in &e.loads {
            assert!(s.offset + s.filesz <= data.len() as u64);
        }
        // The phdr address maps back to the phdr bytes in the file.
        let bias = e.load_bias(ELF_ET_DYN_BASE).unwrap();
        let ph = e.phdr_addr(bias).expect("phdrs mapped") - bias;
        let seg = e
            .loads
            .iter()
            .find(|s| s.vaddr <= ph && ph < s.vaddr + s.filesz)
            .unwrap();
        assert_eq!(seg.offset + (ph - seg.vaddr), e.phoff);
        e
    }

    #[test]
    fn host_bin_ls() {
        let p = std::path::Path::new("/bin/ls");
        if !p.exists() {
            std::eprintln!("skipping: no /bin/ls");
            return;
        }
        let e = parse_file(p);
        assert_eq!(e.e_type, ET_DYN);
        assert_eq!(e.kind(), ElfKind::Dynamic);
        assert_eq!(
            e.interp.as_deref(),
            Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
        );
        assert!(e.phdr_vaddr.is_some());
        assert!(!e.exec_stack());
        // Truncations of the real header: never panic, and the full header still parses.
        let data = std::fs::read(p).unwrap();
        for len in 0..1024 {
            let _ = ElfInfo::parse(&data[..len], data.len() as u64);
            let _ = ElfInfo::parse(&data[..len], len as u64);
        }
    }

    fn gcc_build(flags: &[&str], name: &str) -> Option<PathBuf> {
        let dir = tmpdir();
        let src = dir.join("hello.c");
        std::fs::write(
            &src,
            "#include <stdio.h>\n__thread int t = 5;\nint main(void){printf(\"hi %d\\n\", t);return 0;}\n",
        )
        .unwrap();
        let out = dir.join(name);
        let st = Command::new("gcc")
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .status();
        match st {
            Ok(s) if s.success() => Some(out),
            _ => {
                std::eprintln!("skipping: gcc {flags:?} unavailable");
                None
            }
        }
    }

    #[test]
    fn gcc_static_and_static_pie() {
        if let Some(p) = gcc_build(&["-static", "-O1"], "hello-static") {
            let e = parse_file(&p);
            assert_eq!(e.e_type, ET_EXEC);
            assert_eq!(e.kind(), ElfKind::Static);
            assert!(e.interp.is_none());
            assert!(e.tls.is_some());
            assert_eq!(e.load_bias(ELF_ET_DYN_BASE).unwrap(), 0);
            assert!(e.entry >= 0x40_0000);
            // Corrupt variants of the real file.
            let data = std::fs::read(&p).unwrap();
            let n = data.len() as u64;
            let mut b = data[..HEADER_READ].to_vec();
            b[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
            assert_eq!(ElfInfo::parse(&b, n), Err(ElfError::BadPhnum));
            let mut b = data[..HEADER_READ].to_vec();
            // First PT_LOAD: filesz > memsz.
            let i = (0..e.phnum as usize)
                .find(|&i| b[64 + i * 56] == PT_LOAD as u8)
                .unwrap();
            set_ph_u64(&mut b, i, 32, u64::MAX / 2);
            assert!(ElfInfo::parse(&b, n).is_err());
            assert!(ElfInfo::parse(&data[..HEADER_READ], 1000).is_err());
        }
        if let Some(p) = gcc_build(&["-static-pie", "-fPIE", "-O1"], "hello-static-pie") {
            let e = parse_file(&p);
            assert_eq!(e.e_type, ET_DYN);
            assert_eq!(e.kind(), ElfKind::StaticPie);
            assert!(e.interp.is_none());
            let bias = e.load_bias(0x7f00_0000_0000).unwrap();
            assert_eq!(bias % e.max_align, 0);
            assert!(e.entry(bias) > bias);
        }
        let _ = std::fs::remove_dir_all(tmpdir());
    }
}
