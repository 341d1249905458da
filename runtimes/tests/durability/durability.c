/*
 * Durability workload for the crash test (vmm/tests/durability.rs).
 *
 *   durability DIR NAME COUNT
 *
 * Appends COUNT records to DIR/NAME, each fsync'd before it is acknowledged on stdout as
 * "ack I". Every 8th record also creates DIR/NAME.I holding a known pattern of 1000 + 37*I
 * bytes, fsync'd, with the directory fsync'd after it, and is acknowledged only then. The host
 * kills the VMM at random points and checks that every acknowledged record and file survived.
 *
 * A record is 64 bytes: "rec NAME I CHECK" padded with '.' and ending in '\n', where CHECK is
 * a hash of NAME and I, so a torn or misplaced record is detected.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD 64

static unsigned check_of(const char *name, unsigned i) {
    unsigned h = 2166136261u ^ i;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void write_all(int fd, const char *buf, size_t len, const char *what) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0)
            die(what);
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR NAME COUNT\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *name = argv[2];
    unsigned count = (unsigned)strtoul(argv[3], NULL, 10);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0)
        die("open log");
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dirfd < 0)
        die("open dir");
    if (fsync(dirfd) != 0)
        die("fsync dir");
    static char pattern[1000 + 37 * 4096];
    for (unsigned i = 0; i < count; i++) {
        char record[RECORD + 1];
        int n = snprintf(record, sizeof record, "rec %s %u %08x ", name, i, check_of(name, i));
        memset(record + n, '.', RECORD - 1 - (size_t)n);
        record[RECORD - 1] = '\n';
        write_all(log, record, RECORD, "write record");
        if (fsync(log) != 0)
            die("fsync log");
        if (i % 8 == 0) {
            char file[4096];
            snprintf(file, sizeof file, "%s/%s.%u", dir, name, i);
            size_t len = 1000 + 37 * (size_t)(i % 4096);
            for (size_t k = 0; k < len; k++)
                pattern[k] = (char)('a' + (k * 7 + i) % 26);
            int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0)
                die("create file");
            write_all(fd, pattern, len, "write file");
            if (fsync(fd) != 0 || close(fd) != 0)
                die("fsync file");
            if (fsync(dirfd) != 0)
                die("fsync dir");
        }
        printf("ack %u\n", i);
        fflush(stdout);
    }
    if (close(log) != 0)
        die("close log");
    printf("durability: wrote %u records\n", count);
    return 0;
}
