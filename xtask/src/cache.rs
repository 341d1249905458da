//! The host cache: where xtask keeps what it downloads or generates once and reuses across builds
//! and clones — the bundled model (`model.rs`), the tiny test model, the tests' Python venv
//! (`pyenv.rs`) and their Node.js and MCP Inspector (`node.rs`). It lives outside the clone so CI
//! can keep it between runs while the clone is fresh: `$NOA_CACHE` if set, else
//! `$XDG_CACHE_HOME/noa`, else `$HOME/.cache/noa`. Each user of the cache owns one subfolder of it
//! and checks what it finds there (checksums, stamp files) before trusting it.

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::PathBuf;

/// The cache folder, created if missing.
pub fn dir() -> Result<PathBuf> {
    let dir = dir_from(
        std::env::var_os("NOA_CACHE"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
    .context("no cache folder: set NOA_CACHE (or XDG_CACHE_HOME or HOME)")?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the cache folder {}", dir.display()))?;
    Ok(dir)
}

/// A subfolder of the cache, created if missing.
pub fn subdir(name: &str) -> Result<PathBuf> {
    let dir = dir()?.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The cache folder from the environment's values; empty ones count as unset, and relative
/// `XDG_CACHE_HOME` is ignored (as the XDG base-directory specification says).
fn dir_from(
    noa_cache: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |value: Option<OsString>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(noa_cache)
        .or_else(|| {
            set(xdg_cache_home)
                .filter(|p| p.is_absolute())
                .map(|p| p.join("noa"))
        })
        .or_else(|| set(home).map(|p| p.join(".cache/noa")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<OsString> {
        Some(text.into())
    }

    #[test]
    fn noa_cache_then_xdg_then_home() {
        assert_eq!(
            dir_from(some("/c"), some("/x"), some("/h")),
            Some("/c".into())
        );
        assert_eq!(
            dir_from(None, some("/x"), some("/h")),
            Some("/x/noa".into())
        );
        assert_eq!(
            dir_from(some(""), some(""), some("/h")),
            Some("/h/.cache/noa".into())
        );
        assert_eq!(
            dir_from(None, some("rel"), some("/h")),
            Some("/h/.cache/noa".into())
        );
        assert_eq!(dir_from(None, None, None), None);
    }
}
