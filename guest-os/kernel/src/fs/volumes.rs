//! `--volume` disks: the VMM attaches them after the image (vdb, vdc, …) and names, for each, in
//! the same order, where it goes: a `noa.volume=rw,PATH` or `noa.volume=ro,PATH` word on the
//! command line (docs/boot-protocol.md). Each holding ext2 is mounted there, read-write unless
//! `ro` or the disk is read-only; a missing mount point is created on a writable parent.
//!
//! A disk that does not mount is reported on the console and skipped: the machine still boots,
//! and the path shows what is under it on the root.
//!
//! Owns: the volume words and their mounts.

use super::ext2::Ext2Fs;
use super::path::{self, Start};
use super::{FileKind, InodeRef};
use alloc::vec::Vec;
use hal_pv::virtio::Device;
use noa_linux_abi::stat::makedev;

/// Where one volume goes.
pub struct Volume {
    pub path: Vec<u8>,
    pub read_only: bool,
}

/// The `noa.volume=` words of the command line, in order.
pub fn from_cmdline(line: &str) -> Vec<Volume> {
    crate::cmdline::Cmdline::values(line, "noa.volume")
        .filter_map(|value| {
            let (mode, path) = value.split_once(',')?;
            Some(Volume {
                path: crate::cmdline::decode_arg(path),
                read_only: mode == "ro",
            })
        })
        .collect()
}

/// Mounts disk `index` (1 for vdb) as `volume`.
pub fn mount(index: usize, disk: Device, volume: &Volume) {
    let shown = alloc::string::String::from_utf8_lossy(&volume.path).into_owned();
    // vdb is 254:16, vdc 254:32, … as on Linux.
    let dev = makedev(254, 16 * index as u32);
    let fs = match Ext2Fs::mount(disk, dev, volume.read_only) {
        Ok(fs) => fs,
        Err(why) => {
            hal_pv::println!("fs: volume {shown} not mounted: {why}");
            return;
        }
    };
    match mount_point(&volume.path) {
        Some((parent, name)) => {
            let mut at = Vec::with_capacity(volume.path.len() + 1);
            for component in volume.path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
                at.push(b'/');
                at.extend_from_slice(component);
            }
            path::mount_named(&parent, &name, fs.root(), at)
        }
        None => hal_pv::println!("fs: volume {shown} not mounted: bad mount point"),
    }
}

/// The directory a mount point lies in and its last component, creating missing directories
/// where the file system allows.
fn mount_point(target: &[u8]) -> Option<(InodeRef, Vec<u8>)> {
    let root = path::root();
    let components: Vec<&[u8]> = target
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let (last, parents) = components.split_last()?;
    if components.iter().any(|c| *c == b"..") {
        return None;
    }
    let mut dir = root;
    for component in parents.iter().chain(core::iter::once(last)) {
        let next = match path::resolve(Start::At(&dir, b"/"), component, true) {
            Ok(found) => found.inode,
            Err(_) => match dir.create(component, FileKind::Directory, 0o755) {
                Ok(made) => made,
                // The last one may stay missing: a mount needs no directory under it.
                Err(_) if core::ptr::eq(component, last) => break,
                Err(_) => return None,
            },
        };
        if core::ptr::eq(component, last) {
            break;
        }
        dir = next;
    }
    Some((dir, last.to_vec()))
}
