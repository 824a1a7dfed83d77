/*
 * pool.c - the warm pool: servers started ahead of need, handed out by one
 * registry update.
 *
 * A *variant* is what makes one server differ from another (pool_sig: the
 * snapshot and which build of it, the clone method, -t, -o, --now, the
 * databases of a shared server).  The service keeps N servers of each
 * variant in use started and ready (service.c, the keepers), recorded in
 * state "pooled" and listed in RUN/avail/SIG.  `new` takes the oldest one
 * under the registry lock and turns it "ready" with the caller's owner and
 * limits: the lock and the state change make each handout unique, and
 * nothing connects to a pooled server before it.
 */
#include "internal.h"
#include "life.h"
#include "pool.h"
#include "sha256.h"
#include "shared.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define POOL_DEFAULT 2

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

int pool_size(const pgsnap_store *s, const pgsnap_new_opts *o)
{
	if (o->no_pool)
		return 0;
	if (o->pool > 0)
		return o->pool > POOL_MAX ? POOL_MAX : o->pool;
	return s->cfg.pool >= 0 ? s->cfg.pool : POOL_DEFAULT;
}

/* A live server: a zombie (not yet reaped by its parent) is as dead as a
 * gone one, and proc_alive says so. */
static bool server_alive(const pgsnap_clone *c)
{
	return proc_alive(c->pid, c->pid_start);
}

static bool is_pooled(const pgsnap_store *s, const pgsnap_clone *c)
{
	return !strcmp(c->state, "pooled") && !strcmp(c->boot_id, s->boot_id);
}

int pool_take(const pgsnap_store *s, const pgsnap_clone *t, pgsnap_clone *out,
	      pgsnap_error *err)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	cleanup_free pgsnap_clone *v = NULL;
	pgsnap_clone *best = NULL;
	size_t n, i;
	int r;

	if ((r = registry_lock(s, &l, err)) < 0)
		return r;
	if ((r = registry_avail(s, t->opts_sig, &v, &n)) < 0)
		return pgsnap_err(err, r, "cannot read the pool");
	for (i = 0; i < n; i++) {
		if (!is_pooled(s, &v[i]) || v[i].dbs || !server_alive(&v[i]))
			continue;
		/* The oldest first: it is the nearest to expiring. */
		if (!best || v[i].created_ms < best->created_ms)
			best = &v[i];
	}
	if (!best)
		return 0;
	snprintf(best->state, sizeof(best->state), "ready");
	snprintf(best->worker, sizeof(best->worker), "%s", t->worker);
	best->creator = t->creator;
	best->creator_start = t->creator_start;
	best->owner = t->owner;
	best->owner_start = t->owner_start;
	best->timeout_s = t->timeout_s;
	best->keep = t->keep;
	best->created_ms = t->created_ms;
	if ((r = registry_put(s, best, err)) < 0)
		return r;
	registry_avail_del(s, best->opts_sig, best->id);
	*out = *best;
	return 1;
}

void pool_warm(const pgsnap_store *s, const pgsnap_clone *c, void *arg)
{
	cleanup_pgconn PGconn *conn = NULL;

	(void)arg;
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
}

int pool_commit(const pgsnap_store *s, pgsnap_clone *cur,
		const pgsnap_clone *made, void *arg)
{
	(void)arg;
	*cur = *made;
	snprintf(cur->state, sizeof(cur->state), "pooled");
	registry_avail_add(s, cur->opts_sig, cur->id);
	return REG_PUT;
}

static bool want_pooled(const pgsnap_clone *cur, const life_victim *v)
{
	(void)v;
	return !strcmp(cur->state, "pooled");
}

/* End the pooled servers among v (those still pooled when claimed). */
static void end_pooled(const pgsnap_store *s, pgsnap_clone *v, size_t n)
{
	cleanup_free life_victim *lv = calloc(n ? n : 1, sizeof(*lv));
	life_end_opts o = { .stop_timeout_ms = LIFE_STOP_TIMEOUT_MS,
			    .trash_in_background = true };
	size_t i;

	if (!lv || !n)
		return;
	for (i = 0; i < n; i++)
		lv[i].c = v[i];
	if (life_claim(s, lv, n, want_pooled, NULL) > 0)
		life_end(s, lv, n, &o);
}

int pool_count(const pgsnap_store *s, const char *sig)
{
	cleanup_free pgsnap_clone *v = NULL;
	size_t n = 0, i, k = 0;
	int live = 0;

	{
		cleanup_registry reg_lock l = REG_LOCK_INIT;
		if (registry_lock(s, &l, NULL) < 0 ||
		    registry_avail(s, sig, &v, &n) < 0)
			return -EIO;
	}
	/* Dead ones (their server crashed or was killed) go on the way. */
	for (i = 0; i < n; i++) {
		if (!is_pooled(s, &v[i]))
			continue;
		if (server_alive(&v[i]))
			live++;
		else
			v[k++] = v[i];
	}
	end_pooled(s, v, k);
	return live;
}

/* A clone of snapshot snap, or of one derived from it (snapshot.c names
 * them SNAP.now-HASH and SNAP.dbs-HASH). */
static bool of_snapshot(const pgsnap_clone *c, const char *snap)
{
	size_t len = strlen(snap);

	return !strncmp(c->snapshot, snap, len) &&
	       (!c->snapshot[len] || !strncmp(c->snapshot + len, ".now-", 5) ||
		!strncmp(c->snapshot + len, ".dbs-", 5));
}

void pool_drain(const pgsnap_store *s, const char *sig, const char *snapshot)
{
	cleanup_free pgsnap_clone *v = NULL;
	size_t n = 0, i, k = 0;

	if (registry_list(s, &v, &n, NULL) < 0)
		return;
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].state, "pooled") &&
		    (!sig || !strcmp(v[i].opts_sig, sig)) &&
		    (!snapshot || of_snapshot(&v[i], snapshot)))
			v[k++] = v[i];
	end_pooled(s, v, k);
}
