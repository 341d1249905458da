//! Reading Xen's `hvm_start_info` (the PVH boot information): the memory map, the command line and
//! the ACPI RSDP address. It is read once, through the direct map (the loader puts it in the first
//! GiB, which the assembled tables map); what the kernel needs is copied into fixed-size statics.

use crate::mm::PhysAddr;

const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Memory-map entry type for usable RAM (E820 numbering, as PVH uses).
pub const MEMMAP_RAM: u32 = 1;
/// Most memory-map entries we keep; the VMM writes a handful, QEMU about ten.
pub const MAX_MEMMAP: usize = 32;
/// Longest command line we keep (the VMM allows 4 KiB including the NUL).
pub const MAX_CMDLINE: usize = 4095;

#[repr(C)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    pub(crate) reserved: u32,
}

/// What the boot CPU keeps of `hvm_start_info`.
pub struct StartInfo {
    pub memmap: [MemmapEntry; MAX_MEMMAP],
    pub memmap_len: usize,
    pub cmdline: [u8; MAX_CMDLINE],
    pub cmdline_len: usize,
    pub rsdp: PhysAddr,
}

impl StartInfo {
    pub fn memmap(&self) -> &[MemmapEntry] {
        &self.memmap[..self.memmap_len]
    }

    /// The command line; bytes that are not UTF-8 end it early.
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        if bytes.is_ascii() {
            // SAFETY: ASCII is UTF-8. (`is_ascii` checks a word at a time; `from_utf8` goes byte
            // by byte, and every instruction counts at boot on PVM hosts.)
            return unsafe { core::str::from_utf8_unchecked(bytes) };
        }
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

/// Copies the start info at `paddr` into `out`.
///
/// # Safety
/// `paddr` is the value the loader passed in `EBX`, below 1 GiB.
pub unsafe fn read(paddr: u64, out: &mut StartInfo) {
    // Everything the loader wrote must lie where the assembled direct map reaches.
    let phys = |addr: u64| {
        if addr >= 1 << 30 {
            crate::crash::early_panic("PVH boot data lies above 1 GiB");
        }
        PhysAddr(addr).to_virt()
    };
    // SAFETY: the loader placed the structure there; the direct map covers it.
    let info = unsafe { core::ptr::read_unaligned(phys(paddr) as *const HvmStartInfo) };
    if info.magic != HVM_START_MAGIC {
        crate::crash::early_panic("PVH start info has a bad magic");
    }
    out.rsdp = PhysAddr(info.rsdp_paddr);
    if info.version >= 1 && info.memmap_paddr != 0 {
        let n = (info.memmap_entries as usize).min(MAX_MEMMAP);
        for (i, slot) in out.memmap[..n].iter_mut().enumerate() {
            let entry = phys(info.memmap_paddr) as *const MemmapEntry;
            // SAFETY: `i < memmap_entries`, inside the table the loader wrote.
            *slot = unsafe { core::ptr::read_unaligned(entry.add(i)) };
        }
        out.memmap_len = n;
    }
    if info.cmdline_paddr != 0 {
        let src = phys(info.cmdline_paddr) as *const u8;
        // SAFETY: the loader wrote a NUL-terminated string there; `strlen` reads no further than
        // the aligned word holding the NUL (or our buffer's size), which lies in the same page.
        let len = unsafe { strlen(src, MAX_CMDLINE) };
        // SAFETY: `len` bytes of the source are readable; the destination holds MAX_CMDLINE.
        unsafe { core::ptr::copy_nonoverlapping(src, out.cmdline.as_mut_ptr(), len) };
        out.cmdline_len = len;
    }
}

/// The length of the NUL-terminated string at `src`, at most `max`, looking at a word at a time
/// (the command line is a few hundred bytes, and each ring-0 instruction is emulated on PVM hosts).
///
/// # Safety
/// The string is readable up to its NUL, or `max` bytes, plus the rest of that aligned word.
unsafe fn strlen(src: *const u8, max: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let byte = |at: usize| {
        // SAFETY: the caller guarantees `at` is readable (`at` never passes the NUL or `max`).
        unsafe { src.add(at).read() }
    };
    let mut len = 0;
    while len < max && (src as usize + len) & 7 != 0 {
        if byte(len) == 0 {
            return len;
        }
        len += 1;
    }
    while len + 8 <= max {
        // SAFETY: aligned, and before (or containing) the NUL.
        let word = unsafe { (src.add(len) as *const u64).read() };
        if word.wrapping_sub(ONES) & !word & HIGHS != 0 {
            break; // a zero byte in this word
        }
        len += 8;
    }
    while len < max && byte(len) != 0 {
        len += 1;
    }
    len
}
