//! `/sbin/init -- CMD ARGS…` (runner mode): CMD is looked up in PATH as `execvp` does (a file
//! without `#!` that is not ELF runs under `/bin/sh`), run with the inherited stdio and
//! environment, and waited for while init reaps everything else and forwards SIGTERM, SIGINT
//! and SIGHUP to it. Init then exits with CMD's code: 127 not found, 126 not executable, as a
//! shell gives them.

use crate::environment;
use crate::forward::{self, OnTerm};
use crate::lookup::{Lookup, lookup};
use crate::signals::Signals;
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Shell conventions for a command that cannot run.
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Where a file that is not an executable format runs, as `execvp` does.
const SHELL: &str = "/bin/sh";

/// Runs CMD and returns init's exit code.
pub fn run(name: &OsStr, args: &[OsString], signals: &Signals) -> i32 {
    let program = match lookup(name, &environment::search_path()) {
        Lookup::Found(program) => program,
        Lookup::NotFound => return fail(name, "not found", EXIT_NOT_FOUND),
        Lookup::NotExecutable => return fail(name, "Permission denied", EXIT_NOT_EXECUTABLE),
    };
    let mut command = Command::new(&program);
    environment::apply(command.arg0(name).args(args));
    let child = match command.spawn() {
        Ok(child) => child,
        // Not an executable format: execvp hands such a file to the shell.
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            let mut command = Command::new(SHELL);
            environment::apply(command.arg(&program).args(args));
            match command.spawn() {
                Ok(child) => child,
                Err(e) => return spawn_failed(name, &e),
            }
        }
        Err(e) => return spawn_failed(name, &e),
    };
    forward::wait_for(child.id() as libc::pid_t, signals, OnTerm::Forward)
}

/// Prints `init: NAME: WHAT` and returns `code`.
fn fail(name: &OsStr, what: &str, code: i32) -> i32 {
    eprintln!("init: {}: {what}", name.to_string_lossy());
    code
}

/// The message and exit code for a command that could not be started.
pub fn spawn_failed(name: &OsStr, error: &std::io::Error) -> i32 {
    match error.kind() {
        // A missing interpreter (`#!/no/such`) reads as the command missing, as in a shell.
        ErrorKind::NotFound => fail(name, "not found", EXIT_NOT_FOUND),
        ErrorKind::PermissionDenied => fail(name, "Permission denied", EXIT_NOT_EXECUTABLE),
        _ => fail(name, &error.to_string(), EXIT_NOT_EXECUTABLE),
    }
}
