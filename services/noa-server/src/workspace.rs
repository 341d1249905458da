//! The workspace the MCP file tools and resources see: one folder (`/storage/workspace` in the
//! guest). Every path a client names is relative to it; `..`, absolute paths and symbolic links
//! that lead outside are refused, so a client can neither read nor write anything else.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// The largest file `read_file` returns and `write_file` accepts.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most entries `list_dir` returns (and resources lists).
pub const MAX_ENTRIES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("'{0}' is outside the workspace (paths are relative to it, without '..')")]
    Outside(String),
    #[error("'{0}' does not exist")]
    NotFound(String),
    #[error("'{path}' is {size} bytes; the limit is {MAX_FILE_BYTES}")]
    TooLarge { path: String, size: u64 },
    #[error("'{0}' is not UTF-8 text")]
    NotText(String),
    #[error("'{path}': {error}")]
    Io { path: String, error: std::io::Error },
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Entry {
    pub name: String,
    /// "file", "dir", "symlink" or "other".
    pub kind: &'static str,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Opens (creating it if needed) the workspace at `root`.
    pub fn open(root: &Path) -> std::io::Result<Workspace> {
        std::fs::create_dir_all(root)?;
        Ok(Workspace {
            root: root.canonicalize()?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path for the client's `path`, checked to stay inside the workspace (also through
    /// symbolic links, for the part of the path that exists).
    pub fn resolve(&self, path: &str) -> Result<PathBuf, WorkspaceError> {
        let outside = || WorkspaceError::Outside(path.to_string());
        if path.contains('\0') {
            return Err(outside());
        }
        let mut resolved = self.root.clone();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => resolved.push(part),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(outside());
                }
            }
        }
        // The deepest existing ancestor must still be inside once links are followed.
        let mut existing = resolved.as_path();
        while existing.symlink_metadata().is_err() {
            existing = existing.parent().ok_or_else(outside)?;
        }
        let real = existing
            .canonicalize()
            .map_err(|error| self.io(path, error))?;
        if !real.starts_with(&self.root) {
            return Err(outside());
        }
        // (Joining an empty rest would add a trailing '/', which a file does not take.)
        match resolved.strip_prefix(existing) {
            Ok(rest) if !rest.as_os_str().is_empty() => Ok(real.join(rest)),
            _ => Ok(real),
        }
    }

    pub fn read_text(&self, path: &str) -> Result<String, WorkspaceError> {
        let full = self.resolve(path)?;
        let meta = std::fs::metadata(&full).map_err(|error| self.io(path, error))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(WorkspaceError::TooLarge {
                path: path.into(),
                size: meta.len(),
            });
        }
        let bytes = std::fs::read(&full).map_err(|error| self.io(path, error))?;
        String::from_utf8(bytes).map_err(|_| WorkspaceError::NotText(path.into()))
    }

    /// Writes `content` to `path` (replacing it whole: written aside, then renamed over it).
    pub fn write_text(
        &self,
        path: &str,
        content: &str,
        create_dirs: bool,
    ) -> Result<u64, WorkspaceError> {
        if content.len() as u64 > MAX_FILE_BYTES {
            return Err(WorkspaceError::TooLarge {
                path: path.into(),
                size: content.len() as u64,
            });
        }
        let full = self.resolve(path)?;
        if full == self.root {
            return Err(WorkspaceError::Outside(path.into()));
        }
        let parent = full
            .parent()
            .ok_or_else(|| WorkspaceError::Outside(path.into()))?;
        if create_dirs {
            std::fs::create_dir_all(parent).map_err(|error| self.io(path, error))?;
        }
        let name = full.file_name().unwrap_or_default().to_string_lossy();
        let aside = parent.join(format!(".{name}.noa-write"));
        let result = (|| {
            let mut file = std::fs::File::create(&aside)?;
            file.write_all(content.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&aside, &full)
        })();
        if let Err(error) = result {
            let _ = std::fs::remove_file(&aside);
            return Err(self.io(path, error));
        }
        Ok(content.len() as u64)
    }

    pub fn list(&self, path: &str) -> Result<Vec<Entry>, WorkspaceError> {
        let full = self.resolve(path)?;
        let entries = std::fs::read_dir(&full).map_err(|error| self.io(path, error))?;
        let mut out = Vec::new();
        for entry in entries.take(MAX_ENTRIES) {
            let entry = entry.map_err(|error| self.io(path, error))?;
            let meta = entry.metadata().map_err(|error| self.io(path, error))?;
            let kind = if meta.is_symlink() {
                "symlink"
            } else if meta.is_dir() {
                "dir"
            } else if meta.is_file() {
                "file"
            } else {
                "other"
            };
            out.push(Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
                size: meta.len(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every regular file under the root (relative paths, sorted), at most MAX_ENTRIES.
    pub fn files(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() && out.len() < MAX_ENTRIES {
                    if let Ok(relative) = entry.path().strip_prefix(&self.root) {
                        out.push((relative.to_string_lossy().into_owned(), meta.len()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    fn io(&self, path: &str, error: std::io::Error) -> WorkspaceError {
        if error.kind() == std::io::ErrorKind::NotFound {
            WorkspaceError::NotFound(path.into())
        } else {
            WorkspaceError::Io {
                path: path.into(),
                error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("noa-ws-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn traversal_absolute_paths_and_escaping_links_are_refused() {
        let dir = scratch("escape");
        let ws = Workspace::open(&dir.join("ws")).unwrap();
        std::fs::write(dir.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), ws.root().join("link")).unwrap();
        std::os::unix::fs::symlink(&dir, ws.root().join("up")).unwrap();
        for bad in [
            "../secret",
            "/etc/passwd",
            "a/../../secret",
            "link",
            "up/secret",
            "up/new",
        ] {
            assert!(
                matches!(ws.resolve(bad), Err(WorkspaceError::Outside(_))),
                "{bad} should be refused"
            );
        }
        assert!(ws.write_text("up/new", "x", false).is_err());
        assert!(!dir.join("new").exists());
    }

    #[test]
    fn files_are_written_read_and_listed_inside() {
        let dir = scratch("inside");
        let ws = Workspace::open(&dir).unwrap();
        ws.write_text("a/b.txt", "hello", true).unwrap();
        assert_eq!(ws.read_text("./a/b.txt").unwrap(), "hello");
        let listed = ws.list("a").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].name.as_str(), listed[0].kind, listed[0].size),
            ("b.txt", "file", 5)
        );
        assert_eq!(ws.files(), vec![("a/b.txt".to_string(), 5)]);
        assert!(matches!(
            ws.read_text("missing"),
            Err(WorkspaceError::NotFound(_))
        ));
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            ws.read_text("bin"),
            Err(WorkspaceError::NotText(_))
        ));
    }
}
