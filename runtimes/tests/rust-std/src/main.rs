//! A static Rust std program for the guest: threads, channels, Mutex/Condvar, the file system,
//! child processes and arguments. It checks its own results and prints only deterministic lines
//! (no timings, pids or addresses), so its output natively and in the guest must be identical.
//!
//! Usage: `rust-std [DIR [ARGS…]]` — files go under DIR (default /tmp); ARGS are echoed back.
//! Exit status 0 when every check passed; each failed check prints a `FAIL` line.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Prints `NAME: GOT`, and a FAIL line if it is not `want`.
fn check<T: Debug + PartialEq>(name: &str, got: T, want: T) {
    println!("{name}: {got:?}");
    if got != want {
        println!("FAIL {name}: expected {want:?}");
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map_or("/tmp", String::as_str).to_string();
    let program = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or_default());
    check("argv0", program, Some("rust-std"));
    println!("args: {:?}", args.get(2..).unwrap_or_default());
    threads();
    channels();
    locks();
    files(Path::new(&dir));
    processes();
    clocks();
    let failed = FAILED.load(Ordering::SeqCst);
    if failed == 0 {
        println!("rust-std: all checks passed");
    } else {
        println!("rust-std: {failed} checks FAILED");
        std::process::exit(1);
    }
}

fn threads() {
    // Each thread sums its own slice of 1..=80_000; the totals must add up.
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            thread::Builder::new()
                .name(format!("worker-{t}"))
                .spawn(move || {
                    let name = thread::current().name().unwrap().to_string();
                    let sum: u64 = (t * 10_000 + 1..=(t + 1) * 10_000).sum();
                    (name, sum)
                })
                .unwrap()
        })
        .collect();
    let results: Vec<(String, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    check("threads.names", results[3].0.as_str(), "worker-3");
    check(
        "threads.sum",
        results.iter().map(|r| r.1).sum::<u64>(),
        80_000 * 80_001 / 2,
    );

    // Scoped threads borrowing the stack, each with its own thread-local.
    thread_local!(static LOCAL: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
    let data: Vec<u32> = (1..=100).collect();
    let sums: Vec<u32> = thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(25)
            .map(|chunk| {
                s.spawn(move || {
                    for v in chunk {
                        LOCAL.with(|l| l.set(l.get() + v));
                    }
                    LOCAL.with(|l| l.get())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    check("threads.scoped", sums, vec![325, 950, 1575, 2200]);
    check("threads.main_local", LOCAL.with(|l| l.get()), 0);
}

fn channels() {
    // Four producers, one consumer.
    let (tx, rx) = mpsc::channel();
    for producer in 0..4u32 {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..250u32 {
                tx.send((producer, i)).unwrap();
            }
        });
    }
    drop(tx);
    let mut per_producer = BTreeMap::new();
    let mut in_order = true;
    for (producer, i) in rx {
        let next = per_producer.entry(producer).or_insert(0u32);
        in_order &= *next == i;
        *next += 1;
    }
    check(
        "mpsc.counts",
        per_producer.values().copied().collect::<Vec<_>>(),
        vec![250; 4],
    );
    check("mpsc.fifo_per_sender", in_order, true);

    // A rendezvous channel: ping-pong between two threads.
    let (ping_tx, ping_rx) = mpsc::sync_channel::<u32>(0);
    let (pong_tx, pong_rx) = mpsc::sync_channel::<u32>(0);
    let ponger = thread::spawn(move || {
        let mut n = 0;
        while let Ok(v) = ping_rx.recv() {
            pong_tx.send(v + 1).unwrap();
            n += 1;
        }
        n
    });
    let mut v = 0;
    for _ in 0..1000 {
        ping_tx.send(v).unwrap();
        v = pong_rx.recv().unwrap();
    }
    drop(ping_tx);
    check("sync_channel.value", v, 1000);
    check("sync_channel.rounds", ponger.join().unwrap(), 1000);
    let (gone, rx) = mpsc::channel::<()>();
    drop(gone);
    check(
        "recv_timeout.disconnected",
        rx.recv_timeout(Duration::from_millis(20)),
        Err(mpsc::RecvTimeoutError::Disconnected),
    );
    let (_keep, rx) = mpsc::channel::<()>();
    check(
        "recv_timeout.empty",
        rx.recv_timeout(Duration::from_millis(20)),
        Err(mpsc::RecvTimeoutError::Timeout),
    );
}

fn locks() {
    // A bounded queue on Mutex + two Condvars: 3 producers, 2 consumers.
    struct Queue {
        items: Mutex<(Vec<u64>, bool)>,
        not_empty: Condvar,
        not_full: Condvar,
    }
    let queue = Arc::new(Queue {
        items: Mutex::new((Vec::new(), false)),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let producers: Vec<_> = (0..3u64)
        .map(|p| {
            let q = queue.clone();
            thread::spawn(move || {
                for i in 0..500 {
                    let mut guard = q
                        .not_full
                        .wait_while(q.items.lock().unwrap(), |(v, _)| v.len() >= 4)
                        .unwrap();
                    guard.0.push(p * 1000 + i);
                    q.not_empty.notify_one();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = queue.clone();
            thread::spawn(move || {
                let (mut count, mut sum) = (0u64, 0u64);
                loop {
                    let mut guard = q
                        .not_empty
                        .wait_while(q.items.lock().unwrap(), |(v, done)| v.is_empty() && !*done)
                        .unwrap();
                    match guard.0.pop() {
                        Some(v) => {
                            count += 1;
                            sum += v;
                            q.not_full.notify_all();
                        }
                        None => return (count, sum),
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    queue.items.lock().unwrap().1 = true;
    queue.not_empty.notify_all();
    let (count, sum) = consumers
        .into_iter()
        .map(|c| c.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    check("condvar.count", count, 1500);
    check(
        "condvar.sum",
        sum,
        3 * (499 * 500 / 2) + 500 * (1000 + 2000),
    );

    // A contended Mutex, an RwLock, a Barrier, atomics.
    let counter = Arc::new(Mutex::new(0u64));
    let table = Arc::new(RwLock::new(vec![0u32; 8]));
    let barrier = Arc::new(Barrier::new(8));
    let leaders = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8usize)
        .map(|t| {
            let (counter, table, barrier, leaders) = (
                counter.clone(),
                table.clone(),
                barrier.clone(),
                leaders.clone(),
            );
            thread::spawn(move || {
                for _ in 0..10_000 {
                    *counter.lock().unwrap() += 1;
                }
                table.write().unwrap()[t] = t as u32 * 2;
                if barrier.wait().is_leader() {
                    leaders.fetch_add(1, Ordering::SeqCst);
                }
                // After the barrier every writer is done: all readers see the full table.
                table.read().unwrap().iter().sum::<u32>()
            })
        })
        .collect();
    let seen: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    check("mutex.counter", *counter.lock().unwrap(), 80_000);
    check("rwlock.after_barrier", seen, vec![56; 8]);
    check("barrier.leaders", leaders.load(Ordering::SeqCst), 1);
}

fn files(base: &Path) {
    let dir = base.join("noa-rust-std");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    let a = dir.join("a.txt");
    std::fs::write(&a, "hello\n").unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&a)
        .unwrap()
        .write_all(b"world\n")
        .unwrap();
    check(
        "fs.read",
        std::fs::read_to_string(&a).unwrap(),
        "hello\nworld\n".to_string(),
    );
    check("fs.len", std::fs::metadata(&a).unwrap().len(), 12);

    // Seek, partial reads and writes, truncation.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&a)
        .unwrap();
    f.seek(SeekFrom::Start(6)).unwrap();
    let mut word = [0u8; 5];
    f.read_exact(&mut word).unwrap();
    check("fs.seek_read", std::str::from_utf8(&word).unwrap(), "world");
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"HELLO").unwrap();
    f.set_len(8).unwrap();
    drop(f);
    check(
        "fs.overwrite_truncate",
        std::fs::read_to_string(&a).unwrap(),
        "HELLO\nwo".to_string(),
    );

    // A larger file, across many blocks.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("sub/big.bin"), &big).unwrap();
    check(
        "fs.big_roundtrip",
        std::fs::read(dir.join("sub/big.bin")).unwrap() == big,
        true,
    );

    let b = dir.join("sub/deeper/b.txt");
    std::fs::rename(&a, &b).unwrap();
    check("fs.renamed_away", a.exists(), false);
    check(
        "fs.renamed_to",
        std::fs::read_to_string(&b).unwrap(),
        "HELLO\nwo".to_string(),
    );
    std::fs::copy(&b, dir.join("c.txt")).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let kind = if e.file_type().unwrap().is_dir() {
                "/"
            } else {
                ""
            };
            format!("{}{kind}", e.file_name().to_string_lossy())
        })
        .collect();
    names.sort();
    check(
        "fs.read_dir",
        names,
        vec!["c.txt".to_string(), "sub/".to_string()],
    );
    check(
        "fs.open_missing",
        std::fs::File::open(dir.join("missing"))
            .map_err(|e| e.kind())
            .err(),
        Some(std::io::ErrorKind::NotFound),
    );
    std::fs::remove_file(&b).unwrap();
    check("fs.removed", b.exists(), false);
    check(
        "fs.remove_nonempty_dir",
        std::fs::remove_dir(dir.join("sub"))
            .map_err(|e| e.kind())
            .err(),
        Some(std::io::ErrorKind::DirectoryNotEmpty),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    check("fs.remove_dir_all", dir.exists(), false);
}

fn processes() {
    let echo = Command::new("echo")
        .args(["hello", "from", "echo"])
        .output()
        .unwrap();
    check(
        "process.echo",
        String::from_utf8_lossy(&echo.stdout).into_owned(),
        "hello from echo\n".to_string(),
    );
    check("process.echo_status", echo.status.code(), Some(0));

    let status = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
    check("process.exit_code", status.code(), Some(3));
    let status = Command::new("sh")
        .args(["-c", "kill -9 $$"])
        .status()
        .unwrap();
    check("process.killed_by", status.signal(), Some(9));

    let env = Command::new("sh")
        .args(["-c", "echo \"$NOA_TEST_VAR\""])
        .env("NOA_TEST_VAR", "passed down")
        .output()
        .unwrap();
    check(
        "process.env",
        String::from_utf8_lossy(&env.stdout).into_owned(),
        "passed down\n".to_string(),
    );

    // Both pipes at once: a child reading our stdin writes it back upper-cased.
    let mut child = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        for i in 0..2000 {
            writeln!(stdin, "line {i} of the pipe test").unwrap();
        }
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    writer.join().unwrap();
    check("process.pipe_status", child.wait().unwrap().code(), Some(0));
    check("process.pipe_lines", out.lines().count(), 2000);
    check(
        "process.pipe_last",
        out.lines().last().unwrap_or(""),
        "LINE 1999 OF THE PIPE TEST",
    );

    check(
        "process.not_found",
        Command::new("/noa/no/such/program")
            .status()
            .map_err(|e| e.kind())
            .err(),
        Some(std::io::ErrorKind::NotFound),
    );
}

fn clocks() {
    let start = Instant::now();
    thread::sleep(Duration::from_millis(20));
    check(
        "time.sleep_at_least_20ms",
        start.elapsed() >= Duration::from_millis(20),
        true,
    );
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    // Any date after 2020 will do: the guest's wall clock must be set.
    check(
        "time.wall_clock_after_2020",
        wall.as_secs() > 1_577_836_800,
        true,
    );
}
