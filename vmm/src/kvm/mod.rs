//! The KVM room: the only place (with guest memory) where the VMM uses `unsafe`. It opens
//! `/dev/kvm`, creates the VM with an in-kernel interrupt controller, registers guest memory and
//! creates the vCPUs; `vcpu` sets their registers and runs them.

pub mod regs;

use anyhow::{Context, bail};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Where KVM may put its TSS for real-mode emulation on VT-x (3 pages, inside the MMIO hole).
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
const KVM_DEVICE: &str = "/dev/kvm";

/// An open KVM with the facts we ask once.
pub struct Hypervisor {
    kvm: Kvm,
    /// KVM_CAP_MAX_VCPUS.
    pub max_vcpus: u32,
}

impl Hypervisor {
    /// Opens /dev/kvm; the error names the device and what to check.
    pub fn open() -> anyhow::Result<Self> {
        let kvm = Kvm::new().map_err(|e| {
            let hint = match e.errno() {
                libc::ENOENT => {
                    "is KVM enabled on this host? (modprobe kvm_intel, kvm_amd or kvm_pvm)"
                }
                libc::EACCES | libc::EPERM => "add yourself to the 'kvm' group or run as root",
                _ => "",
            };
            anyhow::anyhow!(
                "cannot open {KVM_DEVICE}: {}{}{hint}",
                e,
                if hint.is_empty() { "" } else { "; " }
            )
        })?;
        let max_vcpus = kvm.get_max_vcpus() as u32;
        Ok(Hypervisor { kvm, max_vcpus })
    }

    /// Creates a VM over `mem` with an in-kernel IOAPIC + local APICs.
    pub fn create_vm(&self, mem: &GuestMemoryMmap) -> anyhow::Result<VmFd> {
        let vm = self.kvm.create_vm().context("KVM_CREATE_VM failed")?;
        vm.set_tss_address(KVM_TSS_ADDRESS)
            .context("KVM_SET_TSS_ADDR failed")?;
        vm.create_irq_chip().context("KVM_CREATE_IRQCHIP failed")?;
        for (slot, region) in mem.iter().enumerate() {
            let host = mem
                .get_host_address(region.start_addr())
                .context("guest memory region without host mapping")?;
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the region is a live mapping owned by `mem`, which outlives the VM (both
            // live until the process exits); slots do not overlap.
            unsafe { vm.set_user_memory_region(region) }
                .context("KVM_SET_USER_MEMORY_REGION failed")?;
        }
        Ok(vm)
    }

    /// The CPUID KVM supports, asked once (the call costs ~1 ms) and shared by all vCPUs.
    pub fn supported_cpuid(&self) -> anyhow::Result<CpuId> {
        self.kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .context("KVM_GET_SUPPORTED_CPUID failed")
    }

    /// Checks a vCPU count against this KVM.
    pub fn check_vcpus(&self, cpus: u32) -> anyhow::Result<()> {
        if cpus > self.max_vcpus {
            bail!(
                "--cpus {cpus}: this KVM allows at most {} vCPUs",
                self.max_vcpus
            );
        }
        Ok(())
    }
}

/// Creates vCPU `id` with `cpuid` (its APIC ID patched in).
pub fn create_vcpu(vm: &VmFd, id: u32, cpuid: &CpuId) -> anyhow::Result<VcpuFd> {
    let vcpu = vm
        .create_vcpu(u64::from(id))
        .with_context(|| format!("KVM_CREATE_VCPU {id} failed"))?;
    let mut cpuid = cpuid.clone();
    regs::patch_cpuid(&mut cpuid, id);
    vcpu.set_cpuid2(&cpuid)
        .with_context(|| format!("KVM_SET_CPUID2 on vCPU {id} failed"))?;
    Ok(vcpu)
}
