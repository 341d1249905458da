//! The pieces procfs and sysfs are built of: a read-only text file whose content is generated
//! when it is read ([`TextFile`], seq-file style), a symlink whose target is computed when it is
//! read ([`Link`]), and the stat and listing helpers their directories share.
//!
//! A [`TextFile`] is made fresh by every lookup, so each open file has its own: the text is built
//! at the first read (and again at any read from offset 0, as Linux's seq_file does after a seek
//! to the start), and later reads are served from it, so a sequence of partial reads sees one
//! consistent snapshot. The generator runs with no lock held (it may fault in another process's
//! memory, which may sleep); the copy out is one bulk copy.
//!
//! Owns: nothing but these node types; the content is the generators'.

use crate::fs::{DirEntry, FileKind, Inode, InodeId, InodeRef, Io, ReadBuf, WriteBuf};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use noa_linux_abi::stat::{Stat, Statfs};
use spin::Mutex;

/// Which file system a node belongs to: `st_dev` and the statfs magic.
pub struct FsInfo {
    pub dev: u64,
    pub magic: i64,
}

/// Builds a link's target.
pub type Generate = Box<dyn Fn() -> SysResult<Vec<u8>> + Send + Sync>;
/// A file's text, shared between the file and whoever cached it.
pub type Text = Arc<Vec<u8>>;
/// Builds a file's text.
pub type GenerateText = Box<dyn Fn() -> SysResult<Text> + Send + Sync>;

/// A [`GenerateText`] from a generator of owned text.
pub fn text_of(generate: impl Fn() -> SysResult<Vec<u8>> + Send + Sync + 'static) -> GenerateText {
    Box::new(move || generate().map(Arc::new))
}

pub fn statfs(fs: &FsInfo) -> Statfs {
    Statfs {
        f_type: fs.magic,
        bsize: 4096,
        namelen: 255,
        frsize: 4096,
        fsid: [fs.dev as i32, 0],
        flags: 0x0e, // ST_NOSUID | ST_NODEV | ST_NOEXEC
        ..Statfs::default()
    }
}

fn node_stat(fs: &FsInfo, ino: u64, mode: u32, nlink: u64, size: i64) -> Stat {
    let time = crate::fs::now();
    Stat {
        dev: fs.dev,
        ino,
        nlink,
        mode,
        size,
        blksize: 4096,
        atime: time,
        mtime: time,
        ctime: time,
        ..Stat::default()
    }
}

/// A directory's stat: permission bits `perm`, `nlink` links.
pub fn dir_stat(fs: &FsInfo, ino: u64, perm: u32, nlink: u64) -> Stat {
    node_stat(fs, ino, FileKind::Directory.mode_bits() | perm, nlink, 0)
}

/// A read-only generated text file.
pub struct TextFile {
    fs: &'static FsInfo,
    ino: u64,
    perm: u32,
    /// What stat reports: 0 for procfs (as Linux), 4096 for sysfs attributes.
    size: i64,
    /// What a write gets: EINVAL for a process's files, EIO for /proc's own (as Linux).
    write_error: Errno,
    /// Refuse opens for writing (sysfs: EACCES even for root, as Linux's kernfs).
    refuse_write_open: bool,
    generate: GenerateText,
    text: Mutex<Option<Text>>,
}

impl TextFile {
    /// A procfs file with permission bits `perm`, whose writes fail with `write_error`.
    pub fn proc(
        fs: &'static FsInfo,
        ino: u64,
        perm: u32,
        write_error: Errno,
        generate: GenerateText,
    ) -> InodeRef {
        Arc::new(TextFile {
            fs,
            ino,
            perm,
            size: 0,
            write_error,
            refuse_write_open: false,
            generate,
            text: Mutex::new(None),
        })
    }

    /// A sysfs attribute (0444, size 4096, not openable for writing).
    pub fn sys(fs: &'static FsInfo, ino: u64, generate: GenerateText) -> InodeRef {
        Arc::new(TextFile {
            fs,
            ino,
            perm: 0o444,
            size: 4096,
            write_error: Errno::EACCES,
            refuse_write_open: true,
            generate,
            text: Mutex::new(None),
        })
    }

    /// The text for a read at `offset`: built now at offset 0 or if never built, else the
    /// snapshot the earlier reads saw.
    fn text_for(&self, offset: u64) -> SysResult<Text> {
        if offset != 0
            && let Some(text) = self.text.lock().clone()
        {
            return Ok(text);
        }
        let text = (self.generate)()?;
        *self.text.lock() = Some(text.clone());
        Ok(text)
    }
}

impl Inode for TextFile {
    fn id(&self) -> InodeId {
        (self.fs.dev, self.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::Regular
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(node_stat(
            self.fs,
            self.ino,
            FileKind::Regular.mode_bits() | self.perm,
            1,
            self.size,
        ))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(statfs(self.fs))
    }

    fn read_at(&self, offset: u64, buf: &mut ReadBuf<'_>, _io: Io) -> SysResult<usize> {
        let text = self.text_for(offset)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        let n = (text.len() - start).min(buf.len());
        buf.put(0, &text[start..start + n])?;
        Ok(n)
    }

    fn write_at(&self, _offset: u64, _buf: &WriteBuf<'_>, _io: Io) -> SysResult<usize> {
        Err(self.write_error)
    }

    fn size(&self) -> u64 {
        self.size as u64
    }

    fn truncate(&self, _size: u64) -> SysResult<()> {
        // Linux's procfs accepts O_TRUNC (and truncate) as a no-op.
        if self.refuse_write_open {
            Err(Errno::EACCES)
        } else {
            Ok(())
        }
    }

    fn set_attr(&self, _attr: &crate::fs::SetAttr) -> SysResult<()> {
        Err(Errno::EPERM)
    }

    fn check_open_for_write(&self) -> SysResult<()> {
        if self.refuse_write_open {
            Err(Errno::EACCES)
        } else {
            Ok(())
        }
    }
}

/// A symlink whose target is computed at each readlink (/proc/self, /proc/<pid>/exe, fd/N).
pub struct Link {
    fs: &'static FsInfo,
    ino: u64,
    perm: u32,
    target: Generate,
}

impl Link {
    pub fn inode(fs: &'static FsInfo, ino: u64, perm: u32, target: Generate) -> InodeRef {
        Arc::new(Link {
            fs,
            ino,
            perm,
            target,
        })
    }
}

impl Inode for Link {
    fn id(&self) -> InodeId {
        (self.fs.dev, self.ino)
    }

    fn kind(&self) -> FileKind {
        FileKind::Symlink
    }

    fn stat(&self) -> SysResult<Stat> {
        Ok(node_stat(
            self.fs,
            self.ino,
            FileKind::Symlink.mode_bits() | self.perm,
            1,
            0,
        ))
    }

    fn statfs(&self) -> SysResult<Statfs> {
        Ok(statfs(self.fs))
    }

    fn readlink(&self) -> SysResult<Vec<u8>> {
        (self.target)()
    }

    fn set_attr(&self, _attr: &crate::fs::SetAttr) -> SysResult<()> {
        Err(Errno::EPERM)
    }
}

/// A directory entry's name: fixed text, a number (a pid, a tid, an fd), or a short prefix and
/// a number (`cpu3`).
#[derive(Clone, Copy)]
pub enum Name {
    Text(&'static [u8]),
    Number(u64),
    Prefixed(&'static [u8], u64),
}

impl Name {
    /// The name's bytes, numbers rendered in `buf`.
    fn render(self, buf: &mut [u8; 40]) -> &[u8] {
        match self {
            Name::Text(text) => text,
            Name::Number(n) => {
                let at = format_number(n, buf);
                &buf[at..]
            }
            Name::Prefixed(prefix, n) => {
                let digits_at = format_number(n, buf);
                let at = digits_at.saturating_sub(prefix.len());
                buf[at..digits_at].copy_from_slice(&prefix[..digits_at - at]);
                &buf[at..]
            }
        }
    }
}

/// One entry of a generated listing. `key` orders the listing and is the `d_off` cookie
/// (resuming at `key + 1`): 0 and 1 are `.` and `..`, entries use keys from 2, increasing.
pub struct Listed {
    pub key: u64,
    pub name: Name,
    pub ino: u64,
    pub kind: FileKind,
}

/// Lists `.`, `..` and `entries` from `offset` into `sink` (see [`Inode::readdir`]); returns
/// the offset to resume from.
pub fn list(
    offset: u64,
    this: u64,
    parent: u64,
    entries: impl IntoIterator<Item = Listed>,
    sink: &mut dyn FnMut(&DirEntry<'_>) -> bool,
) -> SysResult<u64> {
    let dots = [
        Listed {
            key: 0,
            name: Name::Text(b"."),
            ino: this,
            kind: FileKind::Directory,
        },
        Listed {
            key: 1,
            name: Name::Text(b".."),
            ino: parent,
            kind: FileKind::Directory,
        },
    ];
    let mut resume = offset;
    let mut buf = [0u8; 40];
    for entry in dots.into_iter().chain(entries) {
        if entry.key < offset {
            continue;
        }
        let name = entry.name.render(&mut buf);
        let taken = sink(&DirEntry {
            name,
            ino: entry.ino,
            d_type: entry.kind.dirent_type(),
            next: entry.key + 1,
        });
        if !taken {
            return Ok(entry.key);
        }
        resume = entry.key + 1;
    }
    Ok(resume)
}

/// Writes `n` in decimal at the end of `buf`; returns where it starts.
fn format_number(mut n: u64, buf: &mut [u8; 40]) -> usize {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}

/// A directory entry name that is a number as /proc writes it (decimal, no sign, no leading
/// zero); None otherwise.
pub fn parse_number(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || (name[0] == b'0' && name.len() > 1) {
        return None;
    }
    core::str::from_utf8(name).ok()?.parse().ok()
}
