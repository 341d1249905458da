//! The `mcp-start` benchmark's probes: one HTTP/1.1 request at a time to a starting noa-server
//! (natively, or in a guest behind `--publish`), retried until it answers — `POST /mcp` with an
//! MCP `tools/list` in the stateless 2026-07-28 revision (no `initialize`: the protocol version
//! and client capabilities travel in the request's `_meta`, the method in `Mcp-Method`), and
//! `GET /health`.
//!
//! Owns the request bytes, one attempt's connection (a blocking connect, which on the loopback
//! is answered at once, then non-blocking reads driven by the caller's `poll`), and reading the
//! answer: the status line, `Content-Length` or chunked bodies, a JSON or `text/event-stream`
//! body (rmcp answers a POST with an event stream; its `data:` lines carry the JSON-RPC
//! message), the tool names of a `tools/list` result and the model state of `/health`. Knows
//! nothing of timing or of which machine serves; `mcp_start` schedules attempts and keeps time.

use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The MCP revision the probe speaks: stateless, no initialize handshake.
pub const PROTOCOL_VERSION: &str = "2026-07-28";

/// The JSON-RPC body of the `tools/list` probe.
pub const TOOLS_LIST_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

/// The tool whose presence makes a `tools/list` answer a success.
pub const EXPECTED_TOOL: &str = "generate";

/// How long a connect may take (on the loopback it is answered at once, accepted or refused).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The most bytes an answer may have (a tools/list answer is a few KiB).
const ANSWER_MAX: usize = 1 << 20;

/// What a probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /mcp` with [`TOOLS_LIST_BODY`].
    ToolsList,
    /// `GET /health`.
    Health,
}

/// The request's bytes, `Connection: close` (one request per connection, as a fresh client).
pub fn request(target: Target, port: u16) -> Vec<u8> {
    match target {
        Target::ToolsList => format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n\
             Mcp-Method: tools/list\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{TOOLS_LIST_BODY}",
            TOOLS_LIST_BODY.len()
        )
        .into_bytes(),
        Target::Health => format!(
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes(),
    }
}

/// An HTTP answer, its body already de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The `Content-Type` header, lower case, without parameters ("" if none).
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Reads an answer from the bytes received so far: `Ok(Some)` once it is complete (by its
/// `Content-Length`, its last chunk, or — for neither — the end of the connection, `eof`),
/// `Ok(None)` while more must come, `Err` for what no HTTP server would send.
pub fn parse_answer(raw: &[u8], eof: bool) -> Result<Option<Answer>, String> {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return if eof {
            Err(format!(
                "the connection ended after {} bytes, before the answer's headers",
                raw.len()
            ))
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| "the answer's headers are not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let (mut length, mut chunked, mut content_type) = (None, false, String::new());
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a header line without a colon: {line:?}"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("a bad Content-Length: {value:?}"))?,
                )
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-type" => {
                content_type = value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            }
            _ => {}
        }
    }
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None if eof => return Err("the connection ended inside a chunked body".into()),
            None => return Ok(None),
        }
    } else if let Some(length) = length {
        if rest.len() < length {
            return if eof {
                Err(format!(
                    "the connection ended after {} of {length} body bytes",
                    rest.len()
                ))
            } else {
                Ok(None)
            };
        }
        rest[..length].to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Answer {
        status,
        content_type,
        body,
    }))
}

/// The body of a chunked transfer once its last (empty) chunk has come; `None` before.
fn dechunk(mut raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(raw, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap_or("?");
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("a bad chunk size: {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if raw.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The JSON-RPC messages of a body: the body itself as JSON, or for an event stream every
/// `data:` event (its lines joined) that parses as JSON.
fn messages(answer: &Answer) -> Result<Vec<Value>, String> {
    let text = String::from_utf8_lossy(&answer.body);
    if answer.content_type != "text/event-stream" {
        return serde_json::from_str(&text)
            .map(|v| vec![v])
            .map_err(|e| format!("the body is not JSON ({e}): {}", short(&text)));
    }
    let mut out = Vec::new();
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !data.is_empty() {
                if let Ok(value) = serde_json::from_str(&data) {
                    out.push(value);
                }
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    Ok(out)
}

/// The tool names of a `tools/list` answer (status 200, the JSON-RPC response with id 1); `Err`
/// says what came instead.
pub fn tool_names(answer: &Answer) -> Result<Vec<String>, String> {
    if answer.status != 200 {
        return Err(format!(
            "status {}: {}",
            answer.status,
            short(&String::from_utf8_lossy(&answer.body))
        ));
    }
    let reply = messages(answer)?
        .into_iter()
        .find(|m| m.get("id") == Some(&Value::from(1)))
        .ok_or_else(|| "no JSON-RPC response with id 1 in the answer".to_string())?;
    if let Some(error) = reply.get("error") {
        return Err(format!("JSON-RPC error: {error}"));
    }
    let tools = reply
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no result.tools in {}", short(&reply.to_string())))?;
    Ok(tools
        .iter()
        .filter_map(|t| t.get("name")?.as_str().map(str::to_string))
        .collect())
}

/// The model's state in a `/health` answer (`loading`, `ready`, `failed`, `absent`).
pub fn model_state(answer: &Answer) -> Result<String, String> {
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    let value = messages(answer)?.into_iter().next().unwrap_or_default();
    value
        .pointer("/model/state")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no model.state in {}", short(&value.to_string())))
}

fn short(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// One attempt in flight: the connection and what it has received.
pub struct Attempt {
    stream: TcpStream,
    pub started: Instant,
    received: Vec<u8>,
}

impl Attempt {
    /// Connects to 127.0.0.1:`port` and sends the request. `Err` when the connection is refused
    /// or reset at once (nothing listens yet) — the caller retries.
    pub fn start(target: Target, port: u16) -> Result<Attempt, String> {
        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        // The request is far smaller than a socket buffer: the write does not block.
        stream
            .write_all(&request(target, port))
            .map_err(|e| format!("sending the request: {e}"))?;
        stream
            .set_nonblocking(true)
            .map_err(|e| format!("set_nonblocking: {e}"))?;
        Ok(Attempt {
            stream,
            started,
            received: Vec::new(),
        })
    }

    /// The descriptor to `poll` for input.
    pub fn pollfd(&self) -> libc::pollfd {
        libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }
    }

    /// Reads what has come: `Ok(Some)` with the whole answer, `Ok(None)` while more must come,
    /// `Err` when the connection failed or ended before a whole answer.
    pub fn read(&mut self) -> Result<Option<Answer>, String> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return parse_answer(&self.received, true),
                Ok(n) => {
                    self.received.extend_from_slice(&buf[..n]);
                    if self.received.len() > ANSWER_MAX {
                        return Err(format!("an answer over {ANSWER_MAX} bytes"));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    return parse_answer(&self.received, false);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the answer: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const SSE: &str = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"complete\",\
                       \"tools\":[{\"name\":\"generate\"},{\"name\":\"list_dir\"}]}}\n\n";

    fn chunked(body: &str) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        transfer-encoding: chunked\r\n\r\n"
            .to_vec();
        for part in [&body[..10], &body[10..]] {
            out.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[test]
    fn requests_carry_the_stateless_headers() {
        let text = String::from_utf8(request(Target::ToolsList, 8080)).unwrap();
        for needle in [
            "POST /mcp HTTP/1.1\r\n",
            "Host: 127.0.0.1:8080\r\n",
            "Accept: application/json, text/event-stream\r\n",
            "MCP-Protocol-Version: 2026-07-28\r\n",
            "Mcp-Method: tools/list\r\n",
            &format!("Content-Length: {}\r\n", TOOLS_LIST_BODY.len()),
        ] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        assert!(text.ends_with(TOOLS_LIST_BODY));
        let body: Value = serde_json::from_str(TOOLS_LIST_BODY).unwrap();
        assert_eq!(
            body.pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion"),
            Some(&Value::from(PROTOCOL_VERSION))
        );
        assert!(
            String::from_utf8(request(Target::Health, 1))
                .unwrap()
                .starts_with("GET /health ")
        );
    }

    #[test]
    fn a_chunked_event_stream_lists_the_tools() {
        let raw = chunked(SSE);
        assert_eq!(parse_answer(&raw[..raw.len() - 3], false), Ok(None));
        let answer = parse_answer(&raw, false).unwrap().unwrap();
        assert_eq!(answer.content_type, "text/event-stream");
        assert_eq!(answer.body, SSE.as_bytes());
        assert_eq!(tool_names(&answer).unwrap(), ["generate", "list_dir"]);
    }

    #[test]
    fn content_length_and_close_delimited_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 41\r\n\r\n{\"model\":{\"state\":\"ready\"},\"status\":\"ok\"}xxxx";
        let answer = parse_answer(raw, false).unwrap().unwrap();
        assert_eq!(model_state(&answer).unwrap(), "ready");
        assert_eq!(parse_answer(&raw[..raw.len() - 10], false), Ok(None));
        assert!(parse_answer(&raw[..raw.len() - 10], true).is_err());
        let close = b"HTTP/1.0 200 OK\r\n\r\n{\"model\":{\"state\":\"loading\"}}";
        assert_eq!(parse_answer(close, false), Ok(None));
        let answer = parse_answer(close, true).unwrap().unwrap();
        assert_eq!(model_state(&answer).unwrap(), "loading");
    }

    #[test]
    fn errors_say_what_came() {
        assert!(
            parse_answer(b"", true)
                .unwrap_err()
                .contains("before the answer's headers")
        );
        assert!(parse_answer(b"SSH-2.0\r\n\r\n", true).is_err());
        let bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 95\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32020,\"message\":\"missing required Mcp-Method header\"}}";
        let answer = parse_answer(bad, true).unwrap().unwrap();
        assert!(tool_names(&answer).unwrap_err().starts_with("status 400"));
        let error = Answer {
            status: 200,
            content_type: "application/json".into(),
            body: br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1}}"#.to_vec(),
        };
        assert!(tool_names(&error).unwrap_err().contains("JSON-RPC error"));
        let other_id = Answer {
            status: 200,
            content_type: "text/event-stream".into(),
            body: b"data: {\"id\":2,\"result\":{}}\n\n".to_vec(),
        };
        assert!(tool_names(&other_id).unwrap_err().contains("id 1"));
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[test]
    fn multi_line_events_are_joined() {
        let answer = Answer {
            status: 200,
            content_type: "text/event-stream".into(),
            body: b"event: message\r\ndata: {\"id\":1,\r\ndata: \"result\":{\"tools\":[{\"name\":\"generate\"}]}}\r\n".to_vec(),
        };
        assert_eq!(tool_names(&answer).unwrap(), ["generate"]);
    }

    #[test]
    fn an_attempt_reads_a_real_connection() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(TOOLS_LIST_BODY.as_bytes()) {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early");
                got.extend_from_slice(&buf[..n]);
            }
            let answer = chunked(SSE);
            conn.write_all(&answer[..7]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            conn.write_all(&answer[7..]).unwrap();
        });
        let mut attempt = Attempt::start(Target::ToolsList, port).unwrap();
        let answer = loop {
            let mut fd = [attempt.pollfd()];
            // SAFETY: `fd` is a valid pollfd array for the duration of the call.
            unsafe { libc::poll(fd.as_mut_ptr(), 1, 5000) };
            if let Some(answer) = attempt.read().unwrap() {
                break answer;
            }
        };
        assert_eq!(tool_names(&answer).unwrap(), ["generate", "list_dir"]);
        server.join().unwrap();
        // Nothing listens there any more: the attempt fails at once.
        assert!(Attempt::start(Target::Health, port).is_err());
    }
}
