//! Path resolution, the mount table, and [`FsContext`] (a process's current directory and
//! umask).
//!
//! A mount covers the name `name` in directory `parent` (keyed by the parent's inode identity):
//! looking that name up yields the mounted root instead, and `..` from a mounted root yields
//! `parent`. Mounts need no directory on the file system below (the root image may lack /dev).
//!
//! Resolution walks one component at a time: `.` stays, `..` goes up (never above the root),
//! symlinks are followed by splicing their target in front of the rest of the path (at most
//! [`MAX_SYMLINK_HOPS`], then ELOOP), a last component that is a symlink is followed only when
//! asked (AT_SYMLINK_NOFOLLOW, O_NOFOLLOW, lstat) unless a trailing slash follows it, and a
//! trailing slash demands a directory. Along the way it keeps the canonical absolute path of
//! where it is (for getcwd and /proc/self/fd), which stays exact because a symlink restarts the
//! walk from the link's directory or the root. No permission checks: everything runs as root.
//!
//! Owns: the mount table, the root, name walking. Knows file systems only through [`Inode`].

use super::{FileKind, InodeId, InodeRef, NAME_MAX, PATH_MAX};
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use spin::Mutex;

/// Symlinks followed in one resolution before ELOOP (Linux: 40).
pub const MAX_SYMLINK_HOPS: usize = 40;

struct Mount {
    parent: InodeId,
    name: Vec<u8>,
    parent_inode: InodeRef,
    root: InodeRef,
    root_id: InodeId,
    /// Where it is mounted, for /proc/mounts.
    path: Vec<u8>,
}

static MOUNTS: Mutex<Vec<Mount>> = Mutex::new(Vec::new());
static ROOT: Mutex<Option<InodeRef>> = Mutex::new(None);

/// Makes `root` the root directory (once, at boot).
pub fn set_root(root: InodeRef) {
    *ROOT.lock() = Some(root);
}

/// The root directory; an empty tmpfs if nothing was mounted (no disk, or before init).
pub fn root() -> InodeRef {
    let mut slot = ROOT.lock();
    slot.get_or_insert_with(|| super::tmpfs::TmpFs::new().root())
        .clone()
}

pub fn root_if_mounted() -> Option<InodeRef> {
    ROOT.lock().clone()
}

/// Mounts `root` over `name` in directory `parent`.
pub fn mount(parent: &InodeRef, name: &[u8], root: InodeRef) {
    mount_named(parent, name, root, canonical_path_of(parent, name));
}

/// [`mount`], with the mount point's absolute path given (for mounts below plain directories).
pub fn mount_named(parent: &InodeRef, name: &[u8], root: InodeRef, path: Vec<u8>) {
    let root_id = root.id();
    MOUNTS.lock().push(Mount {
        parent: parent.id(),
        name: name.to_vec(),
        parent_inode: parent.clone(),
        root,
        root_id,
        path,
    });
}

/// The mount table as (mount point, mounted root), in mount order (for /proc/mounts).
#[allow(dead_code)] // for procfs
pub fn mounts() -> Vec<(Vec<u8>, InodeRef)> {
    MOUNTS
        .lock()
        .iter()
        .map(|m| (m.path.clone(), m.root.clone()))
        .collect()
}

/// Best effort: the path of `parent`/`name` from the mount table (mounts are made at boot,
/// from the root down).
fn canonical_path_of(parent: &InodeRef, name: &[u8]) -> Vec<u8> {
    let parent_id = parent.id();
    let mut path = if root_if_mounted().is_some_and(|r| r.id() == parent_id) {
        Vec::new()
    } else {
        MOUNTS
            .lock()
            .iter()
            .find(|m| m.root_id == parent_id)
            .map(|m| m.path.clone())
            .unwrap_or_default()
    };
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

fn mounted_over(parent: InodeId, name: &[u8]) -> Option<InodeRef> {
    let mounts = MOUNTS.lock();
    mounts
        .iter()
        .rev()
        .find(|m| m.parent == parent && m.name == name)
        .map(|m| m.root.clone())
}

/// The inode `name` (one component) names in directory `dir`, mounts and `.`/`..` included.
pub fn lookup_child(dir: &InodeRef, name: &[u8]) -> SysResult<InodeRef> {
    match name {
        b"." | b"/" => Ok(dir.clone()),
        b".." => parent_of(dir, &root()),
        _ => match mounted_over(dir.id(), name) {
            Some(mounted) => Ok(mounted),
            None => dir.lookup(name),
        },
    }
}

/// Whether something is mounted over `name` in `dir` (it cannot be removed or renamed: EBUSY).
pub fn is_mount_point(dir: &InodeRef, name: &[u8]) -> bool {
    mounted_over(dir.id(), name).is_some()
}

/// `..` of directory `dir`.
fn parent_of(dir: &InodeRef, root: &InodeRef) -> SysResult<InodeRef> {
    let id = dir.id();
    if id == root.id() {
        return Ok(dir.clone());
    }
    if let Some(parent) = MOUNTS
        .lock()
        .iter()
        .rev()
        .find(|m| m.root_id == id)
        .map(|m| m.parent_inode.clone())
    {
        return Ok(parent);
    }
    dir.parent()
}

/// A process's view of the name space: its current directory (and its canonical path) and its
/// umask. Cloned at fork.
#[derive(Clone)]
pub struct FsContext {
    cwd: InodeRef,
    cwd_path: Vec<u8>,
    pub umask: u32,
}

impl FsContext {
    /// At the root, umask 022 (init's).
    pub fn root() -> FsContext {
        FsContext {
            cwd: root(),
            cwd_path: b"/".to_vec(),
            umask: 0o022,
        }
    }

    pub fn cwd(&self) -> &InodeRef {
        &self.cwd
    }

    /// The canonical absolute path of the current directory.
    pub fn cwd_path(&self) -> &[u8] {
        &self.cwd_path
    }

    /// chdir/fchdir: `dir` must be a directory.
    pub fn set_cwd(&mut self, dir: InodeRef, path: Vec<u8>) -> SysResult<()> {
        if dir.kind() != FileKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        self.cwd = dir;
        self.cwd_path = if path.is_empty() { b"/".to_vec() } else { path };
        Ok(())
    }
}

/// The current process's context (a copy); the root context when no process runs (boot,
/// tests).
pub fn current_context() -> FsContext {
    match crate::task::sched::try_current() {
        Some(thread) => thread.process.fs.lock().clone(),
        None => FsContext::root(),
    }
}

/// The current directory and (if `want_path`) its path, without copying the whole context.
fn current_cwd(want_path: bool) -> (InodeRef, Vec<u8>) {
    match crate::task::sched::try_current() {
        Some(thread) => {
            let fs = thread.process.fs.lock();
            let path = if want_path {
                fs.cwd_path.clone()
            } else {
                Vec::new()
            };
            (fs.cwd.clone(), path)
        }
        None => (root(), b"/".to_vec()),
    }
}

/// The result of a resolution: the inode and, when asked for, its canonical absolute path
/// (empty otherwise).
pub struct Resolved {
    pub inode: InodeRef,
    pub path: Vec<u8>,
}

/// Where a relative path starts.
#[derive(Clone, Copy)]
pub enum Start<'a> {
    /// The current process's working directory (looked up only for relative paths).
    Cwd,
    /// A directory and its canonical path (a dirfd).
    At(&'a InodeRef, &'a [u8]),
}

/// The parent directory of a path's last component, that component, and whether a slash
/// followed it. The component is `.`/`..` as written, or `/` alone for the root itself.
pub struct ParentOf {
    pub dir: Resolved,
    pub name: Vec<u8>,
    pub trailing_slash: bool,
}

/// Resolves `path`; `follow` says whether a last component that is a symlink is followed. The
/// result's path is left empty (see [`resolve_named`]).
pub fn resolve(start: Start<'_>, path: &[u8], follow: bool) -> SysResult<Resolved> {
    match walk(start, path, follow, false, false)? {
        Walked::Found(found) => Ok(found),
        Walked::Parent(_) => Err(Errno::ENOENT),
    }
}

/// [`resolve`], also computing the canonical absolute path (for open files and chdir).
pub fn resolve_named(start: Start<'_>, path: &[u8], follow: bool) -> SysResult<Resolved> {
    match walk(start, path, follow, false, true)? {
        Walked::Found(found) => Ok(found),
        Walked::Parent(_) => Err(Errno::ENOENT),
    }
}

/// Resolves all of `path` but its last component (for create, unlink, rename, mkdir); the
/// directory's path is computed if `want_path`.
pub fn resolve_parent(start: Start<'_>, path: &[u8], want_path: bool) -> SysResult<ParentOf> {
    match walk(start, path, false, true, want_path)? {
        Walked::Parent(parent) => Ok(parent),
        // A path of slashes alone: the root.
        Walked::Found(found) => Ok(ParentOf {
            dir: found,
            name: b"/".to_vec(),
            trailing_slash: true,
        }),
    }
}

enum Walked {
    Found(Resolved),
    Parent(ParentOf),
}

/// Appends `name` to the canonical path `path`.
fn push_component(path: &mut Vec<u8>, name: &[u8]) {
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    path.extend_from_slice(name);
}

/// Drops the last component of the canonical path `path` (never the root's slash).
fn pop_component(path: &mut Vec<u8>) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => path.truncate(1),
        Some(slash) => path.truncate(slash),
    }
}

/// The walk. Allocation-free for a path without symlinks when no path is wanted (every
/// instruction counts in ring 0 here): the path is read in place, and copied only when a
/// symlink's target must be spliced in front of its rest.
fn walk(
    start: Start<'_>,
    path: &[u8],
    follow_last: bool,
    want_parent: bool,
    want_path: bool,
) -> SysResult<Walked> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let root = root();
    let (mut current, mut current_path) = if path[0] == b'/' {
        let path = if want_path { b"/".to_vec() } else { Vec::new() };
        (root.clone(), path)
    } else {
        match start {
            Start::At(dir, dir_path) => {
                let path = if want_path {
                    dir_path.to_vec()
                } else {
                    Vec::new()
                };
                (dir.clone(), path)
            }
            Start::Cwd => current_cwd(want_path),
        }
    };
    if want_path {
        current_path.reserve(path.len() + 1);
    }
    // The text being walked: `path`, or the splice of a symlink's target and the rest.
    let mut spliced: Option<Vec<u8>> = None;
    let mut at = 0;
    let mut hops = 0;
    loop {
        let rest: &[u8] = spliced.as_deref().unwrap_or(path);
        while rest.get(at) == Some(&b'/') {
            at += 1;
        }
        if at >= rest.len() {
            // The path ended (on slashes, or a symlink pointing at a directory's path).
            if current.kind() != FileKind::Directory && rest.last() == Some(&b'/') {
                return Err(Errno::ENOTDIR);
            }
            return Ok(Walked::Found(Resolved {
                inode: current,
                path: current_path,
            }));
        }
        let end = rest[at..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(rest.len(), |p| at + p);
        let name = &rest[at..end];
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let is_last = rest[end..].iter().all(|&b| b == b'/');
        let trailing_slash = is_last && end < rest.len();
        if current.kind() != FileKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        if want_parent && is_last {
            return Ok(Walked::Parent(ParentOf {
                dir: Resolved {
                    inode: current,
                    path: current_path,
                },
                name: name.to_vec(),
                trailing_slash,
            }));
        }
        match name {
            b"." => {}
            b".." => {
                current = parent_of(&current, &root)?;
                if want_path {
                    pop_component(&mut current_path);
                }
            }
            _ => {
                let next = match mounted_over(current.id(), name) {
                    Some(mounted) => mounted,
                    None => current.lookup(name)?,
                };
                if next.kind() == FileKind::Symlink && (!is_last || follow_last || trailing_slash) {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(Errno::ELOOP);
                    }
                    let mut target = next.readlink()?;
                    if target.is_empty() {
                        return Err(Errno::ENOENT);
                    }
                    if target[0] == b'/' {
                        current = root.clone();
                        if want_path {
                            current_path.truncate(0);
                            current_path.push(b'/');
                        }
                    }
                    target.extend_from_slice(&rest[end..]);
                    spliced = Some(target);
                    at = 0;
                    continue;
                }
                current = next;
                if want_path {
                    push_component(&mut current_path, name);
                }
            }
        }
        at = end;
    }
}
