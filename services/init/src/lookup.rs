//! Finding a command as `execvp` does: a name with a `/` is used as it is, another is searched
//! in PATH (an empty entry meaning the current directory). Only looks; never runs anything.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where `execvp` would find a command.
pub enum Lookup {
    Found(PathBuf),
    NotFound,
    /// It exists but cannot be executed (a directory, or no execute permission).
    NotExecutable,
}

pub fn lookup(name: &OsStr, path: &OsStr) -> Lookup {
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
