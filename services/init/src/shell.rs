//! `/sbin/init` with no command and no services: `/bin/sh` as a login shell (argv0 `-sh`) in
//! its own session with the console (fd 0) as controlling terminal, in HOME. Init forwards
//! SIGTERM (with a hangup), SIGINT and SIGHUP to it and exits with its status.

use crate::environment;
use crate::forward::{self, OnTerm};
use crate::runner::{EXIT_NOT_EXECUTABLE, spawn_failed};
use crate::signals::{self, Signals};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStringExt;

const SHELL: &str = "/bin/sh";

/// Runs the login shell and returns init's exit code.
pub fn run(signals: &Signals) -> i32 {
    // fork + exec by hand rather than `Command` with `pre_exec`: std's fork path reports exec
    // errors through an AF_UNIX socketpair, which a kernel without sockets cannot give, and
    // init must get its shell up on the smallest kernel.
    let env = environment::strings();
    let home = std::env::var_os("HOME").unwrap_or_else(|| environment::DEFAULT_HOME.into());
    let home = CString::new(home.into_vec()).unwrap_or_default();
    let shell = CString::new(SHELL).unwrap_or_default();
    let argv0 = CString::new("-sh").unwrap_or_default();
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: init is single-threaded; between fork and exec the child makes only
    // async-signal-safe calls on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        signals::forget_in_child();
        // SAFETY: as above. A session of its own with the console as controlling terminal, so
        // the shell has job control and ^C reaches its foreground job, not init. Without a tty
        // the ioctl fails and the shell runs without job control. SIGPIPE back to its default:
        // Rust ignores it in init, and an ignored signal stays ignored across exec.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            libc::chdir(home.as_ptr());
            libc::execve(shell.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(EXIT_NOT_EXECUTABLE);
        }
    }
    if pid < 0 {
        return spawn_failed(OsStr::new(SHELL), &std::io::Error::last_os_error());
    }
    forward::wait_for(pid, signals, OnTerm::HangUp)
}
