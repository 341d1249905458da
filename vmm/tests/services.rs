//! The guest's services end to end (issue 7), in a real KVM boot of the test image in service
//! mode: init starts noa-server from /etc/noa/services.toml, the VMM forwards a host port to the
//! guest's 8080, and the official clients talk to it through that forward — the MCP Python SDK in
//! both eras, the MCP Inspector CLI, the OpenAI Python client — over the bundled SmolLM2 model
//! (real weights: the text must be non-empty). Then SIGTERM to the VMM shuts the guest down
//! cleanly (exit 0). Nothing is timed; the limits only end a hung run.
//!
//! The client scripts live with the server (services/noa-server/tests/clients/) and run with the
//! test venv's python (`NOA_TEST_PYTHON`); the Inspector with Node 22 (`NOA_NODE`,
//! `NOA_INSPECTOR`). `cargo xtask test` provides all three.

mod common;
use common::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the guest may take to answer /health, and then to load the model (hung-run guards).
const HEALTH_LIMIT: Duration = Duration::from_secs(120);
const MODEL_LIMIT: Duration = Duration::from_secs(600);

fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{name} is not set: run the tests through `cargo xtask test`"))
}

fn clients() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/noa-server/tests/clients")
}

/// Runs a client script; panics with its output unless it succeeds.
fn client(script: &str, args: &[&str]) -> Output {
    let output = Command::new(env_path("NOA_TEST_PYTHON"))
        .arg(clients().join(script))
        .args(args)
        .output()
        .expect("cannot run the test python");
    assert!(
        output.status.success(),
        "{script} {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A GET over a fresh connection; the body, if the status is 200.
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

struct Guest {
    child: Child,
    port: u16,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guest {
    /// Boots the test image in service mode, its 8080 forwarded to a free host port.
    fn boot() -> Guest {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = vmm()
            .args(["--snapshot", "--memory", "1024", "--publish"])
            .arg(format!("127.0.0.1:{port}:8080"))
            .arg(test_image())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start vmm");
        Guest { child, port }
    }

    fn wait_for(&mut self, limit: Duration, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(body) = get(self.port, "/health") {
                if ready(&body) {
                    return body;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vmm exited ({status}) before {what}");
            }
            assert!(Instant::now() < deadline, "no {what} within {limit:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[test]
fn official_clients_reach_the_guest_services_through_the_forward() {
    if !have_kvm() {
        return;
    }
    let mut guest = Guest::boot();
    // MCP and /health answer while the model still loads.
    guest.wait_for(HEALTH_LIMIT, "/health", |_| true);
    let inspector_home = std::env::temp_dir().join(format!("noa-inspector-{}", std::process::id()));
    std::fs::create_dir_all(&inspector_home).unwrap();
    let listed = Command::new(env_path("NOA_NODE"))
        .arg(env_path("NOA_INSPECTOR"))
        .args([
            "--cli",
            &guest.url("/mcp"),
            "--transport",
            "http",
            "--method",
            "tools/list",
        ])
        .args(["--format", "json", "-q"])
        .env("HOME", &inspector_home)
        .output()
        .expect("cannot run the MCP Inspector");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "inspector: {text}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    for tool in [
        "generate",
        "run_python",
        "run_command",
        "read_file",
        "write_file",
        "list_dir",
    ] {
        assert!(
            text.contains(&format!("\"{tool}\"")),
            "tools/list lacks {tool}: {text}"
        );
    }

    let health = guest.wait_for(MODEL_LIMIT, "a loaded model", |body| {
        body.contains("\"ready\"")
    });
    assert!(health.contains("SmolLM2-135M-Instruct"), "{health}");
    for mode in ["legacy", "2026-07-28"] {
        let output = client("mcp_check.py", &[&guest.url("/mcp"), "--mode", mode]);
        let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(seen["run_python"]["stdout"], "42\n", "{mode}: {seen}");
        assert!(
            seen["generate"]
                .as_str()
                .is_some_and(|t| !t.trim().is_empty()),
            "{seen}"
        );
    }
    let output = client("openai_check.py", &[&guest.url("/v1")]);
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        seen["chat"].as_str().is_some_and(|t| !t.trim().is_empty()),
        "{seen}"
    );

    // Ctrl-C/SIGTERM: init stops noa-server, the guest powers off with 0.
    let pid = guest.child.id() as i32;
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = guest.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the guest did not stop within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    use std::io::Read;
    guest
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}
