//! The ACPI tables the guest reads to find its CPUs and interrupt controllers.
//!
//! This is the same discovery path QEMU offers, reduced to what a microVM needs (as in Firecracker
//! and Cloud Hypervisor): an RSDP at a fixed address, an XSDT listing a FADT and a MADT, and an
//! empty DSDT. The FADT declares a hardware-reduced ACPI platform, so there are no PM1 / GPE
//! register blocks, no SCI and no FACS to emulate. The MADT describes one local APIC per vCPU and
//! one IOAPIC. See `docs/boot-protocol.md` for where this sits in guest memory.
//!
//! The tables are generated with the `acpi_tables` crate, which computes all checksums.

#![allow(dead_code)] // Used once the VM setup code calls `write_acpi_tables`.

use acpi_tables::Aml;
use acpi_tables::fadt::{FADT, FADTBuilder, Flags};
use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

/// Where the RSDP lives. It is also inside the legacy BIOS area (0xe0000..0x100000) that an OS
/// scans for "RSD PTR " when nobody hands it the address, so a guest finds it either way.
pub const ACPI_START: GuestAddress = GuestAddress(0xe_0000);
/// End (exclusive) of the area reserved for ACPI tables.
pub const ACPI_END: GuestAddress = GuestAddress(0x10_0000);
/// Guest-physical address of the (KVM in-kernel) IOAPIC.
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// Guest-physical address of every vCPU's local APIC (xAPIC mode).
pub const LAPIC_ADDR: u64 = 0xfee0_0000;

/// The IOAPIC's ID in the MADT.
///
/// IOAPIC IDs and local APIC IDs only had to be distinct on the old dedicated APIC bus; since the
/// P4 / xAPIC, interrupts travel over the system bus and the two are separate namespaces, so
/// clashing with CPU 0's APIC ID is harmless. 0 is what the device itself reports: KVM's IOAPIC
/// resets its ID register to 0 and keeps only 4 bits of it, so no ID above every possible CPU
/// APIC ID could be stored there anyway. QEMU, Firecracker and Cloud Hypervisor all use 0 too.
pub const IOAPIC_ID: u8 = 0;

/// Highest APIC ID that gets a Processor Local APIC (type 0) entry. The ACPI spec requires IDs
/// below 255 to use that entry and IDs from 255 on to use a Processor Local x2APIC (type 9)
/// entry; 255 itself is the xAPIC broadcast ID.
const MAX_XAPIC_ID: u32 = 254;

const OEM_ID: [u8; 6] = *b"NOAARK";
const OEM_TABLE_ID: [u8; 8] = *b"NOAVMM  ";
const OEM_REVISION: u32 = 1;

/// Revision of the MADT layout we write: ACPI 6.5 (as Firecracker does), matching the FADT's 6.5
/// from the crate. Any revision >= 5 also tells Linux to honour the "online capable" flag.
const MADT_REVISION: u8 = 6;
/// DSDT revision 2 or later means AML integers are 64 bits wide; 6 matches ACPI 6.x.
const DSDT_REVISION: u8 = 6;

/// Size of the common ACPI table header.
const SDT_HEADER_LEN: usize = 36;
/// MADT header: the common header, then the local APIC address and the MADT flags.
const MADT_HEADER_LEN: usize = SDT_HEADER_LEN + 8;
const MADT_LOCAL_X2APIC: u8 = 9;
const MADT_LOCAL_X2APIC_LEN: u8 = 16;
/// MADT "Enabled" flag for local APIC and local x2APIC entries.
const MADT_CPU_ENABLED: u32 = 1;

/// IA-PC boot architecture flags in the FADT: what legacy hardware the guest may expect.
/// Bit 0: there are legacy (ISA/LPC-style) devices the OS needs a driver for; COM1 at 0x3f8 is
/// one, and it is not described in the (empty) DSDT.
const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
/// Bit 2: no VGA; the console is the serial port.
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
/// Bit 3: no MSI; there is no PCI bus, devices are virtio-mmio.
const IAPC_MSI_NOT_SUPPORTED: u16 = 1 << 3;
/// Bit 5: no CMOS RTC at ports 0x70/0x71, so the guest does not poke at them.
/// Clear this if the VMM ever emulates one.
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
/// Bit 1 (8042 keyboard controller) is deliberately clear: there is none.
const IAPC_BOOT_ARCH: u16 =
    IAPC_LEGACY_DEVICES | IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED | IAPC_CMOS_RTC_NOT_PRESENT;

// The MADT stores both addresses in 32-bit fields.
const _: () = assert!(LAPIC_ADDR <= u32::MAX as u64);
const _: () = assert!(IOAPIC_ADDR <= u32::MAX as u64);

/// Why the ACPI tables could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    #[error("a VM needs at least one vCPU to describe in the MADT")]
    NoCpus,
    #[error(
        "the ACPI tables for {num_cpus} vCPUs need {needed} bytes, but only {available} bytes \
         are reserved for them at {:#x}..{:#x}",
        ACPI_START.0,
        ACPI_END.0
    )]
    TablesTooLarge {
        num_cpus: u32,
        needed: u64,
        available: u64,
    },
    #[error("writing the {table} table ({len} bytes) to guest memory at {:#x}", addr.0)]
    Write {
        table: &'static str,
        addr: GuestAddress,
        len: usize,
        #[source]
        source: GuestMemoryError,
    },
}

/// Writes RSDP at [`ACPI_START`] and the other tables after it; returns the RSDP's guest address.
///
/// vCPU `i` gets APIC ID `i` and ACPI processor UID `i`. Nothing is written unless all tables
/// fit below [`ACPI_END`]; with the current layout that holds for a little over 8000 vCPUs,
/// more than KVM allows.
pub fn write_acpi_tables(mem: &GuestMemoryMmap, num_cpus: u32) -> Result<GuestAddress, AcpiError> {
    if num_cpus == 0 {
        return Err(AcpiError::NoCpus);
    }

    // Sizes are checked before anything is built: an absurd CPU count must be rejected without
    // first allocating a multi-gigabyte MADT.
    let rsdp_len = Rsdp::len() as u64;
    let xsdt_len = (SDT_HEADER_LEN + 2 * size_of::<u64>()) as u64; // FADT and MADT
    let fadt_len = FADT::len() as u64;
    let dsdt_len = SDT_HEADER_LEN as u64;
    let madt_len = madt_len(num_cpus);

    let rsdp_addr = ACPI_START;
    let xsdt_addr = next_table(rsdp_addr, rsdp_len);
    let fadt_addr = next_table(xsdt_addr, xsdt_len);
    let dsdt_addr = next_table(fadt_addr, fadt_len);
    let madt_addr = next_table(dsdt_addr, dsdt_len);
    let end = madt_addr.0 + madt_len;
    if end > ACPI_END.0 {
        return Err(AcpiError::TablesTooLarge {
            num_cpus,
            needed: end - ACPI_START.0,
            available: ACPI_END.0 - ACPI_START.0,
        });
    }

    // An empty DSDT: the FADT must point at one, but there are no devices that need AML yet.
    let dsdt = Sdt::new(
        *b"DSDT",
        SDT_HEADER_LEN as u32,
        DSDT_REVISION,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
    );

    let madt = build_madt(num_cpus);

    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        // No PM1/GPE blocks, SCI, FACS or fixed-feature hardware to emulate.
        .flag(Flags::HwReducedAcpi)
        // Set means "no fixed-feature power/sleep button"; a hardware-reduced platform has none.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .dsdt_64(dsdt_addr.0);
    // The builder has no setter for this one; `finalize` computes the checksum afterwards.
    fadt.iapc_boot_arch = IAPC_BOOT_ARCH.into();
    let fadt = fadt.finalize();

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    // The DSDT is reached through the FADT, never listed in the XSDT.
    xsdt.add_entry(fadt_addr.0);
    xsdt.add_entry(madt_addr.0);

    let rsdp = Rsdp::new(OEM_ID, xsdt_addr.0);

    write_table(mem, "RSDP", rsdp_addr, &to_bytes(&rsdp), rsdp_len)?;
    write_table(mem, "XSDT", xsdt_addr, &to_bytes(&xsdt), xsdt_len)?;
    write_table(mem, "FADT", fadt_addr, &to_bytes(&fadt), fadt_len)?;
    write_table(mem, "DSDT", dsdt_addr, dsdt.as_slice(), dsdt_len)?;
    write_table(mem, "MADT", madt_addr, madt.as_slice(), madt_len)?;
    Ok(rsdp_addr)
}

/// Size in bytes of the MADT that [`build_madt`] produces for `num_cpus` vCPUs.
fn madt_len(num_cpus: u32) -> u64 {
    let xapic_cpus = u64::from(num_cpus.min(MAX_XAPIC_ID + 1));
    let x2apic_cpus = u64::from(num_cpus) - xapic_cpus;
    MADT_HEADER_LEN as u64
        + xapic_cpus * size_of::<ProcessorLocalApic>() as u64
        + x2apic_cpus * u64::from(MADT_LOCAL_X2APIC_LEN)
        + size_of::<IoApic>() as u64
}

/// Builds the MADT: one local APIC or local x2APIC entry per vCPU, then the IOAPIC.
///
/// The crate's own `MADT` type cannot hold x2APIC entries (it has no type for them, and its
/// entries must be zerocopy types, which this crate does not depend on), so the MADT is built as a
/// generic `Sdt` with the entries appended as bytes.
fn build_madt(num_cpus: u32) -> Sdt {
    let mut madt = Sdt::new(
        *b"APIC",
        MADT_HEADER_LEN as u32,
        MADT_REVISION,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
    );
    madt.write_u32(SDT_HEADER_LEN, LAPIC_ADDR as u32);
    // MADT flags: PCAT_COMPAT clear, because there is no dual 8259 setup to disable first.
    madt.write_u32(SDT_HEADER_LEN + 4, 0);

    // Entries are collected first and appended once: `Sdt::append_slice` re-sums the whole
    // table, which would be quadratic if done per entry.
    let mut entries = Vec::new();
    // vCPU 0, the boot CPU, comes first: the spec recommends listing the boot processor first.
    for cpu in 0..num_cpus {
        match u8::try_from(cpu) {
            Ok(id) if cpu <= MAX_XAPIC_ID => {
                ProcessorLocalApic::new(id, id, EnabledStatus::Enabled).to_aml_bytes(&mut entries)
            }
            _ => push_local_x2apic(&mut entries, cpu),
        }
    }
    IoApic::new(IOAPIC_ID, IOAPIC_ADDR as u32, 0).to_aml_bytes(&mut entries);
    madt.append_slice(&entries);
    madt
}

/// Appends a Processor Local x2APIC structure (ACPI 6.5, section 5.2.12.12).
fn push_local_x2apic(entries: &mut Vec<u8>, cpu: u32) {
    entries.push(MADT_LOCAL_X2APIC);
    entries.push(MADT_LOCAL_X2APIC_LEN);
    entries.extend_from_slice(&[0, 0]); // reserved
    entries.extend_from_slice(&cpu.to_le_bytes()); // x2APIC ID
    entries.extend_from_slice(&MADT_CPU_ENABLED.to_le_bytes());
    entries.extend_from_slice(&cpu.to_le_bytes()); // ACPI processor UID
}

/// Address of the table after one at `addr` of `len` bytes. Tables start 8-byte aligned so that
/// their 64-bit fields are naturally aligned for the guest.
fn next_table(addr: GuestAddress, len: u64) -> GuestAddress {
    GuestAddress((addr.0 + len).next_multiple_of(8))
}

fn to_bytes(table: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    table.to_aml_bytes(&mut bytes);
    bytes
}

fn write_table(
    mem: &GuestMemoryMmap,
    table: &'static str,
    addr: GuestAddress,
    bytes: &[u8],
    planned_len: u64,
) -> Result<(), AcpiError> {
    // The layout was computed from these lengths; a mismatch would mean overlapping tables.
    assert_eq!(
        bytes.len() as u64,
        planned_len,
        "{table} size differs from the planned layout"
    );
    mem.write_slice(bytes, addr)
        .map_err(|source| AcpiError::Write {
            table,
            addr,
            len: bytes.len(),
            source,
        })
}

#[cfg(test)]
mod tests {
    //! The tables are read back with a parser written here from the ACPI spec, independent of the
    //! crate that generated them.

    use super::*;
    use std::collections::BTreeSet;

    const HW_REDUCED_ACPI: u32 = 1 << 20;

    fn guest_memory() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap()
    }

    fn read(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
        buf
    }

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |acc, x| acc.wrapping_add(*x))
    }

    /// Reads the system description table at `addr`, checking its signature, that it lies inside
    /// the ACPI area and that its checksum is right.
    fn read_sdt(mem: &GuestMemoryMmap, addr: u64, signature: &[u8; 4]) -> Vec<u8> {
        let header = read(mem, addr, 36);
        assert_eq!(&header[0..4], signature, "signature at {addr:#x}");
        let len = u32_at(&header, 4) as usize;
        assert!(len >= 36, "{signature:?} length {len}");
        assert!(addr >= ACPI_START.0 && addr + len as u64 <= ACPI_END.0);
        let table = read(mem, addr, len);
        assert_eq!(sum(&table), 0, "{signature:?} checksum");
        table
    }

    struct Parsed {
        xsdt: Vec<u8>,
        fadt: Vec<u8>,
        dsdt: Vec<u8>,
        madt: Vec<u8>,
        /// Every table's (start, end), to check that none overlap.
        extents: Vec<(u64, u64)>,
    }

    /// Follows the guest's discovery path: RSDP -> XSDT -> FADT -> DSDT, XSDT -> MADT.
    fn parse(mem: &GuestMemoryMmap, rsdp_addr: GuestAddress) -> Parsed {
        assert_eq!(rsdp_addr, ACPI_START);
        assert_eq!(rsdp_addr.0 % 16, 0, "RSDP must be 16-byte aligned");
        let rsdp = read(mem, rsdp_addr.0, 36);
        assert_eq!(&rsdp[0..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[0..20]), 0, "RSDP checksum (ACPI 1.0 part)");
        assert_eq!(rsdp[15], 2, "RSDP revision");
        assert_eq!(u32_at(&rsdp, 20), 36, "RSDP length");
        assert_eq!(sum(&rsdp), 0, "RSDP extended checksum");
        let xsdt_addr = u64_at(&rsdp, 24);

        let xsdt = read_sdt(mem, xsdt_addr, b"XSDT");
        assert_eq!((xsdt.len() - 36) % 8, 0, "XSDT entries are 64-bit");
        let mut extents = vec![(rsdp_addr.0, rsdp_addr.0 + 36)];
        extents.push((xsdt_addr, xsdt_addr + xsdt.len() as u64));
        let (mut fadt, mut madt) = (None, None);
        for entry in xsdt[36..].chunks_exact(8) {
            let addr = u64::from_le_bytes(entry.try_into().unwrap());
            let signature = read(mem, addr, 4);
            let table = read_sdt(mem, addr, signature[..].try_into().unwrap());
            extents.push((addr, addr + table.len() as u64));
            match &signature[..] {
                b"FACP" => assert!(fadt.replace(table).is_none(), "two FADTs"),
                b"APIC" => assert!(madt.replace(table).is_none(), "two MADTs"),
                other => panic!("unexpected table {other:?} in the XSDT"),
            }
        }
        let fadt = fadt.expect("no FADT in the XSDT");
        let madt = madt.expect("no MADT in the XSDT");

        // FADT: DSDT (offset 40) is the 32-bit pointer, X_DSDT (offset 140) the 64-bit one.
        assert!(fadt.len() >= 244);
        assert_eq!(u32_at(&fadt, 40), 0, "only X_DSDT should be set");
        let dsdt_addr = u64_at(&fadt, 140);
        let dsdt = read_sdt(mem, dsdt_addr, b"DSDT");
        extents.push((dsdt_addr, dsdt_addr + dsdt.len() as u64));

        Parsed {
            xsdt,
            fadt,
            dsdt,
            madt,
            extents,
        }
    }

    #[derive(Debug, Default)]
    struct Madt {
        local_apic_addr: u32,
        flags: u32,
        /// (APIC ID, processor UID, flags, entry type) per CPU entry, in table order.
        cpus: Vec<(u32, u32, u32, u8)>,
        /// (ID, address, GSI base) per IOAPIC entry.
        ioapics: Vec<(u8, u32, u32)>,
    }

    fn parse_madt(madt: &[u8]) -> Madt {
        let mut parsed = Madt {
            local_apic_addr: u32_at(madt, 36),
            flags: u32_at(madt, 40),
            ..Default::default()
        };
        let mut off = 44;
        while off < madt.len() {
            let (kind, len) = (madt[off], madt[off + 1] as usize);
            assert!(
                len >= 2 && off + len <= madt.len(),
                "bad MADT entry at {off}"
            );
            let e = &madt[off..off + len];
            match kind {
                0 => {
                    assert_eq!(len, 8);
                    parsed
                        .cpus
                        .push((e[3].into(), e[2].into(), u32_at(e, 4), kind));
                }
                1 => {
                    assert_eq!(len, 12);
                    parsed.ioapics.push((e[2], u32_at(e, 4), u32_at(e, 8)));
                }
                9 => {
                    assert_eq!(len, 16);
                    assert_eq!(u16_at(e, 2), 0, "x2APIC reserved field");
                    parsed
                        .cpus
                        .push((u32_at(e, 4), u32_at(e, 12), u32_at(e, 8), kind));
                }
                other => panic!("unexpected MADT entry type {other}"),
            }
            off += len;
        }
        assert_eq!(off, madt.len(), "MADT entries overrun the table");
        parsed
    }

    fn check_tables(num_cpus: u32) {
        let mem = guest_memory();
        let rsdp = write_acpi_tables(&mem, num_cpus).unwrap();
        let tables = parse(&mem, rsdp);

        assert_eq!(tables.xsdt[8], 1, "XSDT revision");
        assert_eq!(tables.xsdt.len(), 36 + 2 * 8);

        let fadt = &tables.fadt;
        assert_eq!(fadt[8], 6, "FADT major revision");
        assert_eq!(fadt[131], 5, "FADT minor revision");
        assert_eq!(fadt.len(), 276, "ACPI 6.x FADT length");
        let flags = u32_at(fadt, 112);
        assert_ne!(flags & HW_REDUCED_ACPI, 0, "HW_REDUCED_ACPI");
        assert_eq!(u16_at(fadt, 109), IAPC_BOOT_ARCH);
        assert_eq!(u16_at(fadt, 109) & (1 << 1), 0, "no 8042");

        assert_eq!(tables.dsdt.len(), 36, "empty DSDT");
        assert!(tables.dsdt[8] >= 2, "DSDT revision: 64-bit AML integers");

        let mut extents = tables.extents.clone();
        extents.sort();
        for pair in extents.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "tables overlap: {extents:x?}");
        }

        let madt = parse_madt(&tables.madt);
        assert_eq!(madt.local_apic_addr as u64, LAPIC_ADDR);
        assert_eq!(madt.flags & 1, 0, "PCAT_COMPAT");
        assert_eq!(madt.cpus.len(), num_cpus as usize);
        for (i, &(apic_id, uid, flags, kind)) in madt.cpus.iter().enumerate() {
            let i = i as u32;
            assert_eq!((apic_id, uid), (i, i), "CPU entry {i}");
            assert_eq!(flags & 1, 1, "CPU {i} enabled");
            let expected_kind = if i < 255 { 0 } else { 9 };
            assert_eq!(kind, expected_kind, "entry type for APIC ID {i}");
        }
        let ids: BTreeSet<u32> = madt.cpus.iter().map(|c| c.0).collect();
        assert_eq!(ids.len(), num_cpus as usize, "APIC IDs are unique");
        assert_eq!(madt.ioapics, vec![(IOAPIC_ID, IOAPIC_ADDR as u32, 0)]);
    }

    #[test]
    fn one_cpu() {
        check_tables(1);
    }

    #[test]
    fn two_cpus() {
        check_tables(2);
    }

    #[test]
    fn sixty_four_cpus() {
        check_tables(64);
    }

    #[test]
    fn three_hundred_cpus_use_x2apic_entries() {
        check_tables(300);
    }

    #[test]
    fn xapic_x2apic_boundary() {
        // 255 CPUs: IDs 0..=254, all type 0. 256: ID 255 is the first type 9 entry.
        for num_cpus in [254, 255, 256] {
            check_tables(num_cpus);
        }
    }

    #[test]
    fn kvm_maximum_cpus_fit() {
        // KVM_MAX_VCPUS is 1024 by default on x86 and 4096 with CONFIG_MAXSMP.
        check_tables(1024);
        check_tables(4096);
    }

    #[test]
    fn zero_cpus_is_an_error() {
        let err = write_acpi_tables(&guest_memory(), 0).unwrap_err();
        assert!(matches!(err, AcpiError::NoCpus), "{err}");
    }

    #[test]
    fn too_many_cpus_is_an_error_and_writes_nothing() {
        let mem = guest_memory();
        for num_cpus in [9000, u32::MAX] {
            let err = write_acpi_tables(&mem, num_cpus).unwrap_err();
            match err {
                AcpiError::TablesTooLarge {
                    num_cpus: n,
                    needed,
                    available,
                } => {
                    assert_eq!(n, num_cpus);
                    assert!(needed > available);
                    assert_eq!(available, 0x2_0000);
                }
                other => panic!("unexpected error: {other}"),
            }
        }
        assert!(read(&mem, ACPI_START.0, 0x2_0000).iter().all(|&b| b == 0));
    }

    #[test]
    fn missing_guest_memory_is_an_error() {
        // RAM that stops short of the ACPI area.
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        let err = write_acpi_tables(&mem, 1).unwrap_err();
        assert!(
            matches!(err, AcpiError::Write { table: "RSDP", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0xe0000"), "{err}");
    }

    /// Disassembles every table with ACPICA's `iasl`, which checks lengths, checksums and field
    /// values against its own table definitions.
    #[test]
    fn iasl_accepts_the_tables() {
        if std::process::Command::new("iasl")
            .arg("-v")
            .output()
            .is_err()
        {
            println!("SKIPPED: iasl not installed");
            return;
        }
        let mem = guest_memory();
        let rsdp = write_acpi_tables(&mem, 300).unwrap();
        let tables = parse(&mem, rsdp);
        let dir = tempfile::tempdir().unwrap();
        // Not the RSDP: it has no standard table header, and `iasl -d` rejects it as a file on
        // its own. The parser above checks it.
        let named = [
            ("xsdt", tables.xsdt),
            ("facp", tables.fadt),
            ("dsdt", tables.dsdt),
            ("apic", tables.madt),
        ];
        for (name, bytes) in named {
            let path = dir.path().join(format!("{name}.dat"));
            std::fs::write(&path, &bytes).unwrap();
            let out = std::process::Command::new("iasl")
                .arg("-d")
                .arg(&path)
                .output()
                .unwrap();
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "iasl -d {name}: {log}");
            let dsl = std::fs::read_to_string(dir.path().join(format!("{name}.dsl"))).unwrap();
            // iasl exits 0 even for a bad checksum: it reports problems as a "Firmware Warning"
            // in its log and as comments in the disassembly.
            for marker in ["Invalid", "Incorrect", "****", "Warning", "Error"] {
                assert!(!log.contains(marker), "iasl: {marker:?} for {name}:\n{log}");
                assert!(
                    !dsl.contains(marker),
                    "iasl: {marker:?} in {name}.dsl:\n{dsl}"
                );
            }
        }
    }
}
