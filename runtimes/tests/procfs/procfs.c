/*
 * procfs: what programs read from /proc and /sys holds as on Linux — the self links, a
 * process's maps, fds, status, stat, cmdline and environ, its threads, and the system files
 * (cpuinfo, meminfo, mounts, stat, uptime, sysfs CPU lists). Built with `gcc -static` (glibc).
 * Each check tests a property that holds on any Linux (no values that differ between machines)
 * and prints one line, `NAME: ok` or `FAIL NAME: …`; exit status 0 when all passed.
 *
 * Usage: procfs [DIR]   (a writable directory for a scratch file; default /tmp)
 *        procfs --child READY_FD HOLD_FD ARGS…   (internal: the exec'd child of the cmdline check)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
static char detail[3 * PATH_MAX];

static void report(const char *name, int ok)
{
	if (ok) {
		printf("%s: ok\n", name);
	} else {
		printf("FAIL %s: %s\n", name, detail);
		failures++;
	}
	fflush(stdout);
	detail[0] = 0;
}

#define WHY(...) snprintf(detail, sizeof detail, __VA_ARGS__)

/* Reads a whole file with raw read(2) calls of `chunk` bytes; returns its length, -1 on error
 * (errno kept). No stdio: nothing is allocated while reading our own maps. */
static long read_file(const char *path, char *buf, size_t size, size_t chunk)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len + 1 < size) {
		size_t want = size - 1 - len;
		if (want > chunk)
			want = chunk;
		ssize_t n = read(fd, buf + len, want);
		if (n < 0) {
			int err = errno;
			close(fd);
			errno = err;
			return -1;
		}
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = 0;
	close(fd);
	return (long)len;
}

/* The value after "Key:" in a status-style text, or NULL. */
static const char *field(const char *text, const char *key)
{
	size_t klen = strlen(key);
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
	}
	return NULL;
}

static char buf[1 << 17];
static char buf2[1 << 17];

static void self_links(void)
{
	char target[PATH_MAX], want[64];
	ssize_t n = readlink("/proc/self/exe", target, sizeof target - 1);
	int ok = n > 0;
	if (ok) {
		target[n] = 0;
		ok = target[0] == '/' && n >= 7 && strcmp(target + n - 7, "/procfs") == 0;
	}
	if (!ok)
		WHY("readlink gave %zd: %s", n, n > 0 ? target : strerror(errno));
	report("readlink /proc/self/exe ends with /procfs", ok);

	n = readlink("/proc/self", target, sizeof target - 1);
	snprintf(want, sizeof want, "%d", getpid());
	ok = n > 0 && (target[n] = 0, strcmp(target, want) == 0);
	if (!ok)
		WHY("readlink gave %zd (%s), pid %s", n, n > 0 ? target : strerror(errno), want);
	report("/proc/self is a link to the pid", ok);

	n = readlink("/proc/thread-self", target, sizeof target - 1);
	snprintf(want, sizeof want, "%d/task/%ld", getpid(), (long)syscall(SYS_gettid));
	ok = n > 0 && (target[n] = 0, strcmp(target, want) == 0);
	if (!ok)
		WHY("readlink gave %zd (%s), want %s", n, n > 0 ? target : strerror(errno), want);
	report("/proc/thread-self is a link to pid/task/tid", ok);

	struct stat st, exe_st, dir_st;
	ok = lstat("/proc/self", &st) == 0 && S_ISLNK(st.st_mode) && stat("/proc/self/exe", &exe_st) == 0 &&
	     S_ISREG(exe_st.st_mode) && stat("/proc/self/fd", &dir_st) == 0 && S_ISDIR(dir_st.st_mode) &&
	     stat("/proc/self/status", &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
	if (!ok)
		WHY("%s", strerror(errno));
	report("stat: /proc/self a link, exe a file, fd a directory, status empty-sized", ok);
}

static void maps(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	char *grown = sbrk(8192);
	unsigned long in_heap = (unsigned long)sbrk(0) - 1;
	int local = 0;
	unsigned long on_stack = (unsigned long)&local;
	long len = read_file("/proc/self/maps", buf, sizeof buf, sizeof buf);
	int has_exe = 0, has_stack = 0, has_heap = 0, well_formed = len > 0;
	for (char *line = buf; len > 0 && *line;) {
		char *nl = strchr(line, '\n');
		if (!nl) {
			well_formed = 0;
			break;
		}
		*nl = 0;
		unsigned long start, end, offset, inode;
		unsigned major, minor;
		char perms[8];
		int name_at = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &start, &end, perms, &offset, &major, &minor,
			   &inode, &name_at) < 7 ||
		    strlen(perms) != 4 || start >= end) {
			well_formed = 0;
			WHY("bad line: %.300s", line);
		}
		const char *name = line + name_at;
		/* Linux pads the header to 72 columns and a space: the name starts at column 73. */
		if (*name && name_at != 73) {
			well_formed = 0;
			WHY("name at column %d: %.300s", name_at, line);
		}
		if (strcmp(name, exe) == 0 && perms[2] == 'x')
			has_exe = 1;
		if (strcmp(name, "[stack]") == 0 && start <= on_stack && on_stack < end)
			has_stack = 1;
		if (strcmp(name, "[heap]") == 0 && start <= in_heap && in_heap < end)
			has_heap = 1;
		line = nl + 1;
	}
	if (!detail[0] && !(has_exe && has_stack && has_heap))
		WHY("len %ld exe %d stack %d heap %d (grown %p)", len, has_exe, has_stack, has_heap, grown);
	report("/proc/self/maps lists the executable, [stack] and [heap] after brk",
	       well_formed && has_exe && has_stack && has_heap);

	/* Small reads see the same text as one large read. */
	long whole = read_file("/proc/self/maps", buf, sizeof buf, sizeof buf);
	long pieces = read_file("/proc/self/maps", buf2, sizeof buf2, 7);
	int same = whole > 0 && whole == pieces && memcmp(buf, buf2, whole) == 0;
	if (!same)
		WHY("one read %ld bytes, 7-byte reads %ld bytes", whole, pieces);
	report("/proc/self/maps read in 7-byte pieces equals one read", same);
}

static void fds(const char *dir)
{
	int p[2];
	if (pipe(p) != 0) {
		WHY("pipe: %s", strerror(errno));
		report("pipe", 0);
		return;
	}
	DIR *d = opendir("/proc/self/fd");
	int seen[3] = {0, 0, 0}, seen_pipe = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		if (fd >= 0 && fd < 3)
			seen[fd] = 1;
		if (fd == p[0] && e->d_type == DT_LNK)
			seen_pipe = 1;
	}
	if (d)
		closedir(d);
	char path[64], target[PATH_MAX], want[64];
	struct stat st;
	fstat(p[0], &st);
	snprintf(want, sizeof want, "pipe:[%lu]", (unsigned long)st.st_ino);
	snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
	ssize_t n = readlink(path, target, sizeof target - 1);
	int ok = seen[0] && seen[1] && seen[2] && seen_pipe && n > 0 && (target[n] = 0, strcmp(target, want) == 0);
	if (!ok)
		WHY("0:%d 1:%d 2:%d pipe listed:%d link %zd %s want %s", seen[0], seen[1], seen[2], seen_pipe,
		    n, n > 0 ? target : strerror(errno), want);
	report("/proc/self/fd has 0,1,2 and the pipe it opened as pipe:[...]", ok);
	close(p[0]);
	close(p[1]);

	char file[PATH_MAX], real[PATH_MAX];
	snprintf(file, sizeof file, "%s/procfs-scratch", dir);
	int fd = open(file, O_CREAT | O_RDWR | O_TRUNC, 0600);
	ok = fd >= 0 && realpath(file, real) != NULL;
	if (ok) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof target - 1);
		ok = n > 0 && (target[n] = 0, strcmp(target, real) == 0);
		struct stat link_st;
		ok = ok && lstat(path, &link_st) == 0 && S_ISLNK(link_st.st_mode);
		if (!ok)
			WHY("link %zd %s, file %s", n, n > 0 ? target : strerror(errno), real);
	} else {
		WHY("open %s: %s", file, strerror(errno));
	}
	report("/proc/self/fd/N of an opened file links to its path", ok);
	if (fd >= 0)
		close(fd);
	unlink(file);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ok = readlink(path, target, sizeof target) == -1 && errno == ENOENT;
	report("/proc/self/fd/N is gone once N is closed", ok);
}

static void handler(int sig) { (void)sig; }

static int status_mask_has(const char *key, int sig)
{
	long len = read_file("/proc/self/status", buf, sizeof buf, sizeof buf);
	const char *v = len > 0 ? field(buf, key) : NULL;
	if (!v)
		return -1;
	unsigned long long mask = strtoull(v, NULL, 16);
	return (mask >> (sig - 1)) & 1;
}

static void status(void)
{
	long len = read_file("/proc/self/status", buf, sizeof buf, sizeof buf);
	const char *pid = len > 0 ? field(buf, "Pid") : NULL;
	const char *tgid = len > 0 ? field(buf, "Tgid") : NULL;
	const char *ppid = len > 0 ? field(buf, "PPid") : NULL;
	const char *name = len > 0 ? field(buf, "Name") : NULL;
	const char *state = len > 0 ? field(buf, "State") : NULL;
	int ok = pid && tgid && ppid && name && state && atoi(pid) == getpid() && atoi(tgid) == getpid() &&
		 atoi(ppid) == getppid() && strncmp(name, "procfs\n", 7) == 0 && state[0] == 'R';
	if (!ok)
		WHY("status: %.200s", len > 0 ? buf : strerror(errno));
	report("/proc/self/status Name, State, Pid, Tgid and PPid match the process", ok);

	const char *size = field(buf, "VmSize"), *rss = field(buf, "VmRSS"), *threads = field(buf, "Threads");
	ok = size && rss && threads && atol(size) > 0 && atol(rss) > 0 && atol(rss) <= atol(size) &&
	     atoi(threads) == 1 && strstr(size, " kB\n") != NULL;
	if (!ok)
		WHY("VmSize %.20s VmRSS %.20s Threads %.5s", size ? size : "-", rss ? rss : "-",
		    threads ? threads : "-");
	report("/proc/self/status 0 < VmRSS <= VmSize kB, Threads 1", ok);

	/* Signal sets follow sigprocmask and sigaction. */
	int before = status_mask_has("SigBlk", SIGUSR1) == 0 && status_mask_has("SigIgn", SIGUSR2) == 0 &&
		     status_mask_has("SigCgt", SIGALRM) == 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGALRM, handler);
	int after = status_mask_has("SigBlk", SIGUSR1) == 1 && status_mask_has("SigIgn", SIGUSR2) == 1 &&
		    status_mask_has("SigCgt", SIGALRM) == 1;
	if (!(before && after))
		WHY("before %d after %d", before, after);
	report("/proc/self/status SigBlk, SigIgn, SigCgt follow sigprocmask and signal", before && after);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	signal(SIGUSR2, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
}

/* Fields of a /proc/PID/stat line after the command name: fields[0] is field 3 (state). */
static int stat_fields(const char *path, char *comm, size_t comm_size, char **fields, int max)
{
	static char line[4096];
	if (read_file(path, line, sizeof line, sizeof line) <= 0)
		return -1;
	char *open_paren = strchr(line, '('), *close_paren = strrchr(line, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -1;
	snprintf(comm, comm_size, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
	int count = 0;
	for (char *tok = strtok(close_paren + 1, " \n"); tok && count < max; tok = strtok(NULL, " \n"))
		fields[count++] = tok;
	return count;
}

static void stat_file(void)
{
	char comm[64], *f[64];
	int count = stat_fields("/proc/self/stat", comm, sizeof comm, f, 64);
	static char line[4096];
	read_file("/proc/self/stat", line, sizeof line, sizeof line);
	/* Fields 3.. are f[0..]: 4 ppid = f[1], 20 num_threads = f[17], 22 starttime = f[19]. */
	int ok = count >= 50 && atoi(line) == getpid() && strcmp(comm, "procfs") == 0 && strcmp(f[0], "R") == 0 &&
		 atoi(f[1]) == getppid() && atoi(f[2]) == getpgrp() && atoi(f[3]) == getsid(0) &&
		 atoi(f[17]) == 1;
	if (!ok)
		WHY("%d fields: %.300s", count, line);
	report("/proc/self/stat has 52 fields: pid (comm) R ppid pgrp session ... num_threads", ok);

	ok = read_file("/proc/self/statm", line, sizeof line, sizeof line) > 0;
	unsigned long size, resident;
	ok = ok && sscanf(line, "%lu %lu", &size, &resident) == 2 && size > 0 && resident <= size;
	if (!ok)
		WHY("statm: %.100s", line);
	report("/proc/self/statm: resident <= size pages", ok);
}

static void cmdline_self(int argc, char **argv)
{
	long len = read_file("/proc/self/cmdline", buf, sizeof buf, sizeof buf);
	size_t want = 0;
	for (int i = 0; i < argc; i++) {
		memcpy(buf2 + want, argv[i], strlen(argv[i]) + 1);
		want += strlen(argv[i]) + 1;
	}
	int ok = len == (long)want && memcmp(buf, buf2, want) == 0;
	if (!ok)
		WHY("%ld bytes, want %zu", len, want);
	report("/proc/self/cmdline equals argv", ok);

	len = read_file("/proc/self/comm", buf, sizeof buf, sizeof buf);
	ok = len == 7 && memcmp(buf, "procfs\n", 7) == 0;
	if (!ok)
		WHY("comm %.40s", buf);
	report("/proc/self/comm is the program's name", ok);
}

/* A thread that waits until told to end. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int thread_tid, thread_done;

static void *thread_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	thread_tid = (int)syscall(SYS_gettid);
	pthread_cond_broadcast(&cond);
	while (!thread_done)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void threads(void)
{
	pthread_t thread;
	if (pthread_create(&thread, NULL, thread_main, NULL) != 0) {
		WHY("pthread_create failed");
		report("threads", 0);
		return;
	}
	pthread_mutex_lock(&lock);
	while (!thread_tid)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	long len = read_file("/proc/self/status", buf, sizeof buf, sizeof buf);
	const char *count = len > 0 ? field(buf, "Threads") : NULL;
	int listed_self = 0, listed_thread = 0, entries = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		entries++;
		listed_self |= atoi(e->d_name) == getpid();
		listed_thread |= atoi(e->d_name) == thread_tid;
	}
	if (d)
		closedir(d);
	char path[96], comm[64], *f[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", thread_tid);
	int n = stat_fields(path, comm, sizeof comm, f, 64);
	static char line[4096];
	read_file(path, line, sizeof line, sizeof line);
	snprintf(path, sizeof path, "/proc/self/task/%d/status", thread_tid);
	read_file(path, buf2, sizeof buf2, sizeof buf2);
	const char *tpid = field(buf2, "Pid"), *ttgid = field(buf2, "Tgid");
	int ok = count && atoi(count) == 2 && entries == 2 && listed_self && listed_thread && n >= 50 &&
		 atoi(line) == thread_tid && atoi(f[17]) == 2 && tpid && atoi(tpid) == thread_tid && ttgid &&
		 atoi(ttgid) == getpid();
	if (!ok)
		WHY("Threads %.4s, %d entries (self %d thread %d), task stat %.60s", count ? count : "-", entries,
		    listed_self, listed_thread, line);
	report("/proc/self/task lists both threads; task/TID/stat and status show the thread", ok);

	pthread_mutex_lock(&lock);
	thread_done = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
}

/* The exec'd child: says it is ready, then waits for its hold pipe to close. */
static int child_main(int argc, char **argv)
{
	(void)argc;
	int ready = atoi(argv[2]), hold = atoi(argv[3]);
	char c = 'r';
	if (write(ready, &c, 1) != 1)
		return 2;
	while (read(hold, &c, 1) > 0) {
	}
	return 0;
}

static char state_of(const char *path)
{
	char comm[64], *f[64];
	return stat_fields(path, comm, sizeof comm, f, 64) > 0 ? f[0][0] : '?';
}

/* Polls `path` for up to two seconds until its state is `want`. */
static char wait_state(const char *path, char want)
{
	char state = '?';
	for (int i = 0; i < 200; i++) {
		state = state_of(path);
		if (state == want)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return state;
}

static void child(void)
{
	int ready[2], hold[2];
	if (pipe(ready) != 0 || pipe(hold) != 0) {
		WHY("pipe: %s", strerror(errno));
		report("child", 0);
		return;
	}
	char ready_arg[16], hold_arg[16];
	snprintf(ready_arg, sizeof ready_arg, "%d", ready[1]);
	snprintf(hold_arg, sizeof hold_arg, "%d", hold[0]);
	char *args[] = {"procfs-child", "--child", ready_arg, hold_arg, "a b", "", "c", NULL};
	char *env[] = {"PROCFS_TEST=environ", "OTHER=1", NULL};
	pid_t pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		execve("/proc/self/exe", args, env);
		_exit(127);
	}
	close(ready[1]);
	close(hold[0]);
	char c;
	int started = read(ready[0], &c, 1) == 1;

	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	long len = read_file(path, buf, sizeof buf, sizeof buf);
	size_t want = 0;
	for (char **a = args; *a; a++) {
		memcpy(buf2 + want, *a, strlen(*a) + 1);
		want += strlen(*a) + 1;
	}
	int ok = started && len == (long)want && memcmp(buf, buf2, want) == 0;
	if (!ok)
		WHY("started %d, %ld bytes, want %zu", started, len, want);
	report("/proc/<child pid>/cmdline of a forked+exec'd child equals its argv", ok);

	snprintf(path, sizeof path, "/proc/%d/environ", pid);
	len = read_file(path, buf, sizeof buf, sizeof buf);
	ok = len == (long)(strlen(env[0]) + strlen(env[1]) + 2) && strcmp(buf, env[0]) == 0 &&
	     strcmp(buf + strlen(env[0]) + 1, env[1]) == 0;
	if (!ok)
		WHY("%ld bytes: %.60s", len, len > 0 ? buf : strerror(errno));
	report("/proc/<child pid>/environ equals its envp", ok);

	char exe[PATH_MAX], child_exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	snprintf(path, sizeof path, "/proc/%d/exe", pid);
	ssize_t m = readlink(path, child_exe, sizeof child_exe - 1);
	ok = n > 0 && m == n && memcmp(exe, child_exe, n) == 0;
	if (!ok)
		WHY("exe %zd, child's %zd", n, m);
	report("/proc/<child pid>/exe is the same program", ok);

	char comm[64], *f[64];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int count = stat_fields(path, comm, sizeof comm, f, 64);
	char state = wait_state(path, 'S');
	ok = count >= 50 && atoi(f[1]) == getpid() && state == 'S';
	if (!ok)
		WHY("%d fields, ppid %s, state %c", count, count > 1 ? f[1] : "-", state);
	report("/proc/<child pid>/stat: ppid is ours, state S while it waits", ok);

	int listed = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)))
		listed |= atoi(e->d_name) == pid && e->d_type == DT_DIR;
	if (d)
		closedir(d);
	report("readdir /proc lists the child", listed);

	close(hold[1]);
	state = wait_state(path, 'Z');
	int status = 0;
	waitpid(pid, &status, 0);
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d", pid);
	int gone = stat(path, &st) == -1 && errno == ENOENT;
	ok = state == 'Z' && WIFEXITED(status) && WEXITSTATUS(status) == 0 && gone;
	if (!ok)
		WHY("state %c, status %#x, gone %d", state, status, gone);
	report("the child is Z after exit and /proc/<pid> is gone once reaped", ok);
	close(ready[0]);
}

/* Counts the CPUs a list like "0-2,4" names. */
static int count_list(const char *list)
{
	int count = 0;
	while (*list && *list != '\n') {
		char *end;
		long a = strtol(list, &end, 10), b = a;
		if (end == list)
			return -1;
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		count += b - a + 1;
		list = *end == ',' ? end + 1 : end;
	}
	return count;
}

static void system_files(void)
{
	long len = read_file("/proc/cpuinfo", buf, sizeof buf, 4096);
	int processors = 0, with_flags = 0;
	for (char *line = buf; len > 0 && line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		processors += strncmp(line, "processor\t:", 11) == 0;
		with_flags += strncmp(line, "flags\t\t:", 8) == 0;
	}
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	static char list[256];
	int listed = read_file("/sys/devices/system/cpu/online", list, sizeof list, sizeof list) > 0 ? count_list(list) : -1;
	int possible = read_file("/sys/devices/system/cpu/possible", list, sizeof list, sizeof list) > 0 ? count_list(list) : -1;
	int ok = processors > 0 && processors == online && processors == listed && with_flags == processors &&
		 possible >= listed;
	if (!ok)
		WHY("processor lines %d, flags lines %d, sysconf %ld, online %d, possible %d", processors,
		    with_flags, online, listed, possible);
	report("/proc/cpuinfo processor lines == sysconf(_SC_NPROCESSORS_ONLN) == /sys/devices/system/cpu/online count", ok);

	int cpu0 = 0;
	DIR *d = opendir("/sys/devices/system/cpu");
	struct dirent *e;
	while (d && (e = readdir(d)))
		cpu0 |= strcmp(e->d_name, "cpu0") == 0;
	if (d)
		closedir(d);
	struct stat st;
	ok = cpu0 && stat("/sys/devices/system/cpu/cpu0", &st) == 0 && S_ISDIR(st.st_mode);
	report("/sys/devices/system/cpu lists cpu0, a directory", ok);

	len = read_file("/proc/meminfo", buf, sizeof buf, sizeof buf);
	const char *total = len > 0 ? field(buf, "MemTotal") : NULL, *free_ = len > 0 ? field(buf, "MemFree") : NULL;
	ok = total && free_ && atol(total) > 0 && atol(free_) <= atol(total) && field(buf, "MemAvailable") &&
	     field(buf, "SwapTotal") && strncmp(buf, "MemTotal:", 9) == 0;
	if (!ok)
		WHY("%.120s", len > 0 ? buf : strerror(errno));
	report("/proc/meminfo MemTotal > 0, MemFree <= MemTotal", ok);

	len = read_file("/proc/mounts", buf, sizeof buf, sizeof buf);
	int root = 0, proc = 0;
	for (char *line = buf; len > 0 && line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char dev[128], at[256], type[64];
		if (sscanf(line, "%127s %255s %63s", dev, at, type) != 3)
			continue;
		root |= strcmp(at, "/") == 0;
		proc |= strcmp(at, "/proc") == 0 && strcmp(type, "proc") == 0;
	}
	ok = root && proc;
	if (!ok)
		WHY("%.200s", len > 0 ? buf : strerror(errno));
	report("/proc/mounts has / and /proc", ok);

	double up1 = 0, idle1 = 0, up2 = 0, idle2 = 0;
	ok = read_file("/proc/uptime", buf, sizeof buf, sizeof buf) > 0 && sscanf(buf, "%lf %lf", &up1, &idle1) == 2;
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	ok = ok && read_file("/proc/uptime", buf, sizeof buf, sizeof buf) > 0 && sscanf(buf, "%lf %lf", &up2, &idle2) == 2;
	ok = ok && up1 > 0 && up2 > up1 && idle1 >= 0;
	if (!ok)
		WHY("%.60s", buf);
	report("/proc/uptime parses and advances", ok);

	len = read_file("/proc/stat", buf, sizeof buf, sizeof buf);
	int cpu_lines = 0;
	unsigned long long user, nice, system, idle;
	ok = len > 0 && sscanf(buf, "cpu %llu %llu %llu %llu", &user, &nice, &system, &idle) == 4;
	for (char *line = buf; len > 0 && line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		cpu_lines += strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9';
	ok = ok && cpu_lines == processors && strstr(buf, "\nbtime ") &&
	     strstr(buf, "\nprocesses ");
	if (!ok)
		WHY("%d cpuN lines: %.120s", cpu_lines, buf);
	report("/proc/stat has a cpu line, one cpuN line per CPU, btime and processes", ok);
}

static void read_only(void)
{
	/* Linux lets root open a /proc file for writing and fails the write (EINVAL for a process's
	 * files, EIO for /proc's own); anyone else gets EACCES at open. */
	const char *files[] = {"/proc/self/status", "/proc/cpuinfo", "/proc/uptime", NULL};
	int ok = 1;
	for (const char **f = files; *f; f++) {
		int fd = open(*f, O_WRONLY);
		if (fd >= 0) {
			ssize_t n = write(fd, "x", 1);
			if (n != -1 || (errno != EINVAL && errno != EIO)) {
				ok = 0;
				WHY("write %s: %zd %s", *f, n, strerror(errno));
			}
			close(fd);
		} else if (errno != EACCES) {
			ok = 0;
			WHY("open %s: %s", *f, strerror(errno));
		}
	}
	errno = 0;
	int fd = open("/sys/devices/system/cpu/online", O_WRONLY);
	if (fd >= 0 || errno != EACCES) {
		ok = 0;
		WHY("open /sys/devices/system/cpu/online for writing: %d %s", fd, strerror(errno));
	}
	report("/proc files refuse writes; sysfs refuses write opens with EACCES", ok);

	ok = mkdir("/proc/self/x", 0755) == -1 && unlink("/proc/self/status") == -1;
	report("/proc refuses mkdir and unlink", ok);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "--child") == 0)
		return child_main(argc, argv);
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	self_links();
	maps();
	fds(dir);
	status();
	stat_file();
	cmdline_self(argc, argv);
	threads();
	child();
	system_files();
	read_only();
	if (failures == 0) {
		printf("procfs: all checks passed\n");
		return 0;
	}
	printf("procfs: %d checks FAILED\n", failures);
	return 1;
}
