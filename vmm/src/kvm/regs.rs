//! vCPU register state: the PVH entry state of the boot CPU, the 64-bit start of the other CPUs
//! (docs/boot-protocol.md), the CPUID each sees, and a register dump for crash reports.

use anyhow::Context;
use kvm_bindings::{CpuId, KVM_MP_STATE_RUNNABLE, kvm_mp_state, kvm_segment};
use kvm_ioctls::VcpuFd;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// Gives vCPU `id` its own APIC ID in CPUID (leaf 1 EBX[31:24], leaves 0xB/0x1F EDX).
pub fn patch_cpuid(cpuid: &mut CpuId, id: u32) {
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            1 => entry.ebx = (entry.ebx & 0x00ff_ffff) | (id.min(255) << 24),
            0xb | 0x1f => entry.edx = id,
            _ => {}
        }
    }
}

fn segment(selector: u16, code: bool, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 0,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long && code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// The PVH entry state: 32-bit protected mode, paging off, EBX = start info.
pub fn set_pvh_entry(vcpu: &VcpuFd, entry: u64, start_info: u64) -> anyhow::Result<()> {
    let mut sregs = vcpu.get_sregs().context("KVM_GET_SREGS failed")?;
    sregs.cs = segment(0x08, true, false);
    let data = segment(0x10, false, false);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr0 = CR0_PE | CR0_ET;
    sregs.cr4 = 0;
    sregs.efer = 0;
    vcpu.set_sregs(&sregs).context("KVM_SET_SREGS failed")?;
    let regs = kvm_bindings::kvm_regs {
        rip: entry,
        rbx: start_info,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).context("KVM_SET_REGS failed")
}

/// What the guest asked for in an `ApStart` block (validated by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApStart {
    pub cr3: u64,
    pub rip: u64,
    pub rsp: u64,
    pub arg: u64,
}

/// Starts an application processor directly in 64-bit long mode.
pub fn set_long_mode_entry(vcpu: &VcpuFd, start: &ApStart) -> anyhow::Result<()> {
    let mut sregs = vcpu.get_sregs().context("KVM_GET_SREGS failed")?;
    sregs.cs = segment(0x08, true, true);
    let data = segment(0x10, false, true);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = start.cr3;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    sregs.efer = EFER_LME | EFER_LMA | EFER_NXE;
    vcpu.set_sregs(&sregs).context("KVM_SET_SREGS failed")?;
    let regs = kvm_bindings::kvm_regs {
        rip: start.rip,
        rsp: start.rsp,
        rdi: start.arg,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).context("KVM_SET_REGS failed")?;
    // With the in-kernel APIC, KVM parks non-boot vCPUs until INIT/SIPI; we start them ourselves.
    vcpu.set_mp_state(kvm_mp_state {
        mp_state: KVM_MP_STATE_RUNNABLE,
    })
    .context("KVM_SET_MP_STATE failed")
}

/// A register dump for crash reports (several lines).
pub fn dump(vcpu: &VcpuFd) -> String {
    let (Ok(r), Ok(s)) = (vcpu.get_regs(), vcpu.get_sregs()) else {
        return "registers unavailable".to_string();
    };
    format!(
        "rip={:#018x} rsp={:#018x} rflags={:#x} cs={:#x} ss={:#x}\n\
         rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
         rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}\n\
         r9 ={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}\n\
         r13={:#018x} r14={:#018x} r15={:#018x}\n\
         cr0={:#x} cr2={:#018x} cr3={:#x} cr4={:#x} efer={:#x}",
        r.rip,
        r.rsp,
        r.rflags,
        s.cs.selector,
        s.ss.selector,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
        s.cr0,
        s.cr2,
        s.cr3,
        s.cr4,
        s.efer
    )
}
