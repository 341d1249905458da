//! Path system calls: open, openat, creat, stat, lstat, fstat, newfstatat, statx, access,
//! faccessat, faccessat2, getdents64, readlink, readlinkat, getcwd, chdir, fchdir, mkdir,
//! mkdirat, unlink, unlinkat, rmdir, rename, renameat, renameat2, symlink, symlinkat, link,
//! linkat, chmod, fchmod, fchmodat, chown, fchown, lchown, fchownat, utimensat, umask, statfs,
//! fstatfs, truncate, ftruncate. Resolution and the file systems are `crate::fs`'s.
//!
//! The root (ext2) is read-only: creating, writing, removing or renaming there is EROFS; /tmp
//! and /dev/shm (tmpfs) take all of it. Everything runs as root: no permission checks, except
//! that X_OK wants an execute bit on a regular file.
//!
//! Partial: O_CREAT through a dangling symlink fails with ENOENT (Linux creates the target);
//! RENAME_EXCHANGE and RENAME_WHITEOUT are EINVAL; chown succeeds without changing owners and
//! utimensat without changing times (on tmpfs; EROFS on the root).

use super::Caller;
use super::file::{current_file, file, install};
use crate::fs::iobuf::with_bounce;
use crate::fs::path::{self, Resolved, Start};
use crate::fs::{FileKind, FileRef, InodeRef, OpenFile, PATH_MAX, SetAttr};
use crate::mm::uaccess;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::fcntl::{
    AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_REMOVEDIR, AT_STATX_SYNC_TYPE,
    AT_SYMLINK_FOLLOW, AT_SYMLINK_NOFOLLOW, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL,
    O_NOFOLLOW, O_PATH, O_RDONLY, O_TRUNC, O_WRONLY, RENAME_NOREPLACE, W_OK, X_OK,
};
use noa_linux_abi::stat::{Stat, Statx, encode_dirent64, major, minor};
use noa_linux_abi::syscalls as nr;
use noa_linux_abi::time::{Timespec, UTIME_NOW, UTIME_OMIT};

pub const TABLE: &[(usize, super::Handler)] = &[
    (nr::SYS_OPEN, open),
    (nr::SYS_OPENAT, openat),
    (nr::SYS_CREAT, creat),
    (nr::SYS_STAT, stat),
    (nr::SYS_LSTAT, lstat),
    (nr::SYS_FSTAT, fstat),
    (nr::SYS_NEWFSTATAT, newfstatat),
    (nr::SYS_STATX, statx),
    (nr::SYS_ACCESS, access),
    (nr::SYS_FACCESSAT, faccessat),
    (nr::SYS_FACCESSAT2, faccessat2),
    (nr::SYS_GETDENTS64, getdents64),
    (nr::SYS_READLINK, readlink),
    (nr::SYS_READLINKAT, readlinkat),
    (nr::SYS_GETCWD, getcwd),
    (nr::SYS_CHDIR, chdir),
    (nr::SYS_FCHDIR, fchdir),
    (nr::SYS_MKDIR, mkdir),
    (nr::SYS_MKNOD, mknod),
    (nr::SYS_MKNODAT, mknodat),
    (nr::SYS_MKDIRAT, mkdirat),
    (nr::SYS_UNLINK, unlink),
    (nr::SYS_UNLINKAT, unlinkat),
    (nr::SYS_RMDIR, rmdir),
    (nr::SYS_RENAME, rename),
    (nr::SYS_RENAMEAT, renameat),
    (nr::SYS_RENAMEAT2, renameat2),
    (nr::SYS_SYMLINK, symlink),
    (nr::SYS_SYMLINKAT, symlinkat),
    (nr::SYS_LINK, link),
    (nr::SYS_LINKAT, linkat),
    (nr::SYS_CHMOD, chmod),
    (nr::SYS_FCHMOD, fchmod),
    (nr::SYS_FCHMODAT, fchmodat),
    (nr::SYS_CHOWN, chown),
    (nr::SYS_LCHOWN, lchown),
    (nr::SYS_FCHOWN, fchown),
    (nr::SYS_FCHOWNAT, fchownat),
    (nr::SYS_UTIMENSAT, utimensat),
    (nr::SYS_UMASK, umask),
    (nr::SYS_STATFS, statfs),
    (nr::SYS_FSTATFS, fstatfs),
    (nr::SYS_TRUNCATE, truncate),
    (nr::SYS_FTRUNCATE, ftruncate),
];

const AT_FDCWD_ARG: u64 = AT_FDCWD as u32 as u64;

/// Reads a path argument: at most `PATH_MAX - 1` bytes (ENAMETOOLONG), in small pieces that
/// never cross into the next page before the NUL is found (a path just before unmapped memory
/// works, and a short path costs a short copy).
pub fn read_path(addr: u64) -> SysResult<Vec<u8>> {
    const PIECE: u64 = 256;
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let len = PIECE.min(4096 - at % 4096) as usize;
        let mut piece = [0u8; PIECE as usize];
        uaccess::copy_from_user(at, &mut piece[..len])?;
        if let Some(nul) = piece[..len].iter().position(|&b| b == 0) {
            out.extend_from_slice(&piece[..nul]);
            break;
        }
        out.extend_from_slice(&piece[..len]);
        if out.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        at = at.checked_add(len as u64).ok_or(Errno::EFAULT)?;
    }
    if out.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(out)
}

/// The directory a `*at` call starts from: the open file behind `dirfd`, or None for
/// AT_FDCWD or an absolute path (which ignores dirfd).
fn start_dir(dirfd: u64, path: &[u8]) -> SysResult<Option<FileRef>> {
    if path.first() == Some(&b'/') || dirfd as u32 == AT_FDCWD_ARG as u32 {
        return Ok(None);
    }
    let dir = current_file(dirfd)?;
    if dir.inode().kind() != FileKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    Ok(Some(dir))
}

fn start_of(dir: &Option<FileRef>) -> Start<'_> {
    match dir {
        Some(dir) => Start::At(dir.inode(), dir.opened_path()),
        None => Start::Cwd,
    }
}

/// Resolves `path` from `dirfd` for a call, following a final symlink if `follow`. With
/// `empty_ok` (AT_EMPTY_PATH) an empty path names `dirfd` itself. The canonical path is
/// computed only if `want_path`.
fn lookup_at(dirfd: u64, path: &[u8], follow: bool, empty_ok: bool) -> SysResult<Resolved> {
    lookup(dirfd, path, follow, empty_ok, false)
}

/// [`lookup_at`], with the canonical path when `want_path`.
fn lookup(
    dirfd: u64,
    path: &[u8],
    follow: bool,
    empty_ok: bool,
    want_path: bool,
) -> SysResult<Resolved> {
    if path.is_empty() {
        if !empty_ok {
            return Err(Errno::ENOENT);
        }
        if dirfd as u32 == AT_FDCWD_ARG as u32 {
            let context = path::current_context();
            return Ok(Resolved {
                inode: context.cwd().clone(),
                path: context.cwd_path().to_vec(),
            });
        }
        let file = current_file(dirfd)?;
        return Ok(Resolved {
            inode: file.inode().clone(),
            path: if want_path { file.path() } else { Vec::new() },
        });
    }
    let dir = start_dir(dirfd, path)?;
    if want_path {
        path::resolve_named(start_of(&dir), path, follow)
    } else {
        path::resolve(start_of(&dir), path, follow)
    }
}

/// Resolves the parent of `path`'s last component from `dirfd`.
fn parent_at(dirfd: u64, path: &[u8]) -> SysResult<path::ParentOf> {
    parent(dirfd, path, false)
}

/// [`parent_at`], with the directory's canonical path when `want_path`.
fn parent(dirfd: u64, path: &[u8], want_path: bool) -> SysResult<path::ParentOf> {
    let dir = start_dir(dirfd, path)?;
    path::resolve_parent(start_of(&dir), path, want_path)
}

pub(crate) fn umask_now() -> u32 {
    crate::task::current().process.fs.lock().umask
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = dir.to_vec();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// open/openat/creat.
fn do_open(dirfd: u64, path_addr: u64, flags: u32, mode: u32) -> SysResult<u64> {
    let path = read_path(path_addr)?;
    let cloexec = flags & O_CLOEXEC != 0;
    let path_only = flags & O_PATH != 0;
    let flags = if path_only {
        flags & (O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW)
    } else {
        flags
    };
    let access = flags & O_ACCMODE;
    let wants_write = !path_only && access != O_RDONLY;
    let (resolved, created) = if flags & O_CREAT != 0 && !path_only {
        open_creating(dirfd, &path, flags, mode)?
    } else {
        let resolved = lookup(dirfd, &path, flags & O_NOFOLLOW == 0, false, true)?;
        (resolved, false)
    };
    let inode = &resolved.inode;
    let kind = inode.kind();
    if kind == FileKind::Symlink && !path_only {
        // O_NOFOLLOW met a symlink.
        return Err(Errno::ELOOP);
    }
    if flags & O_DIRECTORY != 0 && kind != FileKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    if kind == FileKind::Directory && (wants_write || (flags & O_CREAT != 0 && !path_only)) {
        return Err(Errno::EISDIR);
    }
    if !path_only {
        match kind {
            FileKind::Fifo | FileKind::Socket | FileKind::BlockDevice => return Err(Errno::ENXIO),
            FileKind::Regular if wants_write && inode.read_only() => return Err(Errno::EROFS),
            _ => {}
        }
        if wants_write {
            inode.check_open_for_write()?;
        }
        if flags & O_TRUNC != 0 && wants_write && kind == FileKind::Regular && !created {
            inode.truncate(0)?;
        }
    }
    let file = OpenFile::new(resolved.inode, flags, resolved.path);
    install(file, cloexec)
}

/// The O_CREAT half of open: finds or creates the file.
fn open_creating(dirfd: u64, path: &[u8], flags: u32, mode: u32) -> SysResult<(Resolved, bool)> {
    let parent = parent(dirfd, path, true)?;
    if matches!(parent.name.as_slice(), b"." | b".." | b"/") {
        return Err(Errno::EISDIR);
    }
    match path::lookup_child(&parent.dir.inode, &parent.name) {
        Ok(existing) => {
            if flags & O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            if existing.kind() == FileKind::Symlink {
                if flags & O_NOFOLLOW != 0 {
                    return Err(Errno::ELOOP);
                }
                return Ok((lookup(dirfd, path, true, false, true)?, false));
            }
            if parent.trailing_slash {
                return Err(Errno::EISDIR);
            }
            let path = join(&parent.dir.path, &parent.name);
            Ok((
                Resolved {
                    inode: existing,
                    path,
                },
                false,
            ))
        }
        Err(Errno::ENOENT) => {
            if parent.trailing_slash {
                return Err(Errno::EISDIR);
            }
            let perm = mode & 0o7777 & !umask_now();
            let inode = parent
                .dir
                .inode
                .create(&parent.name, FileKind::Regular, perm)?;
            let path = join(&parent.dir.path, &parent.name);
            Ok((Resolved { inode, path }, true))
        }
        Err(e) => Err(e),
    }
}

fn open(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_open(AT_FDCWD_ARG, a[0], a[1] as u32, a[2] as u32)
}

fn openat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_open(a[0], a[1], a[2] as u32, a[3] as u32)
}

fn creat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_open(
        AT_FDCWD_ARG,
        a[0],
        O_CREAT | O_WRONLY | O_TRUNC,
        a[1] as u32,
    )
}

fn put_stat(addr: u64, stat: &Stat) -> SysResult<u64> {
    uaccess::copy_to_user(addr, &stat.encode())?;
    Ok(0)
}

fn stat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[0])?;
    let found = lookup_at(AT_FDCWD_ARG, &path, true, false)?;
    put_stat(a[1], &found.inode.stat()?)
}

fn lstat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[0])?;
    let found = lookup_at(AT_FDCWD_ARG, &path, false, false)?;
    put_stat(a[1], &found.inode.stat()?)
}

fn fstat(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    put_stat(a[1], &file.inode().stat()?)
}

fn newfstatat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let flags = a[3] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(a[1])?;
    let found = lookup_at(
        a[0],
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    put_stat(a[2], &found.inode.stat()?)
}

fn statx(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let flags = a[2] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
    {
        return Err(Errno::EINVAL);
    }
    let path = read_path(a[1])?;
    let found = lookup_at(
        a[0],
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    let stat = found.inode.stat()?;
    let mut statx = Statx::from_stat(&stat);
    statx.rdev_major = major(stat.rdev);
    statx.rdev_minor = minor(stat.rdev);
    statx.dev_major = major(stat.dev);
    statx.dev_minor = minor(stat.dev);
    uaccess::copy_to_user(a[4], &statx.encode())?;
    Ok(0)
}

fn check_access(dirfd: u64, path_addr: u64, mode: u64, flags: u32) -> SysResult<u64> {
    if mode & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(path_addr)?;
    let found = lookup_at(
        dirfd,
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    let inode = &found.inode;
    let mode = mode as u32;
    if mode & W_OK != 0
        && inode.read_only()
        && matches!(inode.kind(), FileKind::Regular | FileKind::Directory)
    {
        return Err(Errno::EROFS);
    }
    if mode & X_OK != 0 && inode.kind() != FileKind::Directory && inode.stat()?.mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

fn access(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    check_access(AT_FDCWD_ARG, a[0], a[1], 0)
}

fn faccessat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    check_access(a[0], a[1], a[2], 0)
}

fn faccessat2(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    check_access(a[0], a[1], a[2], a[3] as u32)
}

fn getdents64(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    if !file.is_directory() {
        return Err(Errno::ENOTDIR);
    }
    let size = (a[2] as u32 as usize).min(crate::fs::iobuf::BOUNCE_BYTES);
    let start = file.position();
    let (used, resume, refused) = with_bounce(size, |buf| -> SysResult<(usize, u64, bool)> {
        let mut used = 0;
        let mut refused = false;
        let resume = file
            .inode()
            .readdir(start, &mut |entry| match encode_dirent64(
                &mut buf[used..],
                entry.ino,
                entry.next as i64,
                entry.d_type,
                entry.name,
            ) {
                Some(n) => {
                    used += n;
                    true
                }
                None => {
                    refused = true;
                    false
                }
            })?;
        if used > 0 {
            uaccess::copy_to_user(a[1], &buf[..used])?;
        }
        Ok((used, resume, refused))
    })?;
    if used == 0 && refused {
        return Err(Errno::EINVAL);
    }
    file.set_position(resume);
    Ok(used as u64)
}

fn do_readlink(dirfd: u64, path_addr: u64, buf: u64, size: u64) -> SysResult<u64> {
    let size = size as i32;
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(path_addr)?;
    let found = lookup_at(dirfd, &path, false, false)?;
    if found.inode.kind() != FileKind::Symlink {
        return Err(Errno::EINVAL);
    }
    let target = found.inode.readlink()?;
    let n = target.len().min(size as usize);
    uaccess::copy_to_user(buf, &target[..n])?;
    Ok(n as u64)
}

fn readlink(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_readlink(AT_FDCWD_ARG, a[0], a[1], a[2])
}

fn readlinkat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_readlink(a[0], a[1], a[2], a[3])
}

fn getcwd(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let mut cwd = crate::task::current().process.fs.lock().cwd_path().to_vec();
    cwd.push(0);
    if cwd.len() > a[1] as usize {
        return Err(Errno::ERANGE);
    }
    uaccess::copy_to_user(a[0], &cwd)?;
    Ok(cwd.len() as u64)
}

fn set_cwd(found: Resolved) -> SysResult<u64> {
    let process = crate::task::current().process.clone();
    let mut fs = process.fs.lock();
    fs.set_cwd(found.inode, found.path)?;
    Ok(0)
}

fn chdir(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[0])?;
    set_cwd(lookup(AT_FDCWD_ARG, &path, true, false, true)?)
}

fn fchdir(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    if !file.is_directory() {
        return Err(Errno::ENOTDIR);
    }
    set_cwd(Resolved {
        inode: file.inode().clone(),
        path: file.path(),
    })
}

fn do_mkdir(dirfd: u64, path_addr: u64, mode: u32) -> SysResult<u64> {
    let path = read_path(path_addr)?;
    let parent = parent_at(dirfd, &path)?;
    if matches!(parent.name.as_slice(), b"." | b".." | b"/")
        || path::lookup_child(&parent.dir.inode, &parent.name).is_ok()
    {
        return Err(Errno::EEXIST);
    }
    let perm = mode & 0o7777 & !umask_now();
    parent
        .dir
        .inode
        .create(&parent.name, FileKind::Directory, perm)?;
    Ok(0)
}

/// mknod: regular files and FIFOs (a FIFO on disk is a name; opening one gives ENXIO until
/// named pipes are opened through the file system). Device nodes: EPERM (devfs has them).
fn do_mknod(dirfd: u64, path_addr: u64, mode: u32) -> SysResult<u64> {
    use noa_linux_abi::stat::{S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK};
    let kind = match mode & S_IFMT {
        0 | S_IFREG => FileKind::Regular,
        S_IFIFO => FileKind::Fifo,
        S_IFSOCK => FileKind::Socket,
        S_IFCHR | S_IFBLK => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    };
    let path = read_path(path_addr)?;
    let parent = parent_at(dirfd, &path)?;
    if matches!(parent.name.as_slice(), b"." | b".." | b"/")
        || path::lookup_child(&parent.dir.inode, &parent.name).is_ok()
    {
        return Err(Errno::EEXIST);
    }
    let perm = mode & 0o7777 & !umask_now();
    parent.dir.inode.create(&parent.name, kind, perm)?;
    Ok(0)
}

fn mknod(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_mknod(AT_FDCWD_ARG, a[0], a[1] as u32)
}

fn mknodat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_mknod(a[0], a[1], a[2] as u32)
}

fn mkdir(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_mkdir(AT_FDCWD_ARG, a[0], a[1] as u32)
}

fn mkdirat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_mkdir(a[0], a[1], a[2] as u32)
}

fn do_unlink(dirfd: u64, path_addr: u64, flags: u32) -> SysResult<u64> {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let remove_dir = flags & AT_REMOVEDIR != 0;
    let path = read_path(path_addr)?;
    let parent = parent_at(dirfd, &path)?;
    let name = parent.name.as_slice();
    if !matches!(name, b"." | b".." | b"/") {
        if path::is_mount_point(&parent.dir.inode, name) {
            return Err(Errno::EBUSY);
        }
        let target = path::lookup_child(&parent.dir.inode, name)?;
        if parent.trailing_slash && target.kind() != FileKind::Directory {
            return Err(Errno::ENOTDIR);
        }
    }
    parent.dir.inode.unlink(name, remove_dir)?;
    Ok(0)
}

fn unlink(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_unlink(AT_FDCWD_ARG, a[0], 0)
}

fn unlinkat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_unlink(a[0], a[1], a[2] as u32)
}

fn rmdir(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_unlink(AT_FDCWD_ARG, a[0], AT_REMOVEDIR)
}

fn do_rename(
    old_dirfd: u64,
    old_addr: u64,
    new_dirfd: u64,
    new_addr: u64,
    flags: u32,
) -> SysResult<u64> {
    if flags & !RENAME_NOREPLACE != 0 {
        return Err(Errno::EINVAL);
    }
    let old_path = read_path(old_addr)?;
    let new_path = read_path(new_addr)?;
    let old = parent_at(old_dirfd, &old_path)?;
    let new = parent_at(new_dirfd, &new_path)?;
    for name in [&old.name, &new.name] {
        if matches!(name.as_slice(), b"." | b".." | b"/") {
            return Err(Errno::EBUSY);
        }
    }
    if path::is_mount_point(&old.dir.inode, &old.name)
        || path::is_mount_point(&new.dir.inode, &new.name)
    {
        return Err(Errno::EBUSY);
    }
    let moving = path::lookup_child(&old.dir.inode, &old.name)?;
    if (old.trailing_slash || new.trailing_slash) && moving.kind() != FileKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    if old.dir.inode.id().0 != new.dir.inode.id().0 {
        return Err(Errno::EXDEV);
    }
    old.dir.inode.rename(
        &old.name,
        &new.dir.inode,
        &new.name,
        flags & RENAME_NOREPLACE != 0,
    )?;
    Ok(0)
}

fn rename(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_rename(AT_FDCWD_ARG, a[0], AT_FDCWD_ARG, a[1], 0)
}

fn renameat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_rename(a[0], a[1], a[2], a[3], 0)
}

fn renameat2(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_rename(a[0], a[1], a[2], a[3], a[4] as u32)
}

fn do_symlink(target_addr: u64, dirfd: u64, path_addr: u64) -> SysResult<u64> {
    let target = read_path(target_addr)?;
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let path = read_path(path_addr)?;
    let parent = parent_at(dirfd, &path)?;
    if matches!(parent.name.as_slice(), b"." | b".." | b"/")
        || path::lookup_child(&parent.dir.inode, &parent.name).is_ok()
    {
        return Err(Errno::EEXIST);
    }
    parent.dir.inode.symlink(&parent.name, &target)?;
    Ok(0)
}

fn symlink(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_symlink(a[0], AT_FDCWD_ARG, a[1])
}

fn symlinkat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_symlink(a[0], a[1], a[2])
}

fn do_link(
    old_dirfd: u64,
    old_addr: u64,
    new_dirfd: u64,
    new_addr: u64,
    flags: u32,
) -> SysResult<u64> {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let old_path = read_path(old_addr)?;
    let target = lookup_at(
        old_dirfd,
        &old_path,
        flags & AT_SYMLINK_FOLLOW != 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    if target.inode.kind() == FileKind::Directory {
        return Err(Errno::EPERM);
    }
    let new_path = read_path(new_addr)?;
    let parent = parent_at(new_dirfd, &new_path)?;
    if matches!(parent.name.as_slice(), b"." | b".." | b"/")
        || path::lookup_child(&parent.dir.inode, &parent.name).is_ok()
    {
        return Err(Errno::EEXIST);
    }
    if target.inode.id().0 != parent.dir.inode.id().0 {
        return Err(Errno::EXDEV);
    }
    parent.dir.inode.link(&parent.name, &target.inode)?;
    Ok(0)
}

fn link(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_link(AT_FDCWD_ARG, a[0], AT_FDCWD_ARG, a[1], 0)
}

fn linkat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    do_link(a[0], a[1], a[2], a[3], a[4] as u32)
}

fn chmod(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[0])?;
    let found = lookup_at(AT_FDCWD_ARG, &path, true, false)?;
    set_mode(&found.inode, a[1])
}

fn fchmod(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let file = file(me, a[0])?;
    set_mode(file.inode(), a[1])
}

fn fchmodat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[1])?;
    let found = lookup_at(a[0], &path, true, false)?;
    set_mode(&found.inode, a[2])
}

fn set_mode(inode: &InodeRef, mode: u64) -> SysResult<u64> {
    inode.set_attr(&SetAttr {
        mode: Some(mode as u32 & 0o7777),
        ..SetAttr::default()
    })?;
    Ok(0)
}

/// chown and friends: `-1` (as u32) leaves an id unchanged. Everything runs as root, so every
/// change is allowed.
fn set_owner(inode: &InodeRef, uid: u64, gid: u64) -> SysResult<u64> {
    let id = |v: u64| (v as u32 != u32::MAX).then_some(v as u32);
    inode.set_attr(&SetAttr {
        uid: id(uid),
        gid: id(gid),
        ..SetAttr::default()
    })?;
    Ok(0)
}

fn chown(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[0])?;
    set_owner(
        &lookup_at(AT_FDCWD_ARG, &path, true, false)?.inode,
        a[1],
        a[2],
    )
}

fn lchown(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[0])?;
    set_owner(
        &lookup_at(AT_FDCWD_ARG, &path, false, false)?.inode,
        a[1],
        a[2],
    )
}

fn fchown(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    set_owner(file(me, a[0])?.inode(), a[1], a[2])
}

fn fchownat(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let flags = a[4] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(a[1])?;
    let found = lookup_at(
        a[0],
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    set_owner(&found.inode, a[2], a[3])
}

fn utimensat(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let flags = a[3] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    // A NULL path (futimens) names dirfd itself.
    let inode = if a[1] == 0 {
        file(me, a[0])?.inode().clone()
    } else {
        let path = read_path(a[1])?;
        lookup_at(
            a[0],
            &path,
            flags & AT_SYMLINK_NOFOLLOW == 0,
            flags & AT_EMPTY_PATH != 0,
        )?
        .inode
    };
    // NULL times: both now. Otherwise each is a time, UTIME_NOW or UTIME_OMIT.
    let now = crate::fs::now();
    let (atime, mtime) = if a[2] == 0 {
        (Some(now), Some(now))
    } else {
        let mut raw = [0u8; 2 * Timespec::SIZE];
        uaccess::copy_from_user(a[2], &mut raw)?;
        let pick = |bytes: &[u8]| -> SysResult<Option<Timespec>> {
            let t = Timespec::decode(bytes).ok_or(Errno::EINVAL)?;
            match t.nsec {
                UTIME_OMIT => Ok(None),
                UTIME_NOW => Ok(Some(now)),
                0..=999_999_999 => Ok(Some(t)),
                _ => Err(Errno::EINVAL),
            }
        };
        (pick(&raw[..Timespec::SIZE])?, pick(&raw[Timespec::SIZE..])?)
    };
    if atime.is_none() && mtime.is_none() {
        return Ok(0);
    }
    inode.set_attr(&SetAttr {
        atime,
        mtime,
        ..SetAttr::default()
    })?;
    Ok(0)
}

fn umask(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let process = crate::task::current().process.clone();
    let mut fs = process.fs.lock();
    let old = fs.umask;
    fs.umask = a[0] as u32 & 0o777;
    Ok(u64::from(old))
}

fn put_statfs(addr: u64, inode: &InodeRef) -> SysResult<u64> {
    uaccess::copy_to_user(addr, &inode.statfs()?.encode())?;
    Ok(0)
}

fn statfs(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let path = read_path(a[0])?;
    put_statfs(a[1], &lookup_at(AT_FDCWD_ARG, &path, true, false)?.inode)
}

fn fstatfs(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    put_statfs(a[1], file(me, a[0])?.inode())
}

fn truncate(_: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let length = a[1] as i64;
    if length < 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(a[0])?;
    let found = lookup_at(AT_FDCWD_ARG, &path, true, false)?;
    match found.inode.kind() {
        FileKind::Directory => return Err(Errno::EISDIR),
        FileKind::Regular => {}
        _ => return Err(Errno::EINVAL),
    }
    found.inode.truncate(length as u64)?;
    Ok(0)
}

fn ftruncate(me: &Caller, a: &[u64; 6]) -> SysResult<u64> {
    let length = a[1] as i64;
    if length < 0 {
        return Err(Errno::EINVAL);
    }
    let file = file(me, a[0])?;
    if !file.writable() || file.inode().kind() != FileKind::Regular {
        return Err(Errno::EINVAL);
    }
    file.inode().truncate(length as u64)?;
    Ok(0)
}
