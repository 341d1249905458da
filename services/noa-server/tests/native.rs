//! noa-server run natively, driven by the official clients (the MCP Python SDK in both eras and
//! over stdio, the OpenAI Python client) and by raw HTTP for input no client would send. The
//! model is the tiny random-weight GGUF (`NOA_TINY_MODEL`): real llama.cpp loading and
//! generation, gibberish text, seconds not minutes.

mod common;

use common::{Server, run_client};

#[test]
fn the_openai_client_gets_chat_completions_whole_and_streamed() {
    let server = Server::start("openai", &[], &[]);
    let output = run_client("openai_check.py", &[&server.url("/v1")]);
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(seen["chunks"].as_u64().unwrap() >= 1, "{seen}");
}

#[test]
fn the_mcp_sdk_lists_and_calls_tools_in_both_eras() {
    let server = Server::start("mcp", &[], &[]);
    for mode in ["legacy", "2026-07-28"] {
        let output = run_client("mcp_check.py", &[&server.url("/mcp"), "--mode", mode]);
        let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(seen["run_python"]["stdout"], "42\n", "{mode}: {seen}");
        let version = seen["protocol_version"].as_str().unwrap();
        let expected = if mode == "legacy" {
            "2025-11-25"
        } else {
            "2026-07-28"
        };
        assert_eq!(version, expected, "{mode}");
    }
}

#[test]
fn the_mcp_inspector_cli_lists_the_tools() {
    let server = Server::start("inspector", &[], &[]);
    let home = common::scratch("inspector-home");
    let output = std::process::Command::new(common::required_env("NOA_NODE"))
        .arg(common::required_env("NOA_INSPECTOR"))
        .args([
            "--cli",
            &server.url("/mcp"),
            "--transport",
            "http",
            "--method",
            "tools/list",
        ])
        .args(["--format", "json", "-q"])
        .env("HOME", &home)
        .output()
        .expect("cannot run the MCP Inspector");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for tool in [
        "generate",
        "run_python",
        "run_command",
        "read_file",
        "write_file",
        "list_dir",
    ] {
        assert!(names.contains(&tool), "{tool} missing from {names:?}");
    }
}

#[test]
fn the_mcp_sdk_works_over_stdio() {
    let workspace = common::scratch("stdio");
    let model = common::tiny_model();
    let exe = env!("CARGO_BIN_EXE_noa-server");
    let (workspace, model) = (workspace.to_str().unwrap(), model.to_str().unwrap());
    let argv = [
        "-",
        "--mode",
        "legacy",
        "--stdio",
        exe,
        "mcp",
        "--stdio",
        "--workspace",
        workspace,
        "--model",
        model,
        "--context",
        "512",
    ];
    run_client("mcp_check.py", &argv);
}

#[test]
fn tools_enforce_their_limits_and_the_server_keeps_serving() {
    let server = Server::start(
        "limits",
        &["--timeout-seconds", "20", "--output-bytes", "65536"],
        &[],
    );
    run_client("mcp_limits.py", &[&server.url("/mcp"), "--mode", "legacy"]);
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
}

#[test]
fn bad_http_input_gets_openai_errors_and_the_server_keeps_serving() {
    let server = Server::start("bad-input", &[], &[]);
    server.wait_for_model();
    let chat = "/v1/chat/completions";
    let cases: &[(&str, Vec<u8>, u16, Option<&str>)] = &[
        ("malformed JSON", b"{\"messages\": [".to_vec(), 400, None),
        (
            "invalid UTF-8",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(),
            400,
            None,
        ),
        (
            "wrong shape",
            br#"{"messages": "hello"}"#.to_vec(),
            400,
            None,
        ),
        (
            "no messages",
            br#"{"messages": []}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "bad role",
            br#"{"messages": [{"role": "wizard", "content": "x"}]}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            "temperature",
            br#"{"messages": [{"role": "user", "content": "x"}], "temperature": 7}"#.to_vec(),
            400,
            Some("temperature"),
        ),
        (
            "n",
            br#"{"messages": [{"role": "user", "content": "x"}], "n": 3}"#.to_vec(),
            400,
            Some("n"),
        ),
        (
            "max_tokens",
            br#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}"#.to_vec(),
            400,
            Some("max_tokens"),
        ),
        (
            "too long",
            format!(
                r#"{{"messages": [{{"role": "user", "content": "{}"}}]}}"#,
                "word ".repeat(2000)
            )
            .into_bytes(),
            400,
            Some("messages"),
        ),
    ];
    for (what, body, status, param) in cases {
        let reply = server.request("POST", chat, &[("Content-Type", "application/json")], body);
        assert_eq!(reply.status, *status, "{what}: {}", reply.text());
        let error = &reply.json()["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {error}"
        );
        assert!(error["type"].is_string(), "{what}: {error}");
        if let Some(param) = param {
            assert_eq!(error["param"], *param, "{what}: {error}");
        }
    }
    let huge = vec![b' '; 5 << 20];
    let reply = server.request("POST", chat, &[("Content-Type", "application/json")], &huge);
    assert_eq!(reply.status, 413, "{}", reply.text());
    let reply = server.request("POST", chat, &[("Content-Type", "text/plain")], b"{}");
    assert_eq!(reply.status, 415, "{}", reply.text());
    assert_eq!(server.request("GET", "/v1/nothing", &[], b"").status, 404);
    assert_eq!(server.request("GET", chat, &[], b"").status, 405);

    // MCP: not JSON, and not JSON-RPC.
    let mcp_headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    for body in [&b"{nope"[..], br#"{"hello": "world"}"#, b"\xff\xff"] {
        let reply = server.request("POST", "/mcp", &mcp_headers, body);
        assert!(
            (400..500).contains(&reply.status),
            "{}: {}",
            reply.status,
            reply.text()
        );
    }

    // Still serving.
    let reply = server.post_json(
        chat,
        r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["object"], "chat.completion");
}

#[test]
fn a_configured_token_is_required_and_origins_are_checked() {
    let server = Server::start("token", &[], &[("NOA_TOKEN", "s3cret-token")]);
    let reply = server.request("GET", "/v1/models", &[], b"");
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["type"], "authentication_error");
    assert_eq!(reply.header("www-authenticate").as_deref(), Some("Bearer"));
    let bad = server.request(
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer wrong")],
        b"",
    );
    assert_eq!(bad.status, 401);
    let good = server.request(
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer s3cret-token")],
        b"",
    );
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
    assert_eq!(server.request("POST", "/mcp", &[], b"{}").status, 401);

    let auth = ("Authorization", "Bearer s3cret-token");
    let evil = server.request(
        "GET",
        "/v1/models",
        &[auth, ("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(evil.status, 403);
    let local = server.request(
        "GET",
        "/v1/models",
        &[auth, ("Origin", "http://localhost:5173")],
        b"",
    );
    assert_eq!(local.status, 200);

    run_client(
        "openai_check.py",
        &[&server.url("/v1"), "--token", "s3cret-token"],
    );
    run_client(
        "mcp_check.py",
        &[
            &server.url("/mcp"),
            "--mode",
            "legacy",
            "--token",
            "s3cret-token",
        ],
    );
}

#[test]
fn health_answers_before_the_model_is_ready_and_reports_its_state() {
    let server = Server::start("health", &[], &[]);
    let state = server.request("GET", "/health", &[], b"").json();
    let model_state = state["model"]["state"].as_str().unwrap().to_string();
    assert!(
        ["loading", "ready"].contains(&model_state.as_str()),
        "{state}"
    );
    server.wait_for_model();
    let models = server.request("GET", "/v1/models", &[], b"").json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
}

#[test]
fn without_a_model_health_says_why_and_generation_is_a_clear_error() {
    let empty = common::scratch("no-models");
    let workspace = common::scratch("no-models-ws");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_noa-server"))
        .args([
            "serve",
            "--listen",
            &listen,
            "--token-file",
            "/nonexistent",
            "--models",
        ])
        .arg(&empty)
        .arg("--workspace")
        .arg(&workspace)
        .env_remove("NOA_TOKEN")
        .spawn()
        .unwrap();
    let address = listen.parse().unwrap();
    let mut health = None;
    for _ in 0..200 {
        if let Ok(reply) = common::try_request(address, "GET", "/health", &[], b"") {
            health = Some(reply);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let health = health.expect("no /health").json();
    assert_eq!(health["model"]["state"], "absent", "{health}");
    let reply = common::try_request(
        address,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        br#"{"messages": [{"role": "user", "content": "hi"}]}"#,
    )
    .unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "model_not_found");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start("sigterm", &[], &[]);
    let pid = server.child.id() as i32;
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "noa-server did not stop within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
