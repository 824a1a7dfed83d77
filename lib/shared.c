/*
 * shared.c - `new --shared`: a fresh database in a shared server.
 *
 * A server of one's own costs a postgres start and stop (~30-40 ms of CPU
 * here); a test suite that needs hundreds of fresh databases on two cores
 * is bound by that.  A *shared server* is a clone of a derived snapshot
 * whose golden already holds dbs copies of the `postgres` database
 * (pgsnap_1 .. pgsnap_N, never connected to; snapshot.c builds it).  Each
 * `new --shared` takes the next unused one: a *lease*, its own registry
 * record (own id, owner and limits) that names the server in `parent` and
 * shares its pid, port, socket and directory.  Every database is handed
 * out once; a server whose databases were all handed out and whose leases
 * all ended is removed like any clone, one with unused databases after
 * PGSNAP_POOL_TTL seconds without a handout (gc.c judges both).
 *
 * The registry lock makes each handout unique; nothing is copied or
 * started on the way, so a handout costs what a pooled one does.
 */
#include "internal.h"
#include "life.h"
#include "shared.h"
#include "snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

int shared_start_lock(const pgsnap_store *s, const char *sig)
{
	char dir[600], path[700];
	int fd;

	if (path_join(dir, sizeof(dir), s->run, "pool") < 0 ||
	    snprintf(path, sizeof(path), "%s/%s.start", dir, sig) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -errno;
		}
	}
	return fd;
}

/* Under the lock: the lease for the next database of server srv (whose
 * record the caller writes), made from the caller's template t. */
static int lease_add(const pgsnap_store *s, pgsnap_clone *srv,
		     const pgsnap_clone *t, pgsnap_clone *out,
		     pgsnap_error *err)
{
	pgsnap_clone l = *srv;
	int tries, r = -EEXIST;

	snprintf(l.state, sizeof(l.state), "ready");
	snprintf(l.parent, sizeof(l.parent), "%s", srv->id);
	snprintf(l.dbname, sizeof(l.dbname), "pgsnap_%d", srv->dbs_used + 1);
	snprintf(l.worker, sizeof(l.worker), "%s", t->worker);
	l.dbs = 0;
	l.dbs_used = 0;
	l.used_ms = 0;
	l.creator = t->creator;
	l.creator_start = t->creator_start;
	l.owner = t->owner;
	l.owner_start = t->owner_start;
	l.timeout_s = t->timeout_s;
	l.keep = 0;
	l.created_ms = t->created_ms;
	l.opts_sig[0] = '\0';
	for (tries = 0; tries < 8 && r == -EEXIST; tries++) {
		random_hex(l.id, 8);
		r = registry_add(s, &l, err);
	}
	if (r < 0)
		return r == -EEXIST ? pgsnap_err(err, r, "no free lease id") : r;
	srv->dbs_used++;
	srv->used_ms = t->created_ms;
	if (srv->dbs_used >= srv->dbs)
		registry_avail_del(s, srv->opts_sig, srv->id);
	*out = l;
	return 0;
}

/* A server becomes shared: nobody's, its leases have owners and limits. */
static void make_shared(pgsnap_clone *c, int64_t now_ms_)
{
	snprintf(c->state, sizeof(c->state), "shared");
	c->worker[0] = '\0';
	c->owner = 0;
	c->owner_start = 0;
	c->creator = 0;
	c->creator_start = 0;
	c->keep = 0;
	c->created_ms = now_ms_;
}

/* alive: whether the server of each record lives (-1: not asked yet),
 * asked once per batch: /proc is read for it, and a burst of 64 handouts
 * would otherwise read it 64 times per server. */
static bool usable(const pgsnap_store *s, const pgsnap_clone *c,
		   signed char *alive, const char *state)
{
	if (strcmp(c->state, state) || strcmp(c->boot_id, s->boot_id) ||
	    c->dbs_used >= c->dbs)
		return false;
	if (*alive < 0)
		*alive = proc_alive(c->pid, c->pid_start);
	return *alive;
}

/* The server to take the next database from: one in use first (the one
 * with the fewest databases left: it ends the soonest), then a fresh one
 * from the pool. */
static pgsnap_clone *pick(const pgsnap_store *s, pgsnap_clone *v,
			  signed char *alive, size_t n, int64_t now)
{
	pgsnap_clone *best = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		if (usable(s, &v[i], &alive[i], "shared") &&
		    (!best || v[i].dbs - v[i].dbs_used <
		     best->dbs - best->dbs_used))
			best = &v[i];
	for (i = 0; !best && i < n; i++) {
		if (usable(s, &v[i], &alive[i], "pooled") && v[i].dbs > 0) {
			best = &v[i];
			make_shared(best, now);
		}
	}
	return best;
}

size_t shared_take_n(const pgsnap_store *s, const pgsnap_clone *const *t,
		     pgsnap_clone *const *out, size_t n, pgsnap_error *err)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	cleanup_free pgsnap_clone *v = NULL;
	cleanup_free bool *dirty = NULL;
	cleanup_free signed char *alive = NULL;
	size_t nv, i, k;
	int r;

	if (!n || registry_lock(s, &l, err) < 0 ||
	    registry_avail(s, t[0]->opts_sig, &v, &nv) < 0 ||
	    !(dirty = calloc(nv ? nv : 1, sizeof(*dirty))) ||
	    !(alive = malloc(nv ? nv : 1)))
		return 0;
	memset(alive, -1, nv ? nv : 1);
	/* One lock for all of them: a burst of handouts (64 workers of a
	 * suite at once) waits for one lock, not for 64 in a row. */
	for (k = 0; k < n; k++) {
		pgsnap_clone *best = pick(s, v, alive, nv, t[k]->created_ms);
		if (!best || lease_add(s, best, t[k], out[k], err) < 0)
			break;
		dirty[best - v] = true;
	}
	for (i = 0; i < nv; i++) {
		if (!dirty[i] || (r = registry_put(s, &v[i], err)) == 0)
			continue;
		/* Not recorded: its leases never were. */
		for (size_t j = 0; j < k; j++)
			if (!strcmp(out[j]->parent, v[i].id))
				registry_del(s, out[j]->id);
		return 0;
	}
	return k;
}

int shared_take(const pgsnap_store *s, const pgsnap_clone *t,
		pgsnap_clone *out, pgsnap_error *err)
{
	pgsnap_error e = { 0 };
	size_t k = shared_take_n(s, &t, &out, 1, &e);

	if (k == 0 && e.code) {
		if (err)
			*err = e;
		return e.code;
	}
	return (int)k;
}

int shared_commit(const pgsnap_store *s, pgsnap_clone *cur,
		  const pgsnap_clone *made, void *arg)
{
	shared_commit_arg *a = arg;
	int r;

	*cur = *made;
	make_shared(cur, a->t->created_ms);
	cur->dbs_used = 0;
	if ((r = lease_add(s, cur, a->t, a->out, a->err)) < 0)
		return r;
	if (cur->dbs_used < cur->dbs)
		registry_avail_add(s, cur->opts_sig, cur->id);
	return REG_PUT;
}

static bool want_retire(const pgsnap_clone *cur, const life_victim *v)
{
	(void)v;
	return clone_is_shared(cur) && cur->dbs_used >= cur->dbs;
}

void shared_retire(const pgsnap_store *s, const char *server)
{
	life_victim v = { 0 };
	life_end_opts o = { .stop_timeout_ms = LIFE_STOP_TIMEOUT_MS,
			    .trash_in_background = true };
	cleanup_free pgsnap_clone *all = NULL;
	size_t n, i;

	/* No database left to hand out: its leases only go.  Once the last
	 * has gone, the server goes (two ending at once: one claims it). */
	if (registry_get(s, server, &v.c, NULL) < 0 || !want_retire(&v.c, &v) ||
	    registry_list(s, &all, &n, NULL) < 0)
		return;
	for (i = 0; i < n; i++)
		if (!strcmp(all[i].parent, server))
			return;
	if (life_claim(s, &v, 1, want_retire, NULL) == 1)
		life_end(s, &v, 1, &o);
}

/* The relcache init file of database src, copied to database dst. */
static void copy_init_file(const pgsnap_store *s, const pgsnap_clone *c,
			   const char *src, const char *dst)
{
	char from[1200], to[1200];
	cleanup_free char *buf = NULL;
	size_t len;
	fs_ids ids;

	/* Through the server's own root: an unprivileged overlay is
	 * mounted in the server's mount namespace only. */
	snprintf(from, sizeof(from), "/proc/%d/root%s/base/%s/pg_internal.init",
		 (int)c->pid, c->datadir, src);
	snprintf(to, sizeof(to), "/proc/%d/root%s/base/%s/pg_internal.init",
		 (int)c->pid, c->datadir, dst);
	if (read_file(from, 16 << 20, &buf, &len) < 0)
		return;
	ids = fs_become(s);
	write_file_atomic(to, buf, len, 0600);
	fs_restore(ids);
}

void shared_warm(const pgsnap_store *s, PGconn *conn, const pgsnap_clone *c)
{
	char snapdir[600], base[700], src[16], dst[16];
	cleanup_free unsigned *same = NULL;
	unsigned from;
	PGresult *res;
	size_t n, i;
	int k;

	/* The session that opened conn has built the relcache init file of
	 * the `postgres` database (PostgreSQL deletes them all at start).
	 * A pgsnap_k database that is a file-for-file copy of it may have
	 * that init file too, as CREATE DATABASE copies it with the files:
	 * a first session on a handed-out database then loads it instead of
	 * building it from the catalogs (about 4 ms of CPU here).  Which
	 * copies are the same the build wrote down (same-dbs); a snapshot of
	 * an older pgsnap is compared here, file by file. */
	if (snapshot_dir(s, c->snapshot, snapdir, sizeof(snapdir)) < 0)
		return;
	if (dbs_read_same(snapdir, &from, &same, &n) == 0) {
		snprintf(src, sizeof(src), "%u", from);
		for (i = 0; i < n; i++) {
			snprintf(dst, sizeof(dst), "%u", same[i]);
			copy_init_file(s, c, src, dst);
		}
		return;
	}
	snprintf(base, sizeof(base), "%s/data/base", snapdir);
	res = PQexec(conn, "SELECT (SELECT oid FROM pg_database WHERE datname"
		     " = current_database()), oid FROM pg_database WHERE "
		     "datname LIKE 'pgsnap\\_%'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		for (k = 0; k < PQntuples(res); k++)
			if (dbs_same(base, PQgetvalue(res, k, 0),
				     PQgetvalue(res, k, 1)))
				copy_init_file(s, c, PQgetvalue(res, k, 0),
					       PQgetvalue(res, k, 1));
	PQclear(res);
}
