//! Vector state (x87, SSE, AVX, AVX-512), saved and restored from ring 3.
//!
//! Ring 0 must never execute SSE or the xsave family on PVM hosts (they kill the VM), and the
//! kernel is soft-float, so between traps the vector registers still hold the interrupted user
//! thread's state — the host preserves them across emulated ring-0 code (FIELD-NOTES). Only a
//! switch to another thread needs a save and a restore, and both run in ring 3: a trampoline page,
//! part of the kernel image, is mapped read-only and executable at [`super::TRAMPOLINE_VA`] in
//! every address space. Its code is `xsave64 [rdi]; syscall` and `xrstor64 [rdi]; syscall`
//! (`fxsave64`/`fxrstor64` where the CPU has no XSAVE, e.g. QEMU's default CPU); the kernel runs
//! it with RDI pointing at a save area in the thread's own address space, and the `syscall` brings
//! it back. A corrupt area makes `xrstor` fault in ring 3, which the caller sees as an error.
//!
//! On VT-x hosts a plain ring-0 `xsave` would be cheaper; the trampoline is right on both.

use super::{Trap, UserContext};
use raw_cpuid::CpuId;
use spin::Once;

core::arch::global_asm!(
    r#"
    .pushsection .text.hal_user_trampoline, "ax"
    .balign 4096
    .globl hal_user_trampoline
hal_user_trampoline:
    /* +0: xsave64 [rdi]; syscall */
    .byte 0x48, 0x0f, 0xae, 0x27, 0x0f, 0x05
    .balign 16
    /* +16: xrstor64 [rdi]; syscall */
    .byte 0x48, 0x0f, 0xae, 0x2f, 0x0f, 0x05
    .balign 16
    /* +32: fxsave64 [rdi]; syscall */
    .byte 0x48, 0x0f, 0xae, 0x07, 0x0f, 0x05
    .balign 16
    /* +48: fxrstor64 [rdi]; syscall */
    .byte 0x48, 0x0f, 0xae, 0x0f, 0x0f, 0x05
    .balign 4096
    .popsection
"#
);

unsafe extern "C" {
    static hal_user_trampoline: u8;
}

const SAVE_XSAVE: u64 = 0;
const RESTORE_XSAVE: u64 = 16;
const SAVE_FXSAVE: u64 = 32;
const RESTORE_FXSAVE: u64 = 48;
/// Each trampoline entry is 6 bytes: the instruction (4) and `syscall` (2).
const ENTRY_BYTES: u64 = 6;
/// x87 | SSE | AVX | AVX-512 opmask, ZMM_Hi256, Hi16_ZMM.
const WANTED_XCR0: u64 = 0xe7;
const CR4_OSXSAVE: usize = 1 << 18;

struct Layout {
    xsave: bool,
    xcr0: u64,
    area_bytes: usize,
}

static LAYOUT: Once<Layout> = Once::new();

fn layout() -> &'static Layout {
    LAYOUT.call_once(|| {
        let cpuid = CpuId::new();
        let xsave = cpuid.get_feature_info().is_some_and(|f| f.has_xsave());
        if !xsave {
            return Layout {
                xsave: false,
                xcr0: 0,
                area_bytes: 512,
            };
        }
        let leaf = raw_cpuid::cpuid!(0xd, 0);
        let supported = u64::from(leaf.eax) | (u64::from(leaf.edx) << 32);
        let xcr0 = supported & WANTED_XCR0;
        // EBX (size for the enabled features) is read after XCR0 is set; ECX is the size for
        // everything supported, an upper bound good before that.
        Layout {
            xsave: true,
            xcr0,
            area_bytes: leaf.ecx as usize,
        }
    })
}

/// The physical page of the trampoline (mapped by every `AddressSpace`).
pub(crate) fn trampoline_phys() -> crate::mm::PhysAddr {
    // SAFETY: only the symbol's address is taken.
    crate::mm::virt_to_phys(unsafe { &hal_user_trampoline as *const u8 as u64 })
}

/// CR4.OSXSAVE and XCR0 on this CPU (ring-3 AVX needs both).
pub(super) fn init_this_cpu() {
    let layout = layout();
    if !layout.xsave {
        return;
    }
    // SAFETY: enabling XSAVE and the state components the CPU supports; `xsetbv` works in ring 0
    // on PVM hosts (FIELD-NOTES), unlike `xsave` itself.
    unsafe {
        x86::controlregs::cr4_write(x86::controlregs::Cr4::from_bits_truncate(
            x86::controlregs::cr4().bits() | CR4_OSXSAVE,
        ));
        core::arch::asm!(
            "xsetbv",
            in("ecx") 0u32,
            in("eax") layout.xcr0 as u32,
            in("edx") (layout.xcr0 >> 32) as u32,
            options(nomem, nostack)
        );
    }
}

/// Bytes a save area needs (it must be 64-byte aligned).
pub fn area_bytes() -> usize {
    layout().area_bytes
}

/// The first 32 bytes of a fresh thread's save area (the rest zero): the default x87 control
/// word (0x37f) and MXCSR (0x1f80), the state a new Linux thread starts with.
pub fn initial_area_prefix() -> [u8; 32] {
    let mut prefix = [0u8; 32];
    prefix[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    prefix[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    prefix[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    prefix
}

/// The vector state could not be saved or restored (a bad area address or a corrupt area): the
/// trap the trampoline ended with instead of its `syscall`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AreaFault(pub Trap);

/// Saves this CPU's vector registers to user address `area` in the loaded address space.
pub fn save(area: u64) -> Result<(), AreaFault> {
    let entry = if layout().xsave {
        SAVE_XSAVE
    } else {
        SAVE_FXSAVE
    };
    run_trampoline(entry, area)
}

/// Loads this CPU's vector registers from user address `area` in the loaded address space.
pub fn restore(area: u64) -> Result<(), AreaFault> {
    let entry = if layout().xsave {
        RESTORE_XSAVE
    } else {
        RESTORE_FXSAVE
    };
    run_trampoline(entry, area)
}

fn run_trampoline(offset: u64, area: u64) -> Result<(), AreaFault> {
    let entry = super::TRAMPOLINE_VA + offset;
    let mut context = UserContext::new(entry, 0);
    context.set_args(area, 0, 0);
    context.set_rax_rdx(u64::from(u32::MAX), u64::from(u32::MAX));
    loop {
        match context.run() {
            Trap::Interrupt => continue,
            Trap::Syscall if context.rip() == entry + ENTRY_BYTES => return Ok(()),
            other => return Err(AreaFault(other)),
        }
    }
}
