//! Signals to noa-init in its one-child modes, run natively: with `-- CMD` SIGTERM, SIGINT and
//! SIGHUP go on to CMD and init exits with CMD's code; the login shell gets SIGTERM with a
//! hangup, which ends even a shell that ignores SIGTERM.

mod common;
use common::*;
use std::process::Stdio;

#[test]
fn the_command_gets_the_signals_init_gets() {
    let dir = scratch("forward");
    for (signal, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
    ] {
        let script = format!(
            "trap 'echo got {name}; exit 7' {name}; echo ready; while :; do sleep 0.1; done"
        );
        let mut init = Running::start(init(&dir).args(["--", "sh", "-c", &script]));
        init.wait_for_line(Stream::Out, "ready");
        init.signal(signal);
        let (code, out, err) = init.finish();
        assert_eq!(
            (code, out.as_str()),
            (7, format!("ready\ngot {name}\n").as_str()),
            "{err}"
        );
    }
    // Killed by the forwarded signal: 128 + its number, as a shell reports it.
    let mut init = Running::start(init(&dir).args([
        "--",
        "sh",
        "-c",
        "echo ready; while :; do sleep 0.1; done",
    ]));
    init.wait_for_line(Stream::Out, "ready");
    init.signal(libc::SIGTERM);
    assert_eq!(init.finish().0, 128 + libc::SIGTERM);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sigterm_ends_the_login_shell_even_when_it_ignores_sigterm() {
    let dir = scratch("shell-term");
    let mut init = Running::start(init(&dir).stdin(Stdio::piped()));
    init.write_stdin("trap '' TERM; echo ready; while :; do sleep 0.1; done\n");
    init.wait_for_line(Stream::Out, "ready");
    init.signal(libc::SIGTERM);
    let (code, _, err) = init.finish();
    // The hangup that came with the SIGTERM ended it.
    assert_eq!(code, 128 + libc::SIGHUP, "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
