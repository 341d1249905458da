//! The NOA paravirtual ports (docs/boot-protocol.md): power-off with an exit code on 0xf4, the
//! VMM signature read from 0xf4, "start this CPU in 64-bit mode" on 0xf8, the host's requests
//! to the guest on 0xfc ([`requests`]), and memory copies on 0xf0 ([`copy`]).
//!
//! The `ApStart` block is guest memory, hence hostile: every field is checked before a vCPU is
//! started with it.

pub mod copy;
pub mod requests;

use crate::kvm::regs::ApStart;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub const EXIT_PORT: u16 = 0xf4;
pub const AP_START_PORT: u16 = 0xf8;
pub const SIGNATURE: u32 = 0x4E4F_4101;
const AP_START_LEN: usize = 40;

/// Why the guest powered off (bits 8..15 of the exit-port value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOff {
    /// A normal power-off with the guest's exit code.
    Normal(u8),
    /// The kernel panicked (its report is on the console).
    KernelPanic,
    /// A CPU exception in the kernel (its report is on the console).
    CpuException,
    /// A reason code we don't know.
    Unknown(u8),
}

impl PowerOff {
    pub fn decode(value: u32) -> PowerOff {
        match (value >> 8) as u8 {
            0 => PowerOff::Normal(value as u8),
            1 => PowerOff::KernelPanic,
            2 => PowerOff::CpuException,
            other => PowerOff::Unknown(other),
        }
    }
}

/// Reads and checks the `ApStart` block at `addr`; returns the target APIC ID and start state.
pub fn read_ap_start(
    mem: &GuestMemoryMmap,
    addr: u64,
    mem_bytes: u64,
) -> Result<(u32, ApStart), String> {
    let mut block = [0u8; AP_START_LEN];
    if !addr.is_multiple_of(8) {
        return Err(format!("ApStart block at {addr:#x} is not 8-byte aligned"));
    }
    mem.read_slice(&mut block, GuestAddress(addr))
        .map_err(|_| format!("ApStart block at {addr:#x} is outside guest memory"))?;
    let field = |at: usize| u64::from_le_bytes(block[at..at + 8].try_into().expect("8 bytes"));
    let apic_id = u32::from_le_bytes(block[0..4].try_into().expect("4 bytes"));
    let start = ApStart {
        cr3: field(8),
        rip: field(16),
        rsp: field(24),
        arg: field(32),
    };
    let ram = crate::memory::ram_ranges(mem_bytes);
    let in_ram = |addr: u64| {
        ram.iter()
            .any(|(start, len)| addr >= start.0 && addr < start.0 + len)
    };
    if !start.cr3.is_multiple_of(4096) || !in_ram(start.cr3) {
        return Err(format!(
            "ApStart cr3 {:#x} is not a page of guest RAM",
            start.cr3
        ));
    }
    if !is_canonical(start.rip) || !is_canonical(start.rsp) {
        return Err(format!(
            "ApStart rip {:#x} / rsp {:#x} is not canonical",
            start.rip, start.rsp
        ));
    }
    Ok((apic_id, start))
}

fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    fn write_block(mem: &GuestMemoryMmap, at: u64, cr3: u64, rip: u64) {
        let mut block = [0u8; AP_START_LEN];
        block[0..4].copy_from_slice(&3u32.to_le_bytes());
        block[8..16].copy_from_slice(&cr3.to_le_bytes());
        block[16..24].copy_from_slice(&rip.to_le_bytes());
        block[24..32].copy_from_slice(&0xffff_8000_0001_0000u64.to_le_bytes());
        mem.write_slice(&block, GuestAddress(at)).unwrap();
    }

    #[test]
    fn decodes_power_off_reasons() {
        assert_eq!(PowerOff::decode(7), PowerOff::Normal(7));
        assert_eq!(PowerOff::decode(0x17d), PowerOff::KernelPanic);
        assert_eq!(PowerOff::decode(0x27d), PowerOff::CpuException);
        assert_eq!(PowerOff::decode(0x900), PowerOff::Unknown(9));
    }

    #[test]
    fn accepts_a_good_block() {
        let mem = memory();
        write_block(&mem, 0x1000, 0x2000, 0xffff_ffff_8020_0000);
        let (apic, start) = read_ap_start(&mem, 0x1000, 1 << 20).unwrap();
        assert_eq!(apic, 3);
        assert_eq!(start.cr3, 0x2000);
    }

    #[test]
    fn rejects_hostile_blocks() {
        let mem = memory();
        assert!(
            read_ap_start(&mem, (1 << 20) - 8, 1 << 20)
                .unwrap_err()
                .contains("outside guest memory")
        );
        assert!(
            read_ap_start(&mem, 0x1004, 1 << 20)
                .unwrap_err()
                .contains("aligned")
        );
        write_block(&mem, 0x1000, 0x2001, 0x1000);
        assert!(
            read_ap_start(&mem, 0x1000, 1 << 20)
                .unwrap_err()
                .contains("cr3")
        );
        write_block(&mem, 0x1000, 0x20_0000_0000, 0x1000);
        assert!(
            read_ap_start(&mem, 0x1000, 1 << 20)
                .unwrap_err()
                .contains("cr3")
        );
        write_block(&mem, 0x1000, 0x2000, 0x0000_8000_0000_0000);
        assert!(
            read_ap_start(&mem, 0x1000, 1 << 20)
                .unwrap_err()
                .contains("canonical")
        );
    }
}
