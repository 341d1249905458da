/*
 * sockets: socket semantics as Linux gives them — AF_UNIX stream and datagram (socketpair, paths,
 * abstract names), TCP and UDP over 127.0.0.1 and ::1, a dual-stack listener on ::, the errors
 * (ECONNREFUSED, EADDRINUSE, EAGAIN, EPIPE), non-blocking connect, poll/epoll readiness, socket
 * options, and two processes (fork) talking over AF_UNIX, TCP and UDP. Built with `gcc -static`
 * (glibc); no name lookups (a static glibc cannot load NSS), addresses are literals.
 *
 * One line per check, `ok NAME` or `FAIL NAME: …`; only facts that every Linux gives the same way
 * (no ports, buffer sizes or timings), so the output is the same natively and in the guest. Every
 * wait has a deadline: a missing event is a FAIL line, not a hang. Exit status 0 when all passed.
 *
 * Usage: sockets [DIR]   (a writable directory for the AF_UNIX socket files; default /tmp)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long any wait may take before it counts as a failure (ms). */
#define DEADLINE_MS 10000

static int failures;
static char detail[512];
static const char *dir = "/tmp";
/* The main process's id: in the socket names, so parallel runs in one folder keep apart. */
static pid_t me;

static void report(const char *name, int ok)
{
	if (ok) {
		printf("ok %s\n", name);
	} else {
		printf("FAIL %s: %s\n", name, detail);
		failures++;
	}
	fflush(stdout);
	detail[0] = 0;
}

/* `ok` or, when `result` is -1, the errno as the detail. */
static void check_call(const char *name, long result)
{
	if (result == -1)
		snprintf(detail, sizeof detail, "errno %d (%s)", errno, strerror(errno));
	else if (!detail[0])
		snprintf(detail, sizeof detail, "returned %ld", result);
	report(name, result != -1);
}

/* The call returned -1 with errno `want`. */
static void check_errno(const char *name, long result, int want)
{
	int err = errno;
	if (result != -1)
		snprintf(detail, sizeof detail, "returned %ld, expected -1 with errno %d (%s)", result,
			 want, strerror(want));
	else if (err != want)
		snprintf(detail, sizeof detail, "errno %d (%s), expected %d (%s)", err, strerror(err),
			 want, strerror(want));
	report(name, result == -1 && err == want);
}

/* `got` bytes equal the string `want`. */
static void check_bytes(const char *name, long n, const char *got, const char *want)
{
	size_t len = strlen(want);
	int ok = n == (long)len && memcmp(got, want, len) == 0;
	if (n < 0)
		snprintf(detail, sizeof detail, "errno %d (%s)", errno, strerror(errno));
	else if (!ok)
		snprintf(detail, sizeof detail, "got %ld bytes '%.*s', expected '%s'", n,
			 (int)(n > 64 ? 64 : n), got, want);
	report(name, ok);
}

static void check_int(const char *name, long got, long want)
{
	if (got != want)
		snprintf(detail, sizeof detail, "got %ld, expected %ld", got, want);
	report(name, got == want);
}

/* Waits until `fd` has one of `events`; the revents, 0 on timeout, -1 on error. */
static int wait_for(int fd, short events)
{
	if (fd < 0)
		return -1;
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, DEADLINE_MS);
	return n < 0 ? -1 : n == 0 ? 0 : p.revents;
}

/* Reads exactly `len` bytes (waiting up to the deadline for each piece); the count read. */
static long recv_all(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		if (wait_for(fd, POLLIN) <= 0)
			break;
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

static long send_all(int fd, const void *buf, size_t len)
{
	size_t sent = 0;
	while (sent < len) {
		ssize_t n = send(fd, (const char *)buf + sent, len - sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_for(fd, POLLOUT) <= 0)
				break;
			continue;
		}
		if (n <= 0)
			break;
		sent += n;
	}
	return sent;
}

/* The next read sees end of file (after any data the peer still had in flight). */
static int reads_eof(int fd)
{
	char c;
	if (wait_for(fd, POLLIN) <= 0)
		return 0;
	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

static int is_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	return flags != -1 && (flags & O_NONBLOCK);
}

static int is_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);
	return flags != -1 && (flags & FD_CLOEXEC);
}

/* ---- addresses ---- */

static struct sockaddr_storage loopback(int family, unsigned short port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		in6->sin6_addr = in6addr_loopback;
	}
	return ss;
}

static socklen_t addr_len(int family)
{
	return family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static unsigned short port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* "ADDR port P" for a detail line. */
static const char *show(const struct sockaddr_storage *ss)
{
	static char text[2][INET6_ADDRSTRLEN + 32];
	static int which;
	char *out = text[which ^= 1];
	char addr[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, addr, sizeof addr);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, addr, sizeof addr);
	snprintf(out, sizeof text[0], "family %d %s port %u", ss->ss_family, addr, port_of(ss));
	return out;
}

/* Same family, address and port. */
static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family || port_of(a) != port_of(b))
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static struct sockaddr_storage name_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		ss.ss_family = AF_UNSPEC;
	return ss;
}

static struct sockaddr_storage peer_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		ss.ss_family = AF_UNSPEC;
	return ss;
}

static int getint(int fd, int level, int option)
{
	int value = -1;
	socklen_t len = sizeof value;
	if (getsockopt(fd, level, option, &value, &len) != 0 || len != sizeof value)
		return -1;
	return value;
}

static int setint(int fd, int level, int option, int value)
{
	return setsockopt(fd, level, option, &value, sizeof value);
}

/* A listening TCP socket on the loopback address of `family`, port chosen by the kernel. */
static int tcp_listener(int family)
{
	int fd = socket(family, SOCK_STREAM, 0);
	struct sockaddr_storage ss = loopback(family, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, addr_len(family)) != 0 || listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A blocking TCP connection to `to`. */
static int tcp_connect(const struct sockaddr_storage *to)
{
	int fd = socket(to->ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)to, addr_len(to->ss_family)) != 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Accepts one connection, waiting at most the deadline; the fd or -1. */
static int accept_one(int listener, int flags)
{
	if (wait_for(listener, POLLIN) <= 0)
		return -1;
	return accept4(listener, NULL, NULL, flags);
}

/* ---- AF_UNIX ---- */

static void unix_path(struct sockaddr_un *un, socklen_t *len, const char *name)
{
	memset(un, 0, sizeof *un);
	un->sun_family = AF_UNIX;
	snprintf(un->sun_path, sizeof un->sun_path, "%s/sockets-%d-%s", dir, me, name);
	*len = offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1;
}

/* An abstract name: a NUL, then the text. */
static void unix_abstract(struct sockaddr_un *un, socklen_t *len, const char *name)
{
	memset(un, 0, sizeof *un);
	un->sun_family = AF_UNIX;
	int n = snprintf(un->sun_path + 1, sizeof un->sun_path - 1, "noa-sockets-%d-%s", me, name);
	*len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static void unix_stream_pair(void)
{
	int sv[2] = { -1, -1 };
	char buf[64];
	check_call("unix stream socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	check_int("unix stream socketpair SO_TYPE is SOCK_STREAM", getint(sv[0], SOL_SOCKET, SO_TYPE),
		  SOCK_STREAM);
	check_int("unix stream socketpair SO_DOMAIN is AF_UNIX",
		  getint(sv[0], SOL_SOCKET, SO_DOMAIN), AF_UNIX);
	check_int("unix stream write a->b", write(sv[0], "ping", 4), 4);
	check_bytes("unix stream b reads what a wrote", recv_all(sv[1], buf, 4), buf, "ping");
	check_int("unix stream write b->a", write(sv[1], "pong!", 5), 5);
	check_bytes("unix stream a reads what b wrote", recv_all(sv[0], buf, 5), buf, "pong!");

	/* Bytes, not messages: two writes may be read as one. */
	send_all(sv[0], "abc", 3);
	send_all(sv[0], "def", 3);
	check_bytes("unix stream two writes read as a byte stream", recv_all(sv[1], buf, 6), buf,
		    "abcdef");

	send_all(sv[0], "peek", 4);
	wait_for(sv[1], POLLIN);
	check_bytes("unix stream MSG_PEEK sees the data", recv(sv[1], buf, 4, MSG_PEEK), buf, "peek");
	check_bytes("unix stream the data is still there after MSG_PEEK", recv(sv[1], buf, 4, 0), buf,
		    "peek");
	check_errno("unix stream MSG_DONTWAIT on no data -> EAGAIN",
		    recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);

	send_all(sv[0], "last", 4);
	close(sv[0]);
	check_bytes("unix stream data written before close is still read", recv_all(sv[1], buf, 4),
		    buf, "last");
	check_int("unix stream read after the peer closed -> EOF", reads_eof(sv[1]), 1);
	check_int("unix stream poll after the peer closed -> POLLHUP",
		  wait_for(sv[1], POLLIN) & POLLHUP, POLLHUP);
	check_errno("unix stream send to a closed peer -> EPIPE", send(sv[1], "x", 1, MSG_NOSIGNAL),
		    EPIPE);
	close(sv[1]);

	check_call("unix stream socketpair SOCK_NONBLOCK|SOCK_CLOEXEC",
		   socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
	check_int("unix stream socketpair SOCK_NONBLOCK sets O_NONBLOCK",
		  is_nonblocking(sv[0]) && is_nonblocking(sv[1]), 1);
	check_int("unix stream socketpair SOCK_CLOEXEC sets FD_CLOEXEC",
		  is_cloexec(sv[0]) && is_cloexec(sv[1]), 1);
	check_errno("unix stream non-blocking read on no data -> EAGAIN", read(sv[0], buf, 1),
		    EAGAIN);
	shutdown(sv[0], SHUT_WR);
	check_int("unix stream shutdown(SHUT_WR) gives the peer EOF", reads_eof(sv[1]), 1);
	check_int("unix stream the other direction still works after SHUT_WR",
		  write(sv[1], "back", 4) == 4 && recv_all(sv[0], buf, 4) == 4, 1);
	close(sv[0]);
	close(sv[1]);
}

/* A listener bound to `addr` (len `len`), a client connected to it, the accepted end. */
static void unix_stream_named(const char *what, struct sockaddr_un *addr, socklen_t len)
{
	char name[160], buf[64];
	int listener = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(name, sizeof name, "unix stream %s bind", what);
	check_call(name, bind(listener, (struct sockaddr *)addr, len));
	snprintf(name, sizeof name, "unix stream %s listen", what);
	check_call(name, listen(listener, 8));

	struct sockaddr_un got;
	socklen_t got_len = sizeof got;
	getsockname(listener, (struct sockaddr *)&got, &got_len);
	snprintf(name, sizeof name, "unix stream %s getsockname gives the bound name", what);
	if (got_len != len || memcmp(&got, addr, len) != 0)
		snprintf(detail, sizeof detail, "length %u, expected %u", got_len, len);
	report(name, got_len == len && memcmp(&got, addr, len) == 0);

	int second = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(name, sizeof name, "unix stream %s second bind -> EADDRINUSE", what);
	check_errno(name, bind(second, (struct sockaddr *)addr, len), EADDRINUSE);
	close(second);

	int client = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(name, sizeof name, "unix stream %s connect", what);
	check_call(name, connect(client, (struct sockaddr *)addr, len));
	int server = accept_one(listener, SOCK_CLOEXEC);
	snprintf(name, sizeof name, "unix stream %s accept", what);
	check_call(name, server);

	got_len = sizeof got;
	getpeername(client, (struct sockaddr *)&got, &got_len);
	snprintf(name, sizeof name, "unix stream %s client's getpeername is the listener's name",
		 what);
	report(name, got_len == len && memcmp(&got, addr, len) == 0);
	got_len = sizeof got;
	getpeername(server, (struct sockaddr *)&got, &got_len);
	snprintf(name, sizeof name, "unix stream %s an unbound client's name is unnamed", what);
	if (got_len != sizeof(sa_family_t))
		snprintf(detail, sizeof detail, "length %u", got_len);
	report(name, got_len == sizeof(sa_family_t) && got.sun_family == AF_UNIX);

	send_all(client, "hello", 5);
	snprintf(name, sizeof name, "unix stream %s server reads the client", what);
	check_bytes(name, recv_all(server, buf, 5), buf, "hello");
	send_all(server, "world", 5);
	snprintf(name, sizeof name, "unix stream %s client reads the server", what);
	check_bytes(name, recv_all(client, buf, 5), buf, "world");
	close(client);
	snprintf(name, sizeof name, "unix stream %s EOF after the client closed", what);
	check_int(name, reads_eof(server), 1);
	close(server);
	close(listener);
}

static void unix_stream_names(void)
{
	struct sockaddr_un un;
	socklen_t len;

	unix_path(&un, &len, "stream.sock");
	unlink(un.sun_path);
	unix_stream_named("path", &un, len);
	/* The socket file stays after the listener closed; nobody listens there. */
	int client = socket(AF_UNIX, SOCK_STREAM, 0);
	check_errno("unix stream connect to a path nobody listens on -> ECONNREFUSED",
		    connect(client, (struct sockaddr *)&un, len), ECONNREFUSED);
	close(client);
	unlink(un.sun_path);
	client = socket(AF_UNIX, SOCK_STREAM, 0);
	check_errno("unix stream connect to a missing path -> ENOENT",
		    connect(client, (struct sockaddr *)&un, len), ENOENT);
	close(client);

	unix_abstract(&un, &len, "stream");
	unix_stream_named("abstract", &un, len);
	client = socket(AF_UNIX, SOCK_STREAM, 0);
	check_errno("unix stream connect to a closed abstract name -> ECONNREFUSED",
		    connect(client, (struct sockaddr *)&un, len), ECONNREFUSED);
	close(client);

	/* A stream socket that is not connected. */
	client = socket(AF_UNIX, SOCK_STREAM, 0);
	check_errno("unix stream send on an unconnected socket -> ENOTCONN",
		    send(client, "x", 1, MSG_NOSIGNAL), ENOTCONN);
	check_errno("unix stream accept on a socket that is not listening -> EINVAL",
		    accept(client, NULL, NULL), EINVAL);
	close(client);
}

/* A SOCK_SEQPACKET pair (Rust's std spawns children with one): boundaries kept, and end of
 * file once the peer closes. */
static void unix_seqpacket_pair(void)
{
	int sv[2] = { -1, -1 };
	char buf[64];
	check_call("unix seqpacket socketpair", socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv));
	check_int("unix seqpacket SO_TYPE is SOCK_SEQPACKET", getint(sv[0], SOL_SOCKET, SO_TYPE),
		  SOCK_SEQPACKET);
	send(sv[0], "first", 5, 0);
	send(sv[0], "second", 6, 0);
	check_bytes("unix seqpacket message 1 alone", recv(sv[1], buf, sizeof buf, 0), buf, "first");
	check_bytes("unix seqpacket message 2 alone", recv(sv[1], buf, sizeof buf, 0), buf, "second");
	send(sv[0], "last", 4, 0);
	close(sv[0]);
	check_bytes("unix seqpacket a message sent before close still arrives",
		    recv(sv[1], buf, sizeof buf, 0), buf, "last");
	check_int("unix seqpacket end of file once the peer closed", recv(sv[1], buf, sizeof buf, 0), 0);
	check_errno("unix seqpacket send to a closed peer -> EPIPE",
		    send(sv[1], "x", 1, MSG_NOSIGNAL), EPIPE);
	close(sv[1]);
}

static void unix_dgram(void)
{
	int sv[2] = { -1, -1 };
	char buf[64];
	check_call("unix dgram socketpair", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	check_int("unix dgram SO_TYPE is SOCK_DGRAM", getint(sv[0], SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
	send(sv[0], "one", 3, 0);
	send(sv[0], "two!", 4, 0);
	send(sv[0], "three", 5, 0);
	check_bytes("unix dgram message 1 alone", recv(sv[1], buf, sizeof buf, 0), buf, "one");
	check_bytes("unix dgram message 2 alone", recv(sv[1], buf, sizeof buf, 0), buf, "two!");
	check_bytes("unix dgram message 3 alone", recv(sv[1], buf, sizeof buf, 0), buf, "three");
	check_errno("unix dgram MSG_DONTWAIT on no message -> EAGAIN",
		    recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	send(sv[1], "reply", 5, 0);
	check_bytes("unix dgram the other direction", recv(sv[0], buf, sizeof buf, 0), buf, "reply");
	send(sv[0], "truncated", 9, 0);
	send(sv[0], "next", 4, 0);
	check_bytes("unix dgram a short read takes the head of the message",
		    recv(sv[1], buf, 5, 0), buf, "trunc");
	check_bytes("unix dgram the rest of a short-read message is gone",
		    recv(sv[1], buf, sizeof buf, 0), buf, "next");
	close(sv[0]);
	close(sv[1]);

	/* Two sockets bound to paths: the receiver learns the sender's path. */
	struct sockaddr_un a, b, from;
	socklen_t a_len, b_len, from_len = sizeof from;
	unix_path(&a, &a_len, "dgram-a.sock");
	unix_path(&b, &b_len, "dgram-b.sock");
	unlink(a.sun_path);
	unlink(b.sun_path);
	int fa = socket(AF_UNIX, SOCK_DGRAM, 0), fb = socket(AF_UNIX, SOCK_DGRAM, 0);
	check_call("unix dgram bind a path", bind(fa, (struct sockaddr *)&a, a_len));
	check_call("unix dgram bind another path", bind(fb, (struct sockaddr *)&b, b_len));
	check_int("unix dgram sendto a path", sendto(fa, "to b", 4, 0, (struct sockaddr *)&b, b_len),
		  4);
	long n = recvfrom(fb, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
	check_bytes("unix dgram recvfrom gets the message", n, buf, "to b");
	check_int("unix dgram recvfrom names the sender's path",
		  from_len == a_len && strcmp(from.sun_path, a.sun_path) == 0, 1);
	check_call("unix dgram connect to a path", connect(fb, (struct sockaddr *)&a, a_len));
	check_int("unix dgram send on a connected socket", send(fb, "to a", 4, 0), 4);
	check_bytes("unix dgram the connected send arrives", recv(fa, buf, sizeof buf, 0), buf,
		    "to a");
	close(fa);
	close(fb);
	unlink(a.sun_path);
	unlink(b.sun_path);
	int lone = socket(AF_UNIX, SOCK_DGRAM, 0);
	check_errno("unix dgram sendto a missing path -> ENOENT",
		    sendto(lone, "x", 1, 0, (struct sockaddr *)&a, a_len), ENOENT);
	close(lone);
}

/* ---- TCP ---- */

static void tcp_options(int family, const char *fam)
{
	char name[128];
	int fd = socket(family, SOCK_STREAM, 0);
#define OPT(label, level, option, value)                                                           \
	do {                                                                                       \
		snprintf(name, sizeof name, "%s " label " is off by default", fam);               \
		check_int(name, getint(fd, level, option), 0);                                     \
		snprintf(name, sizeof name, "%s " label " set and read back", fam);               \
		check_int(name, setint(fd, level, option, value) == 0 && getint(fd, level, option) != 0, \
			  1);                                                                      \
		snprintf(name, sizeof name, "%s " label " cleared again", fam);                    \
		check_int(name, setint(fd, level, option, 0) == 0 ? getint(fd, level, option) : -1, 0); \
	} while (0)
	OPT("SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR, 1);
	OPT("SO_REUSEPORT", SOL_SOCKET, SO_REUSEPORT, 1);
	OPT("SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 1);
	OPT("TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, 1);
#undef OPT
	int before = getint(fd, SOL_SOCKET, SO_RCVBUF);
	snprintf(name, sizeof name, "%s SO_RCVBUF has a size", fam);
	check_int(name, before > 0, 1);
	snprintf(name, sizeof name, "%s SO_RCVBUF set to 64 KiB reads back at least that", fam);
	check_int(name,
		  setint(fd, SOL_SOCKET, SO_RCVBUF, 65536) == 0 &&
			  getint(fd, SOL_SOCKET, SO_RCVBUF) >= 65536,
		  1);
	snprintf(name, sizeof name, "%s SO_SNDBUF set to 64 KiB reads back at least that", fam);
	check_int(name,
		  setint(fd, SOL_SOCKET, SO_SNDBUF, 65536) == 0 &&
			  getint(fd, SOL_SOCKET, SO_SNDBUF) >= 65536,
		  1);
	snprintf(name, sizeof name, "%s SO_TYPE is SOCK_STREAM", fam);
	check_int(name, getint(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
	snprintf(name, sizeof name, "%s SO_ERROR of a fresh socket is 0", fam);
	check_int(name, getint(fd, SOL_SOCKET, SO_ERROR), 0);
	snprintf(name, sizeof name, "%s SO_ACCEPTCONN of a fresh socket is 0", fam);
	check_int(name, getint(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
	snprintf(name, sizeof name, "%s unknown SOL_SOCKET option -> ENOPROTOOPT", fam);
	check_errno(name, setint(fd, SOL_SOCKET, 12345, 1), ENOPROTOOPT);
	close(fd);
}

/* Connection set-up, names, data in every call form, and the end of a connection. */
static void tcp_connection(int family, const char *fam)
{
	char name[160], buf[64];
	int listener = tcp_listener(family);
	snprintf(name, sizeof name, "%s listen on the loopback address", fam);
	check_call(name, listener);
	if (listener < 0)
		return;
	struct sockaddr_storage at = name_of(listener);
	snprintf(name, sizeof name, "%s getsockname gives the loopback address and a port", fam);
	struct sockaddr_storage want = loopback(family, port_of(&at));
	if (!same_addr(&at, &want) || port_of(&at) == 0)
		snprintf(detail, sizeof detail, "%s", show(&at));
	report(name, same_addr(&at, &want) && port_of(&at) != 0);
	snprintf(name, sizeof name, "%s SO_ACCEPTCONN of a listener is 1", fam);
	check_int(name, getint(listener, SOL_SOCKET, SO_ACCEPTCONN), 1);

	/* Accept readiness through epoll: nothing, then EPOLLIN once a client connects. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 }, out[4];
	epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
	snprintf(name, sizeof name, "%s epoll: a listener without clients is not ready", fam);
	check_int(name, epoll_wait(ep, out, 4, 0), 0);

	int client = tcp_connect(&at);
	snprintf(name, sizeof name, "%s connect", fam);
	check_call(name, client);
	if (client < 0) {
		close(ep);
		close(listener);
		return;
	}
	int n = epoll_wait(ep, out, 4, DEADLINE_MS);
	snprintf(name, sizeof name, "%s epoll: a pending connection makes the listener readable", fam);
	check_int(name, n == 1 && out[0].data.u32 == 1 && (out[0].events & EPOLLIN), 1);

	int server = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	snprintf(name, sizeof name, "%s accept4", fam);
	check_call(name, server);
	snprintf(name, sizeof name, "%s accept4 SOCK_NONBLOCK|SOCK_CLOEXEC set both flags", fam);
	check_int(name, is_nonblocking(server) && is_cloexec(server), 1);
	snprintf(name, sizeof name, "%s the client's socket is blocking", fam);
	check_int(name, is_nonblocking(client), 0);
	snprintf(name, sizeof name, "%s epoll: the listener is not ready once accepted", fam);
	check_int(name, epoll_wait(ep, out, 4, 0), 0);

	struct sockaddr_storage client_name = name_of(client), client_peer = peer_of(client);
	struct sockaddr_storage server_name = name_of(server), server_peer = peer_of(server);
	snprintf(name, sizeof name, "%s the client's peer is the listener's address", fam);
	if (!same_addr(&client_peer, &at))
		snprintf(detail, sizeof detail, "%s vs %s", show(&client_peer), show(&at));
	report(name, same_addr(&client_peer, &at));
	snprintf(name, sizeof name, "%s the accepted socket's name is the listener's address", fam);
	report(name, same_addr(&server_name, &at));
	snprintf(name, sizeof name, "%s the accepted socket's peer is the client's name", fam);
	if (!same_addr(&server_peer, &client_name))
		snprintf(detail, sizeof detail, "%s vs %s", show(&server_peer), show(&client_name));
	report(name, same_addr(&server_peer, &client_name));
	snprintf(name, sizeof name, "%s the client got an ephemeral port of its own", fam);
	check_int(name, port_of(&client_name) != 0 && port_of(&client_name) != port_of(&at), 1);

	/* Read readiness of the accepted socket. */
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLRDHUP, .data.u32 = 2 };
	epoll_ctl(ep, EPOLL_CTL_DEL, listener, NULL);
	epoll_ctl(ep, EPOLL_CTL_ADD, server, &ev);
	snprintf(name, sizeof name, "%s epoll: a connection without data is not readable", fam);
	check_int(name, epoll_wait(ep, out, 4, 0), 0);
	snprintf(name, sizeof name, "%s non-blocking recv on no data -> EAGAIN", fam);
	check_errno(name, recv(server, buf, sizeof buf, 0), EAGAIN);
	snprintf(name, sizeof name, "%s MSG_DONTWAIT on a blocking socket with no data -> EAGAIN",
		 fam);
	check_errno(name, recv(client, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);

	snprintf(name, sizeof name, "%s send", fam);
	check_int(name, send(client, "hello", 5, 0), 5);
	n = epoll_wait(ep, out, 4, DEADLINE_MS);
	snprintf(name, sizeof name, "%s epoll: data makes the connection readable", fam);
	check_int(name, n == 1 && out[0].data.u32 == 2 && (out[0].events & EPOLLIN), 1);
	snprintf(name, sizeof name, "%s recv gets what was sent", fam);
	check_bytes(name, recv_all(server, buf, 5), buf, "hello");

	snprintf(name, sizeof name, "%s write/read the other way", fam);
	check_int(name, write(server, "reply", 5) == 5 && recv_all(client, buf, 5) == 5 &&
				memcmp(buf, "reply", 5) == 0,
		  1);

	/* sendto/recvfrom on a connected stream (no address). */
	snprintf(name, sizeof name, "%s sendto without an address on a connection", fam);
	check_int(name, sendto(client, "sendto", 6, 0, NULL, 0), 6);
	wait_for(server, POLLIN);
	struct sockaddr_storage from;
	socklen_t from_len = sizeof from;
	long got = 0;
	while (got < 6 && wait_for(server, POLLIN) > 0) {
		long r = recvfrom(server, buf + got, 6 - got, 0, (struct sockaddr *)&from, &from_len);
		if (r <= 0)
			break;
		got += r;
	}
	snprintf(name, sizeof name, "%s recvfrom on a connection", fam);
	check_bytes(name, got, buf, "sendto");

	/* sendmsg with several iovecs; recvmsg scatters into several. */
	struct iovec parts[3] = { { "ab", 2 }, { "cde", 3 }, { "fghi", 4 } };
	struct msghdr msg = { .msg_iov = parts, .msg_iovlen = 3 };
	snprintf(name, sizeof name, "%s sendmsg gathers three iovecs", fam);
	check_int(name, sendmsg(client, &msg, 0), 9);
	char first[4], second[5];
	struct iovec into[2] = { { first, 4 }, { second, 5 } };
	struct msghdr in = { .msg_iov = into, .msg_iovlen = 2 };
	got = 0;
	wait_for(server, POLLIN);
	got = recvmsg(server, &in, MSG_WAITALL);
	snprintf(name, sizeof name, "%s recvmsg MSG_WAITALL scatters into two iovecs", fam);
	check_int(name, got == 9 && memcmp(first, "abcd", 4) == 0 && memcmp(second, "efghi", 5) == 0,
		  1);

	send_all(client, "peek", 4);
	wait_for(server, POLLIN);
	snprintf(name, sizeof name, "%s MSG_PEEK sees the data", fam);
	check_bytes(name, recv(server, buf, 4, MSG_PEEK), buf, "peek");
	snprintf(name, sizeof name, "%s the data is still there after MSG_PEEK", fam);
	check_bytes(name, recv_all(server, buf, 4), buf, "peek");

	/* shutdown(SHUT_WR): the peer reads the rest, then EOF, and can still answer. */
	send_all(client, "bye", 3);
	snprintf(name, sizeof name, "%s shutdown(SHUT_WR)", fam);
	check_call(name, shutdown(client, SHUT_WR));
	/* Level-triggered: the data may show before the FIN does; wait for the FIN. */
	snprintf(name, sizeof name, "%s epoll: the peer's shutdown shows as EPOLLRDHUP", fam);
	int rdhup = 0;
	for (int waited = 0; waited < DEADLINE_MS && !rdhup; waited += 100) {
		n = epoll_wait(ep, out, 4, 100);
		rdhup = n == 1 && (out[0].events & EPOLLRDHUP);
	}
	check_int(name, rdhup, 1);
	snprintf(name, sizeof name, "%s data sent before the shutdown is read", fam);
	check_bytes(name, recv_all(server, buf, 3), buf, "bye");
	snprintf(name, sizeof name, "%s then EOF", fam);
	check_int(name, reads_eof(server), 1);
	snprintf(name, sizeof name, "%s send after SHUT_WR -> EPIPE", fam);
	check_errno(name, send(client, "x", 1, MSG_NOSIGNAL), EPIPE);
	snprintf(name, sizeof name, "%s the half-closed peer can still answer", fam);
	check_int(name, send_all(server, "still", 5) == 5 && recv_all(client, buf, 5) == 5 &&
				memcmp(buf, "still", 5) == 0,
		  1);
	close(server);
	snprintf(name, sizeof name, "%s EOF once the peer closed too", fam);
	check_int(name, reads_eof(client), 1);
	close(client);
	close(ep);
	close(listener);
}

/* A 1 MiB transfer both ways at once through non-blocking sockets and poll. */
static void tcp_bulk(int family, const char *fam)
{
	enum { SIZE = 1 << 20 };
	char name[128];
	int listener = tcp_listener(family);
	struct sockaddr_storage at = name_of(listener);
	int a = tcp_connect(&at), b = accept_one(listener, SOCK_NONBLOCK);
	close(listener);
	if (a < 0 || b < 0) {
		snprintf(name, sizeof name, "%s 1 MiB each way", fam);
		snprintf(detail, sizeof detail, "no connection");
		report(name, 0);
		return;
	}
	fcntl(a, F_SETFL, O_NONBLOCK);
	setint(a, IPPROTO_TCP, TCP_NODELAY, 1);
	static unsigned char out[SIZE], in_a[SIZE], in_b[SIZE];
	for (int i = 0; i < SIZE; i++)
		out[i] = (unsigned char)(i * 7 + i / 251);
	size_t sent[2] = { 0, 0 }, got[2] = { 0, 0 };
	int fds[2] = { a, b };
	unsigned char *into[2] = { in_a, in_b };
	int stalled = 0;
	while ((sent[0] < SIZE || sent[1] < SIZE || got[0] < SIZE || got[1] < SIZE) && !stalled) {
		struct pollfd p[2];
		for (int i = 0; i < 2; i++) {
			p[i].fd = fds[i];
			p[i].events = (sent[i] < SIZE ? POLLOUT : 0) | (got[i] < SIZE ? POLLIN : 0);
			p[i].revents = 0;
		}
		if (poll(p, 2, DEADLINE_MS) <= 0) {
			stalled = 1;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if ((p[i].revents & POLLOUT) && sent[i] < SIZE) {
				size_t chunk = SIZE - sent[i] < 50000 ? SIZE - sent[i] : 50000;
				ssize_t n = send(fds[i], out + sent[i], chunk, MSG_NOSIGNAL);
				if (n > 0)
					sent[i] += n;
				else if (n < 0 && errno != EAGAIN)
					stalled = 1;
			}
			if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) && got[i] < SIZE) {
				ssize_t n = recv(fds[i], into[i] + got[i], SIZE - got[i], 0);
				if (n > 0)
					got[i] += n;
				else if (n == 0 || errno != EAGAIN)
					stalled = 1;
			}
		}
	}
	snprintf(name, sizeof name, "%s 1 MiB each way at once, non-blocking with poll", fam);
	if (stalled)
		snprintf(detail, sizeof detail, "stalled: sent %zu/%zu, received %zu/%zu", sent[0],
			 sent[1], got[0], got[1]);
	report(name, !stalled);
	snprintf(name, sizeof name, "%s the bulk data arrived intact both ways", fam);
	check_int(name, !stalled && memcmp(in_a, out, SIZE) == 0 && memcmp(in_b, out, SIZE) == 0, 1);
	close(a);
	close(b);
}

/* Connecting where nobody listens; binding where somebody is. */
static void tcp_errors(int family, const char *fam)
{
	char name[160];
	/* Bound but never listening: the port is ours, and connections to it are refused. */
	int bound = socket(family, SOCK_STREAM, 0);
	struct sockaddr_storage ss = loopback(family, 0);
	bind(bound, (struct sockaddr *)&ss, addr_len(family));
	struct sockaddr_storage closed = name_of(bound);

	int fd = socket(family, SOCK_STREAM, 0);
	snprintf(name, sizeof name, "%s connect to a closed port -> ECONNREFUSED", fam);
	check_errno(name, connect(fd, (struct sockaddr *)&closed, addr_len(family)), ECONNREFUSED);
	close(fd);

	/* Non-blocking: EINPROGRESS (or at once), then poll says so and SO_ERROR has the reason. */
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int rc = connect(fd, (struct sockaddr *)&closed, addr_len(family));
	int err = errno;
	int refused;
	if (rc == -1 && err == EINPROGRESS) {
		int revents = wait_for(fd, POLLOUT);
		refused = revents > 0 && (revents & (POLLERR | POLLHUP)) &&
			  getint(fd, SOL_SOCKET, SO_ERROR) == ECONNREFUSED;
		if (!refused)
			snprintf(detail, sizeof detail, "revents %#x", revents);
	} else {
		refused = rc == -1 && err == ECONNREFUSED;
		if (!refused)
			snprintf(detail, sizeof detail, "connect returned %d errno %d", rc, err);
	}
	snprintf(name, sizeof name,
		 "%s non-blocking connect to a closed port: POLLERR and SO_ERROR ECONNREFUSED", fam);
	report(name, refused);
	snprintf(name, sizeof name, "%s SO_ERROR is cleared once read", fam);
	check_int(name, getint(fd, SOL_SOCKET, SO_ERROR), 0);
	close(fd);
	close(bound);

	/* A second bind to a listener's address. */
	int listener = tcp_listener(family);
	struct sockaddr_storage at = name_of(listener);
	fd = socket(family, SOCK_STREAM, 0);
	snprintf(name, sizeof name, "%s second bind to a listening port -> EADDRINUSE", fam);
	check_errno(name, bind(fd, (struct sockaddr *)&at, addr_len(family)), EADDRINUSE);
	close(fd);
	fd = socket(family, SOCK_STREAM, 0);
	setint(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	snprintf(name, sizeof name,
		 "%s SO_REUSEADDR does not share a listening port -> EADDRINUSE", fam);
	check_errno(name, bind(fd, (struct sockaddr *)&at, addr_len(family)), EADDRINUSE);
	close(fd);

	/* SO_REUSEPORT on both: a second listener on the same port. */
	int first = socket(family, SOCK_STREAM, 0), again = socket(family, SOCK_STREAM, 0);
	setint(first, SOL_SOCKET, SO_REUSEPORT, 1);
	setint(again, SOL_SOCKET, SO_REUSEPORT, 1);
	ss = loopback(family, 0);
	bind(first, (struct sockaddr *)&ss, addr_len(family));
	listen(first, 4);
	struct sockaddr_storage shared = name_of(first);
	snprintf(name, sizeof name, "%s SO_REUSEPORT on both: a second listener on one port", fam);
	check_call(name, bind(again, (struct sockaddr *)&shared, addr_len(family)) == 0 ?
				 listen(again, 4) :
				 -1);
	close(first);
	close(again);

	close(listener);

	/* A server (SO_REUSEADDR, as servers set it) restarts on its port while its old
	 * connection is in TIME_WAIT. */
	listener = socket(family, SOCK_STREAM, 0);
	setint(listener, SOL_SOCKET, SO_REUSEADDR, 1);
	ss = loopback(family, 0);
	bind(listener, (struct sockaddr *)&ss, addr_len(family));
	listen(listener, 4);
	at = name_of(listener);
	int client = tcp_connect(&at);
	int server = accept_one(listener, 0);
	close(server); /* the server closes first: its side waits in TIME_WAIT */
	reads_eof(client);
	close(client);
	close(listener);
	fd = socket(family, SOCK_STREAM, 0);
	setint(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	snprintf(name, sizeof name,
		 "%s SO_REUSEADDR rebinds the port of a closed server (TIME_WAIT)", fam);
	check_call(name, bind(fd, (struct sockaddr *)&at, addr_len(family)) == 0 ? listen(fd, 4) :
										  -1);
	close(fd);
}

/* A non-blocking connect that succeeds: EINPROGRESS or at once, then writable, SO_ERROR 0. */
static void tcp_nonblocking_connect(int family, const char *fam)
{
	char name[160];
	int listener = tcp_listener(family);
	struct sockaddr_storage at = name_of(listener);
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc = connect(fd, (struct sockaddr *)&at, addr_len(family));
	snprintf(name, sizeof name, "%s non-blocking connect: EINPROGRESS or done at once", fam);
	if (rc != 0 && errno != EINPROGRESS)
		snprintf(detail, sizeof detail, "errno %d (%s)", errno, strerror(errno));
	report(name, rc == 0 || errno == EINPROGRESS);
	if (listener < 0 || fd < 0) {
		close(fd);
		close(listener);
		return;
	}

	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.fd = fd }, out;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	int n = epoll_wait(ep, &out, 1, DEADLINE_MS);
	snprintf(name, sizeof name, "%s epoll: EPOLLOUT (edge-triggered) once connected", fam);
	check_int(name, n == 1 && out.data.fd == fd && (out.events & EPOLLOUT), 1);
	snprintf(name, sizeof name, "%s SO_ERROR is 0 after the connect", fam);
	check_int(name, getint(fd, SOL_SOCKET, SO_ERROR), 0);
	struct sockaddr_storage peer = peer_of(fd);
	snprintf(name, sizeof name, "%s getpeername works once connected", fam);
	report(name, same_addr(&peer, &at));
	/* Linux answers the first connect after completion with 0, later ones with EISCONN. */
	connect(fd, (struct sockaddr *)&at, addr_len(family));
	snprintf(name, sizeof name, "%s connect on a connected socket -> EISCONN", fam);
	check_errno(name, connect(fd, (struct sockaddr *)&at, addr_len(family)), EISCONN);
	snprintf(name, sizeof name, "%s poll: POLLOUT and not POLLIN", fam);
	check_int(name, wait_for(fd, POLLIN | POLLOUT), POLLOUT);

	int server = accept_one(listener, 0);
	snprintf(name, sizeof name, "%s the non-blocking connection is accepted", fam);
	check_call(name, server);
	char c = 0;
	send_all(server, "!", 1);
	snprintf(name, sizeof name, "%s epoll: edge-triggered EPOLLIN when data comes", fam);
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	n = epoll_wait(ep, &out, 1, DEADLINE_MS);
	int in = n == 1 && (out.events & EPOLLIN);
	for (int tries = 0; tries < 100 && !in; tries++) {
		n = epoll_wait(ep, &out, 1, 100);
		in = n == 1 && (out.events & EPOLLIN);
	}
	check_int(name, in, 1);
	snprintf(name, sizeof name, "%s the byte is read", fam);
	check_int(name, recv(fd, &c, 1, 0) == 1 && c == '!', 1);
	close(server);
	close(fd);
	close(ep);
	close(listener);
}

/* A listener on [::] with IPV6_V6ONLY off takes an IPv4 client as ::ffff:127.0.0.1. */
static void tcp_dual_stack(void)
{
	int listener = socket(AF_INET6, SOCK_STREAM, 0);
	check_int("dual-stack IPV6_V6ONLY can be turned off",
		  setint(listener, IPPROTO_IPV6, IPV6_V6ONLY, 0) == 0 &&
			  getint(listener, IPPROTO_IPV6, IPV6_V6ONLY) == 0,
		  1);
	struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	check_call("dual-stack bind [::]:0 and listen",
		   bind(listener, (struct sockaddr *)&any, sizeof any) == 0 ? listen(listener, 4) :
									      -1);
	struct sockaddr_storage at = name_of(listener);
	unsigned short port = port_of(&at);
	struct sockaddr_storage v4 = loopback(AF_INET, port), v6 = loopback(AF_INET6, port);

	int client = tcp_connect(&v4);
	check_call("dual-stack an IPv4 client connects to 127.0.0.1", client);
	int server = accept_one(listener, 0);
	check_call("dual-stack the IPv6 listener accepts it", server);
	struct sockaddr_storage peer = peer_of(server), client_name = name_of(client);
	char text[INET6_ADDRSTRLEN] = "";
	struct sockaddr_in6 *p6 = (struct sockaddr_in6 *)&peer;
	if (peer.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &p6->sin6_addr, text, sizeof text);
	snprintf(detail, sizeof detail, "%s", show(&peer));
	report("dual-stack the peer shows as ::ffff:127.0.0.1",
	       peer.ss_family == AF_INET6 && strcmp(text, "::ffff:127.0.0.1") == 0);
	check_int("dual-stack the peer's port is the client's",
		  port_of(&peer) == port_of(&client_name), 1);
	char buf[8];
	check_int("dual-stack data flows", send_all(client, "v4", 2) == 2 &&
						 recv_all(server, buf, 2) == 2 &&
						 memcmp(buf, "v4", 2) == 0,
		  1);
	close(client);
	close(server);

	client = tcp_connect(&v6);
	check_call("dual-stack an IPv6 client connects to ::1", client);
	server = accept_one(listener, 0);
	peer = peer_of(server);
	snprintf(detail, sizeof detail, "%s", show(&peer));
	struct sockaddr_storage want = loopback(AF_INET6, port_of(&peer));
	report("dual-stack the IPv6 client shows as ::1", same_addr(&peer, &want));
	close(client);
	close(server);
	close(listener);

	int only = socket(AF_INET6, SOCK_STREAM, 0);
	setint(only, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	bind(only, (struct sockaddr *)&any, sizeof any);
	listen(only, 4);
	at = name_of(only);
	v4 = loopback(AF_INET, port_of(&at));
	client = socket(AF_INET, SOCK_STREAM, 0);
	check_errno("dual-stack an IPV6_V6ONLY listener refuses IPv4 -> ECONNREFUSED",
		    connect(client, (struct sockaddr *)&v4, sizeof(struct sockaddr_in)),
		    ECONNREFUSED);
	close(client);
	close(only);
}

/* ---- UDP ---- */

static int udp_socket(int family)
{
	int fd = socket(family, SOCK_DGRAM, 0);
	struct sockaddr_storage ss = loopback(family, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, addr_len(family)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static long udp_recvfrom(int fd, char *buf, size_t len, int flags, struct sockaddr_storage *from)
{
	socklen_t from_len = sizeof *from;
	if (wait_for(fd, POLLIN) <= 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	return recvfrom(fd, buf, len, flags, (struct sockaddr *)from, &from_len);
}

static void udp(int family, const char *fam)
{
	char name[160], buf[64];
	int a = udp_socket(family), b = udp_socket(family);
	snprintf(name, sizeof name, "%s two sockets bound on loopback", fam);
	check_int(name, a >= 0 && b >= 0, 1);
	if (a < 0 || b < 0)
		return;
	snprintf(name, sizeof name, "%s SO_TYPE is SOCK_DGRAM", fam);
	check_int(name, getint(a, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
	snprintf(name, sizeof name, "%s SO_BROADCAST can be set (Go sets it)", fam);
	check_int(name, setint(a, SOL_SOCKET, SO_BROADCAST, 1) == 0 &&
				getint(a, SOL_SOCKET, SO_BROADCAST) == 1,
		  1);
	struct sockaddr_storage at_a = name_of(a), at_b = name_of(b), from;
	snprintf(name, sizeof name, "%s MSG_DONTWAIT with no datagram -> EAGAIN", fam);
	check_errno(name, recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);

	const char *messages[] = { "one", "two!", "three" };
	for (int i = 0; i < 3; i++)
		sendto(a, messages[i], strlen(messages[i]), 0, (struct sockaddr *)&at_b,
		       addr_len(family));
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "%s datagram %d arrives alone", fam, i + 1);
		memset(&from, 0, sizeof from);
		check_bytes(name, udp_recvfrom(b, buf, sizeof buf, 0, &from), buf, messages[i]);
	}
	snprintf(name, sizeof name, "%s recvfrom names the sender", fam);
	if (!same_addr(&from, &at_a))
		snprintf(detail, sizeof detail, "%s vs %s", show(&from), show(&at_a));
	report(name, same_addr(&from, &at_a));

	/* Echo: b answers to where the datagram came from. */
	sendto(b, "echo", 4, 0, (struct sockaddr *)&from, addr_len(family));
	snprintf(name, sizeof name, "%s the echo comes back from the echoing socket", fam);
	long n = udp_recvfrom(a, buf, sizeof buf, 0, &from);
	check_int(name, n == 4 && memcmp(buf, "echo", 4) == 0 && same_addr(&from, &at_b), 1);

	/* Truncation. */
	sendto(a, "truncate-me", 11, 0, (struct sockaddr *)&at_b, addr_len(family));
	sendto(a, "after", 5, 0, (struct sockaddr *)&at_b, addr_len(family));
	snprintf(name, sizeof name, "%s MSG_PEEK leaves the datagram queued", fam);
	check_bytes(name, udp_recvfrom(b, buf, sizeof buf, MSG_PEEK, &from), buf, "truncate-me");
	n = udp_recvfrom(b, buf, 4, MSG_TRUNC, &from);
	snprintf(name, sizeof name, "%s MSG_TRUNC returns the real length of a longer datagram",
		 fam);
	check_int(name, n == 11 && memcmp(buf, "trun", 4) == 0, 1);
	snprintf(name, sizeof name, "%s the rest of a truncated datagram is dropped", fam);
	check_bytes(name, udp_recvfrom(b, buf, sizeof buf, 0, &from), buf, "after");
	sendto(a, "flagged", 7, 0, (struct sockaddr *)&at_b, addr_len(family));
	struct iovec iov = { buf, 3 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	wait_for(b, POLLIN);
	n = recvmsg(b, &msg, 0);
	snprintf(name, sizeof name, "%s recvmsg into a short buffer sets MSG_TRUNC in msg_flags",
		 fam);
	check_int(name, n == 3 && (msg.msg_flags & MSG_TRUNC) && memcmp(buf, "fla", 3) == 0, 1);

	/* sendmsg with iovecs: one datagram. */
	struct iovec parts[2] = { { "gat", 3 }, { "hered", 5 } };
	struct msghdr out = { .msg_name = &at_b,
			      .msg_namelen = addr_len(family),
			      .msg_iov = parts,
			      .msg_iovlen = 2 };
	snprintf(name, sizeof name, "%s sendmsg with two iovecs", fam);
	check_int(name, sendmsg(a, &out, 0), 8);
	snprintf(name, sizeof name, "%s the iovecs arrive as one datagram", fam);
	check_bytes(name, udp_recvfrom(b, buf, sizeof buf, 0, &from), buf, "gathered");

	/* connect()ed UDP: send without an address, getpeername, filtering. */
	snprintf(name, sizeof name, "%s connect a UDP socket", fam);
	check_call(name, connect(a, (struct sockaddr *)&at_b, addr_len(family)));
	struct sockaddr_storage peer = peer_of(a);
	snprintf(name, sizeof name, "%s getpeername of a connected UDP socket", fam);
	report(name, same_addr(&peer, &at_b));
	snprintf(name, sizeof name, "%s send on a connected UDP socket", fam);
	check_int(name, send(a, "connected", 9, 0), 9);
	snprintf(name, sizeof name, "%s the connected send arrives from the sender", fam);
	n = udp_recvfrom(b, buf, sizeof buf, 0, &from);
	check_int(name, n == 9 && memcmp(buf, "connected", 9) == 0 && same_addr(&from, &at_a), 1);
	int c = udp_socket(family);
	sendto(c, "stranger", 8, 0, (struct sockaddr *)&at_a, addr_len(family));
	sendto(b, "peer", 4, 0, (struct sockaddr *)&at_a, addr_len(family));
	snprintf(name, sizeof name, "%s a connected UDP socket takes only its peer's datagrams", fam);
	check_bytes(name, udp_recvfrom(a, buf, sizeof buf, 0, &from), buf, "peer");
	snprintf(name, sizeof name, "%s send on an unconnected UDP socket -> EDESTADDRREQ", fam);
	check_errno(name, send(b, "x", 1, 0), EDESTADDRREQ);

	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = b }, ready;
	epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev);
	snprintf(name, sizeof name, "%s epoll: no datagram, not readable", fam);
	check_int(name, epoll_wait(ep, &ready, 1, 0), 0);
	send(a, "wake", 4, 0);
	snprintf(name, sizeof name, "%s epoll: a datagram makes it readable", fam);
	check_int(name, epoll_wait(ep, &ready, 1, DEADLINE_MS) == 1 && (ready.events & EPOLLIN), 1);
	recv(b, buf, sizeof buf, 0);
	close(ep);
	close(a);
	close(b);
	close(c);

	/* Bound twice without SO_REUSEADDR. */
	a = udp_socket(family);
	at_a = name_of(a);
	b = socket(family, SOCK_DGRAM, 0);
	snprintf(name, sizeof name, "%s second bind to a bound port -> EADDRINUSE", fam);
	check_errno(name, bind(b, (struct sockaddr *)&at_a, addr_len(family)), EADDRINUSE);
	close(a);
	close(b);
}

/* ---- two processes ---- */

/* Runs `child(arg)` in a forked process; returns its pid. */
static pid_t spawn(int (*child)(long), long arg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child(arg));
	return pid;
}

/* The child exited 0 within the deadline. */
static int reaped_ok(pid_t pid)
{
	int status = 0;
	for (int waited = 0; waited < DEADLINE_MS; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (r < 0)
			return 0;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return 0;
}

/* Echoes the stream on fd `fd` upper-cased until EOF. */
static int upper_echo(long fd)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n == 0)
			return 0;
		if (n < 0)
			return 1;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] >= 'a' && buf[i] <= 'z')
				buf[i] -= 32;
		if (send_all(fd, buf, n) != n)
			return 1;
	}
}

/* Connects to the TCP port `port` on 127.0.0.1, sends 256 KiB, checks the echo. */
static int tcp_client_child(long port)
{
	enum { SIZE = 256 * 1024 };
	static char out[SIZE], back[SIZE];
	struct sockaddr_storage at = loopback(AF_INET, port);
	int fd = tcp_connect(&at);
	if (fd < 0)
		return 2;
	for (int i = 0; i < SIZE; i++)
		out[i] = 'a' + i % 26;
	/* Send and read in turns (the echo could fill both directions' buffers otherwise). */
	for (int at_byte = 0; at_byte < SIZE; at_byte += 16384) {
		if (send_all(fd, out + at_byte, 16384) != 16384 ||
		    recv_all(fd, back + at_byte, 16384) != 16384)
			return 3;
	}
	shutdown(fd, SHUT_WR);
	if (!reads_eof(fd))
		return 4;
	for (int i = 0; i < SIZE; i++)
		if (back[i] != out[i] - 32)
			return 5;
	close(fd);
	return 0;
}

/* Connects to the parent's AF_UNIX listener (at the path unix_path gives "fork.sock"). */
static int unix_client_child(long unused)
{
	(void)unused;
	struct sockaddr_un un;
	socklen_t len;
	char buf[16];
	unix_path(&un, &len, "fork.sock");
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&un, len) != 0)
		return 2;
	if (send_all(fd, "from the child", 14) != 14)
		return 3;
	if (recv_all(fd, buf, 16) != 16 || memcmp(buf, "from the parent!", 16) != 0)
		return 4;
	close(fd);
	return 0;
}

/* Echoes UDP datagrams on the bound socket `fd` back to their senders until "quit". */
static int udp_echo_child(long fd)
{
	char buf[2048];
	struct sockaddr_storage from;
	for (;;) {
		long n = udp_recvfrom(fd, buf, sizeof buf, 0, &from);
		if (n < 0)
			return 1;
		if (n == 4 && memcmp(buf, "quit", 4) == 0)
			return 0;
		if (sendto(fd, buf, n, 0, (struct sockaddr *)&from, addr_len(from.ss_family)) != n)
			return 2;
	}
}

static void two_processes(void)
{
	char buf[64];
	/* A socketpair shared across fork. */
	int sv[2] = { -1, -1 };
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pid_t pid = spawn(upper_echo, sv[1]);
	close(sv[1]);
	send_all(sv[0], "hello child", 11);
	check_bytes("fork unix socketpair: the child echoes upper-cased", recv_all(sv[0], buf, 11),
		    buf, "HELLO CHILD");
	shutdown(sv[0], SHUT_WR);
	check_int("fork unix socketpair: EOF once the child exits", reads_eof(sv[0]), 1);
	check_int("fork unix socketpair: the child exits 0", reaped_ok(pid), 1);
	close(sv[0]);

	/* A child connecting to the parent's AF_UNIX listener on a path. */
	struct sockaddr_un un;
	socklen_t len;
	unix_path(&un, &len, "fork.sock");
	unlink(un.sun_path);
	int listener = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(listener, (struct sockaddr *)&un, len);
	listen(listener, 4);
	pid = spawn(unix_client_child, 0);
	int server = accept_one(listener, 0);
	check_call("fork unix path: the parent accepts the child", server);
	check_bytes("fork unix path: the child's message", recv_all(server, buf, 14), buf,
		    "from the child");
	send_all(server, "from the parent!", 16);
	check_int("fork unix path: the child got the answer and exits 0", reaped_ok(pid), 1);
	close(server);
	close(listener);
	unlink(un.sun_path);

	/* A child TCP client against a parent echo server on 127.0.0.1. */
	listener = tcp_listener(AF_INET);
	struct sockaddr_storage at = name_of(listener);
	pid = spawn(tcp_client_child, port_of(&at));
	server = accept_one(listener, 0);
	check_call("fork tcp: the parent accepts the child's connection", server);
	check_int("fork tcp: the parent echoes 256 KiB until EOF", server >= 0 && upper_echo(server) == 0,
		  1);
	close(server);
	check_int("fork tcp: the child saw its data upper-cased and exits 0", reaped_ok(pid), 1);
	close(listener);

	/* A child UDP echo server. */
	int echo = udp_socket(AF_INET), me = udp_socket(AF_INET);
	struct sockaddr_storage echo_at = name_of(echo), from;
	pid = spawn(udp_echo_child, echo);
	close(echo);
	int echoed = 0;
	for (int i = 0; i < 100; i++) {
		char msg[32];
		int n = snprintf(msg, sizeof msg, "datagram %d", i);
		sendto(me, msg, n, 0, (struct sockaddr *)&echo_at, sizeof(struct sockaddr_in));
		long got = udp_recvfrom(me, buf, sizeof buf, 0, &from);
		if (got != n || memcmp(buf, msg, n) != 0 || !same_addr(&from, &echo_at))
			break; /* UDP over loopback loses nothing: one miss is a failure */
		echoed++;
	}
	check_int("fork udp: 100 datagrams echoed by the child", echoed, 100);
	sendto(me, "quit", 4, 0, (struct sockaddr *)&echo_at, sizeof(struct sockaddr_in));
	check_int("fork udp: the child exits 0", reaped_ok(pid), 1);
	close(me);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		dir = argv[1];
	me = getpid();
	signal(SIGPIPE, SIG_IGN);
	unix_stream_pair();
	unix_stream_names();
	unix_dgram();
	unix_seqpacket_pair();
	tcp_options(AF_INET, "tcp4");
	tcp_options(AF_INET6, "tcp6");
	tcp_connection(AF_INET, "tcp4");
	tcp_connection(AF_INET6, "tcp6");
	tcp_nonblocking_connect(AF_INET, "tcp4");
	tcp_nonblocking_connect(AF_INET6, "tcp6");
	tcp_errors(AF_INET, "tcp4");
	tcp_errors(AF_INET6, "tcp6");
	tcp_bulk(AF_INET, "tcp4");
	tcp_bulk(AF_INET6, "tcp6");
	tcp_dual_stack();
	udp(AF_INET, "udp4");
	udp(AF_INET6, "udp6");
	two_processes();
	if (failures == 0) {
		printf("sockets: all checks passed\n");
		return 0;
	}
	printf("sockets: %d checks FAILED\n", failures);
	return 1;
}
