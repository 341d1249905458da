//! noa-init's services mode, run natively with a services file named by NOA_SERVICES and a
//! kernel command line named by NOA_CMDLINE: services start with their environment and the
//! token, restart as their policy says, stop on SIGTERM/SIGINT (SIGKILL after the grace
//! period), and a bad file falls back to the login shell with a message.

mod common;
use common::*;
use std::process::Stdio;

#[test]
fn services_start_with_null_stdin_their_env_and_the_token() {
    let dir = scratch("env");
    std::fs::write(
        dir.join("cmdline"),
        "console=ttyS0 noa.token=s3cret-token -- noa.token=not-this\n",
    )
    .unwrap();
    let script = r#"echo "a: token=$NOA_TOKEN var=$SVC_VAR path=${PATH:+set} stdin=[$(cat)]""#;
    let config = format!(
        "{}env = {{ SVC_VAR = \"from the file\" }}\n\n{}",
        sh_service("a", "never", script),
        sh_service("b", "never", "echo b: token=$NOA_TOKEN"),
    );
    let (code, out, err) = Running::start(
        with_services(&dir, &config)
            .env("NOA_CMDLINE", dir.join("cmdline"))
            .env_remove("PATH")
            .stdin(Stdio::piped()),
    )
    .finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("a: token=s3cret-token var=from the file path=set stdin=[]\n"),
        "{out}"
    );
    assert!(out.contains("b: token=s3cret-token\n"), "{out}");
    for name in ["a", "b"] {
        assert!(
            err.lines().any(
                |line| line.starts_with(&format!("init: started {name} (pid "))
                    && line.ends_with(')')
            ),
            "{err}"
        );
    }
    assert!(err.contains("init: no service is left running"), "{err}");

    // No `noa.token=` word: no NOA_TOKEN, even if init itself had one.
    std::fs::write(dir.join("cmdline"), "console=ttyS0\n").unwrap();
    let (code, out, _) = Running::start(
        with_services(
            &dir,
            &sh_service("c", "never", "echo \"c: [${NOA_TOKEN-unset}]\""),
        )
        .env("NOA_CMDLINE", dir.join("cmdline"))
        .env("NOA_TOKEN", "from-the-host"),
    )
    .finish();
    assert_eq!((code, out.as_str()), (0, "c: [from-the-host]\n"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn services_restart_as_their_policy_says() {
    let dir = scratch("policy");
    let runs = |name: &str| dir.join(format!("{name}.runs"));
    let count = |name: &str| {
        std::fs::read_to_string(runs(name))
            .unwrap_or_default()
            .lines()
            .count()
    };
    // Fails on its first run, succeeds on its second.
    let flaky = format!(
        "echo run >> '{}'; [ $(wc -l < '{}') -ge 2 ]",
        runs("flaky").display(),
        runs("flaky").display()
    );
    let config = [
        sh_service("flaky", "on-failure", &flaky),
        sh_service(
            "once",
            "never",
            &format!("echo run >> '{}'; exit 3", runs("once").display()),
        ),
        sh_service(
            "done",
            "on-failure",
            &format!("echo run >> '{}'", runs("done").display()),
        ),
    ]
    .concat();
    let (code, _, err) = Running::start(&mut with_services(&dir, &config)).finish();
    assert_eq!(
        (count("flaky"), count("once"), count("done")),
        (2, 1, 1),
        "{err}"
    );
    assert!(
        err.contains("init: flaky exited with status 1; restarting in 100 ms\n"),
        "{err}"
    );
    assert!(err.contains("init: once exited with status 3\n"), "{err}");
    // `once` ended with a failure, so init's own exit says so.
    assert_eq!(code, 1, "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_service_that_keeps_ending_is_given_up_on_after_backing_off() {
    let dir = scratch("give-up");
    let runs = |name: &str| dir.join(format!("{name}.runs"));
    let config = [
        sh_service(
            "crashing",
            "on-failure",
            &format!("echo run >> '{}'; exit 1", runs("crashing").display()),
        ),
        sh_service(
            "quitting",
            "always",
            &format!("echo run >> '{}'", runs("quitting").display()),
        ),
    ]
    .concat();
    let (code, _, err) = Running::start(&mut with_services(&dir, &config)).finish();
    assert_eq!(code, 1, "{err}");
    for (name, status) in [("crashing", 1), ("quitting", 0)] {
        let count = std::fs::read_to_string(runs(name)).unwrap().lines().count();
        assert_eq!(count, 8, "{name}: {err}");
        let gave_up = format!(
            "init: {name} exited with status {status}; giving up on it: it ended 8 times in a row within 10 s of starting\n"
        );
        assert!(err.contains(&gave_up), "{err}");
    }
    let delays: Vec<&str> = err
        .lines()
        .filter(|line| line.starts_with("init: crashing"))
        .filter_map(|line| line.split("restarting in ").nth(1))
        .collect();
    assert_eq!(
        delays,
        [
            "100 ms", "200 ms", "400 ms", "800 ms", "1600 ms", "3200 ms", "5000 ms"
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_program_is_reported_once_and_not_retried() {
    let dir = scratch("missing");
    let config = format!(
        "[[service]]\nname = \"ghost\"\ncommand = [\"/noa/no/such/program\", \"serve\"]\nrestart = \"always\"\n\n{}",
        sh_service("real", "never", "echo real ran")
    );
    let (code, out, err) = Running::start(&mut with_services(&dir, &config)).finish();
    assert_eq!(out, "real ran\n");
    assert_eq!(
        err.matches("init: ghost: cannot start /noa/no/such/program: not found; not retrying\n")
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("started ghost"), "{err}");
    assert_eq!(code, 1, "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sigterm_stops_every_service_and_what_it_started_and_init_exits_0() {
    let dir = scratch("sigterm");
    let service = |name: &str| {
        // A background child in the service's group, and a TERM trap that reports.
        let script = format!(
            "sleep 1000 & echo $! > '{}/{name}.child'; trap 'echo {name} got TERM; exit 0' TERM; echo {name} ready; while :; do sleep 0.1; done",
            dir.display()
        );
        sh_service(name, "always", &script)
    };
    let mut init = Running::start(&mut with_services(
        &dir,
        &[service("one"), service("two")].concat(),
    ));
    init.wait_for_line(Stream::Out, "one ready");
    init.wait_for_line(Stream::Out, "two ready");
    init.signal(libc::SIGTERM);
    let (code, out, err) = init.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("one got TERM\n") && out.contains("two got TERM\n"),
        "{out}"
    );
    assert!(
        err.contains("init: SIGTERM: stopping the services\n"),
        "{err}"
    );
    assert!(!err.contains("SIGKILL"), "both stopped on SIGTERM: {err}");
    assert!(
        !err.contains("restarting"),
        "nothing restarts while stopping: {err}"
    );
    for name in ["one", "two"] {
        let child: i32 = std::fs::read_to_string(dir.join(format!("{name}.child")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(gone(child), "{name}'s background child {child} still runs");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_service_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = scratch("stubborn");
    let config = [
        sh_service(
            "stubborn",
            "always",
            "trap '' TERM; echo stubborn ready; while :; do sleep 1; done",
        ),
        sh_service(
            "polite",
            "always",
            "trap 'exit 0' TERM; echo polite ready; while :; do sleep 0.1; done",
        ),
    ]
    .concat();
    let mut init = Running::start(&mut with_services(&dir, &config));
    init.wait_for_line(Stream::Out, "stubborn ready");
    init.wait_for_line(Stream::Out, "polite ready");
    init.signal(libc::SIGINT);
    let (code, _, err) = init.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("init: SIGINT: stopping the services\n"),
        "{err}"
    );
    assert!(err.contains("init: polite exited with status 0\n"), "{err}");
    assert!(
        err.lines()
            .any(|line| line.starts_with("init: stubborn (pid ")
                && line.ends_with("still running 5 s after SIGTERM; sending SIGKILL")),
        "{err}"
    );
    assert!(
        err.contains("init: stubborn was killed by signal 9\n"),
        "{err}"
    );
    assert!(
        !err.contains("init: polite (pid"),
        "polite stopped on SIGTERM: {err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_services_file_falls_back_to_the_shell_with_a_message() {
    let dir = scratch("bad");
    for (text, says) in [
        ("[[service]\nname = \"x\"\n", "TOML parse error at line 1"),
        (
            "[[service]]\nname = \"x\"\ncommand = [\"true\"]\nrestart = \"sometimes\"\n",
            "sometimes",
        ),
    ] {
        let mut init = Running::start(with_services(&dir, text).stdin(Stdio::piped()));
        init.write_stdin("echo shell ran; exit 4\n");
        let (code, out, err) = init.finish();
        assert_eq!((code, out.as_str()), (4, "shell ran\n"), "{err}");
        let path = dir.join("services.toml");
        assert!(
            err.starts_with(&format!("init: {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
        assert!(
            err.contains("init: no services started; starting a login shell instead\n"),
            "{err}"
        );
    }
    // An empty file, or none, is no services: the shell, with nothing said.
    for config in [Some(""), Some("# nothing yet\n"), None] {
        let mut command = match config {
            Some(text) => with_services(&dir, text),
            None => init(&dir),
        };
        let mut init = Running::start(command.stdin(Stdio::piped()));
        init.write_stdin("echo shell ran; exit 5\n");
        let (code, out, err) = init.finish();
        assert_eq!(
            (code, out.as_str()),
            (5, "shell ran\n"),
            "{config:?}: {err}"
        );
        assert!(!err.contains("init:"), "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Whether process `pid` has exited (gone, or a zombie about to be reaped by whoever has it).
fn gone(pid: i32) -> bool {
    // It got SIGTERM with its group; allow it the moment it takes to die and be reaped.
    for _ in 0..1000 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    false
}

#[test]
fn noa_services_off_on_the_kernel_command_line_runs_the_shell_instead() {
    let dir = scratch("services-off");
    std::fs::write(dir.join("cmdline"), "console=ttyS0 noa.services=off\n").unwrap();
    let mut init = Running::start(
        with_services(&dir, &sh_service("a", "never", "echo service ran"))
            .env("NOA_CMDLINE", dir.join("cmdline"))
            .stdin(Stdio::piped()),
    );
    init.write_stdin("echo shell ran; exit 6\n");
    let (code, out, err) = init.finish();
    assert_eq!((code, out.as_str()), (6, "shell ran\n"), "{err}");
    assert!(!err.contains("init:"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
