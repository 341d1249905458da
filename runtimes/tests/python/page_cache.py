"""File mappings against the bytes a file holds: the page cache's fill (read-ahead into fresh
frames, MAP_POPULATE, faults in any order) and its coherence with write(2), natively and in the
guest (vmm/tests/page_cache.rs compares the two).

Usage: page_cache.py [--model PATH] DIR...

In each DIR (an ext2 volume in the guest; 4 KiB and 1 KiB blocks) it writes files with write(2)
and checks what mappings of them read:
- a file past the double-indirect blocks, not a whole number of pages, mapped MAP_SHARED |
  MAP_POPULATE before any fsync (its unaligned tail still sits in the disk's block cache);
- faults in a scrambled order, and forward (the read-ahead grows), MAP_SHARED and MAP_PRIVATE,
  and a populate over a range partly cached already;
- a sparse file (holes read as zeros);
- write(2) into a mapped range shows in the mapping; stores to a MAP_PRIVATE mapping stay private.
With --model, it maps the head and the tail of that file MAP_POPULATE and prints their SHA-256:
the comparison with the native run checks the fill of a large file against the host's bytes.

One line per check, `FAIL …` for a wrong value, `page_cache: all checks passed` last and exit 0
only if all passed. Output does not depend on timing or on the machine.
"""

import hashlib
import mmap
import os
import sys

PAGE = mmap.PAGESIZE
failures = 0


def check(name, ok, detail=""):
    global failures
    if ok:
        print(f"ok {name}")
    else:
        failures += 1
        print(f"FAIL {name} {detail}".rstrip())


def pattern(seed, size):
    """`size` deterministic bytes, different for every seed (one C call: fast in the guest)."""
    return hashlib.shake_256(seed.encode()).digest(size)


def write_file(path, data, sync):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    view = memoryview(data)
    done = 0
    while done < len(data):
        done += os.write(fd, view[done : done + (1 << 20)])
    if sync:
        os.fsync(fd)
    return fd


def first_difference(a, b):
    for i in range(0, min(len(a), len(b)), PAGE):
        if a[i : i + PAGE] != b[i : i + PAGE]:
            return f"page {i // PAGE}"
    return f"length {len(a)} vs {len(b)}"


def same(name, got, want):
    ok = got == want
    check(name, ok, "" if ok else first_difference(got, want))


def populate(fd, size, prot=mmap.PROT_READ):
    return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=prot)


def scrambled(count):
    """Every page number below `count` once, in an order that jumps about (deterministic)."""
    step = 7919  # a prime: coprime with any count below it or not a multiple of it
    while count % step == 0:
        step += 2
    return [(i * step) % count for i in range(count)]


def check_dir(d, tag):
    # Past 12 + 1024 blocks of 4 KiB (and 12 + 256 of 1 KiB): into the double-indirect blocks.
    size = (9 << 19) + 1234
    data = pattern(tag + "big", size)
    path = os.path.join(d, "big")
    fd = write_file(path, data, sync=False)
    m = populate(fd, size)
    same(f"{tag}: MAP_SHARED|MAP_POPULATE reads what write(2) wrote", m[:], data)

    # write(2) into the mapped range: the mapping sees it at once.
    at = 5 * PAGE + 10
    os.pwrite(fd, b"W" * 100, at)
    check(f"{tag}: a write(2) shows in the mapping", m[at : at + 100] == b"W" * 100)
    check(f"{tag}: and in read(2)", os.pread(fd, 100, at) == b"W" * 100)
    m.close()

    # A MAP_PRIVATE store stays in the process.
    p = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    p[0:4] = b"PRIV"
    check(f"{tag}: a MAP_PRIVATE store is seen by its mapping", p[0:4] == b"PRIV")
    check(f"{tag}: but not by the file", os.pread(fd, 4, 0) == data[0:4])
    p.close()
    os.close(fd)

    # Faults in a scrambled order, no populate.
    size = (1 << 20) + 100
    data = pattern(tag + "scrambled", size)
    fd = write_file(os.path.join(d, "scrambled"), data, sync=True)
    m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    pages = (size + PAGE - 1) // PAGE
    wrong = [i for i in scrambled(pages) if m[i * PAGE : (i + 1) * PAGE] != data[i * PAGE : (i + 1) * PAGE]]
    check(f"{tag}: faults in a scrambled order read the right pages", not wrong, f"pages {wrong[:5]}")
    m.close()
    os.close(fd)

    # Forward faults over a private mapping (the read-ahead doubles as they go on).
    size = 2 << 20
    data = pattern(tag + "forward", size)
    fd = write_file(os.path.join(d, "forward"), data, sync=True)
    m = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    wrong = [i for i in range(size // PAGE) if m[i * PAGE : (i + 1) * PAGE] != data[i * PAGE : (i + 1) * PAGE]]
    check(f"{tag}: forward faults read the right pages", not wrong, f"pages {wrong[:5]}")
    m.close()

    os.close(fd)

    # A populate over a range partly cached: a few scattered pages first, then all of it.
    data = pattern(tag + "partly", size)
    fd = write_file(os.path.join(d, "partly"), data, sync=True)
    m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    scattered = (3, 40, 41, 300, 301, 302, 500)
    touched = bytes(m[i * PAGE] for i in scattered)
    check(f"{tag}: scattered faults", touched == bytes(data[i * PAGE] for i in scattered))
    whole = populate(fd, size)
    same(f"{tag}: a populate around cached pages", whole[:], data)
    whole.close()
    m.close()
    os.close(fd)

    # A sparse file: holes read as zeros, the one written block as written.
    size = 2 << 20
    fd = os.open(os.path.join(d, "sparse"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, size)
    block = pattern(tag + "sparse", PAGE)
    os.pwrite(fd, block, (1 << 20) + PAGE)
    want = bytearray(size)
    want[(1 << 20) + PAGE : (1 << 20) + 2 * PAGE] = block
    m = populate(fd, size)
    same(f"{tag}: a sparse file reads zeros in its holes", m[:], bytes(want))
    m.close()
    os.close(fd)


def check_model(path):
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    head = min(size, 16 << 20)
    m = populate(fd, head)
    print(f"model head {head} sha256 {hashlib.sha256(m).hexdigest()}")
    m.close()
    tail_start = max(0, (size - (3 << 20)) // PAGE * PAGE)
    m = mmap.mmap(fd, size - tail_start, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                  prot=mmap.PROT_READ, offset=tail_start)
    print(f"model tail from {tail_start} sha256 {hashlib.sha256(m).hexdigest()}")
    m.close()
    os.close(fd)


def main():
    args = sys.argv[1:]
    model = None
    if args[:1] == ["--model"]:
        model, args = args[1], args[2:]
    for i, d in enumerate(args):
        check_dir(d, f"dir{i}")
    if model:
        check_model(model)
    if failures:
        print(f"page_cache: {failures} checks failed")
        return 1
    print("page_cache: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
