//! `wait4`/`waitid` options and the wait status word (`include/uapi/linux/wait.h`, the
//! encoding glibc's `WIFEXITED` & co. decode).
//!
//! Status word: exited = `code << 8`; killed = `sig | 0x80 if core dumped`; stopped =
//! `sig << 8 | 0x7f`; continued = `0xffff`.

pub const WNOHANG: u32 = 0x0000_0001;
pub const WUNTRACED: u32 = 0x0000_0002;
pub const WSTOPPED: u32 = WUNTRACED;
pub const WEXITED: u32 = 0x0000_0004;
pub const WCONTINUED: u32 = 0x0000_0008;
/// Leave the child waitable.
pub const WNOWAIT: u32 = 0x0100_0000;
/// Don't wait on children of other threads in this group.
pub const __WNOTHREAD: u32 = 0x2000_0000;
/// Wait on all children, regardless of type.
pub const __WALL: u32 = 0x4000_0000;
/// Wait only on non-SIGCHLD children.
pub const __WCLONE: u32 = 0x8000_0000;

/// Options `wait4` accepts (others give `EINVAL`).
pub const WAIT4_VALID: u32 = WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE;
/// Options `waitid` accepts; at least one of `WEXITED | WSTOPPED | WCONTINUED` is required.
pub const WAITID_VALID: u32 =
    WNOHANG | WEXITED | WSTOPPED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE;

/// `waitid` `idtype`.
pub const P_ALL: u32 = 0;
pub const P_PID: u32 = 1;
pub const P_PGID: u32 = 2;
pub const P_PIDFD: u32 = 3;

/// Status of a child that called `exit(code)` (only the low 8 bits of `code` survive).
pub const fn wait_status_exited(code: i32) -> i32 {
    (code & 0xff) << 8
}

/// Status of a child killed by `sig`, with the core-dump flag.
pub const fn wait_status_signaled(sig: u32, core: bool) -> i32 {
    (sig as i32 & 0x7f) | if core { 0x80 } else { 0 }
}

/// Status of a child stopped by `sig` (reported with `WUNTRACED`).
pub const fn wait_status_stopped(sig: u32) -> i32 {
    ((sig as i32 & 0xff) << 8) | 0x7f
}

/// Status of a continued child (reported with `WCONTINUED`).
pub const WAIT_STATUS_CONTINUED: i32 = 0xffff;

pub const fn wifexited(s: i32) -> bool {
    s & 0x7f == 0
}
pub const fn wexitstatus(s: i32) -> i32 {
    (s >> 8) & 0xff
}
pub const fn wifsignaled(s: i32) -> bool {
    ((s & 0x7f) + 1) as i8 >> 1 > 0
}
pub const fn wtermsig(s: i32) -> i32 {
    s & 0x7f
}
pub const fn wcoredump(s: i32) -> bool {
    s & 0x80 != 0
}
pub const fn wifstopped(s: i32) -> bool {
    s & 0xff == 0x7f
}
pub const fn wstopsig(s: i32) -> i32 {
    wexitstatus(s)
}
pub const fn wifcontinued(s: i32) -> bool {
    s == WAIT_STATUS_CONTINUED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let s = wait_status_exited(3);
        assert_eq!(s, 0x300);
        assert!(wifexited(s) && !wifsignaled(s) && !wifstopped(s));
        assert_eq!(wexitstatus(s), 3);
        assert_eq!(wexitstatus(wait_status_exited(-1)), 255);
        assert_eq!(wexitstatus(wait_status_exited(256)), 0);
        let k = wait_status_signaled(9, false);
        assert_eq!(k, 9);
        assert!(wifsignaled(k) && !wifexited(k) && !wcoredump(k));
        let c = wait_status_signaled(11, true);
        assert_eq!(c, 0x8b);
        assert!(wifsignaled(c) && wcoredump(c));
        assert_eq!(wtermsig(c), 11);
        let st = wait_status_stopped(19);
        assert_eq!(st, 0x137f);
        assert!(wifstopped(st) && !wifsignaled(st) && !wifexited(st));
        assert_eq!(wstopsig(st), 19);
        assert!(wifcontinued(WAIT_STATUS_CONTINUED));
        assert!(!wifsignaled(WAIT_STATUS_CONTINUED));
    }
}
