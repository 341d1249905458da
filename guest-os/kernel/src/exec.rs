//! execve: replacing a process's program with an ELF executable (static or static-PIE) or a
//! `#!` script, and the Linux initial stack (argv, envp, auxv).
//!
//! Segments are mapped, not copied: each PT_LOAD becomes a file-backed VMA (pages come in on
//! first touch, private and copy-on-write where writable) plus an anonymous VMA for its bss.
//! Programs with an interpreter (PT_INTERP: dynamically linked) are refused with ENOEXEC until the
//! file-system issue brings ld.so support.

use crate::fs::FileRef;
use crate::mm::{Backing, Mm, STACK_BYTES, STACK_TOP, Vma, page_align_up};
use crate::task::Thread;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use hal_pv::user::UserContext;
use noa_linux_abi::elf::{self, ElfInfo};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use noa_linux_abi::stack::{ExecAuxv, StackBuilder};

/// `#!` scripts may name scripts, up to this depth (Linux allows 4 levels too).
const MAX_SCRIPT_DEPTH: usize = 4;
/// Where a static-PIE program is loaded (Linux's ELF_ET_DYN_BASE area).
const PIE_BASE: u64 = 0x5555_5555_4000;

/// What exec prepared: the new memory and the registers to start with.
pub struct Image {
    pub mm: Arc<Mm>,
    pub context: UserContext,
    pub exe: Vec<u8>,
}

/// Loads `path` with `argv`/`envp` into a new memory map (nothing of the caller changes).
pub fn load(path: &[u8], argv: Vec<Vec<u8>>, envp: Vec<Vec<u8>>) -> SysResult<Image> {
    let mut path = path.to_vec();
    let mut argv = argv;
    for _ in 0..=MAX_SCRIPT_DEPTH {
        let file = crate::fs::open_exec(&path)?;
        let mut header = alloc::vec![0u8; elf::HEADER_READ];
        let n = read_full(&file, 0, &mut header)?;
        header.truncate(n);
        if header.starts_with(b"#!") {
            let (interp, arg) =
                noa_linux_abi::shebang::parse_shebang(&header).ok_or(Errno::ENOEXEC)?;
            let new_argv = noa_linux_abi::shebang::script_argv(interp, arg, &path, &argv);
            path = interp.to_vec();
            argv = new_argv;
            continue;
        }
        let info = ElfInfo::parse(&header, file.inode().stat()?.size as u64)
            .map_err(|_| Errno::ENOEXEC)?;
        if info.interp.is_some() {
            crate::klog!(
                "exec: {}: dynamically linked programs are not supported yet",
                path.escape_ascii()
            );
            return Err(Errno::ENOEXEC);
        }
        return load_elf(&path, &file, &info, &argv, &envp);
    }
    Err(Errno::ELOOP)
}

fn read_full(file: &FileRef, offset: u64, buf: &mut [u8]) -> SysResult<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read_at(offset + filled as u64, &mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn load_elf(
    path: &[u8],
    file: &FileRef,
    info: &ElfInfo,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> SysResult<Image> {
    let mm = Mm::new()?;
    let bias = if info.is_pie() {
        info.load_bias(PIE_BASE).map_err(|_| Errno::ENOEXEC)?
    } else {
        0
    };
    let mut brk = 0;
    for seg in &info.loads {
        let prot = seg.prot();
        let start = seg.map_start(bias);
        let file_len = seg.file_map_len();
        if file_len != 0 {
            mm.insert(Vma {
                start,
                end: start + file_len,
                prot,
                shared: false,
                backing: Backing::File {
                    file: file.clone(),
                    offset: seg.file_page_offset(),
                },
            });
        }
        let anon_start = seg.anon_start(bias);
        let anon_end = seg.anon_end(bias);
        if anon_end > anon_start {
            mm.insert(Vma {
                start: anon_start,
                end: anon_end,
                prot,
                shared: false,
                backing: Backing::Anon,
            });
        }
        brk = brk.max(anon_end);
    }
    let mut state = mm.state.lock();
    state.brk_start = brk;
    state.brk = brk;
    drop(state);
    // Stack: reserved whole, present near the top.
    let exec_stack = info.exec_stack();
    mm.insert(Vma {
        start: STACK_TOP - STACK_BYTES,
        end: STACK_TOP,
        prot: PROT_READ | PROT_WRITE | if exec_stack { PROT_EXEC } else { 0 },
        shared: false,
        backing: Backing::Anon,
    });
    let auxv = ExecAuxv {
        phdr: info.phdr_addr(bias).unwrap_or(0),
        phnum: u64::from(info.phnum),
        entry: info.entry(bias),
        hwcap: hwcap(),
        minsigstksz: 2048 + hal_pv::user::vector::area_bytes() as u64,
        ..ExecAuxv::default()
    }
    .to_vec();
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    let builder = StackBuilder::new(STACK_TOP, path, random, &auxv);
    let stack = builder.build(argv, envp)?;
    let stack_low = crate::mm::page_align_down(stack.rsp);
    mm.populate(stack_low, STACK_TOP, true)?;
    // The stack pages are private and present: write them through the new space directly.
    mm.space
        .write(stack.rsp, &stack.bytes)
        .map_err(|_| Errno::EFAULT)?;
    // Zero the tail of each writable segment's last file page (bss that shares the page).
    for seg in &info.loads {
        let zero_from = seg.zero_start(bias);
        if seg.memsz > seg.filesz && seg.prot() & PROT_WRITE != 0 && zero_from % 4096 != 0 {
            let page_end = page_align_up(zero_from).ok_or(Errno::ENOEXEC)?;
            let len = page_end - zero_from;
            mm.populate(zero_from, zero_from + 1, true)?;
            mm.space
                .write(zero_from, &alloc::vec![0u8; len as usize])
                .map_err(|_| Errno::EFAULT)?;
        }
    }
    Ok(Image {
        mm,
        context: UserContext::new(info.entry(bias), stack.rsp),
        exe: path.to_vec(),
    })
}

/// CPUID.1:EDX, what Linux reports as AT_HWCAP on x86.
fn hwcap() -> u64 {
    u64::from(raw_cpuid::cpuid!(1).edx)
}

/// Installs `image` in the calling thread's process (the point of no return of execve).
pub fn install(me: &Arc<Thread>, image: Image, context: &mut UserContext) -> SysResult<()> {
    let process = &me.process;
    // Other threads go away (Linux's de_thread); they see `exiting` at their next trap.
    for thread in process.live_threads() {
        if !Arc::ptr_eq(&thread, me) {
            thread.exiting.store(true, Ordering::Release);
            crate::task::sched::kick(&thread);
        }
    }
    let area = image.mm.alloc_vector_area()?;
    *process.mm.lock() = image.mm.clone();
    image.mm.space.activate();
    me.vector_area.store(area, Ordering::Release);
    me.vector_live_on.store(0, Ordering::Release);
    process.files.lock().close_on_exec();
    {
        let mut actions = process.actions.lock();
        for action in actions.iter_mut() {
            if action.handler != noa_linux_abi::signal::SIG_IGN {
                *action = Default::default();
            }
        }
    }
    *me.alt_stack.lock() = Default::default();
    *process.exe.lock() = image.exe;
    me.clear_child_tid.store(0, Ordering::Release);
    *context = image.context;
    process.vfork_done.store(true, Ordering::Release);
    process.vfork_wait.wake_all();
    Ok(())
}
