//! Debian's CPython 3.11 in the guest image, at the paths Debian uses: `/usr/bin/python3.11`
//! (and `python3 -> python3.11`), the standard library in `/usr/lib/python3.11` with its
//! `__pycache__` byte code and `lib-dynload` extension modules, the shared libraries the binary
//! and those modules need in `/lib/x86_64-linux-gnu` (real files under their own names, with the
//! soname symlinks) with their `/etc/ld.so.cache`, glibc's loader as `/lib64/ld-linux-x86-64.so.2`,
//! and `/etc/python3.11/sitecustomize.py` (the stdlib's `sitecustomize.py` links to it).
//!
//! Left out, to keep the image small: the test suite (`test/`, `lib2to3/tests/`, the `_test*`
//! extension modules, `_ctypes_test`, `_xxtestfuzz`, `xxlimited*`), `idlelib`, `tkinter`,
//! `turtledemo`, `ensurepip` (Debian ships some of these in other packages), and the static
//! `libpython3.11*.a` of `config-3.11-*/` (for embedding; a dangling `libpython3.11.so` link there
//! goes too). Nothing of `dist-packages`: the guest has the standard library only.
//!
//! Files are hard-linked into the staging folder when it is on the same file system (falling
//! back to a copy), so staging 60 MB costs milliseconds; `mke2fs -d` reads them from there. The
//! staged files are the host's own: nothing may write into a staged file in place (replacing one,
//! as `--add` does, is fine).
//!
//! Libraries are found with `ldd` (the host's loader resolves them as the guest's will: same
//! paths); a missing one fails the build.

use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's interpreter (not whatever `python3.11` is first on PATH, e.g. a pyenv shim).
pub const PYTHON: &str = "/usr/bin/python3.11";
/// Its standard library.
pub const STDLIB: &str = "/usr/lib/python3.11";
/// The Debian package with both.
const PACKAGE: &str = "python3.11";
/// glibc's dynamic loader, as programs name it in `PT_INTERP`.
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// Where the shared libraries go in the guest.
const GUEST_LIBS: &str = "lib/x86_64-linux-gnu";
/// Debian's sitecustomize (the stdlib's `sitecustomize.py` is a symlink to it).
const SITECUSTOMIZE: &str = "/etc/python3.11/sitecustomize.py";

/// Parts of the standard library left out, relative to [`STDLIB`].
const DROPPED_DIRS: &[&str] = &[
    "test",
    "lib2to3/tests",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
];

/// Whether a file of the standard library (relative path) is left out.
fn dropped_file(relative: &Path) -> bool {
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let in_dir = |dir: &str| relative.parent() == Some(Path::new(dir));
    if in_dir("lib-dynload") {
        let module = name.split('.').next().unwrap_or_default();
        return module.starts_with("_test")
            || ["_ctypes_test", "_xxtestfuzz", "xxlimited", "xxlimited_35"].contains(&module);
    }
    if relative
        .parent()
        .is_some_and(|p| p.to_string_lossy().starts_with("config-3.11"))
    {
        return name.ends_with(".a") || name == "libpython3.11.so";
    }
    false
}

/// Installs Debian's python3.11 if it is missing (as root), or says how and fails.
pub fn ensure_installed() -> Result<()> {
    if Path::new(PYTHON).is_file() && Path::new(STDLIB).join("os.py").is_file() {
        return Ok(());
    }
    crate::deps::install_packages(&[PACKAGE])?;
    ensure!(
        Path::new(PYTHON).is_file() && Path::new(STDLIB).join("os.py").is_file(),
        "{PACKAGE} is installed but {PYTHON} or {STDLIB}/os.py is missing"
    );
    Ok(())
}

/// Stages python3.11, its standard library and its libraries under `root` (the image's
/// staging folder).
pub fn install(root: &Path) -> Result<()> {
    ensure_installed()?;
    let bin = root.join("usr/bin");
    std::fs::create_dir_all(&bin)?;
    link_or_copy(Path::new(PYTHON), &bin.join("python3.11"))?;
    symlink(Path::new("python3.11"), &bin.join("python3"))?;

    let stdlib = root.join(STDLIB.trim_start_matches('/'));
    let mut elf_files = vec![PathBuf::from(PYTHON)];
    stage_tree(Path::new(STDLIB), Path::new(""), &stdlib, &mut elf_files)?;
    if Path::new(SITECUSTOMIZE).is_file() {
        let to = root.join(SITECUSTOMIZE.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("an /etc path has a parent"))?;
        link_or_copy(Path::new(SITECUSTOMIZE), &to)?;
    }
    stage_libraries(root, &elf_files)?;
    write_loader_cache(root);
    Ok(())
}

/// `/etc/ld.so.cache` for the staged libraries (`ldconfig -r`), so that ld.so opens each library
/// at once instead of probing the `glibc-hwcaps` folders first: about 16 fewer path system calls
/// per python start, each costly in the guest. `ldconfig -r` needs root (it chroots); without
/// it the image simply has no cache, which ld.so handles.
fn write_loader_cache(root: &Path) {
    let ldconfig = crate::deps::find("ldconfig").unwrap_or_else(|| "ldconfig".into());
    let result = Command::new(&ldconfig)
        .arg("-X")
        .arg("-r")
        .arg(root)
        .output();
    let cache = root.join("etc/ld.so.cache");
    match result {
        Ok(output) if output.status.success() && cache.is_file() => {}
        Ok(output) => eprintln!(
            "xtask: no /etc/ld.so.cache in the image (`ldconfig -r` needs root): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => eprintln!("xtask: no /etc/ld.so.cache in the image: cannot run ldconfig: {e}"),
    }
}

/// Stages `from` (a folder of the standard library, `relative` to it) into `to`, leaving out
/// what is dropped; collects the extension modules in `elf_files`.
fn stage_tree(from: &Path, relative: &Path, to: &Path, elf_files: &mut Vec<PathBuf>) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("cannot read {}", from.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = relative.join(entry.file_name());
        let dest = to.join(entry.file_name());
        let meta = path.symlink_metadata()?;
        if meta.is_dir() {
            if !DROPPED_DIRS.iter().any(|d| rel == Path::new(d)) {
                stage_tree(&path, &rel, &dest, elf_files)?;
            }
        } else if dropped_file(&rel) {
            continue;
        } else if meta.file_type().is_symlink() {
            symlink(&std::fs::read_link(&path)?, &dest)?;
        } else if meta.is_file() {
            link_or_copy(&path, &dest)?;
            if rel.starts_with("lib-dynload") && rel.extension().is_some_and(|e| e == "so") {
                elf_files.push(path);
            }
        }
    }
    Ok(())
}

/// The shared libraries `elf_files` need (all of them, transitively, as `ldd` lists them),
/// staged in [`GUEST_LIBS`] under their real names with a soname symlink each, plus the loader.
fn stage_libraries(root: &Path, elf_files: &[PathBuf]) -> Result<()> {
    let output = Command::new("ldd")
        .args(elf_files)
        .output()
        .context("cannot run ldd (Debian's libc-bin)")?;
    ensure!(
        output.status.success(),
        "ldd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let libraries = parse_ldd(&String::from_utf8_lossy(&output.stdout))?;
    let guest_libs = root.join(GUEST_LIBS);
    std::fs::create_dir_all(&guest_libs)?;
    for soname_path in libraries.iter().map(Path::new).chain([Path::new(LOADER)]) {
        let real = std::fs::canonicalize(soname_path)
            .with_context(|| format!("cannot resolve {}", soname_path.display()))?;
        let soname = soname_path
            .file_name()
            .context("a library path names a file")?;
        let real_name = real.file_name().context("a library path names a file")?;
        let dest = guest_libs.join(real_name);
        if dest.symlink_metadata().is_err() {
            link_or_copy(&real, &dest)?;
        }
        if soname != real_name {
            symlink(Path::new(real_name), &guest_libs.join(soname))?;
        }
    }
    let lib64 = root.join("lib64");
    std::fs::create_dir_all(&lib64)?;
    let loader_name = Path::new(LOADER)
        .file_name()
        .expect("the loader path names a file");
    symlink(
        &Path::new("/").join(GUEST_LIBS).join(loader_name),
        &lib64.join(loader_name),
    )
}

/// The library paths in `ldd` output (`NAME => PATH (ADDRESS)` lines); fails on `not found`.
fn parse_ldd(text: &str) -> Result<BTreeSet<String>> {
    let mut libraries = BTreeSet::new();
    let mut missing = Vec::new();
    for line in text.lines() {
        let Some((name, target)) = line.trim().split_once(" => ") else {
            continue;
        };
        if target.starts_with("not found") {
            missing.push(name.to_string());
        } else if let Some(path) = target
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            libraries.insert(path.to_string());
        }
    }
    if !missing.is_empty() {
        bail!(
            "python3.11 needs libraries this host lacks: {}",
            missing.join(", ")
        );
    }
    ensure!(
        !libraries.is_empty(),
        "ldd listed no libraries for python3.11"
    );
    Ok(libraries)
}

/// A hard link to `from` at `to`, or a copy where linking is not possible (another file system,
/// `protected_hardlinks`).
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_library_paths_and_missing_ones_fail() {
        let text = "/usr/bin/python3.11:\n\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
                    x.so:\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x1)\n\
                    \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs.into_iter().collect::<Vec<_>>(),
            [
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/x86_64-linux-gnu/libz.so.1"
            ]
        );
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn the_test_suite_and_static_libraries_are_left_out() {
        for dropped in [
            "lib-dynload/_testcapi.cpython-311-x86_64-linux-gnu.so",
            "lib-dynload/_ctypes_test.cpython-311-x86_64-linux-gnu.so",
            "lib-dynload/xxlimited_35.cpython-311-x86_64-linux-gnu.so",
            "config-3.11-x86_64-linux-gnu/libpython3.11.a",
            "config-3.11-x86_64-linux-gnu/libpython3.11-pic.a",
        ] {
            assert!(dropped_file(Path::new(dropped)), "{dropped}");
        }
        for kept in [
            "lib-dynload/_sqlite3.cpython-311-x86_64-linux-gnu.so",
            "lib-dynload/_json.cpython-311-x86_64-linux-gnu.so",
            "config-3.11-x86_64-linux-gnu/Makefile",
            "json/__init__.py",
            "_testing.py",
        ] {
            assert!(!dropped_file(Path::new(kept)), "{kept}");
        }
    }
}
