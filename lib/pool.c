/*
 * pool.c - the warm pool: servers started ahead of need, handed out by one
 * registry update.
 *
 * A *variant* is what makes one server differ from another (pool_sig: the
 * snapshot and which build of it, the clone method, -t, -o, --now).  For
 * each variant in use one *keeper* process (`pgsnap __pool`, detached)
 * keeps N clones started and ready, recorded in state "pooled".  `new`
 * takes the oldest one under the registry lock and turns it "ready" with
 * the caller's owner and limits: the lock and the state change make each
 * handout unique, and nothing connects to a pooled server before it.  The
 * keeper watches the registry (inotify sees each save, a rename into run/)
 * so it refills at once, and removes its clones once PGSNAP_POOL_TTL
 * seconds pass without a handout: idle servers cost memory.
 *
 * The keeper of a variant is whoever holds an flock on run/pool/SIG.lock
 * (the file holds its pid and start time, for rm --all).  `new` takes that
 * lock when it is free and hands the locked file to the keeper it starts,
 * so two keepers of one variant never run.
 */
#include "internal.h"
#include "sha256.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define POOL_DEFAULT 2
#define POOL_MAX 64
#define POOL_TTL_DEFAULT 300
#define KEEPER_STOP_MS 15000
#define KEEPER_FAILURES 3
#define KEEPER_PARALLEL 2
#define NEW_N_THREADS 4

void pool_sig(const pgsnap_new_opts *o, const char *snap, const char *snapdir,
	      const char *method, char *sig, size_t len)
{
	char meta[700], id[128] = "";
	unsigned char d[32];
	char hex[65];
	struct stat st;
	sha256_ctx h;

	/* A rebuilt or replaced snapshot is a new directory: its meta file
	 * is a new inode, so clones of the old build never pass for it. */
	snprintf(meta, sizeof(meta), "%s/meta", snapdir);
	if (stat(meta, &st) == 0)
		snprintf(id, sizeof(id), "%llu:%llu:%lld.%09ld",
			 (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino,
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	sha256_init(&h);
#define PUT(str) sha256_update(&h, (str), strlen(str) + 1)
	PUT("pgsnap-pool 1");
	PUT(snap);
	PUT(id);
	PUT(method);
	PUT(o->tcp ? "tcp" : "");
	PUT(o->tcp && o->ipv6 ? "ipv6" : "");
	PUT(o->server_opts ? o->server_opts : "");
	PUT(o->now ? o->now : "");
	if (o->shared > 0) {
		char dbs[16];
		snprintf(dbs, sizeof(dbs), "shared %d", o->shared);
		PUT(dbs);
	}
#undef PUT
	sha256_final(&h, d);
	sha256_hex(d, hex);
	snprintf(sig, len, "%.16s", hex);
}

int pool_size(const pgsnap_new_opts *o)
{
	const char *e = getenv("PGSNAP_POOL");
	long v;

	if (o->no_pool)
		return 0;
	if (o->pool > 0)
		return o->pool > POOL_MAX ? POOL_MAX : o->pool;
	if (e && *e && parse_long(e, 0, POOL_MAX, &v) == 0)
		return (int)v;
	return POOL_DEFAULT;
}

long pool_ttl_s(void)
{
	const char *e = getenv("PGSNAP_POOL_TTL");
	long v;

	if (e && *e && parse_long(e, 1, 86400L * 365, &v) == 0)
		return v;
	return POOL_TTL_DEFAULT;
}

/* A live server: a zombie (the keeper, its parent, has not reaped it yet)
 * is as dead as a gone one, and proc_alive says so. */
static bool server_alive(const pgsnap_clone *c)
{
	return proc_alive(c->pid, c->pid_start);
}

static bool is_pooled(const pgsnap_store *s, const pgsnap_clone *c,
		      const char *sig)
{
	return !strcmp(c->state, "pooled") && !strcmp(c->opts_sig, sig) &&
	       !strcmp(c->boot_id, s->boot_id);
}

int pool_take(pgsnap_store *s, const pgsnap_clone *t, pgsnap_clone *out,
	      pgsnap_error *err)
{
	pgsnap_clone *best = NULL;
	registry reg;
	size_t i;
	int r;

	if ((r = registry_lock(s, &reg, err)) < 0)
		return r;
	for (i = 0; i < reg.n; i++) {
		pgsnap_clone *c = &reg.recs[i];
		if (!is_pooled(s, c, t->opts_sig) || !server_alive(c))
			continue;
		/* The oldest first: it is the nearest to expiring. */
		if (!best || c->created_ms < best->created_ms)
			best = c;
	}
	if (!best) {
		registry_unlock(&reg);
		return 0;
	}
	snprintf(best->state, sizeof(best->state), "ready");
	best->creator = t->creator;
	best->creator_start = t->creator_start;
	best->owner = t->owner;
	best->owner_start = t->owner_start;
	best->timeout_s = t->timeout_s;
	best->keep = t->keep;
	best->created_ms = t->created_ms;
	r = registry_save(&reg, err);
	if (r == 0)
		*out = *best;
	registry_unlock(&reg);
	return r < 0 ? r : 1;
}

void pool_warm(const pgsnap_store *s, const pgsnap_clone *c)
{
	PGconn *conn;

	/* PostgreSQL removes its relcache init files at every start, so the
	 * first session of a server rebuilds them: about 5 ms here, the
	 * largest part of a warm handout.  One session opened and closed
	 * before the server is pooled does it off the caller's clock; it
	 * runs no SQL and leaves nothing a test can see (-t already opens one
	 * to set the password). */
	if (sql_connect(c->sockdir, c->port, c->dbname, &conn, NULL) < 0)
		return;
	if (c->dbs > 0)
		shared_warm(s, conn, c);
	PQfinish(conn);
}

/* ---- the keeper ---------------------------------------------------------- */

static int pool_dir(const pgsnap_store *s, char *buf, size_t len)
{
	return path_join(buf, len, s->run, "pool");
}

static int sig_file(const pgsnap_store *s, const char *sig, const char *ext,
		    char *buf, size_t len)
{
	char dir[600];
	int n;

	if (pool_dir(s, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	n = snprintf(buf, len, "%s/%s.%s", dir, sig, ext);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Live pooled clones of sig; dead ones (their server crashed or was
 * killed) are removed on the way. */
static int count_pooled(pgsnap_store *s, const char *sig, pgsnap_error *err)
{
	char dead[8][32];
	size_t i, ndead = 0;
	registry reg;
	int r, live = 0;

	if ((r = registry_lock(s, &reg, err)) < 0)
		return r;
	for (i = 0; i < reg.n; i++) {
		pgsnap_clone *c = &reg.recs[i];
		if (!is_pooled(s, c, sig))
			continue;
		if (server_alive(c))
			live++;
		else if (ndead < ARRAY_SIZE(dead))
			snprintf(dead[ndead++], sizeof(dead[0]), "%s", c->id);
	}
	registry_unlock(&reg);
	for (i = 0; i < ndead; i++)
		clone_rm_pooled(s, dead[i], NULL);
	return live;
}

/* Remove every clone still pooled under sig (a handed-out one is not). */
static void drain_pool(pgsnap_store *s, const char *sig)
{
	pgsnap_clone *v = NULL;
	size_t n = 0, i;

	if (pgsnap_list(s, &v, &n, NULL) < 0)
		return;
	for (i = 0; i < n; i++)
		if (is_pooled(s, &v[i], sig))
			clone_rm_pooled(s, v[i].id, NULL);
	free(v);
}

typedef struct refill {
	pgsnap_store *s;
	const pgsnap_new_opts *o;
	pgsnap_clone c;
	pgsnap_error err;
	bool started;
	int r;
} refill;

static void *refill_one(void *arg)
{
	refill *j = arg;
	j->r = clone_new(j->s, j->o, true, &j->c, &j->err);
	return NULL;
}

static bool stop_asked(int sfd)
{
	struct signalfd_siginfo si;
	return sfd >= 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si);
}

int pgsnap_pool_keep(pgsnap_store *s, const pgsnap_new_opts *opts,
		     const char *sig, int lock_fd, pgsnap_error *err)
{
	pgsnap_new_opts o = *opts;
	int size = pool_size(opts), failures = 0, r = 0;
	long ttl = pool_ttl_s();
	cleanup_close int sfd = -1, ifd = -1;
	char line[64];
	int64_t last_use;
	sigset_t ss;

	if (size <= 0 || !name_valid(sig, 63))
		return pgsnap_err(err, EINVAL, "no pool wanted for '%s'", sig);
	/* The keeper's own clones: no owner, and a limit of their own so that
	 * gc removes them should this process be killed. */
	o.owner = 0;
	o.keep = 0;
	o.timeout_s = ttl + 60;
	o.build_if_stale = 0;
	o.progress = NULL;
	snprintf(line, sizeof(line), "%d %llu\n", (int)getpid(),
		 proc_start_time(getpid()));
	if (ftruncate(lock_fd, 0) < 0 ||
	    pwrite(lock_fd, line, strlen(line), 0) < 0)
		return pgsnap_errno(err, errno, "cannot write the pool lock");

	/* SIGTERM (rm --all) is read between two clones, never in one. */
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return pgsnap_errno(err, errno, "signalfd");
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ifd < 0 || inotify_add_watch(ifd, s->run, IN_MOVED_TO) < 0)
		return pgsnap_errno(err, errno, "cannot watch %s", s->run);

	last_use = mono_us() / 1000;
	for (;;) {
		int64_t left;
		int have;

		if (stop_asked(sfd))
			break;
		/* Our servers are our children: reap those that ended. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		have = count_pooled(s, sig, err);
		if (have < 0) {
			r = have;
			break;
		}
		if (have < size) {
			refill job[KEEPER_PARALLEL];
			pthread_t th[KEEPER_PARALLEL];
			int k, nj = size - have, nok = 0;
			bool other = false;

			/* A handout (or our start): the pool is in use. */
			last_use = mono_us() / 1000;
			/* Two at a time: a server start waits on its own
			 * processes, so two cores take two starts. */
			if (nj > KEEPER_PARALLEL)
				nj = KEEPER_PARALLEL;
			for (k = 0; k < nj; k++) {
				job[k].s = s;
				job[k].o = &o;
				if (k && pthread_create(&th[k], NULL, refill_one,
							&job[k]) != 0)
					job[k].started = false;
				else
					job[k].started = true;
			}
			refill_one(&job[0]);
			for (k = 1; k < nj; k++)
				if (job[k].started)
					pthread_join(th[k], NULL);
				else
					refill_one(&job[k]);
			for (k = 0; k < nj; k++) {
				if (job[k].r < 0) {
					if (err)
						*err = job[k].err;
					continue;
				}
				nok++;
				/* The snapshot was replaced under us: its
				 * clones are another variant, for another
				 * keeper. */
				if (strcmp(job[k].c.opts_sig, sig)) {
					clone_rm_pooled(s, job[k].c.id, NULL);
					other = true;
				}
			}
			if (other)
				break;
			if (!nok && ++failures >= KEEPER_FAILURES) {
				r = -EIO;
				break;
			}
			if (nok)
				failures = 0;
			r = 0;
			continue;
		}
		left = last_use + ttl * 1000 - mono_us() / 1000;
		if (left <= 0)
			break;
		{
			struct pollfd p[2] = { { sfd, POLLIN, 0 },
					       { ifd, POLLIN, 0 } };
			char drain[4096];
			if (poll(p, 2, left > 60000 ? 60000 : (int)left) < 0 &&
			    errno != EINTR)
				break;
			while (read(ifd, drain, sizeof(drain)) > 0)
				;
		}
	}
	drain_pool(s, sig);
	return r;
}

int pgsnap_pool_kick(pgsnap_store *s, const pgsnap_new_opts *o,
		     const pgsnap_clone *c, const char *exe,
		     char *const args[], pgsnap_error *err)
{
	char dir[600], lockp[700], logp[700], fdarg[16], sizearg[16];
	const char *argv[128];
	cleanup_close int lfd = -1, logfd = -1;
	spawn_opts so = { 0 };
	int size = o ? pool_size(o) : 0, argc = 0, i;
	pid_t pid;

	if (size <= 0 || !c->opts_sig[0])
		return 0;
	if (pool_dir(s, dir, sizeof(dir)) < 0 ||
	    sig_file(s, c->opts_sig, "lock", lockp, sizeof(lockp)) < 0 ||
	    sig_file(s, c->opts_sig, "log", logp, sizeof(logp)) < 0)
		return pgsnap_err(err, ENAMETOOLONG, "store path too long");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return pgsnap_errno(err, errno, "cannot create %s", dir);
	lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", lockp);
	if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 0 :
			pgsnap_errno(err, errno, "cannot lock %s", lockp);
	logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", logp);

	snprintf(fdarg, sizeof(fdarg), "%d", lfd);
	snprintf(sizearg, sizeof(sizearg), "%d", size);
	argv[argc++] = "pgsnap";
	argv[argc++] = "__pool";
	argv[argc++] = fdarg;
	argv[argc++] = c->opts_sig;
	argv[argc++] = sizearg;
	argv[argc++] = "--";
	for (i = 0; args && args[i] && argc < (int)ARRAY_SIZE(argv) - 1; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	/* The keeper inherits the locked file, and with it the lock; every
	 * other descriptor is close-on-exec, stdin/stdout go to /dev/null:
	 * `url=$(pgsnap new)` does not wait for it. */
	if (fcntl(lfd, F_SETFD, 0) < 0)
		return pgsnap_errno(err, errno, "fcntl");
	so.out_fd = logfd;
	so.new_session = true;
	pid = spawn_process(exe, (char *const *)argv, &so);
	if (pid < 0)
		return pgsnap_errno(err, pid, "cannot start the pool keeper %s",
				    exe);
	return 0;
}

/* Stop the keeper holding lock file path (if any) and wait for it. */
static void stop_keeper(const char *path)
{
	cleanup_close int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	unsigned long long start = 0;
	char line[64] = "";
	int pid = 0;
	ssize_t n;

	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0)
		return; /* no keeper */
	n = pread(fd, line, sizeof(line) - 1, 0);
	if (n <= 0 || sscanf(line, "%d %llu", &pid, &start) != 2 ||
	    pid <= 0 || !proc_alive(pid, start))
		return;
	/* It removes its pooled clones on its way out. */
	kill(pid, SIGTERM);
	wait_pid_exit(pid, KEEPER_STOP_MS);
}

void pool_stop_keepers(pgsnap_store *s)
{
	char dir[600], path[900];
	struct dirent *e;
	DIR *d;

	if (pool_dir(s, dir, sizeof(dir)) < 0 || !(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".lock"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		stop_keeper(path);
	}
	closedir(d);
}

void pool_forget_snapshot(pgsnap_store *s, const char *snap)
{
	pgsnap_clone *v = NULL;
	char path[900];
	size_t n = 0, i, j;

	if (pgsnap_list(s, &v, &n, NULL) < 0)
		return;
	/* The keepers first, or they would refill what we remove. */
	for (i = 0; i < n; i++) {
		bool seen = false;
		if (strcmp(v[i].state, "pooled") || strcmp(v[i].snapshot, snap))
			continue;
		for (j = 0; j < i && !seen; j++)
			seen = !strcmp(v[j].state, "pooled") &&
			       !strcmp(v[j].opts_sig, v[i].opts_sig);
		if (!seen && sig_file(s, v[i].opts_sig, "lock", path,
				      sizeof(path)) == 0)
			stop_keeper(path);
	}
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].state, "pooled") &&
		    !strcmp(v[i].snapshot, snap))
			clone_rm_pooled(s, v[i].id, NULL);
	free(v);
}

/* ---- pgsnap_new_n -------------------------------------------------------- */

typedef struct new_many {
	pgsnap_store *s;
	const pgsnap_new_opts *o;
	pgsnap_clone *out;
	int *rc;
	pgsnap_error *errs;
	size_t n, next;
	pthread_mutex_t mu;
} new_many;

static void *new_many_worker(void *arg)
{
	new_many *m = arg;

	for (;;) {
		size_t i;
		pthread_mutex_lock(&m->mu);
		i = m->next++;
		pthread_mutex_unlock(&m->mu);
		if (i >= m->n)
			return NULL;
		m->rc[i] = pgsnap_new(m->s, m->o, &m->out[i], &m->errs[i]);
	}
}

int pgsnap_new_n(pgsnap_store *s, const pgsnap_new_opts *o, size_t n,
		 pgsnap_clone *out, pgsnap_error *err)
{
	pthread_t th[NEW_N_THREADS];
	/* Databases of shared servers come one server at a time: the
	 * first call starts one, the next ones take its databases. */
	size_t nth = o && o->shared ? 1 : n < NEW_N_THREADS ? n : NEW_N_THREADS;
	size_t started = 0, i;
	cleanup_free int *rc = NULL;
	cleanup_free pgsnap_error *errs = NULL;
	new_many m = { 0 };
	int first = 0;

	if (n == 0)
		return pgsnap_err(err, EINVAL, "no clone asked for");
	if (n == 1)
		return pgsnap_new(s, o, out, err);
	rc = calloc(n, sizeof(*rc));
	errs = calloc(n, sizeof(*errs));
	if (!rc || !errs)
		return pgsnap_err(err, ENOMEM, "out of memory");
	m.s = s;
	m.o = o;
	m.out = out;
	m.rc = rc;
	m.errs = errs;
	m.n = n;
	pthread_mutex_init(&m.mu, NULL);
	/* Each worker's pgsnap_new takes a pooled clone while there is one
	 * and starts a cold one after: the pool first, the rest in parallel. */
	for (i = 0; i < nth; i++)
		if (pthread_create(&th[started], NULL, new_many_worker, &m) == 0)
			started++;
	if (!started)
		new_many_worker(&m);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&m.mu);
	for (i = 0; i < n; i++)
		if (rc[i] < 0 && !first) {
			first = rc[i];
			if (err)
				*err = errs[i];
		}
	if (!first)
		return 0;
	/* All or nothing. */
	for (i = 0; i < n; i++)
		if (rc[i] == 0)
			pgsnap_rm(s, out[i].id, NULL);
	return first;
}
