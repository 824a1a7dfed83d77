/*
 * newclone.c - what `new` hands out: a pooled server, a database of a
 * shared server, or a server made now (life.c).
 *
 * The snapshot is settled first (built or refreshed as the options ask,
 * and held with a shared lock until it is cloned, so that a rebuild
 * waits), then the engine chosen, then the caller's record filled in: the
 * pool and the shared servers hand out a server of the same *variant*
 * (pool.c: pool_sig) with the caller's owner, limits and worker.
 */
#include "internal.h"
#include "life.h"
#include "quota.h"
#include "newclone.h"
#include "pool.h"
#include "shared.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define NEW_N_THREADS 4

int new_opts_resolve(const pgsnap_store *s, const pgsnap_new_opts *in,
		     pgsnap_new_opts *out, pgsnap_error *err)
{
	static const pgsnap_new_opts defaults = { 0 };

	*out = in ? *in : defaults;
	if (in == NULL)
		out->timeout_s = -1;
	/* 0: PGSNAP_SHARED (off when unset); -1: off. */
	if (out->shared == 0)
		out->shared = s->cfg.shared;
	else if (out->shared < 0)
		out->shared = 0;
	if (out->shared > PGSNAP_SHARED_MAX)
		return pgsnap_err(err, EINVAL, "--shared=%d: the databases of a "
				  "shared server are 1 to %d", out->shared,
				  PGSNAP_SHARED_MAX);
	if (out->shared && out->keep)
		return pgsnap_err(err, EINVAL, "-k with --shared: a shared "
				  "server's files are not one test's to keep");
	if (out->server_opts &&
	    strlen(out->server_opts) >= sizeof(((pgsnap_clone *)0)->options))
		return pgsnap_err(err, E2BIG, "-o: server options longer than "
				  "%zu bytes", sizeof(((pgsnap_clone *)0)->options) - 1);
	if (!out->worker)
		out->worker = s->cfg.worker;
	if (strlen(out->worker) >= sizeof(((pgsnap_clone *)0)->worker) ||
	    strpbrk(out->worker, "\t\n\r"))
		return pgsnap_err(err, EINVAL, "worker name '%.40s' is too long "
				  "or holds a control character", out->worker);
	return 0;
}

/* The record of a new clone, as far as the caller decides it. */
static void fill_template(const pgsnap_store *s, const pgsnap_new_opts *o,
			  const char *snap, const char *method,
			  unsigned long long owner_start, pgsnap_clone *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->snapshot, sizeof(c->snapshot), "%s", snap);
	snprintf(c->method, sizeof(c->method), "%s", method);
	snprintf(c->user, sizeof(c->user), "postgres");
	snprintf(c->dbname, sizeof(c->dbname), "postgres");
	snprintf(c->os_user, sizeof(c->os_user), "%s", s->user);
	snprintf(c->boot_id, sizeof(c->boot_id), "%s", s->boot_id);
	snprintf(c->worker, sizeof(c->worker), "%s", o->worker ? o->worker : "");
	c->creator = getpid();
	c->creator_start = proc_self_start_time();
	c->owner = o->owner;
	c->owner_start = !o->owner ? 0 : owner_start ? owner_start :
			 proc_start_time(o->owner);
	c->timeout_s = o->timeout_s < 0 ? PGSNAP_DEFAULT_TIMEOUT_S : o->timeout_s;
	c->keep = o->keep;
	c->created_ms = now_ms();
	c->dbs = o->shared;
	/* For life_start: -t, -6 and -o stay with the clone (reset). */
	if (o->tcp)
		snprintf(c->host, sizeof(c->host), "127.0.0.1");
	c->ipv6 = o->tcp && o->ipv6;
	snprintf(c->options, sizeof(c->options), "%s",
		 o->server_opts ? o->server_opts : "");
}

int new_prepare(pgsnap_store *s, const pgsnap_new_opts *o, new_prep *p,
		int *snap_lock, pgsnap_error *err)
{
	struct stat st;
	char meta[700];
	int r;

	memset(p, 0, sizeof(*p));
	if ((r = snapshot_for_new(s, o, p->snap, sizeof(p->snap), snap_lock,
				  err)) < 0)
		return r;
	snapshot_dir(s, p->snap, p->snapdir, sizeof(p->snapdir));
	if ((r = clone_choose_for(s, o->method, p->snapdir, &p->engine, err)) < 0)
		return r;
	pool_sig(o, p->snap, p->snapdir, p->engine->name, p->sig, sizeof(p->sig));
	snprintf(meta, sizeof(meta), "%s/meta", p->snapdir);
	if (stat(meta, &st) == 0) {
		p->meta_ino = st.st_ino;
		p->meta_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
				   st.st_mtim.tv_nsec;
	}
	return 0;
}

bool new_prep_current(const new_prep *p)
{
	struct stat st;
	char meta[700];

	/* A rebuilt or replaced snapshot is a new meta file (an inode of
	 * its own), as pool_sig sees it. */
	snprintf(meta, sizeof(meta), "%s/meta", p->snapdir);
	return p->engine && stat(meta, &st) == 0 && st.st_ino == p->meta_ino &&
	       (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec ==
	       p->meta_mtime_ns;
}

void new_template(const pgsnap_store *s, const pgsnap_new_opts *o,
		  const new_prep *p, unsigned long long owner_start,
		  pgsnap_clone *c)
{
	fill_template(s, o, p->snap, p->engine->name, owner_start, c);
	snprintf(c->opts_sig, sizeof(c->opts_sig), "%s", p->sig);
}

int clone_new_prepared(pgsnap_store *s, const pgsnap_new_opts *o,
		       const new_prep *p, int *snap_lock, bool pooled,
		       pgsnap_clone *out, pgsnap_error *err)
{
	cleanup_close int start_lock = -1;
	life_make_req q = { 0 };
	shared_commit_arg sc = { 0 };
	pgsnap_clone c;
	int r;

	new_template(s, o, p, 0, &c);
	if (!pooled && o->shared > 0) {
		r = shared_take(s, &c, out, err);
		/* None has a database left: one caller starts a server (the
		 * lock is ours until we return) and the callers waiting on
		 * the lock take its databases, not a server each. */
		if (r == 0 && (start_lock = shared_start_lock(s, c.opts_sig)) >= 0)
			r = shared_take(s, &c, out, err);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	if (!pooled && !o->shared && pool_size(s, o) > 0 &&
	    (r = pool_take(s, &c, out, err)) != 0)
		return r < 0 ? r : 0;

	/* A server is made: the store's limits count it. */
	if ((r = limits_check(s, err)) < 0)
		return r;
	q.o = o;
	q.engine = p->engine;
	q.snapdir = p->snapdir;
	q.snap_lock = snap_lock;
	q.state = "ready";
	if (pooled) {
		/* The keeper's own: no owner, and a limit of their own so that
		 * gc removes them should the service be killed. */
		c.owner = 0;
		c.owner_start = 0;
		c.keep = 0;
		c.timeout_s = s->cfg.pool_ttl_s + 60;
		c.worker[0] = '\0';
		q.prepare = pool_warm;
		q.commit = pool_commit;
	} else if (o->shared) {
		/* Our lease carries the caller's fields; the server none. */
		sc.t = &c;
		sc.out = out;
		sc.err = err;
		q.commit = shared_commit;
		q.arg = &sc;
	}
	{
		pgsnap_clone made = c;
		if ((r = life_make(s, &q, &made, err)) < 0)
			return r;
		if (!o->shared || pooled)
			*out = made;
	}
	return 0;
}

int new_check(const pgsnap_new_opts *o, pgsnap_error *err)
{
	if (o->owner > 0 && !proc_alive(o->owner, 0))
		return pgsnap_err(err, ESRCH, "--owner %d: no such process",
				  (int)o->owner);
	return guard_fd_limit(err);
}

int clone_new(pgsnap_store *s, const pgsnap_new_opts *o, bool pooled,
	      pgsnap_clone *out, pgsnap_error *err)
{
	cleanup_close int snap_lock = -1;
	new_prep p;
	int r;

	if ((r = new_check(o, err)) < 0 ||
	    (r = new_prepare(s, o, &p, &snap_lock, err)) < 0)
		return r;
	return clone_new_prepared(s, o, &p, &snap_lock, pooled, out, err);
}

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
		m->rc[i] = clone_new(m->s, m->o, false, &m->out[i], &m->errs[i]);
	}
}

int clone_new_n(pgsnap_store *s, const pgsnap_new_opts *o, size_t n,
		pgsnap_clone *out, pgsnap_error *err)
{
	pthread_t th[NEW_N_THREADS];
	/* Databases of shared servers come one server at a time: the
	 * first call starts one, the next ones take its databases. */
	size_t nth = o->shared ? 1 : n < NEW_N_THREADS ? n : NEW_N_THREADS;
	size_t started = 0, i;
	cleanup_free int *rc = NULL;
	cleanup_free pgsnap_error *errs = NULL;
	new_many m = { 0 };
	int first = 0;

	if (n == 0)
		return pgsnap_err(err, EINVAL, "no clone asked for");
	if (n == 1)
		return clone_new(s, o, false, out, err);
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
	/* Each worker takes a pooled server while there is one and starts a
	 * cold one after: the pool first, the rest in parallel. */
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
			clone_rm(s, out[i].id, NULL);
	return first;
}

/* ---- ending by name -------------------------------------------------------- */

int clone_rm_claim(const pgsnap_store *s, const char *ref, life_victim *v,
		   pgsnap_error *err)
{
	int r;

	memset(v, 0, sizeof(*v));
	if ((r = registry_find(s, ref, &v->c, err)) < 0)
		return r;
	if (!clone_paths_valid(s, &v->c))
		return pgsnap_err(err, EPERM, "registry record %s names %s, "
				  "outside the store: not touching it",
				  v->c.id, v->c.dir);
	/* Whatever state it is in: only a process at work on it (a live
	 * creator) and rm itself claim it; the latest claim wins. */
	r = life_claim(s, v, 1, NULL, err);
	if (r < 0)
		return r;
	if (r == 0)
		return pgsnap_err(err, ENOENT, "no clone '%s' in this store "
				  "(see 'pgsnap ls')", ref);
	return 0;
}

void clone_rm_finish(const pgsnap_store *s, life_victim *v)
{
	life_end_opts o = { .stop_timeout_ms = LIFE_STOP_TIMEOUT_MS,
			    .trash_in_background = true };
	cleanup_free pgsnap_clone *all = NULL;
	size_t n = 0, i, k = 0;

	/* A shared server goes with its leases. */
	if (clone_is_shared(&v->c) || v->c.dbs > 0) {
		cleanup_free life_victim *lv = NULL;
		if (registry_list(s, &all, &n, NULL) == 0 && n &&
		    (lv = calloc(n, sizeof(*lv)))) {
			for (i = 0; i < n; i++)
				if (!strcmp(all[i].parent, v->c.id))
					lv[k++].c = all[i];
			if (k && life_claim(s, lv, k, NULL, NULL) > 0)
				life_end(s, lv, k, &o);
		}
	}
	life_end(s, v, 1, &o);
	/* A lease's server may have been waiting for its last lease. */
	if (clone_is_lease(&v->c))
		shared_retire(s, v->c.parent);
}

int clone_rm(const pgsnap_store *s, const char *ref, pgsnap_error *err)
{
	life_victim v;
	int r = clone_rm_claim(s, ref, &v, err);

	if (r == 0)
		clone_rm_finish(s, &v);
	return r;
}
