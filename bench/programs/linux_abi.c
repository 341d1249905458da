/*
 * linux_abi: the `noa-bench linux` workload, one static program run both in the guest (under
 * `vmm --snapshot IMAGE -- /opt/noa-bench/linux_abi NAME N`) and natively beside it.
 *
 *   linux_abi getpid N     N raw getpid system calls (after 16 untimed ones)
 *   linux_abi forkexec N   N times: fork, the child execs `linux_abi hello` with stdout on
 *                          /dev/null, the parent waits (after 1 untimed round)
 *   linux_abi pingpong N   N one-byte round trips between two processes over two pipes, both
 *                          asked to run on CPU 0 (after 16 untimed round trips)
 *   linux_abi hello        writes "hello\n" and exits 0 (what forkexec runs)
 *
 * Each measurement prints one line on stdout:
 *   NOA-LINUX name=NAME iters=N ns=T pinned=0|1
 * T is CLOCK_MONOTONIC nanoseconds over the N timed iterations (pinned: whether
 * sched_setaffinity succeeded; pingpong only, 0 elsewhere). Errors print
 *   NOA-LINUX error=WHAT errno=E
 * and exit 1. The untimed warm-up is the same whatever N is, so that two runs differing only in
 * N differ only in the timed loop (the benchmark counts emulated instructions that way).
 *
 * Built with `gcc -O2 -static` by `cargo xtask bench linux` (or by hand, see bench/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *self_path = "/proc/self/exe";

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fail(const char *what)
{
    int e = errno;
    printf("NOA-LINUX error=%s errno=%d\n", what, e);
    fflush(stdout);
    return 1;
}

static void result(const char *name, long n, long long ns, int pinned)
{
    printf("NOA-LINUX name=%s iters=%ld ns=%lld pinned=%d\n", name, n, ns, pinned);
    fflush(stdout);
}

static int bench_getpid(long n)
{
    /* Raw system calls: no C library caching can answer in user space. */
    for (int i = 0; i < 16; i++)
        (void)syscall(SYS_getpid);
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        long pid = syscall(SYS_getpid);
        if (pid <= 0)
            return fail("getpid");
    }
    result("getpid", n, now_ns() - start, 0);
    return 0;
}

/* One fork + exec of `self hello` (stdout on `devnull`) + wait; 0 when the child exited 0. */
static int fork_exec_once(int devnull)
{
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork");
    if (pid == 0) {
        if (dup2(devnull, 1) < 0)
            _exit(126);
        char *argv[] = {(char *)self_path, "hello", NULL};
        char *envp[] = {NULL};
        execve(self_path, argv, envp);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = 0;
        printf("NOA-LINUX error=child-status status=%#x\n", status);
        fflush(stdout);
        return 1;
    }
    return 0;
}

static int bench_forkexec(long n)
{
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull < 0)
        return fail("open-dev-null");
    if (fork_exec_once(devnull))
        return 1;
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        if (fork_exec_once(devnull))
            return 1;
    }
    result("forkexec", n, now_ns() - start, 0);
    close(devnull);
    return 0;
}

static int bench_pingpong(long n)
{
    const long warm = 16;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    /* Inherited by the child: both ends on one CPU, so each round trip is two switches. */
    int pinned = sched_setaffinity(0, sizeof cpus, &cpus) == 0;
    int there[2], back[2];
    if (pipe(there) < 0 || pipe(back) < 0)
        return fail("pipe");
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork");
    char byte = 'x';
    if (pid == 0) {
        close(there[1]);
        close(back[0]);
        for (long i = 0; i < warm + n; i++) {
            if (read(there[0], &byte, 1) != 1 || write(back[1], &byte, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    close(there[0]);
    close(back[1]);
    long long start = 0;
    for (long i = 0; i < warm + n; i++) {
        if (i == warm)
            start = now_ns();
        if (write(there[1], &byte, 1) != 1)
            return fail("pipe-write");
        if (read(back[0], &byte, 1) != 1)
            return fail("pipe-read");
    }
    long long ns = now_ns() - start;
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("NOA-LINUX error=child-status status=%#x\n", status);
        fflush(stdout);
        return 1;
    }
    result("pingpong", n, ns, pinned);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 1 && argv[0] && strchr(argv[0], '/'))
        self_path = argv[0];
    if (argc == 2 && strcmp(argv[1], "hello") == 0) {
        static const char hello[] = "hello\n";
        return write(1, hello, sizeof hello - 1) == (ssize_t)(sizeof hello - 1) ? 0 : 1;
    }
    char *end;
    long n = argc == 3 ? strtol(argv[2], &end, 10) : -1;
    if (argc != 3 || *end != '\0' || n < 0) {
        fprintf(stderr, "usage: linux_abi getpid|forkexec|pingpong N | linux_abi hello\n");
        return 2;
    }
    if (strcmp(argv[1], "getpid") == 0)
        return bench_getpid(n);
    if (strcmp(argv[1], "forkexec") == 0)
        return bench_forkexec(n);
    if (strcmp(argv[1], "pingpong") == 0)
        return bench_pingpong(n);
    fprintf(stderr, "linux_abi: unknown benchmark '%s'\n", argv[1]);
    return 2;
}
