//! Memory copies for the guest (port 0xf0, docs/boot-protocol.md): the guest lists ranges of
//! guest-physical memory in a `Copy` block and the VMM copies them, natively.
//!
//! Why: on PVM hosts every ring-0 instruction is emulated, and the guest kernel's own copy of a
//! 4 KiB page (`rep movsq`) costs ~323 µs there — a copy-on-write break, a file read into a
//! user buffer. A port write costs ~16 µs and the copies themselves well under one. The guest
//! uses it only where its ring 0 is emulated; elsewhere its own copy is faster than an exit.
//!
//! The block is guest memory, hence hostile: the count and every length are bounded, both
//! ranges of an entry must lie in guest RAM, and each copy goes through a buffer of ours, so
//! overlapping ranges (or two vCPUs' blocks naming the same memory) copy nothing wrong into the
//! VMM. What the guest gets back is how many entries were copied, in order.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

pub const COPY_PORT: u16 = 0xf0;
/// Entries one block may hold (a block is then at most 8 + 64 × 24 bytes).
pub const MAX_ENTRIES: u32 = 64;
/// The longest range one entry may copy.
pub const MAX_LEN: u32 = 4096;
const HEADER: u64 = 8;
const ENTRY: u64 = 24;

/// Copies the ranges the `Copy` block at `addr` lists and writes the number of entries copied
/// into its `status` field. Returns why it stopped early, if it did (the guest sees the count).
pub fn copy_ranges(mem: &GuestMemoryMmap, addr: u64) -> Result<(), String> {
    if !addr.is_multiple_of(8) {
        return Err(format!("Copy block at {addr:#x} is not 8-byte aligned"));
    }
    let count: u32 = mem
        .read_obj(GuestAddress(addr))
        .map_err(|_| format!("Copy block at {addr:#x} is outside guest memory"))?;
    let (done, result) = copy_entries(mem, addr, count);
    // The status lies inside the header just read, so this write cannot fail.
    let _ = mem.write_obj(done, GuestAddress(addr + 4));
    result
}

/// Copies up to `count` entries of the block at `addr`; returns how many were copied.
fn copy_entries(mem: &GuestMemoryMmap, addr: u64, count: u32) -> (u32, Result<(), String>) {
    if count > MAX_ENTRIES {
        return (
            0,
            Err(format!("Copy of {count} entries (at most {MAX_ENTRIES})")),
        );
    }
    let mut buffer = [0u8; MAX_LEN as usize];
    for index in 0..count {
        let at = addr + HEADER + u64::from(index) * ENTRY;
        let entry: Result<[u64; 3], _> = mem.read_obj(GuestAddress(at));
        let Ok([dst, src, len_word]) = entry else {
            return (
                index,
                Err(format!("Copy entry {index} at {at:#x} is outside memory")),
            );
        };
        // The length is the low word; the high word is reserved (zero).
        if len_word > u64::from(MAX_LEN) {
            return (
                index,
                Err(format!("Copy entry {index}: length word {len_word:#x}")),
            );
        }
        let len = len_word as usize;
        let bytes = &mut buffer[..len];
        // Both ranges are checked whole first: a write that runs off RAM would otherwise leave
        // its first part written.
        let in_ram = |at: u64| len == 0 || mem.check_range(GuestAddress(at), len);
        let copied = (in_ram(src) && in_ram(dst))
            && mem.read_slice(bytes, GuestAddress(src)).is_ok()
            && mem.write_slice(bytes, GuestAddress(dst)).is_ok();
        if !copied {
            return (
                index,
                Err(format!(
                    "Copy entry {index}: {len_word} bytes {src:#x} -> {dst:#x} leave guest RAM"
                )),
            );
        }
    }
    (count, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: u64 = 1 << 20;
    const PAGE: usize = 4096;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap()
    }

    fn block(mem: &GuestMemoryMmap, at: u64, entries: &[(u64, u64, u64)]) {
        mem.write_obj(entries.len() as u32, GuestAddress(at))
            .unwrap();
        mem.write_obj(0xdead_u32, GuestAddress(at + 4)).unwrap();
        for (i, (dst, src, len)) in entries.iter().enumerate() {
            mem.write_obj([*dst, *src, *len], GuestAddress(at + 8 + i as u64 * 24))
                .unwrap();
        }
    }

    fn status(mem: &GuestMemoryMmap, at: u64) -> u32 {
        mem.read_obj(GuestAddress(at + 4)).unwrap()
    }

    fn read(mem: &GuestMemoryMmap, at: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        mem.read_slice(&mut out, GuestAddress(at)).unwrap();
        out
    }

    #[test]
    fn copies_every_entry_and_reports_the_count() {
        let mem = memory();
        let page: Vec<u8> = (0..PAGE).map(|i| i as u8).collect();
        mem.write_slice(&page, GuestAddress(0x10000)).unwrap();
        mem.write_slice(b"unaligned bytes", GuestAddress(0x11003))
            .unwrap();
        block(
            &mem,
            0x1000,
            &[
                (0x20000, 0x10000, PAGE as u64),
                (0x30007, 0x11003, 15),
                (0x40000, 0x10000, 0),
            ],
        );
        copy_ranges(&mem, 0x1000).unwrap();
        assert_eq!(status(&mem, 0x1000), 3);
        assert_eq!(read(&mem, 0x20000, PAGE), page);
        assert_eq!(read(&mem, 0x30007, 15), b"unaligned bytes");
        // Overlapping ranges copy as memmove does.
        block(&mem, 0x1000, &[(0x10001, 0x10000, 8)]);
        copy_ranges(&mem, 0x1000).unwrap();
        assert_eq!(read(&mem, 0x10000, 9), [0, 0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn stops_at_the_first_bad_entry_and_says_where() {
        let mem = memory();
        mem.write_slice(&[7; PAGE], GuestAddress(0x10000)).unwrap();
        // Second entry: the source runs past RAM; the third is never looked at.
        block(
            &mem,
            0x1000,
            &[
                (0x20000, 0x10000, 64),
                (0x21000, RAM - 8, 16),
                (0x22000, 0x10000, 64),
            ],
        );
        assert!(
            copy_ranges(&mem, 0x1000)
                .unwrap_err()
                .contains("leave guest RAM")
        );
        assert_eq!(status(&mem, 0x1000), 1);
        assert_eq!(read(&mem, 0x21000, 16), [0; 16]);
        assert_eq!(read(&mem, 0x22000, 64), [0; 64]);
        // A destination running past RAM: refused before any byte is written.
        block(&mem, 0x1000, &[(RAM - 8, 0x10000, 16)]);
        assert!(copy_ranges(&mem, 0x1000).is_err());
        assert_eq!(status(&mem, 0x1000), 0);
        assert_eq!(read(&mem, RAM - 8, 8), [0; 8]);
        // Longer than a page, or a reserved bit set.
        block(&mem, 0x1000, &[(0x20000, 0x10000, PAGE as u64 + 1)]);
        assert!(copy_ranges(&mem, 0x1000).unwrap_err().contains("length"));
        block(&mem, 0x1000, &[(0x20000, 0x10000, 1 << 32 | 8)]);
        assert!(copy_ranges(&mem, 0x1000).unwrap_err().contains("length"));
    }

    #[test]
    fn refuses_hostile_blocks() {
        let mem = memory();
        assert!(copy_ranges(&mem, 0x1004).unwrap_err().contains("aligned"));
        assert!(copy_ranges(&mem, RAM).unwrap_err().contains("outside"));
        block(&mem, 0x1000, &[]);
        mem.write_obj(MAX_ENTRIES + 1, GuestAddress(0x1000))
            .unwrap();
        assert!(copy_ranges(&mem, 0x1000).unwrap_err().contains("at most"));
        assert_eq!(status(&mem, 0x1000), 0);
        // A block whose entries run past the end of memory.
        mem.write_obj(3u32, GuestAddress(RAM - 32)).unwrap();
        assert!(
            copy_ranges(&mem, RAM - 32)
                .unwrap_err()
                .contains("outside memory")
        );
    }
}
