//! How a run ends badly: kernel panics, CPU exceptions and triple faults give 125 with the report
//! on stderr; a hung guest is stopped by --timeout with 124.

mod common;
use common::*;

fn crash(action: &str) -> Run {
    let run = boot(&["--cpus", "2", "--cmdline", &format!("noa.test={action}")]);
    assert_eq!(
        run.code, 125,
        "noa.test={action}: stdout {}\nstderr {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.starts_with("vmm: guest crashed: "),
        "{}",
        run.stderr
    );
    assert_no_panic(&run.stderr);
    run
}

#[test]
fn kernel_panic_exits_125_with_the_message() {
    if !have_kvm() {
        return;
    }
    let run = crash("panic");
    assert!(run.stderr.contains("kernel panic"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("KERNEL PANIC: requested by noa.test=panic at "),
        "{}",
        run.stderr
    );
}

#[test]
fn cpu_exception_exits_125_with_a_report() {
    if !have_kvm() {
        return;
    }
    let run = crash("fault");
    assert!(
        run.stderr.contains("CPU EXCEPTION: vector 14 (page fault)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cr2=0x00000000dead0000"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("rip=0xffffffff8"), "{}", run.stderr);
}

#[test]
fn triple_fault_exits_125_with_a_register_dump() {
    if !have_kvm() {
        return;
    }
    let run = crash("triple");
    assert!(
        run.stderr.contains("triple fault on vCPU 0"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("rip=0x") && run.stderr.contains("cr3=0x"),
        "{}",
        run.stderr
    );
}

#[test]
fn timeout_stops_a_hung_guest_with_124() {
    if !have_kvm() {
        return;
    }
    let mut command = vmm();
    command
        .args([
            "--timeout",
            "0.5",
            "--snapshot",
            "--cmdline",
            "noa.test=hang",
        ])
        .arg(guest_image());
    let started = std::time::Instant::now();
    let run = run(&mut command, std::time::Duration::from_secs(30));
    run.assert_vmm_error(124, "--timeout 0.5s");
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
}
