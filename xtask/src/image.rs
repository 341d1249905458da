//! The guest image: a plain ext2 file system (so `debugfs` and `e2fsck` work on it) made with
//! `mke2fs -d` from a staging folder — no root, no loop devices.
//!
//! It holds `/boot/kernel` (the kernel stripped of symbols: the VMM reads and loads fewer bytes),
//! `/boot/cmdline`, `/sbin/init` (services/init, static musl), busybox (Debian's busybox-static)
//! at `/bin/busybox` with a symlink per applet (`/bin/sh`, `/usr/bin/sort`, …), Debian's CPython
//! 3.11 with its standard library and shared libraries (`python.rs`), a minimal `/etc`
//! (passwd, group, hostname, hosts; resolv.conf naming the user network's DNS, nsswitch.conf,
//! services, protocols), `/root`, `/tmp` (1777) and the empty mount points `/dev`,
//! `/proc`, `/sys` (the kernel mounts devfs, procfs, sysfs there), and `/storage` for the services:
//! the bundled model in `/storage/models` and an empty `/storage/workspace` (`model.rs`). `--add
//! HOST:GUEST` entries are copied in last, so they may replace any of it. The image grows to fit
//! what it holds.

use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel command line baked into the image.
pub const CMDLINE: &str = "console=ttyS0";
/// The smallest image: room for the kernel, init and busybox, and for the guest to write.
const MIN_IMAGE_MIB: u64 = 64;
/// The fewest inodes (what mke2fs gives a 64 MiB image by default).
const MIN_INODES: u64 = 16384;
const BLOCK: u64 = 4096;

/// A host file or folder to copy into the image: `HOST:GUEST`.
#[derive(Debug, Clone)]
pub struct Add {
    pub host: PathBuf,
    /// Absolute path in the image: the file itself, or the folder its contents go into.
    pub guest: String,
}

impl std::str::FromStr for Add {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // The guest path is the last ':' field, so host paths may contain ':'.
        let Some((host, guest)) = text.rsplit_once(':') else {
            return Err(format!("'{text}' is not HOST:GUEST"));
        };
        if host.is_empty() || !guest.starts_with('/') {
            return Err(format!(
                "'{text}': need a host path and an absolute guest path, as HOST:GUEST"
            ));
        }
        if guest.split('/').any(|part| part == "..") {
            return Err(format!("'{text}': the guest path may not contain '..'"));
        }
        Ok(Add {
            host: PathBuf::from(host),
            guest: guest.to_string(),
        })
    }
}

/// Writes `noa/guest.img` from `noa/kernel.elf`.
pub fn write(noa: &Path) -> Result<()> {
    write_image(noa, &noa.join("guest.img"), &[])
}

/// Writes the image to `output`: the kernel from `noa/kernel.elf`, init (built here), busybox,
/// the base layout, then `adds`.
pub fn write_image(noa: &Path, output: &Path, adds: &[Add]) -> Result<()> {
    for add in adds {
        ensure!(
            add.host.symlink_metadata().is_ok(),
            "cannot add {}: no such file or folder",
            add.host.display()
        );
    }
    let init = build_init()?;
    let server = crate::services::build_server()?;
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let name = output
        .file_name()
        .context("the image needs a file name")?
        .to_string_lossy()
        .into_owned();
    // Next to the output, named after it: writers of different images never share it.
    let staging = output.with_file_name(format!("{name}.root"));
    let _ = std::fs::remove_dir_all(&staging);
    let boot = staging.join("boot");
    std::fs::create_dir_all(&boot).with_context(|| format!("cannot create {}", boot.display()))?;
    strip(&noa.join("kernel.elf"), &boot.join("kernel"))?;
    std::fs::write(boot.join("cmdline"), format!("{CMDLINE}\n"))?;
    base_layout(&staging)?;
    install_busybox(&staging)?;
    crate::python::install(&staging)?;
    crate::model::install(&staging)?;
    strip(&init, &staging.join("sbin/init"))?;
    crate::services::install(&server, &staging)?;
    for add in adds {
        let dest = staging.join(add.guest.trim_start_matches('/'));
        // A symlink named on the command line is followed (as `cp -RH`); ones inside are kept.
        let host = std::fs::canonicalize(&add.host)
            .with_context(|| format!("cannot add {}", add.host.display()))?;
        copy_tree(&host, &dest)
            .with_context(|| format!("cannot add {} as {}", add.host.display(), add.guest))?;
    }
    let (size_mib, inodes) = size_for(&staging)?;
    let partial = output.with_file_name(format!("{name}.partial"));
    // mke2fs -d fills an existing file quietly (it announces files it has to create).
    std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    crate::build::run(
        Command::new(crate::deps::find("mke2fs").unwrap_or_else(|| "mke2fs".into()))
            .args([
                "-q",
                "-F",
                "-t",
                "ext2",
                // 4 KiB blocks: the VMM reads the kernel a block at a time, so fewer, larger reads.
                "-b",
                "4096",
                "-L",
                "noa-root",
                "-N",
                &inodes.to_string(),
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&staging)
            .arg(&partial)
            .arg(format!("{size_mib}M")),
    )?;
    chown_to_root(&staging, &partial)?;
    std::fs::rename(&partial, output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}

/// Builds services/init as a static, non-PIE musl executable; returns its path. Non-PIE: the
/// first program the kernel starts should need nothing but an ET_EXEC loader.
fn build_init() -> Result<PathBuf> {
    crate::build::run(crate::build::cargo().args([
        "rustc",
        "--release",
        "-p",
        "noa-init",
        "--bin",
        "noa-init",
        "--target",
        crate::deps::USER_TARGET,
        "--",
        "-C",
        "relocation-model=static",
    ]))?;
    Ok(crate::build::target_dir()
        .join(crate::deps::USER_TARGET)
        .join("release/noa-init"))
}

fn strip(from: &Path, to: &Path) -> Result<()> {
    crate::build::run(
        Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(to)
            .arg(from),
    )
}

const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n\
    networks: files\nprotocols: files\nservices: files\n";
/// The common ports, as Debian's netbase lists them.
const SERVICES: &str = "ftp\t\t21/tcp\nssh\t\t22/tcp\ntelnet\t\t23/tcp\nsmtp\t\t25/tcp\n\
    domain\t\t53/tcp\ndomain\t\t53/udp\nbootps\t\t67/udp\nbootpc\t\t68/udp\n\
    http\t\t80/tcp\t\twww\nntp\t\t123/udp\nhttps\t\t443/tcp\nhttps\t\t443/udp\n";
const PROTOCOLS: &str = "ip\t0\tIP\nicmp\t1\tICMP\ntcp\t6\tTCP\nudp\t17\tUDP\n\
    ipv6\t41\tIPv6\nipv6-icmp\t58\tIPv6-ICMP\n";

/// The folders and /etc files every image has.
fn base_layout(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
    ] {
        let path = root.join(dir);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    for (file, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hostname", "noa\n"),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost noa\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
        // The user network's DNS (the VMM answers there; docs/devices.md).
        ("etc/resolv.conf", "nameserver 10.0.2.3\n"),
        // glibc without this file would ask DNS before /etc/hosts; Go reads the hosts line too.
        ("etc/nsswitch.conf", NSSWITCH),
        // For name lookups of ports and protocols (getservbyname, Go's LookupPort).
        ("etc/services", SERVICES),
        ("etc/protocols", PROTOCOLS),
    ] {
        std::fs::write(root.join(file), text)?;
    }
    Ok(())
}

/// `/bin/busybox` and a symlink to it for each applet at the path `busybox --list-full` gives,
/// except `/sbin/init` (ours) and `/linuxrc`.
fn install_busybox(root: &Path) -> Result<()> {
    let busybox = crate::deps::find("busybox").context(
        "no busybox: install Debian's busybox-static (`apt-get install busybox-static`)",
    )?;
    ensure!(
        is_static_elf(&busybox)?,
        "{} is dynamically linked: the image needs Debian's busybox-static",
        busybox.display()
    );
    let target = root.join("bin/busybox");
    std::fs::copy(&busybox, &target)
        .with_context(|| format!("cannot copy {}", busybox.display()))?;
    let list = Command::new(&busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("cannot run {}", busybox.display()))?;
    ensure!(
        list.status.success(),
        "{} --list-full failed",
        busybox.display()
    );
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || ["sbin/init", "linuxrc", "bin/busybox"].contains(&applet) {
            continue;
        }
        let link = root.join(applet);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink("/bin/busybox", &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    Ok(())
}

/// True for an x86-64 ELF executable without a program interpreter (PT_INTERP).
fn is_static_elf(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if !bytes.starts_with(b"\x7fELF\x02\x01") || u16_at(0x12) != Some(62) {
        bail!("{} is not an x86-64 ELF program", path.display());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("{}: truncated ELF header", path.display());
    };
    const PT_INTERP: u32 = 3;
    Ok((0..phnum as usize)
        .all(|i| u32_at(phoff as usize + i * phentsize as usize) != Some(PT_INTERP)))
}

/// Copies `from` to `to`: a file (replacing what is there), a symlink as a symlink, or a folder's
/// contents into `to` (created, or merged into what is there), recursively. Modes are kept.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = from
        .symlink_metadata()
        .with_context(|| format!("cannot read {}", from.display()))?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.is_dir() {
        if to.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(to)?;
        }
        std::fs::create_dir_all(to)?;
        std::fs::set_permissions(to, meta.permissions())?;
        let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    if let Ok(existing) = to.symlink_metadata() {
        if existing.is_dir() {
            bail!("{} would replace a folder", from.display());
        }
        std::fs::remove_file(to)?;
    }
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else if meta.is_file() {
        std::fs::copy(from, to)?;
    } else {
        bail!("{} is not a file, folder or symlink", from.display());
    }
    Ok(())
}

/// `mke2fs -d` copies each file's owner: a build as another user than root would leave the
/// guest's files owned by that uid. Gives every such entry to root with `debugfs`.
fn chown_to_root(staging: &Path, image: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, commands: &mut String) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let meta = path.symlink_metadata()?;
            if meta.uid() != 0 || meta.gid() != 0 {
                let guest = path.strip_prefix(root).expect("below the staging root");
                let guest = guest.to_string_lossy().replace('"', "\\\"");
                commands.push_str(&format!("sif \"/{guest}\" uid 0\nsif \"/{guest}\" gid 0\n"));
            }
            if meta.is_dir() {
                walk(root, &path, commands)?;
            }
        }
        Ok(())
    }
    let mut commands = String::new();
    walk(staging, staging, &mut commands)?;
    if commands.is_empty() {
        return Ok(());
    }
    let script = image.with_extension("debugfs");
    std::fs::write(&script, commands)?;
    let debugfs = crate::deps::find("debugfs").unwrap_or_else(|| "debugfs".into());
    let result = Command::new(debugfs)
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(image)
        .output()
        .context("cannot run debugfs");
    let _ = std::fs::remove_file(&script);
    let output = result?;
    ensure!(
        output.status.success() && !String::from_utf8_lossy(&output.stderr).contains("sif:"),
        "debugfs could not give the image's files to root: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The image size (MiB) and inode count for what `root` holds: every entry costs an inode and
/// at least a block, files their blocks plus indirect blocks; a quarter again and 16 MiB of
/// room on top, at least 64 MiB.
fn size_for(root: &Path) -> Result<(u64, u64)> {
    fn walk(dir: &Path, bytes: &mut u64, entries: &mut u64) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            *entries += 1;
            let blocks = meta.len().div_ceil(BLOCK);
            // One block for a directory's entries or a long symlink; one indirect block per
            // 1024 data blocks.
            *bytes += (blocks + blocks / 1024 + 1) * BLOCK;
            if meta.is_dir() {
                walk(&entry.path(), bytes, entries)?;
            }
        }
        Ok(())
    }
    let (mut bytes, mut entries) = (0, 0);
    walk(root, &mut bytes, &mut entries)?;
    let inodes = (entries * 2).max(MIN_INODES);
    let needed = bytes + inodes * 256;
    let mib = (needed + needed / 4).div_ceil(1 << 20) + 16;
    Ok((mib.max(MIN_IMAGE_MIB), inodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_takes_the_last_colon_and_wants_an_absolute_guest_path() {
        let add: Add = "a:b/c:/opt/x".parse().unwrap();
        assert_eq!((add.host, add.guest.as_str()), ("a:b/c".into(), "/opt/x"));
        assert!("file".parse::<Add>().is_err());
        assert!("file:relative".parse::<Add>().is_err());
        assert!(":/x".parse::<Add>().is_err());
        assert!("file:/opt/../etc".parse::<Add>().is_err());
    }

    #[test]
    fn entries_owned_by_another_user_are_given_to_root() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("xtask-image-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let staging = dir.join("root");
        std::fs::create_dir_all(staging.join("a dir")).unwrap();
        std::fs::write(staging.join("a dir/file"), "x").unwrap();
        std::os::unix::fs::symlink("/nowhere", staging.join("link")).unwrap();
        // As root, hand the entries to uid 1000, as a build by that user would have them.
        for path in ["a dir", "a dir/file", "link"] {
            let _ = std::os::unix::fs::lchown(staging.join(path), Some(1000), Some(1000));
        }
        let owned = staging.join("a dir/file").metadata().unwrap().uid() == 1000;
        let Some(mke2fs) = crate::deps::find("mke2fs").filter(|_| owned) else {
            println!("SKIPPED: needs root (to chown) and mke2fs");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        let image = dir.join("t.img");
        std::fs::File::create(&image).unwrap();
        crate::build::run(
            Command::new(mke2fs)
                .args(["-q", "-F", "-t", "ext2", "-d"])
                .arg(&staging)
                .arg(&image)
                .arg("8M"),
        )
        .unwrap();
        chown_to_root(&staging, &image).unwrap();
        let debugfs = crate::deps::find("debugfs").unwrap();
        for path in ["/a dir", "/a dir/file", "/link"] {
            let out = Command::new(&debugfs)
                .arg("-R")
                .arg(format!("stat \"{path}\""))
                .arg(&image)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("User:     0   Group:     0"),
                "{path}: {text}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
