//! Collecting exited children: every waitpid of init goes through here. Init is PID 1 (or a
//! child subreaper natively), so orphans come to it too, and each wake-up reaps everything that
//! has exited, not only the child a loop is waiting for.

/// What one non-blocking `waitpid(-1)` found.
pub enum Reaped {
    /// This child exited with this wait status.
    Exited(libc::pid_t, libc::c_int),
    /// Children remain, none of them exited yet.
    Running,
    /// Init has no children at all.
    NoChildren,
}

/// One non-blocking `waitpid(-1, …, WNOHANG)`, retried on EINTR.
pub fn next() -> Reaped {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only the status word it is given.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return Reaped::Running,
            pid if pid > 0 => return Reaped::Exited(pid, status),
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => return Reaped::NoChildren,
        }
    }
}

/// Reaps the zombies already there, without waiting for the children still running.
pub fn zombies() {
    while let Reaped::Exited(..) = next() {}
}

/// A shell's `$?` for a wait status: the exit code, or 128 + the signal that killed it.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// A wait status in words, for messages: `exited with status 3`, `was killed by signal 9`.
pub fn describe(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}
