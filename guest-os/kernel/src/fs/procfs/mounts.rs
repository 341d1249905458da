//! `/proc/<pid>/mounts` (and `/proc/mounts`, a link to `self/mounts`): the mount table in
//! fstab form — `device mount-point type options 0 0` — the root first, then the mounts in
//! the order they were made ([`crate::fs::path::mounts`]). The type comes from the mounted
//! root's statfs magic.

use super::text::TextBuf;
use crate::fs::{InodeRef, path};
use alloc::vec::Vec;
use noa_linux_abi::errno::SysResult;
use noa_linux_abi::stat::{
    EXT2_SUPER_MAGIC, PROC_SUPER_MAGIC, SYSFS_MAGIC, TMPFS_MAGIC, major, minor,
};

pub fn generate() -> SysResult<Vec<u8>> {
    let mut out = TextBuf::with_capacity(400);
    if let Some(root) = path::root_if_mounted() {
        line(&mut out, b"/", &root);
    }
    for (at, root) in path::mounts() {
        line(&mut out, &at, &root);
    }
    Ok(out.into_bytes())
}

fn line(out: &mut TextBuf, at: &[u8], root: &InodeRef) {
    let magic = root.statfs().map(|s| s.f_type).unwrap_or(0);
    let dev = root.id().0;
    let (kind, options) = match magic {
        EXT2_SUPER_MAGIC => {
            disk_name(out, dev);
            ("ext2", "relatime")
        }
        TMPFS_MAGIC if dev == crate::fs::devfs::DEV => {
            out.str("devtmpfs");
            ("devtmpfs", "nosuid,relatime,mode=755")
        }
        TMPFS_MAGIC => {
            out.str("tmpfs");
            ("tmpfs", "nosuid,nodev")
        }
        PROC_SUPER_MAGIC => {
            out.str("proc");
            ("proc", "nosuid,nodev,noexec,relatime")
        }
        SYSFS_MAGIC => {
            out.str("sysfs");
            ("sysfs", "nosuid,nodev,noexec,relatime")
        }
        _ => {
            out.str("none");
            ("unknown", "relatime")
        }
    };
    out.byte(b' ').bytes(at).byte(b' ').str(kind).byte(b' ');
    out.str(if root.read_only() { "ro," } else { "rw," });
    out.str(options).str(" 0 0\n");
}

/// The virtio disk `dev` is: /dev/vda for 254:0, /dev/vdb for 254:16, …
fn disk_name(out: &mut TextBuf, dev: u64) {
    let index = minor(dev) / 16;
    if major(dev) == 254 && index < 26 {
        out.str("/dev/vd").byte(b'a' + index as u8);
    } else {
        out.str("/dev/block/").num(u64::from(major(dev)));
        out.byte(b':').num(u64::from(minor(dev)));
    }
}
