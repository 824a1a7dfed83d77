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

bool clone_is_lease(const pgsnap_clone *c)
{
	return c->parent[0] != '\0';
}

bool clone_is_shared(const pgsnap_clone *c)
{
	return !strcmp(c->state, "shared");
}

size_t shared_leases(const pgsnap_clone *v, size_t n, const char *id)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += !strcmp(v[i].parent, id);
	return k;
}

/* Under the lock: the lease for the next database of server srv, made
 * from the caller's template t (creator, owner, limits). */
static int lease_add(registry *reg, pgsnap_clone *srv, const pgsnap_clone *t,
		     pgsnap_clone *out)
{
	pgsnap_clone l = *srv;
	int tries;

	snprintf(l.state, sizeof(l.state), "ready");
	snprintf(l.parent, sizeof(l.parent), "%s", srv->id);
	snprintf(l.dbname, sizeof(l.dbname), "pgsnap_%d", srv->dbs_used + 1);
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
	for (tries = 0; tries < 8; tries++) {
		random_hex(l.id, 8);
		if (!registry_find(reg, l.id))
			break;
	}
	if (tries == 8)
		return -EEXIST;
	/* srv may move when the array grows: update it first. */
	srv->dbs_used++;
	srv->used_ms = t->created_ms;
	if (registry_append(reg, &l) < 0) {
		srv->dbs_used--;
		return -ENOMEM;
	}
	*out = l;
	return 0;
}

/* A server becomes shared: nobody's, its leases have owners and limits. */
static void make_shared(pgsnap_clone *c, int64_t now_ms_)
{
	snprintf(c->state, sizeof(c->state), "shared");
	c->owner = 0;
	c->owner_start = 0;
	c->creator = 0;
	c->creator_start = 0;
	c->keep = 0;
	c->created_ms = now_ms_;
}

static bool usable(const pgsnap_store *s, const pgsnap_clone *c,
		   const char *sig, const char *state)
{
	return !strcmp(c->state, state) && !strcmp(c->opts_sig, sig) &&
	       !strcmp(c->boot_id, s->boot_id) && c->dbs_used < c->dbs &&
	       proc_alive(c->pid, c->pid_start);
}

int shared_take(pgsnap_store *s, const pgsnap_clone *t, pgsnap_clone *out,
		pgsnap_error *err)
{
	pgsnap_clone *best = NULL;
	registry reg;
	size_t i;
	int r;

	if ((r = registry_lock(s, &reg, err)) < 0)
		return r;
	/* A server in use first (the one with the fewest databases left:
	 * it ends the soonest), then a fresh one from the pool. */
	for (i = 0; i < reg.n; i++) {
		pgsnap_clone *c = &reg.recs[i];
		if (usable(s, c, t->opts_sig, "shared") &&
		    (!best || c->dbs - c->dbs_used < best->dbs - best->dbs_used))
			best = c;
	}
	for (i = 0; !best && i < reg.n; i++) {
		pgsnap_clone *c = &reg.recs[i];
		if (usable(s, c, t->opts_sig, "pooled") && c->dbs > 0) {
			best = c;
			make_shared(c, t->created_ms);
		}
	}
	if (!best) {
		registry_unlock(&reg);
		return 0;
	}
	r = lease_add(&reg, best, t, out);
	if (r < 0)
		pgsnap_err(err, r, "registry update failed");
	else
		r = registry_save(&reg, err);
	registry_unlock(&reg);
	return r < 0 ? r : 1;
}

typedef struct commit_job {
	const pgsnap_clone *srv, *t;
	pgsnap_clone *out;
} commit_job;

static int edit_commit(registry *reg, pgsnap_clone *cur, void *arg)
{
	commit_job *j = arg;

	if (!cur)
		return -ENOENT;
	*cur = *j->srv;
	make_shared(cur, j->t->created_ms);
	cur->dbs_used = 0;
	return lease_add(reg, cur, j->t, j->out);
}

int shared_commit(pgsnap_store *s, const pgsnap_clone *srv,
		  const pgsnap_clone *t, pgsnap_clone *out, pgsnap_error *err)
{
	commit_job j = { srv, t, out };

	return registry_edit(s, srv->id, edit_commit, &j, err);
}

int shared_end_lease(pgsnap_store *s, const char *id, char *retire,
		     size_t len, pgsnap_error *err)
{
	pgsnap_clone l, *cur, *srv;
	registry reg;
	int r;

	retire[0] = '\0';
	if ((r = registry_lock(s, &reg, err)) < 0)
		return r;
	cur = registry_find(&reg, id);
	if (!cur) {
		registry_unlock(&reg);
		return pgsnap_err(err, ENOENT, "no clone '%s' in this store", id);
	}
	l = *cur;
	registry_delete(&reg, cur);
	srv = registry_find(&reg, l.parent);
	/* Its last lease ended and no database is left to hand out: the
	 * caller removes the server, marked "stopping" here so that no one
	 * else does it too. */
	if (srv && clone_is_shared(srv) && srv->dbs_used >= srv->dbs &&
	    !shared_leases(reg.recs, reg.n, srv->id)) {
		snprintf(srv->state, sizeof(srv->state), "stopping");
		srv->creator = getpid();
		srv->creator_start = proc_start_time(srv->creator);
		snprintf(retire, len, "%s", srv->id);
	}
	r = registry_save(&reg, err);
	registry_unlock(&reg);
	if (r < 0) {
		retire[0] = '\0';
		return r;
	}
	/* A test that ended without closing its sessions: they end now, as
	 * they would with a server of its own. */
	if (proc_alive(l.pid, l.pid_start))
		server_clients(l.pid, l.dbname, SIGTERM);
	return 0;
}

/* Is every file of database dst in the golden the same inode as that
 * file of database src (the snapshot build links identical files)?  Then
 * the two are the same database, and src's relcache init file is right
 * for dst; anything else (a file that differs, one more or one less) and
 * it may not be: a stale relfrozenxid in it is enough to break VACUUM. */
static bool golden_same(const char *base, const char *src, const char *dst)
{
	char p[1200];
	cleanup_close int sfd = -1;
	struct dirent *e;
	size_t nd = 0, ns = 0;
	bool same = true;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", base, src);
	sfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof(p), "%s/%s", base, dst);
	if (sfd < 0 || !(d = opendir(p)))
		return false;
	while (same && (e = readdir(d))) {
		struct stat a, b;
		if (e->d_name[0] == '.')
			continue;
		nd++;
		same = fstatat(dirfd(d), e->d_name, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
		       fstatat(sfd, e->d_name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		       S_ISREG(a.st_mode) && a.st_ino == b.st_ino &&
		       a.st_dev == b.st_dev;
	}
	closedir(d);
	if (!same)
		return false;
	d = fdopendir(steal_fd(&sfd));
	if (!d)
		return false;
	while ((e = readdir(d)))
		ns += e->d_name[0] != '.';
	closedir(d);
	return ns == nd;
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
	char snapdir[600], base[700];
	PGresult *res;
	int i;

	/* The session that opened conn has built the relcache init file of
	 * the `postgres` database (PostgreSQL deletes them all at start).
	 * A pgsnap_k database that is a file-for-file copy of it may have
	 * that init file too, as CREATE DATABASE copies it with the files:
	 * a first session on a handed-out database then loads it instead of
	 * building it from the catalogs (about 4 ms of CPU here). */
	if (snapshot_dir(s, c->snapshot, snapdir, sizeof(snapdir)) < 0)
		return;
	snprintf(base, sizeof(base), "%s/data/base", snapdir);
	res = PQexec(conn, "SELECT (SELECT oid FROM pg_database WHERE datname"
		     " = current_database()), oid FROM pg_database WHERE "
		     "datname LIKE 'pgsnap\\_%'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		for (i = 0; i < PQntuples(res); i++)
			if (golden_same(base, PQgetvalue(res, i, 0),
					PQgetvalue(res, i, 1)))
				copy_init_file(s, c, PQgetvalue(res, i, 0),
					       PQgetvalue(res, i, 1));
	PQclear(res);
}
