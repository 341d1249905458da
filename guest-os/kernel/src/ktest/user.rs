//! Kernel tests of user mode on the real CPU: ring 3 in a fresh address space, system calls by
//! whichever entry this host uses, page faults with their address, and vector state saved and
//! restored through the ring-3 trampoline.

use super::{TestResult, ensure};
use hal_pv::mm::address_space::{AddressSpace, PageFlags};
use hal_pv::mm::frames::Page;
use hal_pv::user::{Trap, UserContext, vector};

const CODE_VA: u64 = 0x40_0000;
const DATA_VA: u64 = 0x60_0000;

/// A space with `code` at CODE_VA (read+exec) and one writable data page at DATA_VA.
fn space_with(code: &[u8]) -> Result<alloc::sync::Arc<AddressSpace>, &'static str> {
    let space = AddressSpace::new().ok_or("no memory for an address space")?;
    let text = Page::new_zeroed().ok_or("no memory")?;
    text.write(0, code);
    let exec = PageFlags {
        exec: true,
        ..Default::default()
    };
    space.map(CODE_VA, text, exec).map_err(|_| "map code")?;
    let data = Page::new_zeroed().ok_or("no memory")?;
    let rw = PageFlags {
        write: true,
        ..Default::default()
    };
    space.map(DATA_VA, data, rw).map_err(|_| "map data")?;
    space.activate();
    Ok(space)
}

pub fn syscall_round_trip() -> TestResult {
    // mov eax, 39; syscall; mov rdi, rax; mov eax, 60; syscall
    let code = [
        0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0x48, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05,
    ];
    let _space = space_with(&code)?;
    let mut context = UserContext::new(CODE_VA, DATA_VA + 4096);
    let result = (|| {
        // An interrupt may come first (a slow TCG run on a busy host): run on through it.
        let mut trap = context.run();
        while trap == Trap::Interrupt {
            trap = context.run();
        }
        ensure!(
            trap == Trap::Syscall,
            "first trap {trap:?}, not a system call"
        );
        let (nr, _) = context.syscall_args();
        ensure!(nr == 39, "syscall number {nr}, wanted 39");
        ensure!(
            context.rip() == CODE_VA + 7,
            "return rip {:#x}",
            context.rip()
        );
        context.set_return(4242);
        let mut trap = context.run();
        while trap == Trap::Interrupt {
            trap = context.run();
        }
        ensure!(trap == Trap::Syscall, "second trap {trap:?}");
        let (nr, args) = context.syscall_args();
        ensure!(nr == 60 && args[0] == 4242, "exit({}) nr {nr}", args[0]);
        Ok(())
    })();
    hal_pv::mm::address_space::activate_kernel_space();
    result
}

pub fn page_fault_reports_address() -> TestResult {
    // mov rax, 0x123458; mov [rax], rax
    let code = [
        0x48, 0xb8, 0x58, 0x34, 0x12, 0, 0, 0, 0, 0, 0x48, 0x89, 0x00,
    ];
    let _space = space_with(&code)?;
    let mut context = UserContext::new(CODE_VA, DATA_VA + 4096);
    let trap = context.run();
    hal_pv::mm::address_space::activate_kernel_space();
    match trap {
        Trap::Exception {
            vector: 14,
            addr,
            error,
        } => {
            ensure!(addr == 0x12_3458, "cr2 {addr:#x}");
            ensure!(
                error & 0b110 == 0b110,
                "error code {error:#x}: not a user write"
            );
            Ok(())
        }
        other => Err(alloc::format!("trap {other:?}").into()),
    }
}

pub fn vector_state_survives_a_round_trip() -> TestResult {
    // movq xmm3, rdi; syscall; movq rax, xmm3; syscall
    let code = [
        0x66, 0x48, 0x0f, 0x6e, 0xdf, 0x0f, 0x05, 0x66, 0x48, 0x0f, 0x7e, 0xd8, 0x0f, 0x05,
    ];
    let _space = space_with(&code)?;
    let area = DATA_VA;
    let result = (|| {
        let mut context = UserContext::new(CODE_VA, DATA_VA + 4096);
        context.set_args(0x1122_3344_5566_7788, 0, 0);
        ensure!(context.run() == Trap::Syscall, "no first syscall");
        vector::save(area).map_err(|_| "save faulted")?;
        // Clobber xmm3 through a second thread of execution: set it to 0 and save nothing.
        let mut other = UserContext::new(CODE_VA, DATA_VA + 4096);
        other.set_args(0, 0, 0);
        ensure!(other.run() == Trap::Syscall, "no clobber syscall");
        vector::restore(area).map_err(|_| "restore faulted")?;
        let mut trap = context.run();
        while trap == Trap::Interrupt {
            trap = context.run();
        }
        ensure!(trap == Trap::Syscall, "no second syscall: {trap:?}");
        let (rax, _) = context.syscall_args();
        ensure!(rax == 0x1122_3344_5566_7788, "xmm3 came back as {rax:#x}");
        ensure!(
            vector::restore(0x7000_0000).is_err(),
            "restore from an unmapped area passed"
        );
        Ok(())
    })();
    hal_pv::mm::address_space::activate_kernel_space();
    result
}
