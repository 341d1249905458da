//! The http benchmark's client: HTTP/1.1 over keep-alive connections to the server under test
//! (bench/programs/http_server.c), all in this thread and in the same `poll` that drains the
//! server's pipes (`child::Session::wait_many`), so that no helper thread competes for the host's
//! two CPUs and a server that dies or stalls is noticed at once.
//!
//! Owns the connections, the requests (`GET /small`, `GET /bytes?n=N`, `POST /upload`,
//! `GET /quit`), reading and checking each response (status 200, its Content-Length, the body:
//! every byte of /bytes against the server's pattern, the upload's `received=N`) and the timed
//! phases: requests/s over K connections for a fixed time, one download and one upload. A phase
//! fails, with a sentence saying why, when the server ends or no byte moves on any connection for
//! [`STALL`]. Knows nothing of which machine serves; timing is from this side only.

use crate::child::Session;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The server's pattern repeats every this many bytes.
pub const PATTERN_LEN: usize = 65536;

/// `GET /small`'s body.
pub const SMALL_BODY: &[u8] = b"hello from noa\n";

/// A phase fails when no byte has moved on any of its connections for this long.
pub const STALL: Duration = Duration::from_secs(30);

/// How long a connection is retried (connect, then the first request) while the server lives: a
/// forward may accept before the guest's listener is reachable, and reset the connection.
pub const CONNECT_FOR: Duration = Duration::from_secs(5);

/// The most header bytes a response may have.
const HEAD_MAX: usize = 16 * 1024;

/// Byte `j` (0 ≤ j < 65536) of the server's pattern; body byte k of /bytes is `pattern_byte(k % 65536)`.
pub fn pattern_byte(j: usize) -> u8 {
    ((j * 7 + j / 251) & 0xff) as u8
}

fn pattern() -> Vec<u8> {
    (0..PATTERN_LEN).map(pattern_byte).collect()
}

/// Whether `data` is the pattern from body offset `offset` on.
fn is_pattern(pattern: &[u8], mut offset: u64, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let at = (offset % PATTERN_LEN as u64) as usize;
        let n = (PATTERN_LEN - at).min(data.len());
        if data[..n] != pattern[at..at + n] {
            return false;
        }
        data = &data[n..];
        offset += n as u64;
    }
    true
}

/// What a connection asks the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Small,
    Bytes(u64),
    Upload(u64),
    Quit,
}

impl Request {
    fn head(self) -> Vec<u8> {
        let host = "Host: bench\r\n";
        match self {
            Request::Small => format!("GET /small HTTP/1.1\r\n{host}\r\n"),
            Request::Bytes(n) => format!("GET /bytes?n={n} HTTP/1.1\r\n{host}\r\n"),
            Request::Upload(n) => format!(
                "POST /upload HTTP/1.1\r\n{host}Content-Type: application/octet-stream\r\n\
                 Content-Length: {n}\r\n\r\n"
            ),
            Request::Quit => format!("GET /quit HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
        }
        .into_bytes()
    }

    fn upload_bytes(self) -> u64 {
        match self {
            Request::Upload(n) => n,
            _ => 0,
        }
    }

    /// The body the response must have, when it is not the pattern.
    fn expected_body(self) -> Option<Vec<u8>> {
        match self {
            Request::Small => Some(SMALL_BODY.to_vec()),
            Request::Bytes(_) => None,
            Request::Upload(n) => Some(format!("received={n}\n").into_bytes()),
            Request::Quit => Some(b"bye\n".to_vec()),
        }
    }
}

/// One request on its way: what is left to send, and the response so far.
struct Job {
    request: Request,
    head: Vec<u8>,
    head_sent: usize,
    body_sent: u64,
    started: Instant,
    response: Response,
}

#[derive(Default)]
struct Response {
    /// Header bytes until the blank line.
    head: Vec<u8>,
    /// Content-Length, once the head is in.
    length: Option<u64>,
    /// Body bytes received.
    got: u64,
    /// The body, kept when it is not the pattern (bodies other than /bytes are short).
    body: Vec<u8>,
}

/// A finished request.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub started: Instant,
    pub finished: Instant,
}

struct Conn {
    stream: TcpStream,
    job: Option<Job>,
}

/// Open connections to one server.
pub struct Client {
    conns: Vec<Conn>,
    pattern: Vec<u8>,
    scratch: Vec<u8>,
}

/// One requests/s phase.
#[derive(Debug, Clone)]
pub struct Rate {
    pub connections: usize,
    pub requests: u64,
    /// The phase's start -> its last response.
    pub secs: f64,
    /// Each request's latency, µs (write of its first byte -> its last byte read).
    pub latencies_us: Vec<f64>,
}

impl Client {
    /// Opens `count` connections to `addr`, each made ready with one untimed `GET /small`;
    /// retries each for [`CONNECT_FOR`] while the server lives.
    pub fn connect(
        session: &mut Session,
        addr: SocketAddr,
        count: usize,
    ) -> Result<Client, String> {
        let mut client = Client {
            conns: Vec::new(),
            pattern: pattern(),
            scratch: vec![0; 256 * 1024],
        };
        for _ in 0..count {
            let since = Instant::now();
            loop {
                let tried = client.open_one(session, addr);
                match tried {
                    Ok(()) => break,
                    Err(problem) if since.elapsed() >= CONNECT_FOR || session.done() => {
                        return Err(format!(
                            "connection {} to {addr}: {problem} (tried for {:.1} s)",
                            client.conns.len() + 1,
                            since.elapsed().as_secs_f64()
                        ));
                    }
                    Err(_) => {
                        let _ = session.wait(None, Some(Duration::from_millis(50)));
                    }
                }
            }
        }
        Ok(client)
    }

    fn open_one(&mut self, session: &mut Session, addr: SocketAddr) -> Result<(), String> {
        let stream =
            TcpStream::connect_timeout(&addr, CONNECT_FOR).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| format!("socket options: {e}"))?;
        self.conns.push(Conn { stream, job: None });
        let index = self.conns.len() - 1;
        self.start(index, Request::Small);
        let result = self.drive(session, |_, _| None);
        if result.is_err() {
            self.conns.pop();
        }
        result
    }

    /// GET /small on the first `k` connections, each asking again as soon as it has its answer,
    /// until `time` has passed; the requests in flight then are completed and counted.
    pub fn requests(
        &mut self,
        session: &mut Session,
        k: usize,
        time: Duration,
    ) -> Result<Rate, String> {
        let k = k.min(self.conns.len());
        let start = Instant::now();
        let stop = start + time;
        for i in 0..k {
            self.start(i, Request::Small);
        }
        let mut latencies_us = Vec::new();
        let mut last = start;
        self.drive(session, |_, done| {
            latencies_us.push((done.finished - done.started).as_secs_f64() * 1e6);
            last = last.max(done.finished);
            (done.finished < stop).then_some(Request::Small)
        })
        .map_err(|e| format!("{k} connection(s) doing GET /small: {e}"))?;
        Ok(Rate {
            connections: k,
            requests: latencies_us.len() as u64,
            secs: (last - start).as_secs_f64(),
            latencies_us,
        })
    }

    /// One `request` (a download or an upload) on the first connection; its time from the first
    /// byte written to the last byte read.
    pub fn transfer(
        &mut self,
        session: &mut Session,
        request: Request,
    ) -> Result<Duration, String> {
        self.start(0, request);
        let mut took = Duration::ZERO;
        self.drive(session, |_, done| {
            took = done.finished - done.started;
            None
        })
        .map_err(|e| format!("{}: {e}", describe(request)))?;
        Ok(took)
    }

    /// `GET /quit`: the server answers and exits (the caller then waits for its exit).
    pub fn quit(&mut self, session: &mut Session) -> Result<(), String> {
        self.start(0, Request::Quit);
        self.drive(session, |_, _| None)
            .map_err(|e| format!("GET /quit: {e}"))
    }

    fn start(&mut self, index: usize, request: Request) {
        self.conns[index].job = Some(Job {
            request,
            head: request.head(),
            head_sent: 0,
            body_sent: 0,
            started: Instant::now(),
            response: Response::default(),
        });
    }

    /// Moves every connection with a job on until none has one. `next` hears of each finished
    /// request and gives that connection its next one, if any.
    fn drive(
        &mut self,
        session: &mut Session,
        mut next: impl FnMut(usize, Done) -> Option<Request>,
    ) -> Result<(), String> {
        let mut moved_at = Instant::now();
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.conns.len());
        loop {
            fds.clear();
            for conn in &self.conns {
                let events = match &conn.job {
                    None => 0,
                    Some(job) if job.sending() => libc::POLLIN | libc::POLLOUT,
                    Some(_) => libc::POLLIN,
                };
                fds.push(libc::pollfd {
                    fd: if events == 0 {
                        -1
                    } else {
                        conn.stream.as_raw_fd()
                    },
                    events,
                    revents: 0,
                });
            }
            if fds.iter().all(|fd| fd.fd < 0) {
                return Ok(());
            }
            let left = STALL.saturating_sub(moved_at.elapsed());
            if left.is_zero() {
                return Err(format!("no byte moved for {} s", STALL.as_secs()));
            }
            session
                .wait_many(&mut fds, Some(left))
                .map_err(|e| format!("{e:#}"))?;
            if session.done() {
                return Err("the server ended".into());
            }
            for (index, fd) in fds.iter().enumerate() {
                if fd.revents == 0 {
                    continue;
                }
                let (moved, done) = self.advance(index)?;
                if moved {
                    moved_at = Instant::now();
                }
                if let Some(done) = done {
                    self.conns[index].job = None;
                    if let Some(request) = next(index, done) {
                        self.start(index, request);
                    }
                }
            }
        }
    }

    /// Writes and reads on one connection as far as it goes without blocking. Returns whether
    /// any byte moved, and the request's end if it is complete.
    fn advance(&mut self, index: usize) -> Result<(bool, Option<Done>), String> {
        let conn = &mut self.conns[index];
        let Some(job) = conn.job.as_mut() else {
            return Ok((false, None));
        };
        let mut moved = false;
        // Send what is left of the request.
        while job.sending() {
            let wrote = if job.head_sent < job.head.len() {
                (&conn.stream).write(&job.head[job.head_sent..])
            } else {
                let at = (job.body_sent % PATTERN_LEN as u64) as usize;
                let left = job.request.upload_bytes() - job.body_sent;
                let len = ((PATTERN_LEN - at) as u64).min(left) as usize;
                (&conn.stream).write(&self.pattern[at..at + len])
            };
            match wrote {
                Ok(0) => return Err("the connection took no more bytes".into()),
                Ok(n) => {
                    moved = true;
                    if job.head_sent < job.head.len() {
                        job.head_sent += n;
                    } else {
                        job.body_sent += n as u64;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "sending, after {} of {} body bytes: {e}",
                        job.body_sent,
                        job.request.upload_bytes()
                    ));
                }
            }
        }
        // Take what has arrived.
        loop {
            let n = match (&conn.stream).read(&mut self.scratch) {
                Ok(0) => {
                    return Err(format!(
                        "the server closed the connection {}",
                        job.response.progress()
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("receiving: {e} {}", job.response.progress())),
            };
            moved = true;
            let data = &self.scratch[..n];
            let extra = job.response.feed(data, job.request, &self.pattern)?;
            if job.response.complete() {
                if extra > 0 || job.sending() {
                    return Err(format!(
                        "the response came before the request was sent, or with {extra} bytes \
                         more than its Content-Length"
                    ));
                }
                return Ok((
                    true,
                    Some(Done {
                        started: job.started,
                        finished: Instant::now(),
                    }),
                ));
            }
        }
        Ok((moved, None))
    }
}

fn describe(request: Request) -> String {
    match request {
        Request::Small => "GET /small".into(),
        Request::Bytes(n) => format!("GET /bytes?n={n}"),
        Request::Upload(n) => format!("POST /upload of {n} bytes"),
        Request::Quit => "GET /quit".into(),
    }
}

impl Job {
    fn sending(&self) -> bool {
        self.head_sent < self.head.len() || self.body_sent < self.request.upload_bytes()
    }
}

impl Response {
    fn complete(&self) -> bool {
        self.length == Some(self.got)
    }

    fn progress(&self) -> String {
        match self.length {
            None => format!(
                "before the response's head ({} bytes of it)",
                self.head.len()
            ),
            Some(length) => format!("after {} of {length} body bytes", self.got),
        }
    }

    /// Takes `data` (bytes after what came before); returns how many bytes it holds beyond the
    /// end of the response (0 unless the server sent too much).
    fn feed(&mut self, mut data: &[u8], request: Request, pattern: &[u8]) -> Result<usize, String> {
        if self.length.is_none() {
            let before = self.head.len();
            self.head.extend_from_slice(data);
            // The blank line may straddle the previous read.
            let from = before.saturating_sub(3);
            let Some(end) = find(&self.head[from..], b"\r\n\r\n").map(|at| from + at + 4) else {
                if self.head.len() > HEAD_MAX {
                    return Err(format!("a response head of more than {HEAD_MAX} bytes"));
                }
                return Ok(0);
            };
            self.length = Some(parse_head(&self.head[..end], request)?);
            data = &data[end - before..];
            self.head.truncate(end);
        }
        let length = self.length.unwrap_or(0);
        let take = ((length - self.got).min(data.len() as u64)) as usize;
        let body = &data[..take];
        match request {
            Request::Bytes(_) => {
                if !is_pattern(pattern, self.got, body) {
                    return Err(format!(
                        "the body differs from the server's pattern within bytes {}..{}",
                        self.got,
                        self.got + take as u64
                    ));
                }
            }
            _ => self.body.extend_from_slice(body),
        }
        self.got += take as u64;
        if self.complete()
            && let Some(expected) = request.expected_body()
            && self.body != expected
        {
            return Err(format!(
                "the body is {:?}, not {:?}",
                String::from_utf8_lossy(&self.body),
                String::from_utf8_lossy(&expected)
            ));
        }
        Ok(data.len() - take)
    }
}

/// Checks a response head (status line to the blank line): status 200 and a Content-Length,
/// which for /bytes?n=N must be N. Returns the length.
fn parse_head(head: &[u8], request: Request) -> Result<u64, String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split(' ');
    let version = words.next().unwrap_or_default();
    let status = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || status.len() != 3 {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    if status != "200" {
        return Err(format!("the server answered {status_line:?}"));
    }
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("a bad Content-Length: {line:?}"))?,
            );
        }
    }
    let length = length.ok_or_else(|| format!("no Content-Length in {text:?}"))?;
    if let Request::Bytes(n) = request
        && length != n
    {
        return Err(format!("Content-Length {length} for {n} bytes asked"));
    }
    Ok(length)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_the_servers() {
        // Spot values of the C formula (unsigned char)(j * 7u + j / 251u).
        assert_eq!(pattern_byte(0), 0);
        assert_eq!(pattern_byte(1), 7);
        assert_eq!(pattern_byte(251), ((251 * 7 + 1) & 0xff) as u8);
        assert_eq!(
            pattern_byte(65535),
            ((65535 * 7 + 65535 / 251) & 0xff) as u8
        );
        let p = pattern();
        assert!(is_pattern(
            &p,
            65530,
            &[
                p[65530], p[65531], p[65532], p[65533], p[65534], p[65535], p[0], p[1]
            ]
        ));
        assert!(!is_pattern(&p, 3, &[p[4]]));
    }

    #[test]
    fn responses_are_parsed_across_reads() {
        let p = pattern();
        let mut r = Response::default();
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\nhello ";
        // The blank line split over two reads.
        assert_eq!(r.feed(&head[..60], Request::Small, &p), Ok(0));
        assert_eq!(r.feed(&head[60..], Request::Small, &p), Ok(0));
        assert!(!r.complete());
        assert_eq!(r.feed(b"from noa\n", Request::Small, &p), Ok(0));
        assert!(r.complete());

        let mut r = Response::default();
        let mut data = b"HTTP/1.1 200 OK\r\ncontent-length: 70000\r\n\r\n".to_vec();
        data.extend((0..70000).map(|k| pattern_byte(k % PATTERN_LEN)));
        data.extend(b"xy");
        assert_eq!(r.feed(&data, Request::Bytes(70000), &p), Ok(2));
        assert!(r.complete());

        let mut r = Response::default();
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\x00\x07\x09";
        assert!(
            r.feed(bad, Request::Bytes(3), &p)
                .unwrap_err()
                .contains("pattern")
        );
        let mut r = Response::default();
        let wrong = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\x00\x07\x0e\x15";
        assert!(
            r.feed(wrong, Request::Bytes(5), &p)
                .unwrap_err()
                .contains("Content-Length 4")
        );
        let mut r = Response::default();
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(
            r.feed(missing, Request::Small, &p)
                .unwrap_err()
                .contains("404")
        );
        let mut r = Response::default();
        let other = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nreceived=9\n";
        assert!(
            r.feed(other, Request::Upload(8), &p)
                .unwrap_err()
                .contains("received=8")
        );
    }
}
