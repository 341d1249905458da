//! Disks on a real KVM boot: the image as /dev/vda (read-write, locked), `--snapshot` overlays,
//! `--volume` disks the guest writes through virtio-blk, checked on the host after the VM exits.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

/// The scratch pattern the guest's ktest writes (guest-os/kernel/src/ktest/virtio.rs).
fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(7) ^ (offset >> 9)) as u8
}
const SCRATCH_BYTES: usize = 64 * 1024;

fn copy_of_image(dir: &Path) -> std::path::PathBuf {
    let image = dir.join("guest.img");
    std::fs::copy(guest_image(), &image).unwrap();
    image
}

#[test]
fn guest_writes_a_volume_the_host_then_reads() {
    if !have_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch.img");
    std::fs::write(&scratch, vec![0xeeu8; 1 << 20]).unwrap();
    let volume = format!("{}:/scratch", scratch.display());
    // Not --snapshot, which would keep the guest's writes in a private overlay.
    let mut command = vmm();
    command.args(["--timeout", "60", "--volume", &volume]);
    command
        .args(["--cmdline", "noa.ktest=virtio_block noa.ktest.scratch=vdb"])
        .arg(copy_of_image(dir.path()));
    let run = run(&mut command, Duration::from_secs(90));
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout
            .contains("ktest virtio_block_scratch_write_flush_read ... ok"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("ktest virtio_block_reads_the_root_disk ... ok"),
        "{}",
        run.stdout
    );
    let content = std::fs::read(&scratch).unwrap();
    let first_bad = (0..SCRATCH_BYTES).find(|&i| content[i] != pattern(i));
    assert_eq!(
        first_bad, None,
        "the volume does not hold what the guest wrote"
    );
    assert!(
        content[SCRATCH_BYTES..].iter().all(|&b| b == 0xee),
        "the guest wrote past its pattern"
    );
}

#[test]
fn snapshot_runs_leave_the_image_untouched_and_run_in_parallel() {
    if !have_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_image(dir.path());
    let before = std::fs::read(&image).unwrap();
    // With --snapshot the image itself is the scratch disk: the guest overwrites vda's first
    // 64 KiB (its boot block and superblock) in its private overlay.
    let children: Vec<_> = (0..3)
        .map(|_| {
            let mut command = vmm();
            command.args(["--timeout", "60", "--snapshot", "--cpus", "1"]);
            command
                .args([
                    "--cmdline",
                    "noa.ktest=virtio_block_scratch noa.ktest.scratch=vda",
                ])
                .arg(&image);
            std::thread::spawn(move || run(&mut command, Duration::from_secs(90)))
        })
        .collect();
    for child in children {
        let run = child.join().unwrap();
        assert_eq!(
            run.code, 0,
            "stdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        assert!(
            run.stdout
                .contains("ktest virtio_block_scratch_write_flush_read ... ok"),
            "{}",
            run.stdout
        );
    }
    assert!(
        std::fs::read(&image).unwrap() == before,
        "a --snapshot run changed the image"
    );
}

#[test]
fn a_second_read_write_user_of_an_image_is_refused() {
    if !have_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_image(dir.path());
    let mut first = vmm();
    first
        .args(["--timeout", "20", "--cmdline", "noa.test=hang"])
        .arg(&image);
    let mut first = first.stdout(std::process::Stdio::piped()).spawn().unwrap();
    // Wait until the first run holds the lock (it has booted).
    let mut stdout = std::io::BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.starts_with("NOA-BOOT-OK"), "{line}");
    for args in [vec![], vec!["--snapshot"]] {
        let mut second = vmm();
        second.args(&args).arg(&image);
        run(&mut second, Duration::from_secs(30))
            .assert_vmm_error(2, "is in use by another process");
    }
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn volume_errors_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("{}:/data", dir.path().join("missing.img").display());
    let mut command = vmm();
    command
        .args(["--snapshot", "--volume", &missing])
        .arg(guest_image());
    run(&mut command, Duration::from_secs(30)).assert_vmm_error(2, "missing.img: cannot open");
    // A file even root cannot open for writing.
    let mut command = vmm();
    command
        .args(["--snapshot", "--volume", "/sys/kernel/uevent_seqnum:/data"])
        .args(NO_SERVICES)
        .arg(guest_image());
    let unwritable = run(&mut command, Duration::from_secs(30));
    if unwritable.code == 0 {
        println!("SKIPPED: /sys/kernel/uevent_seqnum is writable here");
    } else {
        unwritable.assert_vmm_error(2, "not writable");
    }
    let mut command = vmm();
    command
        .args(["--snapshot", "--volume", "data.img"])
        .arg(guest_image());
    let malformed = run(&mut command, Duration::from_secs(30));
    assert_eq!(malformed.code, 2, "{}", malformed.stderr);
    assert!(
        malformed.stderr.contains("FILE:GUESTPATH"),
        "{}",
        malformed.stderr
    );
}
