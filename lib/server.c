/*
 * server.c - run postgres on a data directory, know at once when it is
 * ready, and stop it.
 *
 * Readiness: the postmaster rewrites line 8 of postmaster.pid to "ready"
 * the moment it accepts connections.  We read that line every 0.25 ms
 * while waiting on a pidfd (the server died), so a crash is seen at once
 * and readiness within 0.25 ms, on any filesystem.  Not inotify: its
 * events do arrive (tmpfs, ext4, overlayfs on 6.x), but closing an
 * inotify instance that held a watch waits for an SRCU grace period, 0.1
 * to 14 ms measured here, on the path of every `pgsnap new`; it made
 * readiness known a median 8 ms after the server's "ready" log line.  A
 * check is an open+read of a 100-byte file (~10 us): about 120 in a 30 ms
 * start.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define LOCK_LINE_STATUS 8
#define READY_POLL_US 250
#define READY_NET_US 20000

void log_tail(const char *path, int lines, char *buf, size_t len)
{
	char *text = NULL, *p;
	size_t n, o = 0;
	int seen = 0;

	buf[0] = '\0';
	if (read_file(path, 1 << 20, &text, &n) < 0)
		return;
	while (n && text[n - 1] == '\n')
		text[--n] = '\0';
	p = text + n;
	while (p > text && seen < lines) {
		p--;
		if (*p == '\n')
			seen++;
	}
	if (*p == '\n')
		p++;
	for (; *p && o + 4 < len; p++) {
		if (*p == '\n') {
			o += (size_t)snprintf(buf + o, len - o, " | ");
		} else {
			buf[o++] = *p;
		}
	}
	buf[o < len ? o : len - 1] = '\0';
	free(text);
}

/* 1: ready, 0: not yet, <0: the file names another server. */
static int pidfile_ready(const char *datadir, pid_t pid)
{
	char path[700], buf[1024];
	int line = 1;
	char *p, *nl;

	snprintf(path, sizeof(path), "%s/postmaster.pid", datadir);
	if (read_file_buf(path, buf, sizeof(buf)) <= 0)
		return 0;
	if (strtol(buf, NULL, 10) != pid)
		return 0;
	for (p = buf; line < LOCK_LINE_STATUS; line++) {
		nl = strchr(p, '\n');
		if (!nl)
			return 0;
		p = nl + 1;
	}
	return strncmp(p, "ready", 5) == 0;
}

int free_tcp_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	if (fd < 0)
		return -errno;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int free_tcp_port_dual(void)
{
	int tries;

	for (tries = 0; tries < 20; tries++) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
		int port = free_tcp_port(), fd, r, e;

		if (port < 0)
			return port;
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return errno == EAFNOSUPPORT ? -EADDRNOTAVAIL : -errno;
		a.sin6_addr = in6addr_loopback;
		a.sin6_port = htons((uint16_t)port);
		r = bind(fd, (struct sockaddr *)&a, sizeof(a));
		e = errno;
		close(fd);
		if (r == 0)
			return port;
		if (e != EADDRINUSE)
			return -e;
	}
	return -EADDRINUSE;
}

static int open_log(const pgsnap_store *s, const char *path)
{
	fs_ids ids = fs_become(s);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int r = fd < 0 ? -errno : fd;
	fs_restore(ids);
	return r;
}

int server_start_ready(const pgsnap_store *s, const server_start *st,
		       pid_t *pidp, pgsnap_error *err)
{
	char prog[600], port[16], listen[64], tail[700];
	cleanup_free char **extra = NULL;
	const char *argv[80], *ready;
	int argc = 0, nextra = 0, i, r;
	cleanup_close int logfd = -1, pfd = -1, ifd = -1;
	spawn_opts so = { 0 };
	int64_t deadline;
	pid_t pid;

	if (st->server_opts && split_words(st->server_opts, &extra, &nextra) < 0)
		return pgsnap_err(err, EINVAL,
			"-o '%s': unbalanced quotes", st->server_opts);
	if (nextra > 40)
		return pgsnap_err(err, E2BIG, "-o: too many server options");
	snprintf(prog, sizeof(prog), "%s/postgres", s->bindir);
	snprintf(port, sizeof(port), "%d", st->port);
	/* Loopback only, never '*': the password is the only guard on TCP
	 * and it should face local users, not the network. */
	snprintf(listen, sizeof(listen), "listen_addresses=%s",
		 !st->tcp ? "" : st->ipv6 ? "127.0.0.1,::1" : "127.0.0.1");
	/* The full path: postgres finds its installation (sharedir,
	 * pkglibdir) from argv[0], through PATH when it is a bare name. */
	argv[argc++] = prog;
	argv[argc++] = "-D";
	argv[argc++] = st->datadir;
	argv[argc++] = "-k";
	argv[argc++] = st->sockdir;
	argv[argc++] = "-p";
	argv[argc++] = port;
	argv[argc++] = "-c";
	argv[argc++] = listen;
	/* Every disconnection touches the log: when a client last left is
	 * its mtime, how a time limit tells an idle clone (proc.c). */
	argv[argc++] = "-c";
	argv[argc++] = "log_disconnections=on";
	for (i = 0; i < nextra; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;

	logfd = open_log(s, st->log_path);
	if (logfd < 0)
		return pgsnap_errno(err, logfd, "cannot create log %s",
				    st->log_path);
	so.store = s;
	so.out_fd = logfd;
	so.new_session = true;
	so.overlay = st->overlay;
	/* Readiness is a line postgres writes into postmaster.pid: woken by
	 * inotify when a file there is written, not by polling it (a poll
	 * every 250 us was most of the service's CPU while a pool refills).
	 * The timer stays as a net for filesystems that send no events. */
	ready = st->ready_dir ? st->ready_dir : st->datadir;
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ifd >= 0 && inotify_add_watch(ifd, ready, IN_CLOSE_WRITE |
					  IN_MODIFY | IN_CREATE |
					  IN_MOVED_TO) < 0) {
		close(ifd);
		ifd = -1;
	}
	pid = spawn_process(prog, (char *const *)argv, &so);
	if (pid < 0)
		return pgsnap_errno(err, pid, "cannot start %s", prog);
	pfd = pidfd_open_pid(pid);

	deadline = mono_us() + (int64_t)st->timeout_ms * 1000;
	for (;;) {
		struct pollfd p[2] = { { pfd, POLLIN, 0 }, { ifd, POLLIN, 0 } };
		struct timespec ts = { 0, (ifd >= 0 ? READY_NET_US :
					   READY_POLL_US) * 1000 };
		char drain[4096];
		int64_t left;
		int status = 0;

		if (pidfile_ready(ready, pid) == 1) {
			*pidp = pid;
			return 0;
		}
		left = (deadline - mono_us()) / 1000;
		if (left <= 0)
			break;
		r = ppoll(pfd >= 0 ? p : p + 1, (pfd >= 0) + (ifd >= 0), &ts,
			  NULL);
		if (r < 0 && errno != EINTR)
			break;
		while (ifd >= 0 && read(ifd, drain, sizeof(drain)) > 0)
			;
		/* Without a pidfd (kernel < 5.3), ask waitpid each turn. */
		if ((p[0].revents & POLLIN) ||
		    (pfd < 0 && waitpid(pid, &status, WNOHANG) == pid)) {
			if (pfd >= 0)
				waitpid(pid, &status, 0);
			log_tail(st->log_path, 3, tail, sizeof(tail));
			/* The bind error may be above the last 3 lines:
			 * "could not create listen socket" follows it. */
			if (strstr(tail, "could not bind") ||
			    strstr(tail, "Address already in use") ||
			    strstr(tail, "could not create listen socket"))
				return pgsnap_err(err, EADDRINUSE,
					"server could not bind port %d: %s",
					st->port, tail);
			return pgsnap_err(err, ECHILD,
				"server exited during start (%s %d): %s",
				WIFEXITED(status) ? "status" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) :
				WTERMSIG(status),
				tail[0] ? tail : "no log output");
		}
	}
	server_stop(pid, 0, 2000);
	log_tail(st->log_path, 3, tail, sizeof(tail));
	return pgsnap_err(err, ETIMEDOUT,
		"server not ready after %d ms: %s", st->timeout_ms,
		tail[0] ? tail : "no log output");
}

void server_clear_socket(const char *sockdir, int port)
{
	char lock[700], sock[700], text[64];
	long pid;

	/* A server killed with SIGKILL leaves its socket's lock file; while
	 * it is a zombie (its parent gone, not yet reaped) postgres takes it
	 * for alive and refuses the socket to its successor. */
	snprintf(sock, sizeof(sock), "%s/.s.PGSQL.%d", sockdir, port);
	snprintf(lock, sizeof(lock), "%s.lock", sock);
	if (read_file_buf(lock, text, sizeof(text)) <= 0)
		return;
	text[strcspn(text, "\n")] = '\0';
	if (parse_long(text, 1, 1L << 30, &pid) == 0 && proc_alive((pid_t)pid, 0))
		return;
	unlink(sock);
	unlink(lock);
}

int server_quit(pid_t pid, unsigned long long start, int timeout_ms)
{
	if (!proc_alive(pid, start))
		return 0;
	if (kill(pid, SIGQUIT) < 0)
		return errno == ESRCH ? 0 : -errno;
	if (wait_pid_exit(pid, timeout_ms) == 0)
		return 0;
	kill(pid, SIGKILL);
	return wait_pid_exit(pid, 2000);
}

int server_stop(pid_t pid, unsigned long long start, int timeout_ms)
{
	if (!proc_alive(pid, start))
		return 0;
	if (kill(pid, SIGINT) < 0)
		return errno == ESRCH ? 0 : -errno;
	if (wait_pid_exit(pid, timeout_ms) == 0)
		return 0;
	return server_quit(pid, start, 2000);
}
