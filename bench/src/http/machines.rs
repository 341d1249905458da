//! The http benchmark's three ways of running the server, as command lines: natively on the host,
//! in our VMM behind `--publish`, and in QEMU microvm (KVM) with our kernel and the same image
//! behind slirp's `hostfwd`.
//!
//! QEMU must give the guest the kernel command line our VMM gives it (docs/boot-protocol.md): the
//! image's `/boot/cmdline` (read here with debugfs), the `ip=` word of the user network, one
//! `virtio_mmio.device=` word per device, then `--` and the command, each argument
//! percent-encoded as vmm/src/command.rs does. microvm appends its own device words *after*
//! `-append`, which would land them among the command's arguments, so it runs with
//! `auto-kernel-cmdline=off` and the words are written here: microvm puts the first `-device`
//! on its highest virtio-mmio transport (8 of them, 512 bytes apart from 0xfeb00000, lines from 5
//! with one IOAPIC, i.e. `acpi=off`). Without virtio consoles, the guest's stdout falls back to
//! the serial port, QEMU's stdout.
//!
//! Owns only the command lines; running them is the benchmark's job.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// The port the server listens on in the guest.
pub const GUEST_PORT: u16 = 8000;

/// The user network's address for the guest, as the VMM passes it with `--net user`: Linux's
/// `ip=CLIENT::GATEWAY:NETMASK::DEVICE:AUTOCONF` form (QEMU slirp's addresses).
pub const IP_WORD: &str = "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off";

/// QEMU microvm's virtio-mmio transports: how many, where, how far apart, the first line.
const MICROVM_TRANSPORTS: u64 = 8;
const MICROVM_MMIO_BASE: u64 = 0xfeb0_0000;
const MICROVM_MMIO_SIZE: u64 = 512;
const MICROVM_FIRST_IRQ: u64 = 5;

/// The server natively: port 0 (it prints the port it got), on the loopback only.
pub fn native_command(program: &Path) -> Vec<OsString> {
    vec![program.into(), "0".into(), "127.0.0.1".into()]
}

/// `vmm --snapshot --cpus N --timeout T --publish 127.0.0.1:PORT:8000 IMAGE -- PROGRAM 8000`.
pub fn vmm_command(
    vmm: &Path,
    image: &Path,
    guest_program: &str,
    cpus: u32,
    timeout_secs: u64,
    port: u16,
) -> Vec<OsString> {
    vec![
        vmm.into(),
        "--snapshot".into(),
        "--cpus".into(),
        cpus.to_string().into(),
        "--timeout".into(),
        timeout_secs.to_string().into(),
        "--publish".into(),
        format!("127.0.0.1:{port}:{GUEST_PORT}").into(),
        image.into(),
        "--".into(),
        guest_program.into(),
        GUEST_PORT.to_string().into(),
    ]
}

/// What QEMU needs besides the port.
#[derive(Debug, Clone)]
pub struct Qemu<'a> {
    pub qemu: &'a Path,
    /// `-cpu`; `None`: no `-cpu` flag.
    pub cpu: Option<&'a str>,
    pub kernel: &'a Path,
    pub image: &'a Path,
    /// The image's `/boot/cmdline`.
    pub boot_cmdline: &'a str,
    pub guest_program: &'a str,
}

/// QEMU microvm with our kernel, the image as a copy-on-write disk (`snapshot=on`, as the VMM's
/// `--snapshot`), an entropy device and slirp with `hostfwd` to the guest's port, and the kernel
/// command line the VMM would write.
pub fn qemu_command(q: &Qemu, port: u16) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        q.qemu.into(),
        "-M".into(),
        "microvm,acpi=off,auto-kernel-cmdline=off".into(),
        "-accel".into(),
        "kvm".into(),
    ];
    if let Some(cpu) = q.cpu {
        args.extend(["-cpu".into(), cpu.into()]);
    }
    args.extend(
        [
            "-m",
            "512M",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
        .map(OsString::from),
    );
    // QEMU splits option values at commas; a comma in a file name is written twice.
    let image = q.image.to_string_lossy().replace(',', ",,");
    let devices: [(&str, String); 3] = [
        (
            "virtio-blk-device,drive=root",
            format!("-drive id=root,file={image},format=raw,if=none,snapshot=on"),
        ),
        ("virtio-rng-device", String::new()),
        (
            "virtio-net-device,netdev=n0",
            format!("-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}"),
        ),
    ];
    let mut words = vec![q.boot_cmdline.trim().to_string(), IP_WORD.to_string()];
    for (index, (device, backend)) in devices.iter().enumerate() {
        if let Some((flag, value)) = backend.split_once(' ') {
            args.extend([flag.into(), value.into()]);
        }
        args.extend(["-device".into(), (*device).into()]);
        words.push(microvm_device_word(index as u64));
    }
    words.push("--".into());
    words.push(encode_arg(q.guest_program.as_bytes()));
    words.push(GUEST_PORT.to_string());
    words.retain(|w| !w.is_empty());
    args.extend(["-kernel".into(), q.kernel.into(), "-append".into()]);
    args.push(words.join(" ").into());
    args
}

/// The `virtio_mmio.device=` word of the `index`th `-device` (0-based) on microvm: the first
/// takes the highest transport.
fn microvm_device_word(index: u64) -> String {
    let transport = MICROVM_TRANSPORTS - 1 - index;
    format!(
        "virtio_mmio.device={MICROVM_MMIO_SIZE}@{:#x}:{}",
        MICROVM_MMIO_BASE + transport * MICROVM_MMIO_SIZE,
        MICROVM_FIRST_IRQ + transport
    )
}

/// One argument as the VMM encodes it after `--` (vmm/src/command.rs): bytes outside
/// `[A-Za-z0-9_./,:=+@-]` as `%XX`, an empty argument as a lone `%`.
pub fn encode_arg(arg: &[u8]) -> String {
    if arg.is_empty() {
        return "%".into();
    }
    arg.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"_./,:=+@-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The image's `/boot/cmdline`, read with `debugfs -R "cat /boot/cmdline"` (read-only).
pub fn boot_cmdline(debugfs: &Path, image: &Path) -> Result<String, String> {
    let output = Command::new(debugfs)
        .args(["-R", "cat /boot/cmdline"])
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", debugfs.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // debugfs exits 0 even when the file is missing; it says so on stderr.
    if !output.status.success() || text.is_empty() || stderr.contains("not found") {
        return Err(format!(
            "could not read /boot/cmdline of {} with {} ({}): {}",
            image.display(),
            debugfs.display(),
            output.status,
            stderr.trim()
        ));
    }
    if text.split_ascii_whitespace().any(|w| w == "--") {
        return Err(format!(
            "/boot/cmdline of {} already has a `--` word: {text:?}",
            image.display()
        ));
    }
    Ok(text.split_ascii_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::strings;

    #[test]
    fn command_lines() {
        let vmm = vmm_command(
            Path::new("vmm"),
            Path::new("b.img"),
            "/opt/noa-bench/http_server",
            2,
            300,
            4242,
        );
        assert_eq!(
            strings(&vmm).join(" "),
            "vmm --snapshot --cpus 2 --timeout 300 --publish 127.0.0.1:4242:8000 b.img -- \
             /opt/noa-bench/http_server 8000"
        );
        let q = Qemu {
            qemu: Path::new("qemu"),
            cpu: Some("host,arch-capabilities=off"),
            kernel: Path::new("k.elf"),
            image: Path::new("/tmp/a,b.img"),
            boot_cmdline: "console=ttyS0",
            guest_program: "/opt/noa-bench/http server",
        };
        let qemu = strings(&qemu_command(&q, 4242));
        assert_eq!(
            qemu.join(" "),
            "qemu -M microvm,acpi=off,auto-kernel-cmdline=off -accel kvm -cpu \
             host,arch-capabilities=off -m 512M -nodefaults -no-user-config -display none -serial \
             stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -drive id=root,file=/tmp/a,,b.img,format=raw,if=none,snapshot=on \
             -device virtio-blk-device,drive=root -device virtio-rng-device \
             -netdev user,id=n0,hostfwd=tcp:127.0.0.1:4242-:8000 -device \
             virtio-net-device,netdev=n0 -kernel k.elf -append console=ttyS0 \
             ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off \
             virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 \
             virtio_mmio.device=512@0xfeb00a00:10 -- /opt/noa-bench/http%20server 8000"
        );
        // The -append value is one argument.
        assert!(qemu.last().unwrap().starts_with("console=ttyS0 ip="));
        let no_cpu = qemu_command(&Qemu { cpu: None, ..q }, 1);
        assert!(!strings(&no_cpu).iter().any(|a| a == "-cpu"));
        assert_eq!(
            strings(&native_command(Path::new("p"))).join(" "),
            "p 0 127.0.0.1"
        );
    }

    #[test]
    fn arguments_are_encoded_as_the_vmm_does() {
        assert_eq!(encode_arg(b"a-b_c.d/e,f:g=h+i@j"), "a-b_c.d/e,f:g=h+i@j");
        assert_eq!(encode_arg(b"100% x"), "100%25%20x");
        assert_eq!(encode_arg(b""), "%");
        assert_eq!(encode_arg("é".as_bytes()), "%C3%A9");
    }

    #[test]
    fn reads_boot_cmdline_with_debugfs() {
        let (Some(mke2fs), Some(debugfs)) = (find("mke2fs"), find("debugfs")) else {
            eprintln!("skipping: no e2fsprogs");
            return;
        };
        let dir = crate::common::TempDir::new("http-test").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::write(root.join("boot/cmdline"), "console=ttyS0  noa.x=1\n").unwrap();
        let image = dir.path().join("i.img");
        let made = Command::new(&mke2fs)
            .args(["-q", "-t", "ext2", "-d"])
            .arg(&root)
            .arg(&image)
            .arg("1M")
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(
            boot_cmdline(&debugfs, &image).unwrap(),
            "console=ttyS0 noa.x=1"
        );
        std::fs::remove_file(root.join("boot/cmdline")).unwrap();
        let empty = dir.path().join("e.img");
        let made = Command::new(&mke2fs)
            .args(["-q", "-t", "ext2", "-d"])
            .arg(&root)
            .arg(&empty)
            .arg("1M")
            .status()
            .unwrap();
        assert!(made.success());
        assert!(boot_cmdline(&debugfs, &empty).is_err());
    }

    fn find(program: &str) -> Option<std::path::PathBuf> {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(program))
            .find(|p| p.is_file())
    }
}
