//! The tests' Python: a venv in the host cache (`CACHE/test-venv`, `cache.rs`) with the pinned
//! packages the host-side tests use — the official MCP SDK (`mcp`: `from mcp import Client`;
//! `Client(url, mode="legacy" | "2026-07-28" | "auto")`), the OpenAI client (`openai`) and `gguf`
//! (which `models/tiny/make_tiny_gguf.py` needs). Created with `python3 -m venv`, filled with
//! `pip install`, then stamped with the pin list: a venv whose stamp differs (the pins changed) or
//! whose interpreter no longer runs (the base Python went away) is made again from scratch. The
//! stamp is written last, so a venv left half-made by a failed run is never trusted.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What the venv holds. Changing this list rebuilds the venv (and the tiny model: `tiny_model.rs`).
pub const PINS: &[&str] = &["mcp==2.3.0", "openai==3.57.0", "gguf==0.19.0"];
/// The stamp file in the venv: the pin list, one per line.
const STAMP: &str = "noa-pins.txt";

/// The venv's interpreter (`CACHE/test-venv/bin/python3`), made or remade as needed.
pub fn ensure_test_venv() -> Result<PathBuf> {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    if let Some(python) = READY.get() {
        return Ok(python.clone());
    }
    let venv = crate::cache::dir()?.join("test-venv");
    let python = venv.join("bin/python3");
    let stamp = PINS.join("\n") + "\n";
    let stamped = std::fs::read_to_string(venv.join(STAMP)).is_ok_and(|text| text == stamp);
    if !(stamped && runs(&python)) {
        eprintln!(
            "xtask: making the tests' Python venv {} ({})",
            venv.display(),
            PINS.join(", ")
        );
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .with_context(|| format!("cannot remove the old venv {}", venv.display()))?;
        }
        let base = crate::deps::find("python3").context("no python3 (it makes the tests' venv)")?;
        crate::build::run(Command::new(base).args(["-m", "venv"]).arg(&venv))
            .context("cannot make a venv (Debian: apt-get install python3-venv)")?;
        crate::build::run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--quiet",
                ])
                .args(PINS),
        )
        .with_context(|| format!("cannot install {} in the venv", PINS.join(" ")))?;
        std::fs::write(venv.join(STAMP), &stamp)
            .with_context(|| format!("cannot write {}", venv.join(STAMP).display()))?;
    }
    Ok(READY.get_or_init(|| python).clone())
}

/// Whether `python` starts.
fn runs(python: &std::path::Path) -> bool {
    Command::new(python)
        .args(["-c", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
