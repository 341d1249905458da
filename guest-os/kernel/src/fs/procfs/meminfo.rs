//! `/proc/meminfo`: memory as Linux lays it out (`Name:` padded to 16 columns, the value in
//! kB right-aligned in 8). MemTotal and MemFree are the frame allocator's; Cached is the page
//! cache; there is no swap; what this kernel does not track reads 0.

use super::node::Text;
use super::text::TextBuf;
use alloc::sync::Arc;
use noa_linux_abi::errno::SysResult;

pub fn generate() -> SysResult<Text> {
    let total = hal_pv::mm::frames::usable_ram_bytes() / 1024;
    let free = hal_pv::mm::frames::free_bytes() / 1024;
    let cached = crate::mm::page_cache::cached_bytes() / 1024;
    let lines: [(&str, u64); 21] = [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", free + cached),
        ("Buffers", 0),
        ("Cached", cached),
        ("SwapCached", 0),
        ("Active", 0),
        ("Inactive", cached),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", total.saturating_sub(free + cached)),
        ("Mapped", cached),
        ("Shmem", 0),
        ("Slab", 0),
        ("KernelStack", 0),
        ("PageTables", 0),
        ("CommitLimit", total),
        ("Committed_AS", total.saturating_sub(free)),
        ("VmallocTotal", 0),
    ];
    let mut out = TextBuf::with_capacity(lines.len() * 28 + 140);
    for (name, kb) in lines {
        // "Name:" padded to 16 columns, then the value in 8.
        out.str(name)
            .byte(b':')
            .spaces(15usize.saturating_sub(name.len()));
        out.num_padded(kb, 8).str(" kB\n");
    }
    out.str(
        "HugePages_Total:       0\nHugePages_Free:        0\nHugePages_Rsvd:        0\n\
         HugePages_Surp:        0\nHugepagesize:       2048 kB\n",
    );
    Ok(Arc::new(out.into_bytes()))
}
