//! `noa-init`: PID 1 of the NOA ARK OS guest, installed as `/sbin/init`.
//!
//! The kernel starts it as `/sbin/init [KERNEL ARGS…] [-- CMD ARGS…]` with fds 0/1/2 open (stdin and
//! stdout on the console, stderr on the second console). It owns what a user program sees at start:
//! the environment (PATH, HOME, TERM unless the kernel passed them), the command lookup, and the
//! exit code. It must not do anything the kernel does: mounts, devices and power-off are the
//! kernel's — init's exit *is* the power-off, with init's exit code.
//!
//! - With `-- CMD ARGS…`: CMD is looked up in PATH as `execvp` does, run with the inherited stdio,
//!   and every child is reaped (orphans are reparented to PID 1) until CMD exits; then the zombies
//!   already there are reaped without blocking and init exits with CMD's code, or 128+signal if a
//!   signal killed it. CMD not found: `init: CMD: not found` on stderr, exit 127; found but not
//!   executable: exit 126 — as a shell does.
//! - Without: `/bin/sh` as a login shell (argv0 `-sh`) in its own session on the console; init
//!   exits with the shell's status.
//!
//! Run natively (not as PID 1) it makes itself a child subreaper, so it reaps orphans the same way
//! and its tests run on the host.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The PATH children get when the kernel passes none (Debian's root PATH).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_HOME: &str = "/root";
const DEFAULT_TERM: &str = "linux";
const SHELL: &str = "/bin/sh";

/// Shell conventions for a command that cannot run.
const EXIT_NOT_FOUND: i32 = 127;
const EXIT_NOT_EXECUTABLE: i32 = 126;

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if std::process::id() != 1 {
        // Natively, orphans of CMD come to us as they would to PID 1. Failure only means they
        // go to the real init instead.
        // SAFETY: prctl with integer arguments touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let code = match args.iter().position(|a| a == "--") {
        Some(dash) if dash + 1 < args.len() => run_command(&args[dash + 1], &args[dash + 2..]),
        _ => run_shell(),
    };
    std::process::exit(code);
}

/// Where `execvp` would find `name`.
enum Lookup {
    Found(PathBuf),
    NotFound,
    /// It exists but cannot be executed (a directory, or no execute permission).
    NotExecutable,
}

fn lookup(name: &OsStr, path: &OsStr) -> Lookup {
    let usable = |candidate: &Path| match std::fs::metadata(candidate) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Lookup::Found(candidate.to_path_buf())
        }
        Ok(_) => Lookup::NotExecutable,
        Err(_) => Lookup::NotFound,
    };
    if name.is_empty() {
        return Lookup::NotFound;
    }
    if name.as_bytes().contains(&b'/') {
        return usable(Path::new(name));
    }
    let mut result = Lookup::NotFound;
    for dir in std::env::split_paths(path) {
        // An empty PATH entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        match usable(&dir.join(name)) {
            found @ Lookup::Found(_) => return found,
            Lookup::NotExecutable => result = Lookup::NotExecutable,
            Lookup::NotFound => {}
        }
    }
    result
}

/// The environment children get: the kernel's, with defaults for what it did not pass.
fn with_environment(command: &mut Command) -> &mut Command {
    for (name, default) in [
        ("PATH", DEFAULT_PATH),
        ("HOME", DEFAULT_HOME),
        ("TERM", DEFAULT_TERM),
    ] {
        if std::env::var_os(name).is_none() {
            command.env(name, default);
        }
    }
    command
}

fn search_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into())
}

/// Prints `init: NAME: WHAT` and returns `code`.
fn fail(name: &OsStr, what: &str, code: i32) -> i32 {
    eprintln!("init: {}: {what}", name.to_string_lossy());
    code
}

fn run_command(name: &OsStr, args: &[OsString]) -> i32 {
    let program = match lookup(name, &search_path()) {
        Lookup::Found(program) => program,
        Lookup::NotFound => return fail(name, "not found", EXIT_NOT_FOUND),
        Lookup::NotExecutable => return fail(name, "Permission denied", EXIT_NOT_EXECUTABLE),
    };
    let mut command = Command::new(&program);
    with_environment(command.arg0(name).args(args));
    match command.spawn() {
        Ok(child) => wait_for(child.id()),
        // Not an executable format: execvp hands such a file to the shell.
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            let mut command = Command::new(SHELL);
            with_environment(command.arg(&program).args(args));
            match command.spawn() {
                Ok(child) => wait_for(child.id()),
                Err(e) => spawn_failed(name, &e),
            }
        }
        Err(e) => spawn_failed(name, &e),
    }
}

fn spawn_failed(name: &OsStr, error: &std::io::Error) -> i32 {
    match error.kind() {
        // A missing interpreter (`#!/no/such`) reads as the command missing, as in a shell.
        ErrorKind::NotFound => fail(name, "not found", EXIT_NOT_FOUND),
        ErrorKind::PermissionDenied => fail(name, "Permission denied", EXIT_NOT_EXECUTABLE),
        _ => fail(name, &error.to_string(), EXIT_NOT_EXECUTABLE),
    }
}

fn run_shell() -> i32 {
    // fork + exec by hand rather than `Command` with `pre_exec`: std's fork path reports exec
    // errors through an AF_UNIX socketpair, which a kernel without sockets cannot give, and
    // init must get its shell up on the smallest kernel.
    let mut env: Vec<std::ffi::CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut pair = k.into_vec();
            pair.push(b'=');
            pair.extend(v.into_vec());
            std::ffi::CString::new(pair).ok()
        })
        .collect();
    for (name, default) in [
        ("PATH", DEFAULT_PATH),
        ("HOME", DEFAULT_HOME),
        ("TERM", DEFAULT_TERM),
    ] {
        if std::env::var_os(name).is_none() {
            env.extend(std::ffi::CString::new(format!("{name}={default}")).ok());
        }
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| DEFAULT_HOME.into());
    let home = std::ffi::CString::new(home.into_vec()).unwrap_or_default();
    let shell = std::ffi::CString::new(SHELL).unwrap_or_default();
    let argv0 = std::ffi::CString::new("-sh").unwrap_or_default();
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: init is single-threaded; between fork and exec the child makes only
    // async-signal-safe system calls on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above. A session of its own with the console as controlling terminal, so
        // the shell has job control and ^C reaches its foreground job, not init. Without a tty
        // the ioctl fails and the shell runs without job control.
        unsafe {
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
    wait_for(pid as u32)
}

/// Reaps every child until `pid` exits, then the zombies already there; returns `pid`'s code.
fn wait_for(pid: u32) -> i32 {
    let pid = pid as libc::pid_t;
    let code = loop {
        match wait(0) {
            Some((reaped, status)) if reaped == pid => break exit_code(status),
            Some(_) => {}
            None => {
                // ECHILD: our child is gone without our seeing its status (cannot happen unless
                // the kernel lost it). Say so rather than hang.
                eprintln!("init: lost track of process {pid}");
                break 1;
            }
        }
    };
    while let Some((reaped, _)) = wait(libc::WNOHANG)
        && reaped > 0
    {}
    code
}

/// `waitpid(-1, …, flags)`, retried on EINTR: `Some((pid, status))` (pid 0 with WNOHANG when
/// no child has exited), `None` when there are no children.
fn wait(flags: libc::c_int) -> Option<(libc::pid_t, libc::c_int)> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only the status word it is given.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        if pid >= 0 {
            return Some((pid, status));
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// A shell's `$?` for a wait status: the exit code, or 128 + the signal that killed it.
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}
