/*
 * service.c - the store's service: one long-lived process per store that
 * hands out clones over a Unix socket (docs/protocol.md), enforces time
 * limits and owners, and keeps the warm pool full (keeper.c).
 *
 * It is found through RUN/service.lock: whoever holds an flock on it is
 * the service (the file holds its pid, for people).  service_ensure takes
 * that lock when it is free and forks the service, which inherits the
 * locked file and with it the lock: two services of one store never run.
 * No exec: the service is this library, run in a child of whoever asked
 * (a CLI, a test harness linking libpgsnap).
 *
 * The registry stays the source of truth: the service keeps nothing a kill
 * would lose.  Threads: one accepts connections (and leaves when nothing
 * is left to do), one per connection reads requests and answers them, one
 * watches (a gc pass per round, gc.c), one per kept pool variant, one per
 * clone being ended in the background.
 *
 * It leaves when nothing is left to watch, no pool is kept and no client
 * is connected.  It decides so under the registry lock and lets go of its
 * lock before the registry's, while `new` writes its record before it
 * looks for a service: either the service sees the record or `new` sees
 * no service and starts one.
 */
#include "internal.h"
#include "gc.h"
#include "reset.h"
#include "service.h"
#include "sha256.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define IDLE_ROUND_MS 1000
#define BUSY_ROUND_MS 250
#define START_WAIT_MS 10000
#define MAX_CONNS 512
/* Idle, it stays this long after its last client left (or its start): a
 * client that has just asked `service start` for the socket connects. */
#define LINGER_MS 5000
/* How often snapshots unused for PGSNAP_SNAPSHOT_TTL are looked for. */
#define SNAPSHOT_GC_MS 60000

/* ---- where it is ---------------------------------------------------------- */

static int lock_path(const pgsnap_store *s, char *buf, size_t len)
{
	return path_join(buf, len, s->run, "service.lock");
}

int service_sock_path(const pgsnap_store *s, char *buf, size_t len)
{
	struct sockaddr_un a;
	unsigned char d[32];
	char hex[65], name[64];
	sha256_ctx h;

	if (snprintf(buf, len, "%s/service.sock", s->run) < (int)sizeof(a.sun_path))
		return 0;
	/* A deep store: a short name in our private socket directory (the
	 * one clones use, sockdir.c), named by the store it serves. */
	sha256_init(&h);
	sha256_update(&h, s->run, strlen(s->run));
	sha256_final(&h, d);
	sha256_hex(d, hex);
	snprintf(name, sizeof(name), "svc-%.16s.sock", hex);
	return sockdir_short_path(s, name, buf, len);
}

bool service_running(const pgsnap_store *s)
{
	char path[600];
	cleanup_close int fd = -1;

	if (lock_path(s, path, sizeof(path)) < 0)
		return false;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	return fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 &&
	       errno == EWOULDBLOCK;
}

/* ---- starting it ------------------------------------------------------------ */

int service_ensure(const pgsnap_store *s, pgsnap_error *err)
{
	char path[600], why[512];
	cleanup_close int fd = -1, rd = -1, wr = -1;
	struct pollfd p;
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	if (lock_path(s, path, sizeof(path)) < 0)
		return pgsnap_err(err, ENAMETOOLONG, "store path too long");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 0 :
			pgsnap_errno(err, errno, "cannot lock %s", path);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return pgsnap_errno(err, errno, "pipe");
	rd = pipefd[0];
	wr = pipefd[1];
	/* Buffered output must not be written twice, by us and by it. */
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return pgsnap_errno(err, errno, "cannot fork the service");
	if (pid == 0) {
		/* The middle child exits at once: the service is orphaned to
		 * init (or a subreaper) and nobody has to wait for it. */
		setsid();
		if (fork() != 0)
			_exit(0);
		close(rd);
		service_main(s, fd, wr);
		_exit(0);
	}
	close(steal_fd(&wr));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* It says "R" once it listens, or why it could not. */
	p.fd = rd;
	p.events = POLLIN;
	if (poll(&p, 1, START_WAIT_MS) <= 0)
		return pgsnap_err(err, ETIMEDOUT, "the service did not start "
				  "within %d ms", START_WAIT_MS);
	n = read(rd, why, sizeof(why) - 1);
	if (n == 1 && why[0] == 'R')
		return 0;
	why[n > 0 ? n : 0] = '\0';
	return pgsnap_err(err, EIO, "the service did not start: %s",
			  n > 1 ? why + 1 : "it exited");
}

/* ---- the process -------------------------------------------------------------- */

static service svc;

/*
 * The sentinel: a small child of the service that waits on a pipe only
 * the service writes to.  When the service leaves on purpose it writes a
 * byte first; when it is killed (kill -9, the OOM killer) the pipe just
 * closes, and the sentinel starts a new service at once, so time limits and
 * owners hold without waiting for the next call.  The service starts a new
 * sentinel when its own dies.
 */
static void sentinel_main(const pgsnap_store *s, int rd)
{
	char b;
	ssize_t n;

	prctl(PR_SET_NAME, "pgsnap-sentinel");
	while ((n = read(rd, &b, 1)) < 0 && errno == EINTR)
		;
	if (n == 0)
		service_ensure(s, NULL);
	_exit(0);
}

static void sentinel_start(service *sv)
{
	int p[2];
	pid_t pid;

	if (sv->sentinel_fd >= 0)
		close(sv->sentinel_fd);
	sv->sentinel_fd = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		/* Nothing of the service's: not its lock, not its socket. */
		close(p[1]);
		dup2(p[0], 3);
		close_range(4, ~0U, 0);
		sentinel_main(sv->s, 3);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return;
	}
	sv->sentinel = pid;
	sv->sentinel_fd = p[1];
}

/* Our sentinel died (killed too): another one. */
static void sentinel_check(service *sv)
{
	if (sv->sentinel > 0 && waitpid(sv->sentinel, NULL, WNOHANG) == 0)
		return;
	sentinel_start(sv);
}

static void on_signal(int sig)
{
	uint64_t one = 1;

	(void)sig;
	/* "Look now": a round at once (rm --all sends it), which ends the
	 * service when nothing is left to do.  Not "exit": a clone made
	 * meanwhile must not be left without a watcher. */
	if (write(svc.wake_fd, &one, sizeof(one)) < 0) {
		/* a round comes within a second anyway */
	}
}

static int listen_on(service *sv, pgsnap_error *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (service_sock_path(sv->s, sv->sock, sizeof(sv->sock)) < 0 ||
	    strlen(sv->sock) >= sizeof(a.sun_path))
		return pgsnap_err(err, ENAMETOOLONG, "no short enough path for "
				  "the service socket");
	if (strcmp(sv->sock + strlen(sv->sock) - 13, "/service.sock") &&
	    sockdir_short_make(sv->s, err) < 0)
		return -EIO;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sv->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pgsnap_errno(err, errno, "socket");
	/* We hold the lock: a socket there is a dead service's. */
	unlink(sv->sock);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    chmod(sv->sock, 0600) < 0 || listen(fd, 256) < 0) {
		int r = pgsnap_errno(err, errno, "cannot listen on %s", sv->sock);
		close(fd);
		return r;
	}
	sv->listen_fd = fd;
	return 0;
}

/* Under the registry lock: still nothing to watch or keep, nobody on?
 * Then stop listening and let go of our lock before the registry lock. */
static bool try_exit(service *sv)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	cleanup_free pgsnap_clone *v = NULL;
	size_t n = 0, i;
	struct stat st;

	if (registry_lock(sv->s, &l, NULL) < 0)
		return stat(sv->s->run, &st) < 0; /* the store is gone */
	if (registry_list(sv->s, &v, &n, NULL) < 0)
		return false;
	for (i = 0; i < n; i++)
		if (record_watched(&v[i]))
			return false;
	pthread_mutex_lock(&sv->mu);
	if (sv->conns || sv->tasks || keeper_running(sv)) {
		pthread_mutex_unlock(&sv->mu);
		return false;
	}
	pthread_mutex_unlock(&sv->mu);
	registry_blanks_drop(sv->s);
	service_quit(sv);
	return true;
}

static void *watcher(void *arg)
{
	service *sv = arg;
	int64_t snap_gc_ms = 0;

	for (;;) {
		gc_opts o = { 0 };
		gc_result res;
		long wait = IDLE_ROUND_MS;
		struct pollfd p = { sv->wake_fd, POLLIN, 0 };
		uint64_t v;
		bool idle;

		o.stop_timeout_ms = GC_STOP_TIMEOUT_MS;
		o.trash_in_background = true;
		service_settle(sv);
		if (gc_run(sv->s, &o, &res, NULL) < 0) {
			struct stat st;
			if (stat(sv->s->run, &st) < 0)
				service_exit(sv, 0); /* the store was removed */
			res.watched = 1;
		}
		if (res.unfinished_resets) /* its asker died, or the last us */
			reset_finish((pgsnap_store *)sv->s);
		sentinel_check(sv);
		if (sv->s->cfg.snapshot_ttl_s &&
		    mono_us() / 1000 - snap_gc_ms >= SNAPSHOT_GC_MS) {
			size_t n;
			snap_gc_ms = mono_us() / 1000;
			pgsnap_snapshot_gc((pgsnap_store *)sv->s, -1, &n, NULL);
		}
		pthread_mutex_lock(&sv->mu);
		idle = res.watched == 0 && !sv->conns && !sv->tasks &&
		       !keeper_running(sv);
		if (idle && !sv->leave_now &&
		    mono_us() / 1000 - sv->last_use_ms < LINGER_MS) {
			idle = false;
			wait = (long)(LINGER_MS - (mono_us() / 1000 -
						   sv->last_use_ms)) + 10;
		}
		pthread_mutex_unlock(&sv->mu);
		if (idle && try_exit(sv))
			service_exit(sv, 0);
		if (res.busy)
			wait = BUSY_ROUND_MS;
		if (res.next_due_ms) {
			int64_t due = res.next_due_ms - now_ms();
			if (due < wait)
				wait = due < 10 ? 10 : (long)due;
		}
		if (poll(&p, 1, (int)wait) > 0 &&
		    read(sv->wake_fd, &v, sizeof(v)) < 0) {
			/* drained */
		}
	}
	return NULL;
}

/* Only the store's owner and root. */
static bool peer_allowed(int fd, uid_t *uid, pid_t *pid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	*uid = cr.uid;
	*pid = cr.pid;
	return cr.uid == 0 || cr.uid == geteuid();
}

static void start_conn(service *sv, int fd)
{
	pthread_attr_t at;
	pthread_t th;
	conn *c;
	uid_t uid = (uid_t)-1;

	c = calloc(1, sizeof(*c));
	if (c && !peer_allowed(fd, &uid, &c->pid)) {
		/* Its first line is read, then answered with why (a client
		 * that wrote first would see a broken pipe otherwise). */
		struct timeval tv = { 2, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		c->refused = true;
		c->uid = (unsigned)uid;
	}
	pthread_mutex_lock(&sv->mu);
	if (!c || sv->conns >= MAX_CONNS) {
		pthread_mutex_unlock(&sv->mu);
		free(c);
		close(fd);
		return;
	}
	sv->conns++;
	sv->last_use_ms = mono_us() / 1000;
	sv->leave_now = false;
	pthread_mutex_unlock(&sv->mu);
	c->sv = sv;
	c->fd = fd;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, conn_main, c) != 0) {
		conn_done(c);
	}
	pthread_attr_destroy(&at);
}

static void setup_process(int *lock_fd, int *ready_fd)
{
	struct sigaction sa = { 0 };
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

	/* Nothing of our caller's may stay open here: a pipe held by us
	 * would keep `url=$(pgsnap new)` waiting until we exit. */
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
	}
	*lock_fd = fcntl(*lock_fd, F_DUPFD_CLOEXEC, 100);
	*ready_fd = fcntl(*ready_fd, F_DUPFD_CLOEXEC, 101);
	close_range(3, 99, 0);
	close_range(102, ~0U, 0);
	umask(077);
	prctl(PR_SET_NAME, "pgsnap-service");
	if (chdir("/") < 0) {
		/* the store's paths are absolute */
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

void service_main(const pgsnap_store *s, int lock_fd, int ready_fd)
{
	pgsnap_error err = { 0 };
	pthread_t th;
	char pid[32];
	int n;

	setup_process(&lock_fd, &ready_fd);
	memset(&svc, 0, sizeof(svc));
	pthread_mutex_init(&svc.mu, NULL);
	svc.s = s;
	svc.lock_fd = lock_fd;
	svc.sentinel_fd = -1;
	svc.last_use_ms = mono_us() / 1000;
	handout_init(&svc);
	svc.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(lock_fd, 0) < 0 || pwrite(lock_fd, pid, (size_t)n, 0) < 0) {
		/* only the pid shown to people */
	}
	/* The sentinel is forked while we have one thread: a child forked
	 * beside other threads inherits whatever lock one of them held (an
	 * allocator's, ours), and the sentinel may become the service. */
	sentinel_start(&svc);
	if (svc.wake_fd < 0 || listen_on(&svc, &err) < 0 ||
	    pthread_create(&th, NULL, watcher, &svc) != 0) {
		char msg[600];
		n = snprintf(msg, sizeof(msg), "E%s", err.msg[0] ? err.msg :
			     "cannot start its threads");
		if (write(ready_fd, msg, (size_t)n) < 0) {
			/* the caller sees EOF */
		}
		service_exit(&svc, 1);
	}
	if (write(ready_fd, "R", 1) < 0) {
		/* our starter is gone: serve anyway */
	}
	close(ready_fd);
	for (;;) {
		int fd = accept4(svc.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			start_conn(&svc, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
		    errno == ENFILE || errno == ENOMEM) {
			if (errno != EINTR && errno != ECONNABORTED)
				poll(NULL, 0, 10); /* let connections end */
			continue;
		}
		/* try_exit closed the socket: the watcher exits us. */
		pause();
	}
}
