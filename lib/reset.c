/*
 * reset.c - the same clone, back to its snapshot: same URL, port, socket
 * and password, the data as the snapshot has it.
 *
 * A server of its own: its sessions are ended (fast shutdown: they read
 * "terminating connection due to administrator command"), the engine's
 * work undone and the data directory (or overlay layers) moved to the
 * trash, the snapshot cloned again into the same directory and the server
 * started on the same socket and port with the same options.  A lease of
 * a shared server: its database is dropped (its sessions ended the same
 * way) and the server's last unused database, a copy of the same
 * snapshot, renamed to its name; when none is left, a new copy made.
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

#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define RESET_STOP_MS 10000

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
	cur->creator_start = proc_start_time(cur->creator);
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
	trash_kick(s);
	return 0;
}

static int reset_server(pgsnap_store *s, pgsnap_clone *c, pgsnap_error *err)
{
	const clone_engine *eng;
	cleanup_close int held = -1;
	unsigned long long start;
	clone_job job = { 0 };
	char snapdir[600], golden[700];
	pgsnap_method m;
	pid_t pid;
	int r;

	if (pgsnap_method_parse(c->method, &m) < 0 || !(eng = clone_engine_for(m)))
		return pgsnap_err(err, EINVAL, "clone %s: unknown clone method "
				  "'%s'", c->id, c->method);
	if ((r = snapshot_check(s, c->snapshot, err)) < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c->id);
	/* Its sessions are told to go (fast shutdown), then it stops. */
	if ((pid = find_server(c, &start)) > 0 &&
	    (r = server_stop(pid, start, RESET_STOP_MS)) < 0)
		return pgsnap_errno(err, r, "cannot stop server %d of clone %s",
				    (int)pid, c->id);
	c->pid = 0;
	c->pid_start = 0;
	drop_stale_shm(c->datadir);
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
	/* Its first session builds the relcache off the caller's clock; and
	 * a server that died meanwhile is said so, not handed back. */
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

static int reset_lease(pgsnap_store *s, pgsnap_clone *c, pgsnap_error *err)
{
	cleanup_pgconn PGconn *conn = NULL;
	char sql[200];
	spare sp = { c->id, 0 };
	int r;

	if (!proc_alive(c->pid, c->pid_start))
		return pgsnap_err(err, ESRCH, "clone %s: its shared server is "
				  "not running", c->id);
	if ((r = sql_connect(c->sockdir, c->port, "template1", &conn, err)) < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c->id);
	/* WITH (FORCE) ends the database's sessions first. */
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
		 c->dbname);
	if ((r = sql_exec(conn, sql, err)) < 0)
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
	return r < 0 ? pgsnap_err_wrap(err, r, "clone %s", c->id) : 0;
}

int clone_reset(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		pgsnap_error *err)
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
		return pgsnap_err(err, EBUSY, "clone %s is being reset by "
				  "another process", c.id);
	if (r == -EINVAL)
		return pgsnap_err(err, EINVAL, "clone %s is %s: only a ready "
				  "clone is reset", c.id, c.state);
	if (r < 0)
		return pgsnap_err(err, r, "no clone '%s' in this store", ref);
	r = clone_is_lease(&c) ? reset_lease(s, &c, err) :
		reset_server(s, &c, err);
	/* Ready again, with a server or (failed) none: gc or another reset
	 * takes it from there. */
	if (registry_edit(s, c.id, settle_reset, &c, NULL) < 0 && r == 0)
		r = pgsnap_err(err, ESTALE, "clone %s was removed during its "
			       "reset", c.id);
	if (r == 0 && out) {
		snprintf(c.state, sizeof(c.state), "ready");
		c.creator = 0;
		c.creator_start = 0;
		*out = c;
	}
	return r;
}
