//! execve: replacing a process's program with an ELF executable — static, static-PIE, or
//! dynamically linked (`PT_INTERP`: glibc's `ld.so` is loaded too and started first) — or a `#!`
//! script, and the Linux initial stack (argv, envp, auxv).
//!
//! Layout, as Linux's `load_elf_binary`: an `ET_EXEC` program at its own addresses, an `ET_DYN`
//! one (PIE, static-PIE) at `ELF_ET_DYN_BASE` (fixed: no address randomisation here); the
//! interpreter where mmap would place a mapping of its size (top down in the mmap area); the
//! brk heap right after the program. The auxiliary vector describes the *program* (`AT_PHDR`,
//! `AT_PHNUM`, `AT_ENTRY`) and gives the interpreter's base as `AT_BASE`; execution starts at
//! the interpreter's entry, which relocates itself, loads the libraries and jumps to `AT_ENTRY`.
//! There is no vDSO, so no `AT_SYSINFO_EHDR` (glibc then makes real system calls for the time).
//!
//! Every header is hostile input, refused with Linux's errnos: ENOEXEC for malformed headers
//! (two `PT_INTERP`s, a path not NUL-terminated or longer than `PATH_MAX`, overlapping or unordered
//! `PT_LOAD`s), EIO where Linux's read of the headers or of the path comes up short, EINVAL for
//! segments that cannot be placed (outside user space, over the stack, below `vm.mmap_min_addr`,
//! or an `ET_EXEC` interpreter over the program), and ELIBBAD for an interpreter that is not a
//! plain ELF image (bad magic, machine or program headers, or one that names an interpreter
//! itself — Linux would map it; nothing good comes of that).
//! Mapping one image is `elf_map.rs`.

mod elf_map;

use crate::fs::FileRef;
use crate::mm::{Mm, STACK_BYTES, STACK_TOP, Vma};
use crate::task::Thread;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use hal_pv::user::UserContext;
use noa_linux_abi::elf::{ELF_ET_DYN_BASE, ElfError, ElfInfo};
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use noa_linux_abi::stack::{ExecAuxv, StackBuilder};

/// `#!` scripts may name scripts, up to this depth (Linux allows 4 levels too).
const MAX_SCRIPT_DEPTH: usize = 4;
/// Where an `ET_DYN` program (PIE or static-PIE) is loaded: Linux's `ELF_ET_DYN_BASE`.
const PIE_BASE: u64 = ELF_ET_DYN_BASE;
/// Nothing is mapped below this (Linux's default `vm.mmap_min_addr`).
const LOWEST_MAP: u64 = 0x1_0000;

/// What exec prepared: the new memory and the registers to start with.
pub struct Image {
    pub mm: Arc<Mm>,
    pub context: UserContext,
    pub exe: Vec<u8>,
}

/// The interpreter of a dynamically linked program, opened and parsed.
struct Interp {
    file: FileRef,
    info: ElfInfo,
}

/// Loads `path` with `argv`/`envp` into a new memory map (nothing of the caller changes).
pub fn load(path: &[u8], argv: Vec<Vec<u8>>, envp: Vec<Vec<u8>>) -> SysResult<Image> {
    let mut path = path.to_vec();
    let mut argv = argv;
    for _ in 0..=MAX_SCRIPT_DEPTH {
        let file = crate::fs::open_exec(&path)?;
        let head = elf_map::read_head(&file, elf_map::FIRST_READ)?;
        if head.starts_with(b"#!") {
            let (interp, arg) =
                noa_linux_abi::shebang::parse_shebang(&head).ok_or(Errno::ENOEXEC)?;
            let new_argv = noa_linux_abi::shebang::script_argv(interp, arg, &path, &argv);
            path = interp.to_vec();
            argv = new_argv;
            continue;
        }
        // Quietly: shells exec scripts without `#!` and fall back on ENOEXEC.
        let info = elf_map::parse(&file, &head).map_err(program_errno)?;
        let interp = match &info.interp {
            Some(interp_path) => Some(open_interp(&path, interp_path)?),
            None => None,
        };
        return load_elf(&path, &file, &info, interp.as_ref(), &argv, &envp);
    }
    Err(Errno::ELOOP)
}

/// Opens and checks the interpreter `interp_path` that the program at `path` names. A refusal is
/// logged: a missing or broken loader otherwise shows only as a puzzling ENOENT or ELIBBAD.
fn open_interp(path: &[u8], interp_path: &[u8]) -> SysResult<Interp> {
    let refuse = |why: &dyn core::fmt::Debug, errno: Errno| {
        crate::klog!(
            "exec: {}: interpreter {}: {why:?}",
            path.escape_ascii(),
            interp_path.escape_ascii()
        );
        errno
    };
    let file = crate::fs::open_exec(interp_path).map_err(|e| refuse(&e, e))?;
    let head = elf_map::read_head(&file, elf_map::FIRST_READ)?;
    let info = elf_map::parse(&file, &head).map_err(|e| refuse(&e, interp_errno(e)))?;
    if info.interp.is_some() {
        return Err(refuse(&"names an interpreter itself", Errno::ELIBBAD));
    }
    Ok(Interp { file, info })
}

/// The errno for a program whose headers were refused, as Linux's `load_elf_binary` gives it:
/// ENOEXEC for what is not an x86-64 ELF program, EIO where Linux's read of the program headers
/// or of the `PT_INTERP` path comes up short, EINVAL for segments that cannot be placed.
fn program_errno(e: ElfError) -> Errno {
    match e {
        ElfError::OutsideFile => Errno::EIO,
        other => other.errno(),
    }
}

/// The errno for an interpreter whose headers were refused, as Linux gives it: EIO when the file
/// is shorter than an ELF header, ELIBBAD when the header or the program header table is bad,
/// EINVAL for a type other than `ET_EXEC`/`ET_DYN`, and the program's errnos for its segments.
fn interp_errno(e: ElfError) -> Errno {
    match e {
        ElfError::TooShort => Errno::EIO,
        ElfError::BadMagic
        | ElfError::NotElf64
        | ElfError::NotLittleEndian
        | ElfError::BadVersion
        | ElfError::WrongMachine
        | ElfError::BadPhentsize
        | ElfError::BadPhnum
        | ElfError::OutsideFile
        | ElfError::NeedBytes(_) => Errno::ELIBBAD,
        ElfError::NotExecutable => Errno::EINVAL,
        other => other.errno(),
    }
}

/// Maps the program (and its interpreter), builds the stack; nothing of the caller changes.
fn load_elf(
    path: &[u8],
    file: &FileRef,
    info: &ElfInfo,
    interp: Option<&Interp>,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> SysResult<Image> {
    let mm = Mm::new()?;
    let bias = if info.is_pie() {
        info.load_bias(PIE_BASE).map_err(Errno::from)?
    } else {
        0
    };
    let (lo, hi) = info.span();
    let (lo, hi) = (lo.wrapping_add(bias), hi.wrapping_add(bias));
    if lo < LOWEST_MAP || hi > STACK_TOP - STACK_BYTES {
        crate::klog!(
            "exec: {}: segments at {lo:#x}..{hi:#x} are outside the program area",
            path.escape_ascii()
        );
        return Err(Errno::EINVAL);
    }
    let brk = elf_map::map_segments(&mm, file, info, bias)?;
    {
        let mut state = mm.state.lock();
        state.brk_start = brk;
        state.brk = brk;
    }
    // Stack: reserved whole, present near the top.
    mm.insert(Vma {
        start: STACK_TOP - STACK_BYTES,
        end: STACK_TOP,
        prot: PROT_READ | PROT_WRITE | if info.exec_stack() { PROT_EXEC } else { 0 },
        shared: false,
        backing: crate::mm::Backing::Anon,
    });
    let (interp_base, start_at) = match interp {
        Some(interp) => {
            let interp_bias = elf_map::interp_bias(&mm, &interp.info)?;
            let (ilo, ihi) = interp.info.span();
            let (ilo, ihi) = (ilo.wrapping_add(interp_bias), ihi.wrapping_add(interp_bias));
            if ilo < LOWEST_MAP || elf_map::overlaps(&mm, ilo, ihi) {
                return Err(Errno::EINVAL);
            }
            elf_map::map_segments(&mm, &interp.file, &interp.info, interp_bias)?;
            elf_map::zero_bss_tails(&mm, &interp.info, interp_bias)?;
            (interp_bias, interp.info.entry(interp_bias))
        }
        None => (0, info.entry(bias)),
    };
    let auxv = ExecAuxv {
        phdr: info.phdr_addr(bias).unwrap_or(0),
        phnum: u64::from(info.phnum),
        base: interp_base,
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
    mm.state.lock().exec = crate::mm::ExecInfo {
        exe: Some(file.clone()),
        arg_start: stack.arg_start,
        arg_end: stack.arg_end,
        env_start: stack.env_start,
        env_end: stack.env_end,
        start_stack: stack.rsp,
    };
    let stack_low = crate::mm::page_align_down(stack.rsp);
    mm.populate(stack_low, STACK_TOP, true)?;
    // The stack pages are private and present: write them through the new space directly.
    mm.space
        .write(stack.rsp, &stack.bytes)
        .map_err(|_| Errno::EFAULT)?;
    elf_map::zero_bss_tails(&mm, info, bias)?;
    Ok(Image {
        mm,
        context: UserContext::new(start_at, stack.rsp),
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
            thread.set_exiting();
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
