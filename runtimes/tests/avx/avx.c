// Vector state across preemption: see README.md.
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t signals;
static void on_usr1(int sig) {
    (void)sig;
    // The handler clobbers vector registers itself; sigreturn must restore the interrupted ones.
    __asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0\n\tvpxor %%ymm15, %%ymm15, %%ymm15" ::: "xmm0", "xmm15");
    signals++;
}

static int has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)) || !(c & (1u << 28))) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 5) & 1;
}

// Fills ymm0..ymm15 with `seed`-derived lanes, spins `rounds` times touching them, stores them.
__attribute__((target("avx2"))) static void spin(uint64_t seed, long rounds, uint64_t out[16][4]) {
    uint64_t in[16][4];
    for (int r = 0; r < 16; r++)
        for (int l = 0; l < 4; l++) in[r][l] = seed * 1000 + r * 10 + l;
    __asm__ volatile(
        "vmovdqu 0(%0), %%ymm0\n\t vmovdqu 32(%0), %%ymm1\n\t vmovdqu 64(%0), %%ymm2\n\t"
        "vmovdqu 96(%0), %%ymm3\n\t vmovdqu 128(%0), %%ymm4\n\t vmovdqu 160(%0), %%ymm5\n\t"
        "vmovdqu 192(%0), %%ymm6\n\t vmovdqu 224(%0), %%ymm7\n\t vmovdqu 256(%0), %%ymm8\n\t"
        "vmovdqu 288(%0), %%ymm9\n\t vmovdqu 320(%0), %%ymm10\n\t vmovdqu 352(%0), %%ymm11\n\t"
        "vmovdqu 384(%0), %%ymm12\n\t vmovdqu 416(%0), %%ymm13\n\t vmovdqu 448(%0), %%ymm14\n\t"
        "vmovdqu 480(%0), %%ymm15\n\t"
        "1:\n\t"
        // Rotate the registers through each other and back (8 swaps, twice): values stay put
        // only if nothing outside the loop touches them.
        "vpxor %%ymm0, %%ymm1, %%ymm1\n\t vpxor %%ymm1, %%ymm0, %%ymm0\n\t vpxor %%ymm0, %%ymm1, %%ymm1\n\t"
        "vpxor %%ymm0, %%ymm1, %%ymm1\n\t vpxor %%ymm1, %%ymm0, %%ymm0\n\t vpxor %%ymm0, %%ymm1, %%ymm1\n\t"
        "vpaddq %%ymm14, %%ymm15, %%ymm15\n\t vpsubq %%ymm14, %%ymm15, %%ymm15\n\t"
        "dec %2\n\t jnz 1b\n\t"
        "vmovdqu %%ymm0, 0(%1)\n\t vmovdqu %%ymm1, 32(%1)\n\t vmovdqu %%ymm2, 64(%1)\n\t"
        "vmovdqu %%ymm3, 96(%1)\n\t vmovdqu %%ymm4, 128(%1)\n\t vmovdqu %%ymm5, 160(%1)\n\t"
        "vmovdqu %%ymm6, 192(%1)\n\t vmovdqu %%ymm7, 224(%1)\n\t vmovdqu %%ymm8, 256(%1)\n\t"
        "vmovdqu %%ymm9, 288(%1)\n\t vmovdqu %%ymm10, 320(%1)\n\t vmovdqu %%ymm11, 352(%1)\n\t"
        "vmovdqu %%ymm12, 384(%1)\n\t vmovdqu %%ymm13, 416(%1)\n\t vmovdqu %%ymm14, 448(%1)\n\t"
        "vmovdqu %%ymm15, 480(%1)\n\t"
        : : "r"(in), "r"(out), "r"(rounds)
        : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    (void)in;
}

static int worker(int id, long rounds, pid_t sibling) {
    uint64_t out[16][4];
    int bad = 0;
    // Several passes, signalling the sibling between them so handlers run mid-computation too.
    for (int pass = 0; pass < 8; pass++) {
        spin(id + 1, rounds, out);
        for (int r = 0; r < 16; r++)
            for (int l = 0; l < 4; l++)
                if (out[r][l] != (uint64_t)(id + 1) * 1000 + r * 10 + l) bad++;
        if (sibling > 0) kill(sibling, SIGUSR1);
    }
    return bad != 0;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 20000000;
    if (!has_avx2()) {
        printf("avx: no AVX2 here, nothing to check\navx: all checks passed\n");
        return 0;
    }
    // Installed before the forks: a sibling's signal must never find the default action.
    signal(SIGUSR1, on_usr1);
    fflush(stdout);
    pid_t first = fork();
    if (first == 0) _exit(worker(0, rounds, 0));
    pid_t second = fork();
    if (second == 0) _exit(worker(1, rounds, first));
    int failed = 0;
    pid_t pids[2] = {first, second};
    for (int i = 0; i < 2; i++) {
        int status;
        int ok = waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && !WEXITSTATUS(status);
        printf("avx.process%d: %s\n", i, ok ? "ok" : "FAIL");
        failed += !ok;
    }
    printf(failed ? "avx: %d processes FAILED\n" : "avx: all checks passed\n", failed);
    return failed != 0;
}
