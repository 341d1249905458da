"""CPython's standard library, the same natively and in the guest.

Each check prints one deterministic line (`NAME: VALUE`), and `FAIL NAME: expected …` when the
value is wrong; the last line is `python: all checks passed` and the exit status 0 only when every
check passed. Covered: json, re, hashlib (OpenSSL's libcrypto), sqlite3 (libsqlite3, a database in
a temporary folder), threading, subprocess (python3, /bin/echo and /bin/sh children), tempfile,
os.walk, zipfile (zlib), datetime, and mmap (shared and private file mappings on /tmp and on the
disk). Nothing printed depends on the machine, the time or the paths.
"""

import datetime
import hashlib
import io
import json
import mmap
import os
import queue
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import zipfile
import zlib

failed = 0


def check(name, got, want):
    global failed
    print(f"{name}: {got!r}")
    if got != want:
        print(f"FAIL {name}: expected {want}")
        failed += 1


def check_json():
    doc = {"name": "noa", "list": [1, 2.5, None, True], "nested": {"é": "ü", "n": -7}}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    check("json.dumps", text, '{"list": [1, 2.5, null, true], "name": "noa", "nested": {"n": -7, "é": "ü"}}')
    check("json.roundtrip", json.loads(text) == doc, True)
    check("json.indent_lines", len(json.dumps(doc, indent=2).splitlines()), 13)
    try:
        json.loads("{bad")
        check("json.error", "no error", "JSONDecodeError")
    except json.JSONDecodeError as e:
        check("json.error", f"{type(e).__name__} at {e.pos}", "JSONDecodeError at 1")


def check_re():
    text = "ids: a12, b7, c345; emails: x@noa.dev, y.z@example.org"
    check("re.findall", re.findall(r"[a-z](\d+)", text), ["12", "7", "345"])
    m = re.search(r"(?P<user>[\w.]+)@(?P<host>example\.\w+)", text)
    check("re.groups", (m.group("user"), m.group("host")), ("y.z", "example.org"))
    check("re.sub", re.sub(r"\d+", lambda m: str(int(m.group()) * 2), "1 2 30"), "2 4 60")
    check("re.split", re.split(r"[,;]\s*", "a, b;c"), ["a", "b", "c"])
    check("re.fullmatch_unicode", bool(re.fullmatch(r"\w+", "héllo")), True)


def check_hashlib():
    data = b"NOA ARK OS" * 1000
    check("hashlib.sha256", hashlib.sha256(data).hexdigest()[:16], hashlib.new("sha256", data).hexdigest()[:16])
    check("hashlib.sha256_abc", hashlib.sha256(b"abc").hexdigest(),
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    check("hashlib.md5_abc", hashlib.md5(b"abc").hexdigest(), "900150983cd24fb0d6963f7d28e17f72")
    check("hashlib.sha1_empty", hashlib.sha1(b"").hexdigest(), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    check("hashlib.blake2b_abc", hashlib.blake2b(b"abc", digest_size=16).hexdigest(),
          "cf4ab791c62b8d2b2109c90275287816")
    incremental = hashlib.sha512()
    for i in range(100):
        incremental.update(bytes([i]) * i)
    check("hashlib.sha512_incremental", incremental.hexdigest()[:16],
          hashlib.sha512(b"".join(bytes([i]) * i for i in range(100))).hexdigest()[:16])


def check_sqlite3(folder):
    path = os.path.join(folder, "check.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)")
    db.executemany("INSERT INTO items (name, price) VALUES (?, ?)",
                   [(f"item{i}", i * 1.5) for i in range(100)])
    db.commit()
    check("sqlite3.count", db.execute("SELECT COUNT(*), SUM(price) FROM items").fetchone(), (100, 7425.0))
    try:
        with db:
            db.execute("DELETE FROM items WHERE id > 10")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    check("sqlite3.rollback", db.execute("SELECT COUNT(*) FROM items").fetchone()[0], 100)
    db.close()
    again = sqlite3.connect(path)
    rows = again.execute("SELECT name FROM items WHERE price BETWEEN 10 AND 15 ORDER BY id").fetchall()
    check("sqlite3.reopen_query", [r[0] for r in rows], ["item7", "item8", "item9", "item10"])
    check("sqlite3.file_size_pages", os.path.getsize(path) % 4096, 0)
    again.close()


def check_threading():
    counter = 0
    lock = threading.Lock()

    def add(n):
        nonlocal counter
        for _ in range(n):
            with lock:
                counter += 1

    # Small counts: every contended lock or GIL hand-over is a futex call, slow in the guest.
    threads = [threading.Thread(target=add, args=(200,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("threading.lock_counter", counter, 800)

    work, results = queue.Queue(), queue.Queue()

    def worker():
        while (item := work.get()) is not None:
            results.put(item * item)

    workers = [threading.Thread(target=worker) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(100):
        work.put(i)
    for _ in workers:
        work.put(None)
    for w in workers:
        w.join()
    check("threading.queue_sum", sum(results.get() for _ in range(100)), sum(i * i for i in range(100)))

    ready = threading.Event()
    seen = []
    cond = threading.Condition()

    def waiter():
        with cond:
            ready.set()
            cond.wait_for(lambda: seen)
            seen.append("woken")

    t = threading.Thread(target=waiter)
    t.start()
    ready.wait(10)
    with cond:
        seen.append("notified")
        cond.notify_all()
    t.join(10)
    check("threading.condition", seen, ["notified", "woken"])
    check("threading.timer_wait", threading.Event().wait(0.05), False)


def check_subprocess():
    # One python3 child (each start is slow in the guest): stdin, stdout, stderr and the status.
    child = "import sys; data = sys.stdin.read(); print(data.upper()); print(len(data), file=sys.stderr); sys.exit(3)"
    out = subprocess.run([sys.executable, "-c", child], input="piped input", capture_output=True, text=True)
    check("subprocess.python_child", (out.stdout, out.stderr, out.returncode), ("PIPED INPUT\n", "11\n", 3))
    out = subprocess.run(["/bin/echo", "hello", "world"], capture_output=True, text=True, check=True)
    check("subprocess.echo", out.stdout, "hello world\n")
    out = subprocess.run(["/bin/sh", "-c", "echo out; echo err >&2"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    check("subprocess.stderr_to_stdout", out.stdout, "out\nerr\n")
    out = subprocess.run("exit 5", shell=True)
    check("subprocess.shell_status", out.returncode, 5)
    try:
        subprocess.run(["/nonexistent/program"])
        check("subprocess.missing", "ran", "FileNotFoundError")
    except FileNotFoundError:
        check("subprocess.missing", "FileNotFoundError", "FileNotFoundError")


def check_tempfile():
    with tempfile.NamedTemporaryFile("w+b", suffix=".bin") as f:
        f.write(b"x" * 10000)
        f.flush()
        f.seek(5000)
        check("tempfile.named", (os.path.getsize(f.name), len(f.read()), f.name.endswith(".bin")),
              (10000, 5000, True))
        name = f.name
    check("tempfile.named_removed", os.path.exists(name), False)
    fd, path = tempfile.mkstemp(prefix="noa-")
    os.write(fd, b"mkstemp")
    os.close(fd)
    with open(path, "rb") as f:
        check("tempfile.mkstemp", (os.path.basename(path).startswith("noa-"), f.read()), (True, b"mkstemp"))
    os.unlink(path)
    with tempfile.SpooledTemporaryFile(max_size=100) as f:
        f.write(b"y" * 200)
        f.seek(0)
        check("tempfile.spooled", len(f.read()), 200)


def check_walk(folder):
    root = os.path.join(folder, "tree")
    for d in ["a/b/c", "a/d", "e"]:
        os.makedirs(os.path.join(root, d))
    for f in ["a/1.txt", "a/b/2.txt", "a/b/c/3.txt", "e/4.txt", "top.txt"]:
        with open(os.path.join(root, f), "w") as out:
            out.write(f)
    os.symlink("a/b", os.path.join(root, "link"))
    seen = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        seen.append(f"{rel}:{','.join(sorted(dirnames))}:{','.join(sorted(filenames))}")
    check("os.walk", seen, [".:a,e,link:top.txt", "a:b,d:1.txt", "a/b:c:2.txt", "a/b/c::3.txt",
                            "a/d::", "e::4.txt"])
    followed = sum(len(f) for _, _, f in os.walk(root, followlinks=True))
    check("os.walk.followlinks", followed, 7)
    bottom_up = [os.path.relpath(d, root) for d, _, _ in os.walk(root, topdown=False)]
    check("os.walk.bottom_up_last", bottom_up[-1], ".")


def check_zipfile(folder):
    payload = {f"dir/file{i}.txt": (f"line {i}\n" * (i * 50)).encode() for i in range(1, 6)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in payload.items():
            z.writestr(name, data)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as z:
        check("zipfile.names", z.namelist(), list(payload))
        check("zipfile.contents", all(z.read(n) == d for n, d in payload.items()), True)
        check("zipfile.test", z.testzip(), None)
        info = z.getinfo("dir/file5.txt")
        check("zipfile.crc", info.CRC, zlib.crc32(payload["dir/file5.txt"]))
        check("zipfile.deflated", info.compress_size < info.file_size, True)
    path = os.path.join(folder, "check.zip")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("hello.txt", "hello from a zip file")
    with zipfile.ZipFile(path) as z:
        check("zipfile.on_disk", z.read("hello.txt"), b"hello from a zip file")


def check_datetime():
    utc = datetime.timezone.utc
    moment = datetime.datetime(2024, 2, 28, 23, 30, tzinfo=utc)
    later = moment + datetime.timedelta(hours=1, minutes=45)
    check("datetime.leap_day", later.isoformat(), "2024-02-29T01:15:00+00:00")
    check("datetime.strftime", later.strftime("%A %d %B %Y %j"), "Thursday 29 February 2024 060")
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    check("datetime.astimezone", later.astimezone(plus_two).isoformat(), "2024-02-29T03:15:00+02:00")
    check("datetime.fromisoformat", datetime.datetime.fromisoformat("2000-01-01T00:00:00+00:00").timestamp(),
          946684800.0)
    check("datetime.weekday", datetime.date(2026, 11, 27).isoweekday(), 5)
    check("datetime.delta", str(datetime.date(2030, 1, 1) - datetime.date(2000, 1, 1)), "10958 days, 0:00:00")
    now = datetime.datetime.now(utc)
    check("datetime.now_is_recent", 2024 <= now.year < 2100, True)


def check_mmap(folder, where):
    """MAP_SHARED and MAP_PRIVATE file mappings: stores reach the file (after flush) and other
    mappings, a forked child's stores reach the parent, private stores stay private."""
    path = os.path.join(folder, "mapped")
    with open(path, "wb") as f:
        f.write(b"." * 10000)
    with open(path, "r+b") as f:
        shared = mmap.mmap(f.fileno(), 0)
        other = mmap.mmap(f.fileno(), 0)
        private = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE)
        shared[100:105] = b"HELLO"
        check(f"mmap.{where}.other_mapping", other[100:105], b"HELLO")
        shared.flush()
        f.seek(100)
        check(f"mmap.{where}.read_after_flush", f.read(5), b"HELLO")
        os.pwrite(f.fileno(), b"WRITE", 9000)
        check(f"mmap.{where}.write_seen", shared[9000:9005], b"WRITE")
        private[0:4] = b"MINE"
        check(f"mmap.{where}.private_kept", (private[0:4], shared[0:4]), (b"MINE", b"...."))
        pid = os.fork()
        if pid == 0:
            shared[5000:5005] = b"CHILD"
            os._exit(0)
        os.waitpid(pid, 0)
        check(f"mmap.{where}.child_store", shared[5000:5005], b"CHILD")
        for m in (shared, other, private):
            m.close()
    with open(path, "rb") as f:
        data = f.read()
    check(f"mmap.{where}.file", (data[100:105], data[5000:5005], data[9000:9005], data[:4]),
          (b"HELLO", b"CHILD", b"WRITE", b"...."))


def main():
    check_json()
    check_re()
    check_hashlib()
    with tempfile.TemporaryDirectory() as folder:
        check_sqlite3(folder)
        check_walk(folder)
        check_zipfile(folder)
    check_threading()
    check_subprocess()
    check_tempfile()
    check_datetime()
    # /tmp is a tmpfs in the guest; /var/tmp is on the disk (ext2).
    for where, parent in (("tmp", "/tmp"), ("disk", "/var/tmp")):
        with tempfile.TemporaryDirectory(dir=parent) as folder:
            check_mmap(folder, where)
    if failed:
        print(f"python: {failed} checks FAILED")
        sys.exit(1)
    print("python: all checks passed")


if __name__ == "__main__":
    main()
