/*
 * files: the `noa-bench files` workload, one static program run both in the guest (under
 * `vmm --volume DISK:/bench IMAGE -- /opt/noa-bench/files /bench STEP...`) and natively beside
 * it, in a directory next to DISK on the host.
 *
 *   files DIR STEP...   runs the steps in order, in DIR:
 *     create=N    mkdir DIR/many; N files created (open O_CREAT|O_EXCL + close), then the N
 *                 unlinked, then rmdir: two lines, name=create and name=unlink
 *     append=N    DIR/log: N times, write 4 KiB at its end (O_APPEND) then fsync
 *     write=MIB   DIR/seq: MIB writes of 1 MiB, then one fsync (timed with the writes)
 *     read=MIB    DIR/seq read back in 1 MiB reads; each 4 KiB block's stamp is checked
 *
 * First it prints where DIR is:
 *   NOA-FILES dir=DIR dev=D root_dev=R
 * (st_dev of DIR and of /: the guest's DIR must be its own file system, the volume), then per
 * measurement:
 *   NOA-FILES name=NAME iters=N ns=T bytes=B
 * T is CLOCK_MONOTONIC nanoseconds over the N timed operations (opens of the data files are not
 * timed); B the bytes they moved (0 for create and unlink). Errors print
 *   NOA-FILES error=WHAT errno=E
 * and exit 1.
 *
 * Built with `gcc -O2 -static` by `cargo xtask bench files` (or by hand, see bench/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096L
#define CHUNK (1024L * 1024L)

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fail(const char *what)
{
    int e = errno;
    printf("NOA-FILES error=%s errno=%d\n", what, e);
    fflush(stdout);
    return 1;
}

static void result(const char *name, long n, long long ns, long long bytes)
{
    printf("NOA-FILES name=%s iters=%ld ns=%lld bytes=%lld\n", name, n, ns, bytes);
    fflush(stdout);
}

/* Stamps each 4 KiB block of `buf` (file offset `at`) with its offset, the rest a byte pattern. */
static void stamp(unsigned char *buf, long len, long long at)
{
    for (long off = 0; off < len; off += BLOCK) {
        uint64_t where = (uint64_t)(at + off);
        memset(buf + off, 0x5a ^ (int)(where >> 12 & 0xff), BLOCK);
        memcpy(buf + off, &where, sizeof where);
    }
}

/* Whether each 4 KiB block of `buf` carries the stamp of file offset `at` onwards. */
static int stamped(const unsigned char *buf, long len, long long at)
{
    for (long off = 0; off < len; off += BLOCK) {
        uint64_t where;
        memcpy(&where, buf + off, sizeof where);
        if (where != (uint64_t)(at + off))
            return 0;
    }
    return 1;
}

static int create_unlink(const char *dir, long n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/many", dir);
    if (mkdir(path, 0755) < 0)
        return fail("mkdir");
    size_t base = strlen(path);
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        snprintf(path + base, sizeof path - base, "/f%07ld", i);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("create");
        if (close(fd) < 0)
            return fail("close");
    }
    result("create", n, now_ns() - start, 0);
    start = now_ns();
    for (long i = 0; i < n; i++) {
        snprintf(path + base, sizeof path - base, "/f%07ld", i);
        if (unlink(path) < 0)
            return fail("unlink");
    }
    result("unlink", n, now_ns() - start, 0);
    path[base] = '\0';
    if (rmdir(path) < 0)
        return fail("rmdir");
    return 0;
}

static int append_fsync(const char *dir, long n, unsigned char *buf)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/log", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail("open-log");
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        stamp(buf, BLOCK, (long long)i * BLOCK);
        if (write(fd, buf, BLOCK) != BLOCK)
            return fail("append");
        if (fsync(fd) < 0)
            return fail("fsync-log");
    }
    result("append", n, now_ns() - start, (long long)n * BLOCK);
    return close(fd) < 0 ? fail("close-log") : 0;
}

static int write_seq(const char *dir, long mib, unsigned char *buf)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seq", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail("open-seq");
    long long start = now_ns();
    for (long i = 0; i < mib; i++) {
        stamp(buf, CHUNK, (long long)i * CHUNK);
        if (write(fd, buf, CHUNK) != CHUNK)
            return fail("write");
    }
    if (fsync(fd) < 0)
        return fail("fsync-seq");
    result("write", mib, now_ns() - start, (long long)mib * CHUNK);
    return close(fd) < 0 ? fail("close-seq") : 0;
}

static int read_seq(const char *dir, long mib, unsigned char *buf)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seq", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail("open-seq");
    long long start = now_ns();
    for (long i = 0; i < mib; i++) {
        long got = 0;
        while (got < CHUNK) {
            ssize_t r = read(fd, buf + got, CHUNK - got);
            if (r < 0)
                return fail("read");
            if (r == 0) {
                errno = 0;
                return fail("short-file");
            }
            got += r;
        }
        if (!stamped(buf, CHUNK, (long long)i * CHUNK)) {
            errno = 0;
            return fail("wrong-bytes");
        }
    }
    result("read", mib, now_ns() - start, (long long)mib * CHUNK);
    return close(fd) < 0 ? fail("close-seq") : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR create=N|append=N|write=MIB|read=MIB...\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    struct stat here, root;
    if (stat(dir, &here) < 0)
        return fail("stat-dir");
    if (stat("/", &root) < 0)
        return fail("stat-root");
    printf("NOA-FILES dir=%s dev=%llu root_dev=%llu\n", dir, (unsigned long long)here.st_dev,
           (unsigned long long)root.st_dev);
    fflush(stdout);
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return fail("malloc");
    for (int i = 2; i < argc; i++) {
        char step[16];
        long n;
        if (sscanf(argv[i], "%15[a-z]=%ld", step, &n) != 2 || n < 1) {
            fprintf(stderr, "bad step '%s'\n", argv[i]);
            return 2;
        }
        int failed;
        if (!strcmp(step, "create"))
            failed = create_unlink(dir, n);
        else if (!strcmp(step, "append"))
            failed = append_fsync(dir, n, buf);
        else if (!strcmp(step, "write"))
            failed = write_seq(dir, n, buf);
        else if (!strcmp(step, "read"))
            failed = read_seq(dir, n, buf);
        else {
            fprintf(stderr, "unknown step '%s'\n", step);
            return 2;
        }
        if (failed)
            return 1;
    }
    return 0;
}
