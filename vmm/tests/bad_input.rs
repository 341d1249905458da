//! Bad input from the user: each case gets one line on stderr that names the problem, exit code 2,
//! and no panic. Most are refused before KVM is touched, so they run on any host.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

fn vmm_with(args: &[&str], image: &Path) -> Run {
    let mut command = vmm();
    command
        .args(["--timeout", "30", "--snapshot"])
        .args(args)
        .arg(image);
    run(&mut command, Duration::from_secs(60))
}

/// An ext2 image holding `files` (path inside the image, content).
fn ext2_image(dir: &Path, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let root = dir.join("root");
    for (path, content) in files {
        let path = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    let image = dir.join("test.img");
    std::fs::File::create(&image).unwrap();
    let status = std::process::Command::new("/usr/sbin/mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-d"])
        .arg(&root)
        .arg(&image)
        .arg("4M")
        .status()
        .expect("mke2fs (e2fsprogs) is needed; cargo xtask installs it");
    assert!(status.success());
    image
}

#[test]
fn missing_image() {
    vmm_with(&[], Path::new("/nonexistent/guest.img"))
        .assert_vmm_error(2, "cannot open disk image");
}

#[test]
fn empty_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("empty.img");
    std::fs::File::create(&image).unwrap();
    vmm_with(&[], &image).assert_vmm_error(2, "image is empty");
}

#[test]
fn random_bytes_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("random.img");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&image, bytes).unwrap();
    vmm_with(&[], &image).assert_vmm_error(2, "not an ext2 file system");
}

#[test]
fn ext2_image_without_a_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let image = ext2_image(dir.path(), &[("/boot/cmdline", b"console=ttyS0\n")]);
    vmm_with(&[], &image).assert_vmm_error(2, "/boot/kernel: no such file in the image");
}

#[test]
fn kernel_that_is_not_an_elf() {
    let dir = tempfile::tempdir().unwrap();
    let image = ext2_image(
        dir.path(),
        &[("/boot/kernel", b"#!/bin/sh\necho I am not a kernel\n")],
    );
    vmm_with(&[], &image).assert_vmm_error(2, "not an ELF file");
}

/// The real kernel with its first loadable segment moved to `paddr`.
fn kernel_with_segment_at(paddr: u64) -> Vec<u8> {
    let mut elf = std::fs::read(kernel_elf()).unwrap();
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(elf[56..58].try_into().unwrap()) as usize;
    let first_load = (0..phnum)
        .map(|i| phoff + i * 56)
        .find(|&at| elf[at..at + 4] == 1u32.to_le_bytes())
        .unwrap();
    elf[first_load + 24..first_load + 32].copy_from_slice(&paddr.to_le_bytes());
    elf
}

#[test]
fn kernel_with_segments_outside_guest_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Far beyond RAM, below the first MiB (over the boot structures), and across the end of
    // 64 MiB of RAM.
    for (paddr, memory) in [
        (0x7f_0000_0000u64, "512"),
        (0x1000, "512"),
        ((64 << 20) - 0x1000, "64"),
    ] {
        let kernel = kernel_with_segment_at(paddr);
        let path = dir.path().join("kernel");
        std::fs::write(&path, kernel).unwrap();
        let args = ["--memory", memory, "--kernel", path.to_str().unwrap()];
        vmm_with(&args, &guest_image()).assert_vmm_error(2, "is outside guest memory");
    }
}

#[test]
fn zero_memory_and_zero_cpus() {
    for args in [
        ["--memory", "0"],
        ["--cpus", "0"],
        ["--memory", "8"],
        ["--cpus", "many"],
    ] {
        let run = vmm_with(&args, &guest_image());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(args[0]),
            "{args:?}: the error should name the flag: {}",
            run.stderr
        );
        assert_no_panic(&run.stderr);
    }
}

#[test]
fn more_cpus_than_kvm_allows() {
    if !have_kvm() {
        return;
    }
    vmm_with(&["--cpus", "100000"], &guest_image()).assert_vmm_error(2, "this KVM allows at most");
}

/// Runs the vmm (as root) in a private mount namespace where /dev holds no kvm node.
#[test]
fn dev_kvm_missing() {
    if !is_root() {
        println!("SKIPPED: hiding /dev/kvm needs root (a private mount namespace)");
        return;
    }
    let mut command = std::process::Command::new("unshare");
    command.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"mount -t tmpfs none /dev && exec "$@""#,
        "sh",
    ]);
    command.arg(env!("CARGO_BIN_EXE_vmm")).arg(guest_image());
    run(&mut command, Duration::from_secs(30))
        .assert_vmm_error(2, "cannot open /dev/kvm: No such file or directory");
}

#[test]
fn dev_kvm_not_accessible() {
    if !is_root() || !have_kvm() {
        println!("SKIPPED: dropping access to /dev/kvm needs root");
        return;
    }
    // The image must be readable by the unprivileged user.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("guest.img");
    std::fs::copy(guest_image(), &image).unwrap();
    std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status()
        .unwrap();
    let mode = std::fs::metadata("/dev/kvm")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    if mode.is_ok_and(|m| m & 0o006 != 0) {
        println!("SKIPPED: /dev/kvm is world-accessible here");
        return;
    }
    let mut command = std::process::Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_vmm"))
        .arg(&image);
    run(&mut command, Duration::from_secs(30))
        .assert_vmm_error(2, "cannot open /dev/kvm: Permission denied");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
