//! `/proc/cpuinfo`: a block per online CPU in Linux's x86 layout (`processor`, `vendor_id`,
//! `model name`, `flags`, …; programs count the `processor` lines), read from CPUID. The flag
//! names are Linux's for the CPUID bits it shows (its synthetic flags, such as `constant_tsc`,
//! are not made up here).
//!
//! CPUID is a trap in the guest (tens of µs each) and the answer does not change: the text is
//! built once, at the first read, and kept.

use super::node::Text;
use super::text::TextBuf;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use noa_linux_abi::errno::SysResult;
use raw_cpuid::{CpuIdResult, cpuid};
use spin::Once;

static TEXT: Once<Text> = Once::new();

pub fn generate() -> SysResult<Text> {
    Ok(TEXT.call_once(|| Arc::new(build())).clone())
}

/// Which CPUID register a flag table reads.
#[derive(Clone, Copy)]
enum Reg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

/// (leaf, subleaf, register, [(bit, name)]) in Linux's word order.
type FlagTable = (u32, u32, Reg, &'static [(u8, &'static str)]);

#[rustfmt::skip]
const FLAGS: &[FlagTable] = &[
    (1, 0, Reg::Edx, &[
        (0, "fpu"), (1, "vme"), (2, "de"), (3, "pse"), (4, "tsc"), (5, "msr"), (6, "pae"),
        (7, "mce"), (8, "cx8"), (9, "apic"), (11, "sep"), (12, "mtrr"), (13, "pge"),
        (14, "mca"), (15, "cmov"), (16, "pat"), (17, "pse36"), (18, "pn"), (19, "clflush"),
        (21, "dts"), (22, "acpi"), (23, "mmx"), (24, "fxsr"), (25, "sse"), (26, "sse2"),
        (27, "ss"), (28, "ht"), (29, "tm"), (30, "ia64"), (31, "pbe"),
    ]),
    (0x8000_0001, 0, Reg::Edx, &[
        (11, "syscall"), (19, "mp"), (20, "nx"), (22, "mmxext"), (25, "fxsr_opt"),
        (26, "pdpe1gb"), (27, "rdtscp"), (29, "lm"), (30, "3dnowext"), (31, "3dnow"),
    ]),
    (1, 0, Reg::Ecx, &[
        (0, "pni"), (1, "pclmulqdq"), (2, "dtes64"), (3, "monitor"), (4, "ds_cpl"), (5, "vmx"),
        (6, "smx"), (7, "est"), (8, "tm2"), (9, "ssse3"), (10, "cid"), (11, "sdbg"),
        (12, "fma"), (13, "cx16"), (14, "xtpr"), (15, "pdcm"), (17, "pcid"), (18, "dca"),
        (19, "sse4_1"), (20, "sse4_2"), (21, "x2apic"), (22, "movbe"), (23, "popcnt"),
        (24, "tsc_deadline_timer"), (25, "aes"), (26, "xsave"), (28, "avx"), (29, "f16c"),
        (30, "rdrand"), (31, "hypervisor"),
    ]),
    (0x8000_0001, 0, Reg::Ecx, &[
        (0, "lahf_lm"), (1, "cmp_legacy"), (2, "svm"), (3, "extapic"), (4, "cr8_legacy"),
        (5, "abm"), (6, "sse4a"), (7, "misalignsse"), (8, "3dnowprefetch"), (9, "osvw"),
        (10, "ibs"), (11, "xop"), (12, "skinit"), (13, "wdt"), (15, "lwp"), (16, "fma4"),
        (17, "tce"), (19, "nodeid_msr"), (21, "tbm"), (22, "topoext"), (23, "perfctr_core"),
        (24, "perfctr_nb"), (26, "bpext"), (27, "ptsc"), (28, "perfctr_llc"), (29, "mwaitx"),
    ]),
    (7, 0, Reg::Ebx, &[
        (0, "fsgsbase"), (1, "tsc_adjust"), (2, "sgx"), (3, "bmi1"), (4, "hle"), (5, "avx2"),
        (7, "smep"), (8, "bmi2"), (9, "erms"), (10, "invpcid"), (11, "rtm"), (12, "cqm"),
        (14, "mpx"), (15, "rdt_a"), (16, "avx512f"), (17, "avx512dq"), (18, "rdseed"),
        (19, "adx"), (20, "smap"), (21, "avx512ifma"), (23, "clflushopt"), (24, "clwb"),
        (25, "intel_pt"), (26, "avx512pf"), (27, "avx512er"), (28, "avx512cd"),
        (29, "sha_ni"), (30, "avx512bw"), (31, "avx512vl"),
    ]),
    (0xd, 1, Reg::Eax, &[(0, "xsaveopt"), (1, "xsavec"), (2, "xgetbv1"), (3, "xsaves")]),
    (7, 1, Reg::Eax, &[(4, "avx_vnni"), (5, "avx512_bf16")]),
    (7, 0, Reg::Ecx, &[
        (1, "avx512vbmi"), (2, "umip"), (3, "pku"), (4, "ospke"), (5, "waitpkg"),
        (6, "avx512_vbmi2"), (8, "gfni"), (9, "vaes"), (10, "vpclmulqdq"), (11, "avx512_vnni"),
        (12, "avx512_bitalg"), (13, "tme"), (14, "avx512_vpopcntdq"), (16, "la57"),
        (22, "rdpid"), (24, "bus_lock_detect"), (25, "cldemote"), (27, "movdiri"),
        (28, "movdir64b"), (29, "enqcmd"), (30, "sgx_lc"),
    ]),
    (7, 0, Reg::Edx, &[
        (2, "avx512_4vnniw"), (3, "avx512_4fmaps"), (4, "fsrm"), (8, "avx512_vp2intersect"),
        (9, "srbds_ctrl"), (10, "md_clear"), (14, "serialize"), (16, "tsxldtrk"),
        (18, "pconfig"), (19, "arch_lbr"), (20, "ibt"), (22, "amx_bf16"), (23, "avx512_fp16"),
        (24, "amx_tile"), (25, "amx_int8"), (28, "flush_l1d"), (29, "arch_capabilities"),
    ]),
];

fn register(result: CpuIdResult, reg: Reg) -> u32 {
    match reg {
        Reg::Eax => result.eax,
        Reg::Ebx => result.ebx,
        Reg::Ecx => result.ecx,
        Reg::Edx => result.edx,
    }
}

/// The 12 or 16 bytes of registers as text, NULs and surrounding spaces dropped.
fn text_of(words: &[u32]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let text = String::from_utf8_lossy(&bytes);
    text.trim_matches(|c: char| c == '\0' || c == ' ').into()
}

fn build() -> Vec<u8> {
    let leaf0 = cpuid!(0);
    let max_leaf = leaf0.eax;
    let max_extended = cpuid!(0x8000_0000).eax;
    let available = |leaf: u32| {
        if leaf >= 0x8000_0000 {
            leaf <= max_extended
        } else {
            leaf <= max_leaf
        }
    };
    let query = |leaf: u32, sub: u32| {
        if available(leaf) {
            cpuid!(leaf, sub)
        } else {
            CpuIdResult {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            }
        }
    };
    let vendor = text_of(&[leaf0.ebx, leaf0.edx, leaf0.ecx]);
    let signature = query(1, 0);
    let base_family = (signature.eax >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((signature.eax >> 20) & 0xff)
    } else {
        base_family
    };
    let mut model = (signature.eax >> 4) & 0xf;
    if family >= 6 {
        model += ((signature.eax >> 16) & 0xf) << 4;
    }
    let brand: Vec<u32> = (0x8000_0002..=0x8000_0004u32)
        .flat_map(|leaf| {
            let r = query(leaf, 0);
            [r.eax, r.ebx, r.ecx, r.edx]
        })
        .collect();
    let mut model_name = text_of(&brand);
    if model_name.is_empty() {
        // What Linux shows without a brand string (KVM leaves those leaves to the VMM).
        model_name = "unknown".into();
    }
    let clflush = ((signature.ebx >> 8) & 0xff) * 8;
    let l2_kb = query(0x8000_0006, 0).ecx >> 16;
    let sizes = query(0x8000_0008, 0).eax;
    let mut flags = String::new();
    for &(leaf, sub, reg, names) in FLAGS {
        let value = register(query(leaf, sub), reg);
        for &(bit, name) in names {
            if value & (1 << bit) != 0 {
                if !flags.is_empty() {
                    flags.push(' ');
                }
                flags.push_str(name);
            }
        }
    }
    let hz = hal_pv::time::tsc_hz();
    let cpus = super::task_info::cpu_count();
    let apic_ids = hal_pv::smp::cpu_apic_ids();

    let mut out = TextBuf::with_capacity(cpus as usize * (700 + flags.len()));
    for cpu in 0..cpus {
        let apic = u64::from(apic_ids.get(cpu as usize).copied().unwrap_or(cpu));
        let cpu = u64::from(cpu);
        out.str("processor\t: ")
            .num(cpu)
            .str("\nvendor_id\t: ")
            .str(&vendor);
        out.str("\ncpu family\t: ")
            .num(family.into())
            .str("\nmodel\t\t: ")
            .num(model.into());
        out.str("\nmodel name\t: ").str(&model_name);
        out.str("\nstepping\t: ").num((signature.eax & 0xf).into());
        out.str("\ncpu MHz\t\t: ")
            .num(hz / 1_000_000)
            .byte(b'.')
            .num_zeroed(hz / 1_000 % 1_000, 3);
        out.str("\ncache size\t: ")
            .num(l2_kb.into())
            .str(" KB\nphysical id\t: 0\nsiblings\t: ");
        out.num(cpus.into())
            .str("\ncore id\t\t: ")
            .num(cpu)
            .str("\ncpu cores\t: ");
        out.num(cpus.into())
            .str("\napicid\t\t: ")
            .num(apic)
            .str("\ninitial apicid\t: ");
        out.num(apic)
            .str("\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: ");
        out.num(max_leaf.into())
            .str("\nwp\t\t: yes\nflags\t\t: ")
            .str(&flags);
        out.str("\nbugs\t\t:\nbogomips\t: ")
            .num(2 * hz / 1_000_000)
            .byte(b'.');
        out.num_zeroed(2 * hz / 10_000 % 100, 2)
            .str("\nclflush size\t: ")
            .num(clflush.into());
        out.str("\ncache_alignment\t: ")
            .num(clflush.into())
            .str("\naddress sizes\t: ");
        out.num((sizes & 0xff).into()).str(" bits physical, ");
        out.num(((sizes >> 8) & 0xff).into())
            .str(" bits virtual\npower management:\n\n");
    }
    out.into_bytes()
}
