/*
 * The http benchmark's server (bench/src/http.rs): a small static HTTP/1.1 server, one thread,
 * level-triggered epoll, non-blocking sockets (accept4), keep-alive. The very same binary runs
 * natively on the host and in the guest, so the two differ only in the machine underneath.
 *
 *   http_server PORT [ADDR]     listen on ADDR:PORT (default 0.0.0.0; PORT 0: any free port)
 *
 * Routes:
 *   GET  /small        200, a short body ("hello from noa\n")
 *   GET  /bytes?n=N    200, N bytes of a fixed pattern: byte k is pattern_byte(k % 65536)
 *   POST /upload       reads Content-Length bytes and throws them away; 200, "received=N\n"
 *   GET  /quit         200, "bye\n", then closes and exits 0 (prints its done line first)
 *   anything else      404 (405/400/411/431/501 for what it cannot parse or serve)
 *
 * Lines on stdout, each flushed at once:
 *   NOA-HTTP listening port=P
 *   NOA-HTTP done requests=R bytes_out=B bytes_discarded=D connections=C
 *   NOA-HTTP error=WHAT errno=E        (then exit status 1)
 *
 * Each connection is a small state machine: pending output first (a response's head and body,
 * written as far as the socket takes them), then a request body being discarded, then the next
 * request parsed from what was read. The socket is watched for input or for output, never both,
 * so a level-triggered epoll never spins. Requests may be pipelined; chunked bodies are refused.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MARKER "NOA-HTTP"
#define PATTERN_LEN 65536
#define IN_CAP 16384
#define HEAD_CAP 512
#define SMALL_BODY "hello from noa\n"
/* Largest /bytes?n= and upload we accept: 1 TiB. */
#define MAX_BYTES (1ULL << 40)

struct conn {
    int fd;
    uint32_t events; /* what epoll watches: EPOLLIN or EPOLLOUT */
    char in[IN_CAP];
    size_t in_len;
    /* The response being written: head (with a small body appended), then stream_left bytes of
     * the pattern from stream_off. */
    char out[HEAD_CAP];
    size_t out_len, out_off;
    uint64_t stream_left, stream_off;
    /* A request body still to be read and dropped, and its total for the reply. */
    uint64_t discard_left, discard_total;
    int close_after, quit_after;
};

static unsigned char pattern[PATTERN_LEN];
static int epoll_fd;
static unsigned long long n_requests, n_bytes_out, n_discarded, n_connections;

static void fail(const char *what)
{
    printf(MARKER " error=%s errno=%d (%s)\n", what, errno, strerror(errno));
    fflush(stdout);
    exit(1);
}

/* The benchmark client checks every byte of /bytes against the same formula. */
static unsigned char pattern_byte(unsigned j)
{
    return (unsigned char)(j * 7u + j / 251u);
}

static void watch(struct conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl-mod");
    c->events = events;
}

static void drop(struct conn *c)
{
    /* Closing the descriptor also takes it out of the epoll set. */
    close(c->fd);
    free(c);
}

/* Starts a response: status, Content-Length, and a body that fits in `out` (stream_left more
 * pattern bytes follow it if set). */
static int respond(struct conn *c, int status, const char *reason, const char *body,
                   uint64_t length)
{
    const char *connection = c->close_after ? "Connection: close\r\n" : "";
    int n = snprintf(c->out, sizeof c->out,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %llu\r\n%s\r\n%s",
                     status, reason, (unsigned long long)length, connection, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof c->out)
        return -1;
    c->out_len = (size_t)n;
    c->out_off = 0;
    n_requests++;
    return 0;
}

static int error_response(struct conn *c, int status, const char *reason)
{
    c->close_after = 1;
    char body[64];
    snprintf(body, sizeof body, "%d %s\n", status, reason);
    return respond(c, status, reason, body, strlen(body));
}

/* A header's value if `line` (without its CRLF) is that header, else NULL. */
static const char *header_value(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    return v;
}

static int parse_u64(const char *s, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    if (s == end)
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9' || v > MAX_BYTES)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > MAX_BYTES)
        return -1;
    *out = v;
    return 0;
}

/* Handles the request whose head is in[0 .. head_len) (ending in the blank line); sets up the
 * response or the body to discard. Returns -1 if the connection must simply be dropped. */
static int handle(struct conn *c, size_t head_len)
{
    char *head = c->in;
    char *line_end = memmem(head, head_len, "\r\n", 2);
    char *sp1 = memchr(head, ' ', (size_t)(line_end - head));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (!sp1 || !sp2)
        return error_response(c, 400, "Bad Request");
    const char *method = head, *target = sp1 + 1, *version = sp2 + 1;
    size_t method_len = (size_t)(sp1 - head), target_len = (size_t)(sp2 - target);
    size_t version_len = (size_t)(line_end - version);
    int http10 = version_len == 8 && memcmp(version, "HTTP/1.0", 8) == 0;
    if (!http10 && !(version_len == 8 && memcmp(version, "HTTP/1.1", 8) == 0))
        return error_response(c, 400, "Bad Request");

    int keep_alive = !http10, have_length = 0, chunked = 0;
    uint64_t length = 0;
    for (char *line = line_end + 2; line < head + head_len - 2;) {
        char *end = memmem(line, (size_t)(head + head_len - line), "\r\n", 2);
        size_t len = (size_t)(end - line);
        const char *v;
        if ((v = header_value(line, len, "Content-Length"))) {
            if (parse_u64(v, end, &length) < 0)
                return error_response(c, 400, "Bad Request");
            have_length = 1;
        } else if ((v = header_value(line, len, "Connection"))) {
            if (strncasecmp(v, "close", 5) == 0)
                keep_alive = 0;
            else if (strncasecmp(v, "keep-alive", 10) == 0)
                keep_alive = 1;
        } else if ((v = header_value(line, len, "Transfer-Encoding"))) {
            chunked = 1;
        }
        line = end + 2;
    }
    c->close_after = !keep_alive;
    if (chunked)
        return error_response(c, 501, "Not Implemented");

#define IS(m, t) (method_len == strlen(m) && memcmp(method, m, method_len) == 0 && \
                  target_len == strlen(t) && memcmp(target, t, target_len) == 0)
    if (IS("POST", "/upload")) {
        if (!have_length)
            return error_response(c, 411, "Length Required");
        c->discard_left = c->discard_total = length;
        return 0; /* answered once the body is in */
    }
    if (have_length && length > 0)
        return error_response(c, 400, "Bad Request"); /* no other route takes a body */
    if (IS("GET", "/small"))
        return respond(c, 200, "OK", SMALL_BODY, strlen(SMALL_BODY));
    if (IS("GET", "/quit")) {
        c->close_after = 1;
        c->quit_after = 1;
        return respond(c, 200, "OK", "bye\n", 4);
    }
    const char *bytes = "/bytes?n=";
    size_t bytes_len = strlen(bytes);
    if (method_len == 3 && memcmp(method, "GET", 3) == 0 && target_len > bytes_len &&
        memcmp(target, bytes, bytes_len) == 0) {
        uint64_t n;
        if (parse_u64(target + bytes_len, target + target_len, &n) < 0)
            return error_response(c, 400, "Bad Request");
        if (respond(c, 200, "OK", NULL, n) < 0)
            return -1;
        c->stream_left = n;
        c->stream_off = 0;
        return 0;
    }
#undef IS
    if (method_len == 3 && memcmp(method, "GET", 3) == 0)
        return error_response(c, 404, "Not Found");
    return error_response(c, 405, "Method Not Allowed");
}

static void quit(void)
{
    printf(MARKER " done requests=%llu bytes_out=%llu bytes_discarded=%llu connections=%llu\n",
           n_requests, n_bytes_out, n_discarded, n_connections);
    fflush(stdout);
    exit(0);
}

/* Moves the connection on as far as it goes without blocking; drops it when it is done. */
static void progress(struct conn *c)
{
    static char scratch[65536];
    for (;;) {
        /* 1. Pending output. */
        if (c->out_off < c->out_len || c->stream_left > 0) {
            ssize_t n;
            if (c->out_off < c->out_len) {
                n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
            } else {
                size_t at = (size_t)(c->stream_off % PATTERN_LEN);
                size_t len = PATTERN_LEN - at;
                if (len > c->stream_left)
                    len = (size_t)c->stream_left;
                n = write(c->fd, pattern + at, len);
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (errno == EAGAIN) {
                    watch(c, EPOLLOUT);
                    return;
                }
                continue;
            }
            if (n <= 0) {
                drop(c);
                return;
            }
            n_bytes_out += (unsigned long long)n;
            if (c->out_off < c->out_len) {
                c->out_off += (size_t)n;
            } else {
                c->stream_left -= (uint64_t)n;
                c->stream_off += (uint64_t)n;
            }
            if (c->out_off == c->out_len && c->stream_left == 0) {
                c->out_len = c->out_off = 0;
                if (c->quit_after)
                    quit();
                if (c->close_after) {
                    drop(c);
                    return;
                }
            }
            continue;
        }
        /* 2. A request body to throw away: what was read with the head first. */
        if (c->discard_left > 0) {
            if (c->in_len > 0) {
                size_t take = c->in_len < c->discard_left ? c->in_len : (size_t)c->discard_left;
                memmove(c->in, c->in + take, c->in_len - take);
                c->in_len -= take;
                c->discard_left -= take;
                n_discarded += take;
            } else {
                size_t want = c->discard_left < sizeof scratch ? (size_t)c->discard_left
                                                               : sizeof scratch;
                ssize_t n = read(c->fd, scratch, want);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && errno == EAGAIN) {
                    watch(c, EPOLLIN);
                    return;
                }
                if (n <= 0) {
                    drop(c);
                    return;
                }
                c->discard_left -= (uint64_t)n;
                n_discarded += (unsigned long long)n;
            }
            if (c->discard_left == 0) {
                char body[64];
                snprintf(body, sizeof body, "received=%llu\n",
                         (unsigned long long)c->discard_total);
                if (respond(c, 200, "OK", body, strlen(body)) < 0) {
                    drop(c);
                    return;
                }
            }
            continue;
        }
        /* 3. The next request, once its head is complete. */
        char *end = c->in_len >= 4 ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
        if (end) {
            size_t head_len = (size_t)(end - c->in) + 4;
            if (handle(c, head_len) < 0) {
                drop(c);
                return;
            }
            memmove(c->in, c->in + head_len, c->in_len - head_len);
            c->in_len -= head_len;
            continue;
        }
        if (c->in_len == IN_CAP) {
            if (error_response(c, 431, "Request Header Fields Too Large") < 0) {
                drop(c);
                return;
            }
            c->in_len = 0;
            continue;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            watch(c, EPOLLIN);
            return;
        }
        if (n <= 0) {
            drop(c);
            return;
        }
        c->in_len += (size_t)n;
    }
}

static void accept_all(int listener)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            fail("accept4");
        }
        int one = 1;
        /* Best effort: a stack without the option still serves. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            fail("calloc");
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
            fail("epoll_ctl-add");
        n_connections++;
        /* Data may already be there: serve it without waiting for another event. */
        progress(c);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [ADDR]\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    const char *ip = argc == 3 ? argv[2] : "0.0.0.0";
    if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
        fprintf(stderr, "%s: bad PORT or ADDR\n", argv[0]);
        return 2;
    }
    for (unsigned j = 0; j < PATTERN_LEN; j++)
        pattern[j] = pattern_byte(j);
    /* A client that goes away mid-response gives EPIPE, not a fatal signal. */
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0)
        fail("socket");
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        fail("setsockopt-reuseaddr");
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0)
        fail("bind");
    if (listen(listener, 128) < 0)
        fail("listen");
    socklen_t len = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
        fail("getsockname");
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        fail("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &ev) < 0)
        fail("epoll_ctl-listener");
    printf(MARKER " listening port=%u\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(epoll_fd, events, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_all(listener);
            else
                progress(events[i].data.ptr);
        }
    }
}
