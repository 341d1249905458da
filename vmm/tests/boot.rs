//! Real KVM boots of the guest image: the boot line, CPU and memory flags, the command line and
//! the in-guest kernel tests.

mod common;
use common::*;

#[test]
fn boots_with_two_cpus_and_512_mib_by_default() {
    if !have_kvm() {
        return;
    }
    let run = boot(&[]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let (cpus, mem_mib) = boot_line(&run.stdout);
    assert_eq!(cpus, 2);
    // The first MiB is only partly RAM; the rest of the 512 MiB is usable.
    assert!((500..512).contains(&mem_mib), "mem_mib={mem_mib}");
    // Without `-- CMD` init runs the login shell on the consoles; with stdin at EOF it exits at
    // once. Its prompt goes to stderr (console 1); the VMM itself says nothing there.
    assert!(
        !run.stderr.contains("vmm:"),
        "a clean run has no VMM message on stderr: {}",
        run.stderr
    );
}

#[test]
fn brings_every_cpu_online() {
    if !have_kvm() {
        return;
    }
    for cpus in [1, 3, 8] {
        let run = boot(&["--cpus", &cpus.to_string()]);
        assert_eq!(run.code, 0, "--cpus {cpus}: {}", run.stderr);
        assert_eq!(
            boot_line(&run.stdout).0,
            cpus,
            "--cpus {cpus}: {}",
            run.stdout
        );
    }
}

#[test]
fn reports_the_memory_it_was_given() {
    if !have_kvm() {
        return;
    }
    // 4 GiB crosses the MMIO hole at 3 GiB: the memory above 4 GiB must be found too.
    for (mib, low, high) in [(64, 60, 64), (1024, 1015, 1024), (4096, 4080, 4096)] {
        let run = boot(&["--memory", &mib.to_string(), "--cpus", "1"]);
        assert_eq!(run.code, 0, "--memory {mib}: {}", run.stderr);
        let mem_mib = boot_line(&run.stdout).1;
        assert!(
            (low..high).contains(&mem_mib),
            "--memory {mib}: mem_mib={mem_mib}"
        );
    }
}

#[test]
fn ktests_pass_in_the_guest() {
    if !have_kvm() {
        return;
    }
    let run = boot(&["--cpus", "4", "--cmdline", "noa.ktest=all"]);
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let summary = run
        .stdout
        .lines()
        .find(|l| l.starts_with("NOA-KTEST"))
        .expect("summary line");
    assert!(summary.ends_with(" failed=0"), "{summary}");
    let passed: u32 = summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix("passed=")?.parse().ok())
        .unwrap();
    let oks = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("ktest ") && l.ends_with(" ... ok"))
        .count();
    assert_eq!(passed as usize, oks);
    // The virtio-console ktest writes a line through each console: console 0 is the VMM's
    // stdout, console 1 its stderr.
    assert!(
        run.stdout.contains("\nNOA-VIRTIO-CONSOLE-OK\n"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "NOA-VIRTIO-CONSOLE1-OK\n", "stderr");
    for name in [
        "frames_alloc_free",
        "heap_small_and_large",
        "paging_kernel_permissions",
        "timer_one_shot_deadline",
        "virtio_rng_gives_entropy",
        "virtio_console_writes",
        "virtio_block_reads_the_root_disk",
        "smp_ipi_every_cpu",
    ] {
        assert!(
            run.stdout.contains(&format!("ktest {name} ... ok")),
            "{name} did not pass: {}",
            run.stdout
        );
    }
}

#[test]
fn a_ktest_run_that_runs_nothing_fails() {
    if !have_kvm() {
        return;
    }
    let run = boot(&["--cpus", "1", "--cmdline", "noa.ktest=no_such_test"]);
    assert!(
        run.stdout.contains("NOA-KTEST passed=0 failed=0"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 1, "a test run with no tests must not pass");
}

#[test]
fn cmdline_flag_is_appended_to_the_image_cmdline() {
    if !have_kvm() {
        return;
    }
    let run = boot(&["--cpus", "1", "--cmdline", "noa.ktest=cmdline_parse"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("ktest cmdline_parse ... ok"));
    assert!(
        run.stdout.contains("NOA-KTEST passed=1 failed=0"),
        "{}",
        run.stdout
    );
}

#[test]
fn kernel_flag_overrides_the_image_kernel() {
    if !have_kvm() {
        return;
    }
    // The unstripped kernel.elf: a different file from the image's stripped /boot/kernel.
    let run = boot(&["--cpus", "1", "--kernel", kernel_elf().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    boot_line(&run.stdout);
}

#[test]
fn exits_with_the_guest_exit_code() {
    if !have_kvm() {
        return;
    }
    let run = boot(&["--cpus", "1", "--cmdline", "noa.test=exit:42"]);
    assert_eq!(run.code, 42, "{}", run.stderr);
    assert_eq!(run.stderr, "", "the guest's own code needs no explanation");
}
