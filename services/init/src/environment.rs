//! The environment every child of init starts with: the kernel's, plus PATH, HOME and TERM
//! where the kernel passed none. Owns those defaults; what a service adds on top (its `env`
//! table, NOA_TOKEN) is `supervise`'s.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

/// The PATH children get when the kernel passes none (Debian's root PATH).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const DEFAULT_HOME: &str = "/root";
const DEFAULT_TERM: &str = "linux";

/// The variables init fills in, with their values when the kernel passed none.
const DEFAULTS: [(&str, &str); 3] = [
    ("PATH", DEFAULT_PATH),
    ("HOME", DEFAULT_HOME),
    ("TERM", DEFAULT_TERM),
];

/// Gives `command` the kernel's environment with the defaults for what it did not pass.
pub fn apply(command: &mut Command) -> &mut Command {
    for (name, default) in DEFAULTS {
        if std::env::var_os(name).is_none() {
            command.env(name, default);
        }
    }
    command
}

/// The same environment as `NAME=VALUE` strings, for a hand-made `execve`.
pub fn strings() -> Vec<CString> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(name, value)| {
            let mut pair = name.into_vec();
            pair.push(b'=');
            pair.extend(value.into_vec());
            CString::new(pair).ok()
        })
        .collect();
    for (name, default) in DEFAULTS {
        if std::env::var_os(name).is_none() {
            env.extend(CString::new(format!("{name}={default}")).ok());
        }
    }
    env
}

/// Where commands are looked up: the kernel's PATH, else the default.
pub fn search_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into())
}
