//! The initial user stack of a new program, laid out exactly as Linux `execve` does
//! (`fs/exec.c` + `create_elf_tables` in `fs/binfmt_elf.c`), and the auxiliary vector keys.
//!
//! From the top of the stack down:
//!
//! ```text
//! stack_top ->  8 zero bytes (end marker)
//!               AT_EXECFN string, NUL            (execfn)
//!               envp strings, envp[0] lowest     (each NUL terminated)
//!               argv strings, argv[0] lowest     (`mm->arg_start` .. `arg_end`)
//!               (pad: `random_pad`, then round down to 16)
//!               "x86_64", NUL                    (AT_PLATFORM)
//!               16 AT_RANDOM bytes
//!               (pad so that rsp is 16-byte aligned)
//!               auxv: (key, value) pairs, ending with (AT_NULL, 0)
//!               0
//!               envp[envc - 1] .. envp[0]
//!               0
//!               argv[argc - 1] .. argv[0]
//! rsp ->        argc
//! ```
//!
//! [`StackBuilder::build`] returns the bytes from `rsp` to `stack_top` (copy them to user memory
//! at `rsp`) plus the addresses the kernel needs later (`/proc/self/cmdline`, `environ`).
//! [`decode_initial_stack`] parses such an image back (tests, debugging).

use alloc::vec;
use alloc::vec::Vec;

use crate::bytes::{get_u64, put_u64};
use crate::errno::Errno;

// Auxiliary vector keys (`include/uapi/linux/auxvec.h`, `arch/x86/include/uapi/asm/auxvec.h`).
/// End of the vector.
pub const AT_NULL: u64 = 0;
/// Entry to be ignored.
pub const AT_IGNORE: u64 = 1;
/// File descriptor of the program (binfmt_misc).
pub const AT_EXECFD: u64 = 2;
/// Address of the program headers in memory.
pub const AT_PHDR: u64 = 3;
/// Size of one program header (56).
pub const AT_PHENT: u64 = 4;
/// Number of program headers.
pub const AT_PHNUM: u64 = 5;
/// Page size (4096).
pub const AT_PAGESZ: u64 = 6;
/// Interpreter load base (0 when there is none).
pub const AT_BASE: u64 = 7;
/// Flags (0).
pub const AT_FLAGS: u64 = 8;
/// Program entry point (biased).
pub const AT_ENTRY: u64 = 9;
/// Program is not ELF.
pub const AT_NOTELF: u64 = 10;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
/// Address of the platform string ("x86_64").
pub const AT_PLATFORM: u64 = 15;
/// CPUID(1).EDX on x86.
pub const AT_HWCAP: u64 = 16;
/// `times()` clock ticks per second (`USER_HZ` = 100).
pub const AT_CLKTCK: u64 = 17;
/// Set-uid style secure mode (1) or not (0).
pub const AT_SECURE: u64 = 23;
pub const AT_BASE_PLATFORM: u64 = 24;
/// Address of 16 random bytes.
pub const AT_RANDOM: u64 = 25;
/// x86: `HWCAP2_RING3MWAIT` (1), `HWCAP2_FSGSBASE` (2).
pub const AT_HWCAP2: u64 = 26;
pub const AT_RSEQ_FEATURE_SIZE: u64 = 27;
pub const AT_RSEQ_ALIGN: u64 = 28;
/// Address of the executable's path string.
pub const AT_EXECFN: u64 = 31;
/// Address of the vDSO ELF header.
pub const AT_SYSINFO_EHDR: u64 = 33;
/// Minimal signal stack size the kernel's signal frame needs.
pub const AT_MINSIGSTKSZ: u64 = 51;

/// x86 `AT_HWCAP2` bit: user-space `FSGSBASE` instructions are enabled.
pub const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// The x86-64 `AT_PLATFORM` string.
pub const PLATFORM_X86_64: &[u8] = b"x86_64";
/// `USER_HZ`: the `AT_CLKTCK` value and the unit of `times()`/`clock_t`.
pub const USER_HZ: u64 = 100;

/// Longest single argument or environment string, NUL included (`MAX_ARG_STRLEN`, 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// Most argument or environment strings (`MAX_ARG_STRINGS`).
pub const MAX_ARG_STRINGS: usize = 0x7fff_ffff;

/// The values a loader knows when it builds the auxiliary vector; [`ExecAuxv::to_vec`] lays
/// them out in Linux's order, with placeholders for the entries [`StackBuilder`] fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecAuxv {
    /// vDSO base, if one is mapped.
    pub sysinfo_ehdr: Option<u64>,
    pub minsigstksz: u64,
    pub hwcap: u64,
    pub pagesz: u64,
    pub clktck: u64,
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    /// Interpreter base, 0 for static programs.
    pub base: u64,
    pub flags: u64,
    pub entry: u64,
    pub uid: u64,
    pub euid: u64,
    pub gid: u64,
    pub egid: u64,
    pub secure: bool,
    /// Included only when non-zero, as Linux does.
    pub hwcap2: u64,
}

impl Default for ExecAuxv {
    fn default() -> Self {
        ExecAuxv {
            sysinfo_ehdr: None,
            minsigstksz: crate::signal::MINSIGSTKSZ,
            hwcap: 0,
            pagesz: 4096,
            clktck: USER_HZ,
            phdr: 0,
            phent: 56,
            phnum: 0,
            base: 0,
            flags: 0,
            entry: 0,
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            secure: false,
            hwcap2: 0,
        }
    }
}

impl ExecAuxv {
    /// The auxv entries in `create_elf_tables` order (`AT_SYSINFO_EHDR`, `AT_MINSIGSTKSZ`,
    /// `AT_HWCAP`, `AT_PAGESZ`, `AT_CLKTCK`, `AT_PHDR` … `AT_SECURE`, `AT_RANDOM`, `AT_HWCAP2`,
    /// `AT_EXECFN`, `AT_PLATFORM`), without `AT_NULL`. `AT_RANDOM`, `AT_EXECFN` and
    /// `AT_PLATFORM` carry 0; [`StackBuilder::build`] replaces them with addresses.
    pub fn to_vec(&self) -> Vec<(u64, u64)> {
        let mut v = Vec::with_capacity(24);
        if let Some(vdso) = self.sysinfo_ehdr {
            v.push((AT_SYSINFO_EHDR, vdso));
        }
        v.push((AT_MINSIGSTKSZ, self.minsigstksz));
        v.push((AT_HWCAP, self.hwcap));
        v.push((AT_PAGESZ, self.pagesz));
        v.push((AT_CLKTCK, self.clktck));
        v.push((AT_PHDR, self.phdr));
        v.push((AT_PHENT, self.phent));
        v.push((AT_PHNUM, self.phnum));
        v.push((AT_BASE, self.base));
        v.push((AT_FLAGS, self.flags));
        v.push((AT_ENTRY, self.entry));
        v.push((AT_UID, self.uid));
        v.push((AT_EUID, self.euid));
        v.push((AT_GID, self.gid));
        v.push((AT_EGID, self.egid));
        v.push((AT_SECURE, self.secure as u64));
        v.push((AT_RANDOM, 0));
        if self.hwcap2 != 0 {
            v.push((AT_HWCAP2, self.hwcap2));
        }
        v.push((AT_EXECFN, 0));
        v.push((AT_PLATFORM, 0));
        v
    }
}

/// Inputs for the initial stack other than argv/envp.
#[derive(Debug, Clone, Copy)]
pub struct StackBuilder<'a> {
    /// Exclusive top of the stack mapping (Linux `STACK_TOP`); 16-byte aligned.
    pub stack_top: u64,
    /// The `AT_EXECFN` string (the path passed to `execve`, without NUL).
    pub execfn: &'a [u8],
    /// The 16 `AT_RANDOM` bytes.
    pub random: [u8; 16],
    /// The `AT_PLATFORM` string; `Some(b"x86_64")` by default, `None` omits it.
    pub platform: Option<&'a [u8]>,
    /// Auxv entries without `AT_NULL`. Entries keyed `AT_RANDOM`, `AT_EXECFN`, `AT_PLATFORM`
    /// get their address filled in; when absent they are appended in that order.
    pub auxv: &'a [(u64, u64)],
    /// Bytes to subtract below the strings before rounding (Linux subtracts a random amount
    /// below 8 KiB when ASLR is on); 0 for a deterministic layout.
    pub random_pad: u64,
    /// Largest total image accepted (`E2BIG` beyond it). Linux allows a quarter of the stack
    /// rlimit; the default here is 2 MiB (8 MiB / 4).
    pub max_size: u64,
}

/// The initial stack image and what the kernel needs to remember about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialStack {
    /// Initial `rsp` (16-byte aligned, points at `argc`).
    pub rsp: u64,
    /// The bytes of `[rsp, stack_top)`: copy them to user memory at `rsp`.
    pub bytes: Vec<u8>,
    /// Address of `argv[0]` pointer (`rsp + 8`).
    pub argv: u64,
    /// Address of the `envp[0]` pointer.
    pub envp: u64,
    /// Address of the first auxv pair.
    pub auxv: u64,
    /// `[arg_start, arg_end)`: the argv strings, NULs included (`/proc/self/cmdline`).
    pub arg_start: u64,
    pub arg_end: u64,
    /// `[env_start, env_end)`: the envp strings (`/proc/self/environ`).
    pub env_start: u64,
    pub env_end: u64,
    /// Address of the `AT_EXECFN` string.
    pub execfn: u64,
    /// Address of the 16 `AT_RANDOM` bytes.
    pub random: u64,
    /// Address of the platform string, 0 if none.
    pub platform: u64,
    /// The final auxv pairs as written (addresses filled in, `AT_NULL` last), for
    /// `/proc/self/auxv` (Linux `mm->saved_auxv`).
    pub auxv_entries: Vec<(u64, u64)>,
}

impl<'a> StackBuilder<'a> {
    /// A builder with the x86-64 platform string, no randomization and a 2 MiB limit.
    pub fn new(stack_top: u64, execfn: &'a [u8], random: [u8; 16], auxv: &'a [(u64, u64)]) -> Self {
        StackBuilder {
            stack_top,
            execfn,
            random,
            platform: Some(PLATFORM_X86_64),
            auxv,
            random_pad: 0,
            max_size: 2 << 20,
        }
    }

    /// Lays out the stack. Errors: `E2BIG` (a string longer than [`MAX_ARG_STRLEN`], too many
    /// strings, or a total above `max_size`), `EINVAL` (a string containing NUL, or a
    /// `stack_top` that is not 16-byte aligned or leaves no room).
    pub fn build<A: AsRef<[u8]>, E: AsRef<[u8]>>(
        &self,
        argv: &[A],
        envp: &[E],
    ) -> Result<InitialStack, Errno> {
        if !self.stack_top.is_multiple_of(16) {
            return Err(Errno::EINVAL);
        }
        if argv.len() > MAX_ARG_STRINGS || envp.len() > MAX_ARG_STRINGS {
            return Err(Errno::E2BIG);
        }
        let check = |s: &[u8]| -> Result<u64, Errno> {
            if s.len() + 1 > MAX_ARG_STRLEN {
                return Err(Errno::E2BIG);
            }
            if s.contains(&0) {
                return Err(Errno::EINVAL);
            }
            Ok(s.len() as u64 + 1)
        };
        let mut strings: u64 = 8 + check(self.execfn)?;
        for s in argv {
            strings += check(s.as_ref())?;
        }
        for s in envp {
            strings += check(s.as_ref())?;
        }
        let plat = match self.platform {
            Some(p) => check(p)?,
            None => 0,
        };
        let mut aux: Vec<(u64, u64)> = Vec::with_capacity(self.auxv.len() + 4);
        for &(k, v) in self.auxv {
            if k == AT_NULL {
                break;
            }
            if k == AT_PLATFORM && self.platform.is_none() {
                continue;
            }
            aux.push((k, v));
        }
        for k in [AT_RANDOM, AT_EXECFN, AT_PLATFORM] {
            if (k != AT_PLATFORM || self.platform.is_some()) && !aux.iter().any(|e| e.0 == k) {
                aux.push((k, 0));
            }
        }
        aux.push((AT_NULL, 0));
        let items = (argv.len() as u64 + 1) + (envp.len() as u64 + 1) + 1;
        // Upper bound of the whole image, checked before any address arithmetic.
        let bound =
            strings + self.random_pad + 16 + plat + 16 + 16 + aux.len() as u64 * 16 + items * 8;
        if bound > self.max_size {
            return Err(Errno::E2BIG);
        }
        if bound > self.stack_top {
            return Err(Errno::EINVAL);
        }

        // Addresses, top down.
        let top = self.stack_top;
        let mut p = top - 8;
        p -= self.execfn.len() as u64 + 1;
        let execfn_addr = p;
        let env_end = p;
        let mut env_addrs = vec![0u64; envp.len()];
        for (i, s) in envp.iter().enumerate().rev() {
            p -= s.as_ref().len() as u64 + 1;
            env_addrs[i] = p;
        }
        let env_start = p;
        let arg_end = p;
        let mut arg_addrs = vec![0u64; argv.len()];
        for (i, s) in argv.iter().enumerate().rev() {
            p -= s.as_ref().len() as u64 + 1;
            arg_addrs[i] = p;
        }
        let arg_start = p;
        p = (p - self.random_pad) & !0xf;
        let mut platform_addr = 0;
        if let Some(pl) = self.platform {
            p -= pl.len() as u64 + 1;
            platform_addr = p;
        }
        p -= 16;
        let random_addr = p;
        let sp = p - aux.len() as u64 * 16;
        let rsp = (sp - items * 8) & !0xf;

        let mut bytes = vec![0u8; (top - rsp) as usize];
        let off = |a: u64| (a - rsp) as usize;
        let put_str = |bytes: &mut Vec<u8>, a: u64, s: &[u8]| {
            let o = off(a);
            bytes[o..o + s.len()].copy_from_slice(s);
            bytes[o + s.len()] = 0;
        };
        put_str(&mut bytes, execfn_addr, self.execfn);
        for (s, &a) in envp.iter().zip(&env_addrs) {
            put_str(&mut bytes, a, s.as_ref());
        }
        for (s, &a) in argv.iter().zip(&arg_addrs) {
            put_str(&mut bytes, a, s.as_ref());
        }
        if let Some(pl) = self.platform {
            put_str(&mut bytes, platform_addr, pl);
        }
        let ro = off(random_addr);
        bytes[ro..ro + 16].copy_from_slice(&self.random);

        let mut words: Vec<u64> = Vec::with_capacity(items as usize + aux.len() * 2);
        words.push(argv.len() as u64);
        words.extend_from_slice(&arg_addrs);
        words.push(0);
        let envp_addr = rsp + words.len() as u64 * 8;
        words.extend_from_slice(&env_addrs);
        words.push(0);
        let auxv_addr = rsp + words.len() as u64 * 8;
        for e in aux.iter_mut() {
            match e.0 {
                AT_RANDOM => e.1 = random_addr,
                AT_EXECFN => e.1 = execfn_addr,
                AT_PLATFORM => e.1 = platform_addr,
                _ => {}
            }
            words.push(e.0);
            words.push(e.1);
        }
        for (i, w) in words.iter().enumerate() {
            put_u64(&mut bytes, i * 8, *w);
        }
        debug_assert!(rsp + words.len() as u64 * 8 <= random_addr);
        Ok(InitialStack {
            rsp,
            bytes,
            argv: rsp + 8,
            envp: envp_addr,
            auxv: auxv_addr,
            arg_start,
            arg_end,
            env_start,
            env_end,
            execfn: execfn_addr,
            random: random_addr,
            platform: platform_addr,
            auxv_entries: aux,
        })
    }
}

/// An initial stack parsed back by [`decode_initial_stack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedStack {
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// Auxv pairs, `AT_NULL` excluded.
    pub auxv: Vec<(u64, u64)>,
}

/// Parses an initial stack image: `bytes` is user memory starting at address `rsp`. Returns
/// `None` if any pointer or string leaves `bytes` or a list is unterminated.
pub fn decode_initial_stack(bytes: &[u8], rsp: u64) -> Option<DecodedStack> {
    let word = |a: u64| get_u64(bytes, usize::try_from(a.checked_sub(rsp)?).ok()?);
    let cstr = |a: u64| -> Option<Vec<u8>> {
        let o = usize::try_from(a.checked_sub(rsp)?).ok()?;
        let rest = bytes.get(o..)?;
        let n = rest.iter().position(|&c| c == 0)?;
        Some(rest[..n].to_vec())
    };
    let argc = word(rsp)?;
    let mut a = rsp + 8;
    let mut argv = Vec::new();
    for _ in 0..argc {
        argv.push(cstr(word(a)?)?);
        a += 8;
    }
    if word(a)? != 0 {
        return None;
    }
    a += 8;
    let mut envp = Vec::new();
    loop {
        let p = word(a)?;
        a += 8;
        if p == 0 {
            break;
        }
        envp.push(cstr(p)?);
    }
    let mut auxv = Vec::new();
    loop {
        let k = word(a)?;
        let v = word(a + 8)?;
        a += 16;
        if k == AT_NULL {
            break;
        }
        auxv.push((k, v));
    }
    Some(DecodedStack { argv, envp, auxv })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    const TOP: u64 = 0x7fff_ffff_f000;

    fn aux_get(auxv: &[(u64, u64)], k: u64) -> Option<u64> {
        auxv.iter().find(|e| e.0 == k).map(|e| e.1)
    }

    #[test]
    fn roundtrip_and_layout() {
        let exec = ExecAuxv {
            phdr: 0x40_0040,
            phnum: 9,
            entry: 0x40_1000,
            hwcap: 0x178b_fbff,
            ..Default::default()
        };
        let aux = exec.to_vec();
        let random = [7u8; 16];
        let argv: [&[u8]; 3] = [b"/bin/prog", b"-x", b"hello world"];
        let envp: [&[u8]; 2] = [b"PATH=/bin", b"HOME=/"];
        let b = StackBuilder::new(TOP, b"/bin/prog", random, &aux);
        let st = b.build(&argv, &envp).unwrap();
        assert_eq!(st.rsp % 16, 0);
        assert_eq!(st.bytes.len() as u64, TOP - st.rsp);
        assert_eq!(st.argv, st.rsp + 8);
        assert_eq!(st.envp, st.rsp + 8 + 4 * 8);
        assert_eq!(st.auxv, st.envp + 3 * 8);
        let d = decode_initial_stack(&st.bytes, st.rsp).unwrap();
        assert_eq!(d.argv, argv.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
        assert_eq!(d.envp, envp.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
        // Order kept from ExecAuxv, placeholders filled.
        assert_eq!(d.auxv.len(), aux.len());
        assert_eq!(&st.auxv_entries[..aux.len()], &d.auxv[..]);
        assert_eq!(st.auxv_entries.last(), Some(&(AT_NULL, 0)));
        for (got, want) in d.auxv.iter().zip(&aux) {
            assert_eq!(got.0, want.0);
        }
        assert_eq!(d.auxv[0], (AT_MINSIGSTKSZ, crate::signal::MINSIGSTKSZ));
        assert_eq!(aux_get(&d.auxv, AT_PHDR), Some(0x40_0040));
        assert_eq!(aux_get(&d.auxv, AT_ENTRY), Some(0x40_1000));
        assert_eq!(aux_get(&d.auxv, AT_PAGESZ), Some(4096));
        assert_eq!(aux_get(&d.auxv, AT_HWCAP2), None);
        let r = aux_get(&d.auxv, AT_RANDOM).unwrap();
        assert_eq!(r, st.random);
        let ro = (r - st.rsp) as usize;
        assert_eq!(&st.bytes[ro..ro + 16], &random);
        let e = aux_get(&d.auxv, AT_EXECFN).unwrap();
        let eo = (e - st.rsp) as usize;
        assert_eq!(&st.bytes[eo..eo + 10], b"/bin/prog\0");
        // execfn sits right below the 8-byte end marker at the top.
        assert_eq!(e + 10 + 8, TOP);
        assert_eq!(&st.bytes[st.bytes.len() - 8..], &[0u8; 8]);
        let p = aux_get(&d.auxv, AT_PLATFORM).unwrap();
        let po = (p - st.rsp) as usize;
        assert_eq!(&st.bytes[po..po + 7], b"x86_64\0");
        assert!(st.random + 16 <= p);
        // Strings: argv below envp below execfn; cmdline range is "argv0\0-x\0hello world\0".
        assert_eq!(st.arg_end, st.env_start);
        assert_eq!(st.env_end, st.execfn);
        let cmd = &st.bytes[(st.arg_start - st.rsp) as usize..(st.arg_end - st.rsp) as usize];
        assert_eq!(cmd, b"/bin/prog\0-x\0hello world\0");
        let env = &st.bytes[(st.env_start - st.rsp) as usize..(st.env_end - st.rsp) as usize];
        assert_eq!(env, b"PATH=/bin\0HOME=/\0");
        // The platform string is 16-byte-rounded below the strings (no random pad).
        assert_eq!(p + 7, st.arg_start & !0xf);
    }

    #[test]
    fn alignment_for_every_count() {
        // rsp must be 16-aligned whatever the parity of argc+envc and the string lengths.
        for argc in 0..6usize {
            for envc in 0..4usize {
                for slen in 0..18usize {
                    let s = vec![b'a'; slen];
                    let argv: Vec<&[u8]> = (0..argc).map(|_| &s[..]).collect();
                    let envp: Vec<&[u8]> = (0..envc).map(|_| &s[..]).collect();
                    let mut b = StackBuilder::new(TOP, b"/x", [1; 16], &[(AT_PAGESZ, 4096)]);
                    b.random_pad = slen as u64 * 37;
                    let st = b.build(&argv, &envp).unwrap();
                    assert_eq!(st.rsp % 16, 0);
                    let d = decode_initial_stack(&st.bytes, st.rsp).unwrap();
                    assert_eq!(d.argv.len(), argc);
                    assert_eq!(d.envp.len(), envc);
                    assert_eq!(d.auxv[0], (AT_PAGESZ, 4096));
                    assert_eq!(d.auxv.len(), 4); // PAGESZ + RANDOM, EXECFN, PLATFORM appended
                }
            }
        }
    }

    #[test]
    fn errors_and_options() {
        let aux = [(AT_PAGESZ, 4096), (AT_PLATFORM, 0)];
        let mut b = StackBuilder::new(TOP, b"/p", [0; 16], &aux);
        let big = vec![b'x'; MAX_ARG_STRLEN];
        assert_eq!(b.build(&[&big[..]], &[] as &[&[u8]]), Err(Errno::E2BIG));
        assert_eq!(
            b.build(&[&b"a\0b"[..]], &[] as &[&[u8]]),
            Err(Errno::EINVAL)
        );
        let many: Vec<&[u8]> = (0..100_000).map(|_| &b"0123456789abcdef"[..]).collect();
        assert_eq!(b.build(&many, &[] as &[&[u8]]), Err(Errno::E2BIG));
        b.platform = None;
        let st = b.build(&[b"p"], &[b"A=1"]).unwrap();
        assert_eq!(st.platform, 0);
        let d = decode_initial_stack(&st.bytes, st.rsp).unwrap();
        assert_eq!(aux_get(&d.auxv, AT_PLATFORM), None);
        assert_eq!(d.auxv.len(), 3);
        let bad = StackBuilder::new(TOP + 8, b"/p", [0; 16], &aux);
        assert_eq!(bad.build(&[b"p"], &[b"A=1"]), Err(Errno::EINVAL));
        let low = StackBuilder::new(64, b"/p", [0; 16], &aux);
        assert_eq!(low.build(&[b"p"], &[b"A=1"]), Err(Errno::EINVAL));
        // Garbage never panics the decoder.
        assert!(decode_initial_stack(&[1, 0, 0, 0, 0, 0, 0, 0], 0x1000).is_none());
        assert!(decode_initial_stack(&[], 0).is_none());
    }

    #[test]
    fn exec_auxv_order() {
        let e = ExecAuxv {
            sysinfo_ehdr: Some(0x7fff_0000_0000),
            hwcap2: HWCAP2_FSGSBASE,
            ..Default::default()
        };
        let keys: Vec<u64> = e.to_vec().iter().map(|x| x.0).collect();
        assert_eq!(
            keys,
            vec![
                AT_SYSINFO_EHDR,
                AT_MINSIGSTKSZ,
                AT_HWCAP,
                AT_PAGESZ,
                AT_CLKTCK,
                AT_PHDR,
                AT_PHENT,
                AT_PHNUM,
                AT_BASE,
                AT_FLAGS,
                AT_ENTRY,
                AT_UID,
                AT_EUID,
                AT_GID,
                AT_EGID,
                AT_SECURE,
                AT_RANDOM,
                AT_HWCAP2,
                AT_EXECFN,
                AT_PLATFORM
            ]
        );
    }
}
