//! Finding the CPUs: the RSDP → XSDT (or RSDT) → MADT walk, reading local APIC and local x2APIC
//! entries. Our VMM and QEMU both describe CPUs this way.
//!
//! Why not the `acpi` crate: we need three tables and two entry types, once at boot, where every
//! ring-0 instruction is emulated on PVM hosts; the crate's generality (AML, handlers, allocation)
//! would cost more than this walk. Every length is checked against the table that holds it.

use crate::mm::PhysAddr;

/// Most CPUs the kernel brings up.
pub const MAX_CPUS: usize = 256;

/// The CPUs the firmware tables list as enabled.
pub struct CpuList {
    pub apic_ids: [u32; MAX_CPUS],
    pub count: usize,
}

impl CpuList {
    pub fn ids(&self) -> &[u32] {
        &self.apic_ids[..self.count]
    }
}

fn bytes(addr: u64, len: usize) -> &'static [u8] {
    // SAFETY: ACPI tables lie in RAM or the reserved low area, both in the direct map; the
    // firmware does not change them after boot.
    unsafe { core::slice::from_raw_parts(PhysAddr(addr).to_virt(), len) }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A whole table (header + body) with `signature`, if its length is sane and its checksum holds.
/// The signature is checked first: summing the bytes of tables we don't want is wasted work.
fn table(addr: u64, signature: &[u8; 4]) -> Option<&'static [u8]> {
    if addr == 0 {
        return None;
    }
    let header = bytes(addr, 36);
    let len = u32_at(header, 4)? as usize;
    if &header[..4] != signature || !(36..=1 << 20).contains(&len) {
        return None;
    }
    let table = bytes(addr, len);
    (table.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) == 0).then_some(table)
}

/// Lists the enabled CPUs of the MADT reached from `rsdp` in `cpus` (filled in place: the list is
/// 1 KiB, and copies cost emulated time at boot); `None` if the tables are unusable.
pub fn find_cpus(rsdp: PhysAddr, cpus: &mut CpuList) -> Option<()> {
    let rsdp_bytes = bytes(rsdp.0, 36);
    if &rsdp_bytes[..8] != b"RSD PTR " {
        return None;
    }
    let (root, entry_size) = match rsdp_bytes[15] {
        0 => (u64::from(u32_at(rsdp_bytes, 16)?), 4),
        _ => (u64_at(rsdp_bytes, 24)?, 8),
    };
    let root = table(root, if entry_size == 8 { b"XSDT" } else { b"RSDT" })?;
    let madt = root[36..].chunks_exact(entry_size).find_map(|entry| {
        let addr = if entry_size == 8 {
            u64_at(entry, 0)?
        } else {
            u64::from(u32_at(entry, 0)?)
        };
        table(addr, b"APIC")
    })?;
    cpus.count = 0;
    // Entries start after the header (36) + local APIC address (4) + flags (4).
    let mut at = 44;
    while at + 2 <= madt.len() {
        let (kind, len) = (madt[at], madt[at + 1] as usize);
        if len < 2 || at + len > madt.len() {
            break;
        }
        let entry = &madt[at..at + len];
        let cpu = match (kind, len) {
            // Processor local APIC: uid(1) apic_id(1) flags(4)
            (0, 8) => Some((u32::from(entry[3]), u32_at(entry, 4)?)),
            // Processor local x2APIC: reserved(2) x2apic_id(4) flags(4) uid(4)
            (9, 16) => Some((u32_at(entry, 4)?, u32_at(entry, 8)?)),
            _ => None,
        };
        if let Some((apic_id, flags)) = cpu
            && flags & 1 != 0
            && cpus.count < MAX_CPUS
        {
            cpus.apic_ids[cpus.count] = apic_id;
            cpus.count += 1;
        }
        at += len;
    }
    Some(())
}
