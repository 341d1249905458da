//! The page cache against the bytes files hold: runtimes/tests/python/page_cache.py writes files
//! and maps them (MAP_POPULATE, faults in a scrambled order and forward, a populate around cached
//! pages, a sparse file, write(2) into a mapped range, MAP_PRIVATE stores), natively in two temp
//! folders and in the guest on two ext2 volumes (4 KiB and 1 KiB blocks); with `$NOA_MODEL`, it
//! also maps the head and tail of the bundled model MAP_POPULATE and prints their SHA-256 (the
//! image has the same file at /storage/models). Stdout and exit status must match, and every file
//! system the guest wrote must pass `e2fsck -fn` after its power-off.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The host's interpreter, the one xtask copies into the image.
const HOST_PYTHON: &str = "/usr/bin/python3.11";
const GUEST_SCRIPT: &str = "/opt/tests/python/page_cache.py";
const GUEST_MODEL: &str = "/storage/models/SmolLM2-135M-Instruct.Q4_1.gguf";

fn script() -> PathBuf {
    let path = test_programs().join("python/page_cache.py");
    assert!(
        path.is_file(),
        "no {}: run `cargo xtask test` (or `cargo xtask test --no-run` to only build it)",
        path.display()
    );
    path
}

/// The bundled model on the host, when `cargo xtask test` says where (`$NOA_MODEL`).
fn host_model() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("NOA_MODEL")?);
    path.is_file().then_some(path)
}

fn tool(name: &str) -> Command {
    for dir in ["/sbin", "/usr/sbin", "/usr/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return Command::new(path);
        }
    }
    panic!("{name} not found: install e2fsprogs (`cargo xtask test` does, as root)");
}

fn make_volume(path: &Path, block_size: &str) {
    let out = tool("mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", block_size])
        .arg(path)
        .arg("32M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_clean(image: &Path) {
    let out = tool("e2fsck").arg("-fn").arg(image).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn {}:\n{}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn report(what: &str, run: &Run) -> String {
    format!(
        "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    )
}

fn native(model: Option<&Path>) -> Run {
    assert!(
        Path::new(HOST_PYTHON).is_file(),
        "{HOST_PYTHON} is missing: the image build needs it (apt-get install python3.11)"
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut command = Command::new(HOST_PYTHON);
    command.arg(script());
    if let Some(model) = model {
        command.arg("--model").arg(model);
    }
    command.args(dirs.iter().map(|d| d.path()));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PYTHON") {
            command.env_remove(key);
        }
    }
    run(&mut command, Duration::from_secs(120))
}

#[test]
fn mappings_read_what_files_hold_natively() {
    let run = native(host_model().as_deref());
    assert_eq!(run.code, 0, "{}", report("native", &run));
    assert!(
        run.stdout.ends_with("page_cache: all checks passed\n"),
        "{}",
        report("native", &run)
    );
}

#[test]
fn mappings_read_what_files_hold_in_the_guest_as_natively() {
    if !have_kvm() {
        return;
    }
    let image = test_image();
    assert!(
        image.is_file(),
        "no test image at {}: run `cargo xtask test` (or `cargo xtask test --no-run`)",
        image.display()
    );
    let model = host_model();
    let native = native(model.as_deref());

    // A private, writable root (the files must reach the disks for e2fsck to see them).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.img");
    let status = Command::new("cp")
        .args(["--sparse=always", "--reflink=auto"])
        .arg(&image)
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success(), "cp {} failed", image.display());
    let volumes = [
        (dir.path().join("blocks4k.img"), "4096", "/mnt/blocks4k"),
        (dir.path().join("blocks1k.img"), "1024", "/mnt/blocks1k"),
    ];
    let mut vmm = vmm();
    vmm.args(["--timeout", GUEST_TIMEOUT_SECS]);
    for (path, block_size, guest_path) in &volumes {
        make_volume(path, block_size);
        vmm.arg("--volume")
            .arg(format!("{}:{guest_path}", path.display()));
    }
    vmm.arg(&root)
        .args(["--", "/usr/bin/python3", GUEST_SCRIPT]);
    if model.is_some() {
        vmm.args(["--model", GUEST_MODEL]);
    }
    vmm.args(volumes.iter().map(|(_, _, guest_path)| guest_path));
    let guest = run(&mut vmm, Duration::from_secs(330));
    assert_no_panic(&guest.stderr);
    assert_eq!(
        (guest.code, guest.stdout.as_str()),
        (native.code, native.stdout.as_str()),
        "the guest (left) differs from the native run (right)\n{}\n{}",
        report("guest", &guest),
        report("native", &native)
    );
    for (path, _, _) in &volumes {
        assert_clean(path);
    }
    assert_clean(&root);
}
