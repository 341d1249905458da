//! The IOAPIC (at 0xfec00000, as the MADT says for both our VMM and QEMU): routes a device's
//! interrupt line (GSI) to a vector on one CPU. Lines are edge-triggered: virtio-mmio devices
//! raise theirs through KVM irqfds (and QEMU's microvm wires them the same way).

use crate::mm::PhysAddr;

const IOAPIC_PHYS: u64 = 0xfec0_0000;
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REDIRECTION_BASE: u32 = 0x10;

fn write(register: u32, value: u32) {
    // SAFETY: the IOAPIC page is mapped uncached in the direct map (boot/pvh.rs); the
    // select-then-write pair is done under the caller's exclusive use (boot CPU, at probe time).
    unsafe {
        (PhysAddr(IOAPIC_PHYS + IOREGSEL).to_virt() as *mut u32).write_volatile(register);
        (PhysAddr(IOAPIC_PHYS + IOWIN).to_virt() as *mut u32).write_volatile(value);
    }
}

/// Sends line `gsi` to `vector` on the CPU with `apic_id`: fixed delivery, physical destination,
/// edge-triggered, active high, unmasked.
pub fn route(gsi: u32, vector: u8, apic_id: u32) {
    let entry = REDIRECTION_BASE + 2 * gsi;
    write(entry + 1, apic_id << 24);
    write(entry, u32::from(vector));
}
