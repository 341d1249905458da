//! CPU features the HAL cares about, read once with CPUID (each `cpuid` is an emulated ring-0
//! instruction on PVM hosts, so we ask once and keep the answers).

use raw_cpuid::CpuId;
use spin::Once;

#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub x2apic: bool,
    pub tsc_deadline: bool,
    pub gib_pages: bool,
    /// KVM paravirtual clock (`MSR_KVM_SYSTEM_TIME_NEW`).
    pub kvmclock: bool,
    /// The APIC ID of the CPU that read the features (the boot CPU).
    pub boot_apic_id: u32,
}

static FEATURES: Once<Features> = Once::new();

const KVM_SIGNATURE: &[u8; 12] = b"KVMKVMKVM\0\0\0";
const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;

/// The boot CPU's features (detected on first use).
pub fn get() -> &'static Features {
    FEATURES.call_once(detect)
}

fn detect() -> Features {
    let cpuid = CpuId::new();
    let info = cpuid.get_feature_info();
    let ext = cpuid.get_extended_processor_and_feature_identifiers();
    Features {
        x2apic: info.as_ref().is_some_and(|f| f.has_x2apic()),
        tsc_deadline: info.as_ref().is_some_and(|f| f.has_tsc_deadline()),
        gib_pages: ext.as_ref().is_some_and(|e| e.has_1gib_pages()),
        kvmclock: has_kvmclock(),
        boot_apic_id: info.map_or(0, |f| u32::from(f.initial_local_apic_id())),
    }
}

fn has_kvmclock() -> bool {
    let base = raw_cpuid::cpuid!(0x4000_0000);
    let mut signature = [0u8; 12];
    signature[0..4].copy_from_slice(&base.ebx.to_le_bytes());
    signature[4..8].copy_from_slice(&base.ecx.to_le_bytes());
    signature[8..12].copy_from_slice(&base.edx.to_le_bytes());
    if &signature != KVM_SIGNATURE || base.eax < 0x4000_0001 {
        return false;
    }
    raw_cpuid::cpuid!(0x4000_0001).eax & KVM_FEATURE_CLOCKSOURCE2 != 0
}
