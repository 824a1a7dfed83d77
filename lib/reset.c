/*
 * reset.c - the same clone, back to its snapshot: same URL, port, socket
 * and password, the data as the snapshot has it.
 *
 * A server of its own: its sessions are ended (immediate shutdown: they
 * read "terminating connection due to immediate shutdown command"; a
 * shutdown checkpoint would be wasted on files about to go) and the
 * engine's work undone.  A socket clone whose variant the pool keeps then
 * takes a pooled server: the URL names a socket directory, not a server,
 * so the pooled server's directory is renamed to the clone's (its socket
 * comes along, or is moved into a short socket directory) and the reset
 * costs a stop and a few renames, not a start.  Otherwise the data
 * directory (or overlay layers) goes to the trash, the snapshot is cloned
 * again into the same directory and the server started on the same
 * socket and port with the same options.  A lease of
 * a shared server: its database's sessions are terminated, the database
 * renamed away (dropped later, with the server) and the server's last
 * unused database, a copy of the same snapshot, renamed to its name; when
 * none is left, a new copy made.  Renames, not DROP DATABASE: a drop
 * forces a checkpoint.
 *
 * The record says "resetting" while it happens (creator = us): a reset
 * whose process dies is taken over by the next one, and gc finishes one
 * nobody takes over.  On failure the clone is left "ready" with no server:
 * gc removes it, or a second reset starts it again.
 */
#include "internal.h"
#include "life.h"
#include "newclone.h"
#include "pool.h"
#include "reset.h"
#include "snapshot.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define RESET_STOP_MS 10000
#define RESET_JOIN_MS 60000
/* The old server of an exchange lives this long after the answer (its
 * sessions stopped): its processes' exit, ~7 ms of CPU here, would
 * otherwise come out of the caller's first queries on two cores. */
#define RESET_GRACE_MS 50

static int claim_reset(const pgsnap_store *s, pgsnap_clone *cur, void *arg)
{
	pgsnap_clone *c = arg;

	if (!cur)
		return -ENOENT;
	/* A reset of another live process is its own; a dead one's (or a
	 * clone left without a server by a failed reset) is ours to do. */
	if (!strcmp(cur->state, "resetting") &&
	    proc_alive(cur->creator, cur->creator_start))
		return -EBUSY;
	if (strcmp(cur->state, "ready") && strcmp(cur->state, "resetting"))
		return -EINVAL;
	(void)s;
	snprintf(cur->state, sizeof(cur->state), "resetting");
	cur->creator = getpid();
	cur->creator_start = proc_self_start_time();
	*c = *cur;
	return REG_PUT;
}

static int settle_reset(const pgsnap_store *s, pgsnap_clone *cur, void *arg)
{
	const pgsnap_clone *c = arg;

	(void)s;
	if (!cur || strcmp(cur->state, "resetting") || cur->creator != getpid())
		return -ESTALE; /* rm took it meanwhile */
	cur->pid = c->pid;
	cur->pid_start = c->pid_start;
	cur->dbs = c->dbs;
	snprintf(cur->datadir, sizeof(cur->datadir), "%s", c->datadir);
	snprintf(cur->state, sizeof(cur->state), "ready");
	cur->creator = 0;
	cur->creator_start = 0;
	return REG_PUT;
}

/* The files of the clone's data (an overlay's layers too) into the trash:
 * what the engine made, not the socket directory or the log. */
static int trash_data(const pgsnap_store *s, const char *dir,
		      pgsnap_error *err)
{
	static const char *const made[] = { "data", "upper", "work" };
	char from[800], to[800], rnd[9];
	size_t i;

	random_hex(rnd, 8);
	snprintf(to, sizeof(to), "%s/reset.%s", s->trash, rnd);
	if (mkdir_server(s, to) < 0)
		return pgsnap_errno(err, errno, "cannot create %s", to);
	for (i = 0; i < ARRAY_SIZE(made); i++) {
		snprintf(from, sizeof(from), "%s/%s", dir, made[i]);
		snprintf(to, sizeof(to), "%s/reset.%s/%s", s->trash, rnd,
			 made[i]);
		if (rename(from, to) < 0 && errno != ENOENT)
			return pgsnap_errno(err, errno, "cannot move %s away",
					    from);
	}
	return 0;
}

static int stop_server(pgsnap_clone *c, pgsnap_error *err)
{
	unsigned long long start;
	pid_t pid;
	int r;

	if ((pid = find_server(c, &start)) > 0 &&
	    (r = server_quit(pid, start, RESET_STOP_MS)) < 0)
		return pgsnap_errno(err, r, "cannot stop server %d of clone %s",
				    (int)pid, c->id);
	c->pid = 0;
	c->pid_start = 0;
	drop_stale_shm(c->datadir);
	return 0;
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && path[n] == '/';
}

/* Pooled server p's socket, .s.PGSQL.PORT in p's socket directory (moved
 * to c's directory with it, or a short one of its own), becomes c's. */
static int move_socket(const pgsnap_store *s, const pgsnap_clone *c,
		       const pgsnap_clone *p)
{
	static const char *const ext[] = { "", ".lock" };
	char from[700], to[700], dir[600];
	bool inside = under(p->sockdir, p->dir);
	size_t i;

	if (inside)
		snprintf(dir, sizeof(dir), "%s%s", c->dir,
			 p->sockdir + strlen(p->dir));
	else
		snprintf(dir, sizeof(dir), "%s", p->sockdir);
	if (inside && !strcmp(dir, c->sockdir) && p->port == c->port)
		return 0;
	for (i = 0; i < ARRAY_SIZE(ext); i++) {
		snprintf(from, sizeof(from), "%s/.s.PGSQL.%d%s", dir, p->port,
			 ext[i]);
		snprintf(to, sizeof(to), "%s/.s.PGSQL.%d%s", c->sockdir,
			 c->port, ext[i]);
		/* A socket is found by its inode: connect() through the new
		 * name reaches the listening server. */
		if (rename(from, to) < 0 && !*ext[i])
			return -errno;
	}
	if (!inside)
		sockdir_remove(s, p);
	return 0;
}

/* Whether c's server was told its socket directory relative to its data
 * directory (sockdir_arg): it then removes its own socket as it exits,
 * wherever its directory is. */
static bool socket_follows(const pgsnap_clone *c)
{
	char line[600];

	return c->sockdir[0] && pidfile_line(c->datadir, 5, line,
					      sizeof(line)) == 0 &&
	       line[0] && line[0] != '/';
}

/* Record p, now naming the server that was the clone's (the directories
 * were exchanged): that server's pid, for life_end to stop it. */
typedef struct old_server {
	pid_t pooled;                /* the pid the record still has */
	pid_t pid;
	unsigned long long start;
} old_server;

static int take_old_server(const pgsnap_store *s, pgsnap_clone *cur, void *arg)
{
	const old_server *o = arg;

	(void)s;
	if (!cur || strcmp(cur->state, "ready") || cur->pid != o->pooled)
		return -ESTALE;
	cur->pid = o->pid;
	cur->pid_start = o->start;
	return REG_PUT;
}

/* The clone and pooled server p exchange directories (one rename): the
 * URL reaches p's server at once, and p's record, now naming the old
 * server, is claimed into *old for the caller to end after its answer.
 * 1 done, 0 not possible (nothing changed). */
static int reset_exchange(pgsnap_store *s, pgsnap_clone *c,
			  const pgsnap_clone *p, life_victim *old)
{
	old_server o = { p->pid, c->pid, c->pid_start };
	size_t cn = strlen(c->dir), pn = strlen(p->dir);

	if (!old || !socket_follows(c) || !socket_follows(p) ||
	    strcmp(p->sockdir + pn, c->sockdir + cn) ||
	    strcmp(p->datadir + pn, c->datadir + cn) ||
	    p->port != c->port || o.pid <= 0 || !proc_alive(o.pid, o.start))
		return 0;
	if (renameat2(AT_FDCWD, c->dir, AT_FDCWD, p->dir, RENAME_EXCHANGE) < 0)
		return 0;
	/* The old server is out of the URL's reach, and its sessions answer
	 * nothing more once the reset has (an application's pooled
	 * connections must not see the old data): they are stopped now and
	 * ended after the answer (reset_end_old), when the exit of the
	 * server's processes no longer takes the CPU the caller needs. */
	server_clients(o.pid, NULL, SIGSTOP);
	test_pause(s, "reset-swap");
	memset(old, 0, sizeof(*old));
	old->c = *p;
	old->c.pid = o.pid;
	old->c.pid_start = o.start;
	/* Should we die before it is claimed, its owner (us) is gone and gc
	 * ends it; the clone's record says "resetting", which gc finishes. */
	if (registry_edit(s, p->id, take_old_server, &o, NULL) < 0 ||
	    life_claim(s, old, 1, life_want_same, NULL) != 1)
		old->taken = false;
	c->pid = p->pid;
	c->pid_start = p->pid_start;
	c->dbs = 0;
	return 1;
}

/* The clone takes a server of the pool: 1 done, 0 none to take (or it
 * could not be moved: the caller starts one), or an error. */
static int reset_swap(pgsnap_store *s, pgsnap_clone *c,
		      const clone_engine *eng, life_victim *old,
		      pgsnap_error *err)
{
	char away[700], rnd[9];
	pgsnap_clone t = *c, p;
	int r;

	if (c->host[0] || !c->opts_sig[0])
		return 0;
	/* Ours until it is moved: should we die, gc ends it. */
	t.owner = getpid();
	t.owner_start = proc_start_time(t.owner);
	t.timeout_s = 0;
	t.keep = 0;
	t.worker[0] = '\0';
	if ((r = pool_take(s, &t, &p, NULL)) <= 0)
		return 0;
	if (strcmp(p.method, c->method) || !clone_paths_valid(s, &p)) {
		life_end_one(s, &p, NULL);
		return 0;
	}
	if (reset_exchange(s, c, &p, old))
		return 1;
	if ((r = stop_server(c, err)) < 0) {
		life_end_one(s, &p, NULL);
		return r;
	}
	if ((r = eng->release(s, c->dir)) < 0) {
		life_end_one(s, &p, NULL);
		return pgsnap_errno(err, r, "cannot undo the %s clone of %s",
				    eng->name, c->id);
	}
	random_hex(rnd, 8);
	snprintf(away, sizeof(away), "%s/reset.%s", s->trash, rnd);
	if (rename(c->dir, away) < 0) {
		life_end_one(s, &p, NULL);
		return 0;
	}
	if (rename(p.dir, c->dir) < 0) {
		rename(away, c->dir);
		life_end_one(s, &p, NULL);
		return 0;
	}
	if (move_socket(s, c, &p) < 0) {
		/* Back as they were; the caller starts a server. */
		rename(c->dir, p.dir);
		rename(away, c->dir);
		life_end_one(s, &p, NULL);
		return 0;
	}
	test_pause(s, "reset-swap");
	/* Its record first: were we to die between the two, gc would stop
	 * the server now in c's directory for p's owner (us) being gone. */
	registry_edit(s, p.id, life_drop_record, NULL, NULL);
	snprintf(c->datadir, sizeof(c->datadir), "%s%s", c->dir,
		 p.datadir + strlen(p.dir));
	c->pid = p.pid;
	c->pid_start = p.pid_start;
	c->dbs = 0;
	return 1;
}

static int reset_server(pgsnap_store *s, pgsnap_clone *c, life_victim *old,
			pgsnap_error *err)
{
	const clone_engine *eng;
	cleanup_close int held = -1;
	clone_job job = { 0 };
	char snapdir[600], golden[700];
	pgsnap_method m;
	int r;

	if (pgsnap_method_parse(c->method, &m) < 0 || !(eng = clone_engine_for(m)))
		return pgsnap_err(err, EINVAL, "clone %s: unknown clone method "
				  "'%s'", c->id, c->method);
	if ((r = snapshot_check(s, c->snapshot, err)) < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c->id);
	if ((r = reset_swap(s, c, eng, old, err)) != 0)
		return r < 0 ? r : 0;
	if ((r = stop_server(c, err)) < 0)
		return r;
	/* A swap that failed half-way, or a reset of ours that died in it,
	 * may have left no directory. */
	if (access(c->dir, F_OK) < 0 && mkdir_server(s, c->dir) < 0)
		return pgsnap_errno(err, errno, "cannot create %s", c->dir);
	if ((r = snap_lock(s, c->snapshot, LOCK_SH, &held, err)) < 0)
		return r;
	snapshot_dir(s, c->snapshot, snapdir, sizeof(snapdir));
	snprintf(golden, sizeof(golden), "%s/data", snapdir);
	if ((r = eng->release(s, c->dir)) < 0)
		return pgsnap_errno(err, r, "cannot undo the %s clone of %s",
				    eng->name, c->id);
	if ((r = trash_data(s, c->dir, err)) < 0)
		return r;
	job.store = s;
	job.golden = golden;
	job.snapdir = snapdir;
	job.dir = c->dir;
	if ((r = eng->clone(&job, err)) < 0)
		return r;
	close(steal_fd(&held));
	snprintf(c->datadir, sizeof(c->datadir), "%s", job.datadir);
	if ((r = life_start(s, c, &job, true, err)) < 0)
		return r;
	test_pause(s, "reset");
	/* Its first session builds the relcache off the caller's clock (a
	 * TCP one's did, setting the password); and a server that died
	 * meanwhile is said so, not handed back. */
	if (!c->host[0])
		pool_warm(s, c, NULL);
	if (!proc_alive(c->pid, c->pid_start))
		return pgsnap_err(err, ESRCH, "the server of clone %s died "
				  "during its reset (pgsnap reset %s again, or "
				  "pgsnap gc removes it)", c->id, c->id);
	return 0;
}

/* A lease: its database dropped and replaced by a fresh copy. */
typedef struct spare {
	const char *lease;
	int taken;                   /* k of pgsnap_k, or 0 */
} spare;

static int take_spare(const pgsnap_store *s, pgsnap_clone *srv, void *arg)
{
	spare *sp = arg;

	if (!srv || !clone_is_shared(srv) || srv->dbs_used >= srv->dbs)
		return REG_KEEP;
	/* The last one: handouts take pgsnap_(dbs_used+1) upwards. */
	sp->taken = srv->dbs--;
	if (srv->dbs_used >= srv->dbs)
		registry_avail_del(s, srv->opts_sig, srv->id);
	return REG_PUT;
}

/* End the sessions on db and rename it to away.  Its backends are sent
 * SIGTERM, as pg_terminate_backend does (they read "terminating
 * connection due to administrator command"), found by their process
 * titles: the rename waits in 100 ms steps (CountOtherDBBackends) while
 * one is on its way out, and pg_stat_activity forgets one before it is
 * out, while its process lives until it is out of the proc array.  A
 * session that connects meanwhile makes the rename fail: again. */
static int rename_away(PGconn *conn, pid_t pm, const char *db,
		       const char *away, pgsnap_error *err)
{
	char sql[300];
	int64_t deadline = mono_us() + RESET_STOP_MS * 1000LL;
	int r;

	snprintf(sql, sizeof(sql), "ALTER DATABASE %s RENAME TO %s", db, away);
	for (;;) {
		while (server_clients(pm, db, SIGTERM) > 0 &&
		       mono_us() < deadline)
			poll(NULL, 0, 1);
		if ((r = sql_exec(conn, sql, err)) == 0 || mono_us() > deadline)
			return r;
	}
}

/* The service resets the leases of a few shared servers again and again:
 * a session to each (template1, which no lease copies) kept between
 * resets saves a backend start, most of a reset's time.  A kept session
 * is checked before use and replaced if its server went; a kept one
 * counts as no lease's client (those are counted per database). */
#define KEPT_SESSIONS 4

typedef struct kept_session {
	pid_t pid;                   /* the shared server */
	unsigned long long start;
	PGconn *conn;
} kept_session;

static kept_session kept[KEPT_SESSIONS];
static unsigned kept_next;
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;

static int session_take(const pgsnap_clone *c, PGconn **out,
			pgsnap_error *err)
{
	PGconn *conn = NULL;
	size_t i;

	pthread_mutex_lock(&kept_mu);
	for (i = 0; i < KEPT_SESSIONS && !conn; i++)
		if (kept[i].conn && kept[i].pid == c->pid &&
		    kept[i].start == c->pid_start) {
			conn = kept[i].conn;
			kept[i].conn = NULL;
		}
	pthread_mutex_unlock(&kept_mu);
	if (conn && sql_exec(conn, "SELECT 1", NULL) == 0) {
		*out = conn;
		return 0;
	}
	PQfinish(conn);
	return sql_connect(c->sockdir, c->port, "template1", out, err);
}

static void session_keep(const pgsnap_clone *c, PGconn **conn)
{
	PGconn *old;
	unsigned i;

	if (PQstatus(*conn) != CONNECTION_OK)
		return; /* its owner finishes it */
	pthread_mutex_lock(&kept_mu);
	for (i = 0; i < KEPT_SESSIONS && kept[i].conn; i++)
		;
	if (i == KEPT_SESSIONS)
		i = kept_next++ % KEPT_SESSIONS;
	old = kept[i].conn;
	kept[i].pid = c->pid;
	kept[i].start = c->pid_start;
	kept[i].conn = *conn;
	*conn = NULL;
	pthread_mutex_unlock(&kept_mu);
	PQfinish(old);
}

static int reset_lease(pgsnap_store *s, pgsnap_clone *c, pgsnap_error *err)
{
	cleanup_pgconn PGconn *conn = NULL;
	char sql[200], away[64], rnd[9];
	spare sp = { c->id, 0 };
	int r;

	if (!proc_alive(c->pid, c->pid_start))
		return pgsnap_err(err, ESRCH, "clone %s: its shared server is "
				  "not running", c->id);
	if ((r = session_take(c, &conn, err)) < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c->id);
	random_hex(rnd, 8);
	snprintf(away, sizeof(away), "pgsnap_reset_%s", rnd);
	if ((r = rename_away(conn, c->pid, c->dbname, away, err)) < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c->id);
	if ((r = registry_edit(s, c->parent, take_spare, &sp, err)) < 0)
		return r;
	if (sp.taken) {
		snprintf(sql, sizeof(sql), "ALTER DATABASE pgsnap_%d RENAME TO %s",
			 sp.taken, c->dbname);
		r = sql_exec(conn, sql, err);
	} else {
		r = dbs_recreate(conn, c->dbname, s->pg_major ? s->pg_major : 15,
				 err);
	}
	if (r < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c->id);
	session_keep(c, &conn);
	return 0;
}

/* Another process resets it now (a client retrying after the service it
 * asked died, which the next service finishes): its result is what we
 * were asked for.  If that process dies too, we take it over. */
static int join_reset(pgsnap_store *s, const pgsnap_clone *c,
		      pgsnap_clone *out, pgsnap_error *err)
{
	int64_t until = mono_us() / 1000 + RESET_JOIN_MS;
	pgsnap_clone cur;
	int ms = 2;

	while (mono_us() / 1000 < until) {
		poll(NULL, 0, ms);
		ms = ms < 64 ? ms * 2 : ms;
		if (registry_find(s, c->id, &cur, NULL) < 0)
			return pgsnap_err(err, ESTALE, "clone %s was removed "
					  "during its reset", c->id);
		if (!strcmp(cur.state, "resetting") &&
		    proc_alive(cur.creator, cur.creator_start))
			continue;
		if (strcmp(cur.state, "ready") ||
		    !proc_alive(cur.pid, cur.pid_start))
			return clone_reset(s, c->id, out, err);
		if (out)
			*out = cur;
		return 0;
	}
	return pgsnap_err(err, EBUSY, "clone %s is being reset by another "
			  "process (waited %d s)", c->id, RESET_JOIN_MS / 1000);
}

int clone_reset(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		pgsnap_error *err)
{
	life_victim old = { 0 };
	int r = clone_reset_later(s, ref, out, &old, err);

	reset_end_old(s, &old, false);
	return r;
}

void reset_end_old(const pgsnap_store *s, life_victim *old, bool grace)
{
	life_end_opts o = { .stop_timeout_ms = LIFE_STOP_TIMEOUT_MS,
			    .trash_in_background = true };

	if (!old->taken)
		return;
	if (grace)
		usleep(RESET_GRACE_MS * 1000);
	/* An immediate shutdown: its stopped sessions are told before they
	 * go on, and answer nothing more (life.c). */
	life_end(s, old, 1, &o);
}

int clone_reset_later(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		      life_victim *old, pgsnap_error *err)
{
	pgsnap_clone c;
	int r;

	if ((r = registry_find(s, ref, &c, err)) < 0)
		return r;
	if (!clone_paths_valid(s, &c))
		return pgsnap_err(err, EPERM, "registry record %s names %s, "
				  "outside the store: not touching it", c.id, c.dir);
	r = registry_edit(s, c.id, claim_reset, &c, NULL);
	if (r == -EBUSY)
		return join_reset(s, &c, out, err);
	if (r == -EINVAL)
		return pgsnap_err(err, EINVAL, "clone %s is %s: only a ready "
				  "clone is reset", c.id, c.state);
	if (r < 0)
		return pgsnap_err(err, r, "no clone '%s' in this store", ref);
	r = clone_is_lease(&c) ? reset_lease(s, &c, err) :
		reset_server(s, &c, old, err);
	/* Ready again, with a server or (failed) none: gc or another reset
	 * takes it from there.  The old files go after the answer. */
	if (registry_edit(s, c.id, settle_reset, &c, NULL) < 0 && r == 0)
		r = pgsnap_err(err, ESTALE, "clone %s was removed during its "
			       "reset", c.id);
	/* An exchanged server's files go with it, after the answer. */
	if (!clone_is_lease(&c) && !(old && old->c.id[0]))
		trash_kick(s);
	if (r == 0 && out) {
		snprintf(c.state, sizeof(c.state), "ready");
		c.creator = 0;
		c.creator_start = 0;
		*out = c;
	}
	return r;
}

/* Resets whose process died (judge: unfinished_reset) are finished, the
 * clone's owner still wanting it: a failure leaves it without a server,
 * which the next gc ends. */
void reset_finish(pgsnap_store *s)
{
	cleanup_free pgsnap_clone *v = NULL;
	size_t n = 0, i;

	if (registry_list(s, &v, &n, NULL) < 0)
		return;
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].state, "resetting") &&
		    !proc_alive(v[i].creator, v[i].creator_start) &&
		    clone_paths_valid(s, &v[i]))
			clone_reset(s, v[i].id, NULL, NULL);
}
