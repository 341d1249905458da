//! The tiny random-weight test model: `models/tiny/make_tiny_gguf.py` run with the tests' venv
//! (`pyenv.rs`, which has `gguf`) on the bundled model (`model.rs`, whose tokenizer it copies).
//! The result is cached as `CACHE/models/tiny-KEY.gguf`, KEY a hash of what makes the file — the
//! script, the source model's checksum and the venv's pins — so a changed script makes a new
//! file (the previous ones are removed). It is written under a temporary name and renamed, so a
//! file under its name is whole.

use crate::checksum;
use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The generator, relative to the workspace root.
pub const SCRIPT: &str = "models/tiny/make_tiny_gguf.py";

/// The tiny model in the cache, generated as needed.
pub fn ensure_tiny() -> Result<PathBuf> {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = READY.get() {
        return Ok(path.clone());
    }
    let script = crate::root().join(SCRIPT);
    let code =
        std::fs::read(&script).with_context(|| format!("cannot read {}", script.display()))?;
    let manifest = crate::model::Manifest::bundled()?;
    let mut key = code;
    key.extend_from_slice(manifest.file.sha256.as_bytes());
    key.extend_from_slice(crate::pyenv::PINS.join("\n").as_bytes());
    let key = checksum::sha256_of(&key);
    let dir = crate::cache::subdir("models")?;
    let target = dir.join(format!("tiny-{}.gguf", &key[..16]));
    if !target.is_file() {
        let source = crate::model::ensure_bundled()?;
        let python = crate::pyenv::ensure_test_venv()?;
        let partial = dir.join(format!(".tiny-{}.partial", std::process::id()));
        eprintln!("xtask: making the tiny test model {}", target.display());
        let made = crate::build::run(
            Command::new(python)
                .arg(&script)
                .arg("--source")
                .arg(&source)
                .arg("--output")
                .arg(&partial),
        )
        .and_then(|()| {
            ensure!(partial.is_file(), "{SCRIPT} wrote no {}", partial.display());
            std::fs::rename(&partial, &target)
                .with_context(|| format!("cannot move it to {}", target.display()))
        });
        if made.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        made.context("cannot make the tiny test model")?;
        remove_stale(&dir, &target);
    }
    Ok(READY.get_or_init(|| target).clone())
}

/// Removes the tiny models of earlier scripts or pins (best effort: another run may still be
/// writing or using one, and a leftover costs only disk).
fn remove_stale(dir: &std::path::Path, current: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("tiny-") && name.ends_with(".gguf") && entry.path() != current {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
