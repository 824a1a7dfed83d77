/*
 * supervisor.c - one small detached process per store enforces -w and
 * --owner, and removes clones whose server died.
 *
 * It is found through run/supervisor.lock: whoever holds an flock on it is
 * the supervisor (the file holds its pid, for people).  `new` takes that
 * lock itself when it is free and hands the locked file to the supervisor
 * it starts (an inherited fd shares the lock), so there is no instant when
 * two supervisors could both believe they are the one.
 *
 * It leaves when nothing is left to watch.  It decides so under the
 * registry lock and lets go of its own lock before the registry's, while
 * `new` writes its record before it looks for a supervisor: either the
 * supervisor sees the new record or `new` sees no supervisor and starts
 * one.
 *
 * Each round is a gc pass (gc.c); between rounds it sleeps until the
 * next time limit ends, at most a second (owners and servers that die),
 * a quarter of a second while a clone past its time still has clients.
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define IDLE_ROUND_MS 1000
#define BUSY_ROUND_MS 250

static int open_lock(const pgsnap_store *s)
{
	char path[600];

	if (path_join(path, sizeof(path), s->run, "supervisor.lock") < 0)
		return -ENAMETOOLONG;
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

bool supervisor_running(const pgsnap_store *s)
{
	cleanup_close int fd = open_lock(s);

	return fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 &&
	       errno == EWOULDBLOCK;
}

/* The pgsnap binary: ours when we are pgsnap, else PGSNAP_EXE. */
int pgsnap_exe_find(char *buf, size_t len)
{
	const char *env = getenv("PGSNAP_EXE");
	char self[PATH_MAX];
	const char *base;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		base = strrchr(self, '/');
		base = base ? base + 1 : self;
		/* /proc/self/exe, not the name: it still works when the
		 * binary was replaced or deleted since we started. */
		if (!strcmp(base, "pgsnap")) {
			snprintf(buf, len, "/proc/self/exe");
			return 0;
		}
	}
	if (env && *env == '/' && access(env, X_OK) == 0) {
		snprintf(buf, len, "%s", env);
		return 0;
	}
	return -ENOENT;
}

int supervisor_ensure(const pgsnap_store *s, pgsnap_error *err)
{
	cleanup_close int fd = open_lock(s), pass = -1;
	char exe[PATH_MAX], fdarg[16], homerun[600];
	const char *argv[12];
	spawn_opts so = { 0 };
	int argc = 0, status;
	pid_t pid;

	if (fd < 0)
		return pgsnap_errno(err, fd == -ENAMETOOLONG ? fd : errno,
				    "cannot open the supervisor lock");
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 0 :
			pgsnap_errno(err, errno, "cannot lock the supervisor "
				     "lock");
	if (pgsnap_exe_find(exe, sizeof(exe)) < 0)
		return pgsnap_err(err, ENOENT, "no pgsnap binary to run the "
				  "supervisor (set PGSNAP_EXE)");
	/* The supervisor inherits this open file, and with it the lock. */
	pass = fcntl(fd, F_DUPFD, 3);
	if (pass < 0)
		return pgsnap_errno(err, errno, "cannot pass the lock");
	snprintf(fdarg, sizeof(fdarg), "%d", pass);
	argv[argc++] = "pgsnap";
	argv[argc++] = "__supervise";
	argv[argc++] = "--lock-fd";
	argv[argc++] = fdarg;
	argv[argc++] = "--run";
	argv[argc++] = s->run;
	/* A store opened with an explicit home keeps run/ inside it; other
	 * stores come from the environment, which the child inherits. */
	snprintf(homerun, sizeof(homerun), "%s/run", s->home);
	if (!strcmp(homerun, s->run)) {
		argv[argc++] = "--home";
		argv[argc++] = s->home;
	}
	argv[argc++] = "--user";
	argv[argc++] = s->user;
	argv[argc] = NULL;
	so.out_fd = -1;
	so.new_session = true;
	so.cwd = "/";
	pid = spawn_process(exe, (char *const *)argv, &so);
	if (pid < 0)
		return pgsnap_errno(err, pid, "cannot start the supervisor");
	/* It forks once more and its parent exits at once: reaping that
	 * one leaves no zombie behind in a long-lived caller. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

/* Under the registry lock: still nothing to watch?  Then let go of the
 * supervisor lock before the registry lock (see the top). */
static bool try_exit(pgsnap_store *s, int lock_fd)
{
	registry reg;
	struct stat st;
	size_t i;

	if (registry_lock(s, &reg, NULL) < 0)
		return stat(s->run, &st) < 0; /* the store is gone */
	for (i = 0; i < reg.n; i++)
		if (record_watched(&reg.recs[i]))
			break;
	if (i < reg.n) {
		registry_unlock(&reg);
		return false;
	}
	if (ftruncate(lock_fd, 0) < 0) {
		/* only the pid shown to people */
	}
	close(lock_fd);
	registry_unlock(&reg);
	return true;
}

/* SIGTERM means "look now" (rm --all sends it): a round at once, which
 * ends the supervisor when nothing is left to watch.  Not "exit": a clone
 * made meanwhile must not be left without a supervisor. */
static volatile sig_atomic_t nudged;

static void on_nudge(int sig)
{
	(void)sig;
	nudged = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (!nudged && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	nudged = 0;
}

void supervisor_nudge(const pgsnap_store *s, int wait_ms)
{
	cleanup_close int fd = open_lock(s), pfd = -1;
	char buf[32], cmd[128], path[64];
	struct pollfd p;
	ssize_t n;
	long pid;

	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return; /* none runs */
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (parse_long(buf, 1, INT_MAX, &pid) < 0)
		return;
	/* Only a supervisor: the pid in the file may be old. */
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	n = read_file_buf(path, cmd, sizeof(cmd));
	if (n <= 0)
		return;
	if (strcmp(cmd, "pgsnap") || n < 8 ||
	    strncmp(cmd + 7, "__supervise", 11))
		return;
	pfd = pidfd_open_pid((pid_t)pid);
	if (pfd < 0 || syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0) < 0)
		return;
	p.fd = pfd;
	p.events = POLLIN;
	while (poll(&p, 1, wait_ms) < 0 && errno == EINTR)
		;
}

int supervisor_run(pgsnap_store *s, int lock_fd, pgsnap_error *err)
{
	char pid[32];
	int n;

	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0)
		return pgsnap_errno(err, errno, "the supervisor lock is not "
				    "ours");
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(lock_fd, 0) < 0 || pwrite(lock_fd, pid, (size_t)n, 0) < 0) {
		/* only the pid shown to people */
	}
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	{
		struct sigaction sa = { 0 };
		sa.sa_handler = on_nudge; /* no SA_RESTART: wake the sleep */
		sigaction(SIGTERM, &sa, NULL);
	}
	for (;;) {
		gc_opts o = { 0 };
		gc_result res;
		long wait = IDLE_ROUND_MS;
		struct stat st;

		o.stop_timeout_ms = GC_STOP_TIMEOUT_MS;
		o.trash_in_background = true;
		if (gc_run(s, &o, &res, NULL) < 0) {
			/* A corrupt registry: wait for gc --repair.  A
			 * removed store: nothing left to do. */
			if (stat(s->run, &st) < 0)
				return 0;
		} else if (res.watched == 0 && try_exit(s, lock_fd)) {
			return 0;
		}
		if (res.busy)
			wait = BUSY_ROUND_MS;
		if (res.next_due_ms) {
			int64_t due = res.next_due_ms - now_ms();
			if (due < wait)
				wait = due < 10 ? 10 : (long)due;
		}
		sleep_ms(wait);
	}
}
