//! noa-init run natively (as a child subreaper rather than PID 1): the command after `--`, the
//! environment it gets, exit codes as a shell gives them, orphans reaped, the login shell.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn init() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_noa-init"));
    // No services file of the host's: without a command, init runs its login shell.
    command
        .stdin(Stdio::null())
        .env("NOA_SERVICES", "/noa/no/such/services.toml");
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("start noa-init");
    (
        status.code().expect("noa-init exits, not killed"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn sh(script: &str) -> (i32, String, String) {
    run(init().args(["/sbin/init-args-are-ignored", "--", "sh", "-c", script]))
}

#[test]
fn runs_the_command_with_its_arguments_and_exits_with_its_code() {
    let (code, out, _) = run(init().args(["--", "echo", "a b", "c"]));
    assert_eq!((code, out.as_str()), (0, "a b c\n"));
    assert_eq!(
        sh("echo out; echo err >&2; exit 7"),
        (7, "out\n".into(), "err\n".into())
    );
}

#[test]
fn a_signal_gives_128_plus_its_number() {
    assert_eq!(sh("kill -9 $$").0, 128 + 9);
    assert_eq!(sh("kill -TERM $$").0, 128 + 15);
}

#[test]
fn a_missing_command_is_127_and_a_non_executable_one_126() {
    let (code, out, err) = run(init().args(["--", "noa-no-such-command", "x"]));
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (127, "", "init: noa-no-such-command: not found\n")
    );
    let (code, _, err) = run(init().args(["--", "/noa/no/such/file"]));
    assert_eq!(
        (code, err.as_str()),
        (127, "init: /noa/no/such/file: not found\n")
    );

    let dir = tempfile_dir("not-executable");
    let file = dir.join("data");
    std::fs::write(&file, "echo hi\n").unwrap();
    let (code, _, err) = run(init().arg("--").arg(&file));
    assert_eq!(code, 126, "{err}");
    assert!(
        err.starts_with("init: ") && err.contains("Permission denied"),
        "{err}"
    );
    let (code, _, _) = run(init().arg("--").arg(&dir));
    assert_eq!(code, 126, "a directory is not executable");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_script_without_shebang_runs_under_sh_as_execvp_does() {
    let dir = tempfile_dir("no-shebang");
    let file = dir.join("script");
    std::fs::write(&file, "echo \"script $1\"\nexit 3\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, out, err) = run(init().arg("--").arg(&file).arg("arg"));
    assert_eq!((code, out.as_str()), (3, "script arg\n"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn children_get_path_home_and_term_unless_the_kernel_passed_them() {
    let script = "echo \"$PATH|$HOME|$TERM|$NOA_KERNEL_VAR\"";
    let (code, out, _) = run(init()
        .env_clear()
        .env("NOA_KERNEL_VAR", "passed")
        .args(["--", "/bin/sh", "-c", script]));
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|linux|passed\n"
    );
    // With no PATH, `sh` is found through the default one.
    let (code, _, err) = run(init().env_clear().args(["--", "sh", "-c", "exit 0"]));
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(init()
        .env_clear()
        .env("HOME", "/")
        .env("TERM", "vt100")
        .env("PATH", "/bin:/usr/bin")
        .args(["--", "sh", "-c", script]));
    assert_eq!(out, "/bin:/usr/bin|/|vt100|\n");
}

#[test]
fn orphans_are_reaped_while_the_command_runs() {
    // The orphan (a background job of a subshell that exits at once) is reparented to init;
    // when it exits, init must reap it: then init's only child is the script itself.
    let children = format!(
        "/proc/{}/task/{}/children",
        std::process::id(),
        std::process::id()
    );
    if !std::path::Path::new(&children).exists() {
        println!("SKIPPED: no /proc/PID/task/TID/children on this host");
        return;
    }
    let script = r#"
        children() { cat /proc/$PPID/task/$PPID/children; }
        (sleep 1 &)
        i=0
        until [ "$(children)" != "$$ " ]; do
            i=$((i + 1)); [ $i -gt 200 ] && { echo "the orphan never came to init"; exit 1; }
            sleep 0.05
        done
        i=0
        until [ "$(children)" = "$$ " ]; do
            i=$((i + 1)); [ $i -gt 200 ] && { echo "init did not reap: $(children)"; exit 1; }
            sleep 0.05
        done
    "#;
    let (code, out, err) = sh(script);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn the_command_exiting_ends_init_even_with_orphans_still_running() {
    let start = std::time::Instant::now();
    let (code, _, _) = run(init().stdout(Stdio::null()).stderr(Stdio::null()).args([
        "--",
        "sh",
        "-c",
        "(sleep 30 &); exit 5",
    ]));
    assert_eq!(code, 5);
    assert!(start.elapsed().as_secs() < 20, "init waited for an orphan");
}

#[test]
fn without_a_command_it_runs_a_login_shell() {
    let mut child = init()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"case $0 in -*) echo login;; esac; echo \"in $PWD\" >/dev/null; exit 4\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&output.stdout).contains("login\n"));
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("noa-init-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
