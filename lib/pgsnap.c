/*
 * pgsnap.c - the public API of clones: new, list, rm, gc.
 *
 * When the store's service runs, new and rm are requests to it (client.c):
 * the service hands out from what it keeps warm and ends clones in the
 * background.  Otherwise the work is done here, in the caller's process
 * (newclone.c, life.c), and the service is started afterwards when a clone
 * needs watching (a time limit, an owner) or a pool is wanted.  Either way
 * the answer, the errors and the registry are the same.
 */
#include "internal.h"
#include "client.h"
#include "gc.h"
#include "json.h"
#include "newclone.h"
#include "pool.h"
#include "proto.h"
#include "life.h"
#include "reset.h"
#include "service.h"
#include "snapshot.h"
#include "xfsstore.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

/* ---- a connection to the service, reused ------------------------------- */

static void cache_free(void *c)
{
	client_close(c);
}

/* A connection to the running service, or NULL when there is none (or
 * it must not be used: PGSNAP_SERVICE=0, a test pausing `new`). */
static svc_client *service_conn(pgsnap_store *s)
{
	svc_client *c = NULL;

	if (!s->cfg.service || s->cfg.test_pause[0])
		return NULL;
	pthread_mutex_lock(&s->svc_mu);
	if (s->svc_ncache)
		c = s->svc_cache[--s->svc_ncache];
	pthread_mutex_unlock(&s->svc_mu);
	if (c || !service_running(s))
		return c;
	if (client_open(s, false, &c, NULL) < 0)
		return NULL;
	/* Another PGSNAP_PG_BINDIR, other limits...: our work, done here
	 * (the registry keeps both right). */
	if (!client_same_config(c, s)) {
		client_close(c);
		return NULL;
	}
	return c;
}

static void service_done(pgsnap_store *s, svc_client *c, bool ok)
{
	if (!c)
		return;
	pthread_mutex_lock(&s->svc_mu);
	if (ok && s->svc_ncache < (int)ARRAY_SIZE(s->svc_cache)) {
		s->svc_cache[s->svc_ncache++] = c;
		s->svc_free = cache_free;
		c = NULL;
	}
	pthread_mutex_unlock(&s->svc_mu);
	client_close(c);
}

/* A request to the service; 1 when done there (r in *rc), 0 when there is
 * no service to ask: then the caller does the work.  A service that went
 * away meanwhile is asked again once, started anew. */
static int ask(pgsnap_store *s, const char *line, json_doc *doc, int *rc,
	       pgsnap_error *err)
{
	svc_client *c = service_conn(s);
	int r;

	if (!c)
		return 0;
	r = client_call(c, line, doc, err);
	if (r == -ECONNRESET && strcmp(line, "stop\n")) {
		client_close(c);
		if ((r = client_open(s, true, &c, err)) < 0) {
			*rc = r;
			return 1;
		}
		r = client_call(c, line, doc, err);
	}
	service_done(s, c, r == 0 || (r != -ECONNRESET && r != -EPROTO));
	*rc = r;
	return 1;
}

/* ---- new ---------------------------------------------------------------------- */

static void put_opts(jbuf *b, const pgsnap_store *s, const pgsnap_new_opts *o)
{
	if (o->snapshot)
		proto_put(b, "snapshot", o->snapshot);
	proto_put_long(b, "shared", o->shared);
	if (o->timeout_s >= 0)
		proto_put_long(b, "timeout", o->timeout_s);
	if (o->owner > 0)
		proto_put_long(b, "owner", o->owner);
	if (o->tcp)
		proto_put(b, o->ipv6 ? "ipv6" : "tcp", "1");
	if (o->now)
		proto_put(b, "now", o->now);
	if (o->server_opts)
		proto_put(b, "options", o->server_opts);
	if (o->method != PGSNAP_METHOD_AUTO)
		proto_put(b, "method", pgsnap_method_name(o->method));
	if (o->keep)
		proto_put(b, "keep", "1");
	/* Our PGSNAP_POOL, not the service's. */
	proto_put_long(b, "pool", pool_size(s, o));
	if (o->build_if_stale)
		proto_put(b, "build_if_stale", "1");
	if (o->worker && *o->worker)
		proto_put(b, "worker", o->worker);
	/* As root the server's user is the caller's choice (-u). */
	if (s->as_root)
		proto_put(b, "user", s->user);
}

static int answer_clones(const json_doc *d, const pgsnap_new_opts *o,
			 size_t n, pgsnap_clone *out, pgsnap_error *err)
{
	const json_node *v = json_get(d, d->nodes, "clones"), *built;
	size_t i = 0;
	int k;

	built = json_get(d, d->nodes, "built");
	for (k = built && o->progress ? built->child : -1; k >= 0;
	     k = d->nodes[k].next)
		if (json_str(d, &d->nodes[k]))
			o->progress(o->progress_ctx, 1, json_str(d, &d->nodes[k]));
	if (!v)
		return n == 1 && json_to_clone(d, d->nodes, out) == 0 ? 0 :
			pgsnap_err(err, EPROTO, "the service's answer holds no clone");
	for (k = v->child; k >= 0 && i < n; k = d->nodes[k].next)
		if (json_to_clone(d, &d->nodes[k], &out[i]) == 0)
			i++;
	return i == n ? 0 : pgsnap_err(err, EPROTO, "the service answered "
				       "with %zu clones for %zu", i, n);
}

/* After a new done here: a limit or an owner needs the service to watch
 * it, a pool needs it to keep servers warm. */
static void after_new(pgsnap_store *s, const pgsnap_new_opts *o,
		      const pgsnap_clone *c)
{
	svc_client *cl;
	json_doc d;
	jbuf b = { 0 };

	if (!s->cfg.service)
		return;
	if (pool_size(s, o) <= 0) {
		if (record_watched(c) && !service_running(s))
			service_ensure(s, NULL);
		return;
	}
	if (client_open(s, true, &cl, NULL) < 0)
		return;
	if (!client_same_config(cl, s)) {
		client_close(cl); /* its pools are of its settings, not ours */
		return;
	}
	jb_raw(&b, "warm");
	put_opts(&b, s, o);
	jb_raw(&b, "\n");
	if (!b.oom && client_call(cl, b.p, &d, NULL) == 0)
		json_free(&d);
	free(b.p);
	service_done(s, cl, true);
}

int pgsnap_new_n(pgsnap_store *s, const pgsnap_new_opts *in, size_t n,
		 pgsnap_clone *out, pgsnap_error *err)
{
	pgsnap_new_opts o;
	json_doc d;
	jbuf b = { 0 };
	int r, rc;

	if (n == 0 || n > 1000)
		return pgsnap_err(err, EINVAL, "%zu clones asked for: 1 to 1000",
				  n);
	if ((r = new_opts_resolve(s, in, &o, err)) < 0)
		return r;
	jb_raw(&b, "new");
	put_opts(&b, s, &o);
	if (n > 1)
		proto_put_long(&b, "count", (long)n);
	jb_raw(&b, "\n");
	if (b.oom) {
		free(b.p);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	r = ask(s, b.p, &d, &rc, err);
	free(b.p);
	if (r) {
		if (rc < 0)
			return rc;
		rc = answer_clones(&d, &o, n, out, err);
		json_free(&d);
		return rc;
	}
	gc_before_new(s);
	if ((r = clone_new_n(s, &o, n, out, err)) < 0)
		return r;
	after_new(s, &o, &out[0]);
	return 0;
}

int pgsnap_new(pgsnap_store *s, const pgsnap_new_opts *o, pgsnap_clone *out,
	       pgsnap_error *err)
{
	return pgsnap_new_n(s, o, 1, out, err);
}

/* ---- list, rm, gc ---------------------------------------------------------------- */

/* The service must run while something needs watching: the next call of
 * any kind starts it again after a kill. */
static void keep_watched(pgsnap_store *s, const pgsnap_clone *v, size_t n)
{
	size_t i;

	if (!s->cfg.service || s->cfg.test_pause[0])
		return;
	for (i = 0; i < n; i++)
		if (record_watched(&v[i]))
			break;
	if (i < n && !service_running(s))
		service_ensure(s, NULL);
}

int pgsnap_find(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		pgsnap_error *err)
{
	return registry_find(s, ref, out, err);
}

int pgsnap_list(pgsnap_store *s, pgsnap_clone **out, size_t *n,
		pgsnap_error *err)
{
	int r = registry_list(s, out, n, err);

	if (r == 0)
		keep_watched(s, *out, *n);
	return r;
}

static int rm_request(pgsnap_store *s, const char *key, const char *val,
		      size_t *removed, pgsnap_error *err)
{
	const json_node *k;
	json_doc d;
	jbuf b = { 0 };
	int r, rc;

	jb_raw(&b, "rm");
	proto_put(&b, key, val);
	/* `pgsnap rm` returns once the clone is gone: tests and scripts
	 * look right after it. */
	jb_raw(&b, " wait=1\n");
	r = b.oom ? 0 : ask(s, b.p, &d, &rc, err);
	free(b.p);
	if (!r)
		return 0;
	if (rc == 0) {
		k = json_get(&d, d.nodes, "removed");
		if (removed && k && k->type == JSON_NUMBER)
			*removed = (size_t)k->num;
		json_free(&d);
	}
	return rc < 0 ? rc : 1;
}

/* A verb on one clone (reset, keep): the service does it, or we. */
static int on_clone(pgsnap_store *s, const char *verb, const char *ref,
		    pgsnap_clone *out, pgsnap_error *err,
		    int (*direct)(pgsnap_store *, const char *,
				  pgsnap_clone *, pgsnap_error *))
{
	pgsnap_clone c;
	json_doc d;
	jbuf b = { 0 };
	int r, rc;

	jb_raw(&b, verb);
	proto_put(&b, "id", ref);
	jb_raw(&b, "\n");
	r = b.oom ? 0 : ask(s, b.p, &d, &rc, err);
	free(b.p);
	if (!r)
		return direct(s, ref, out, err);
	if (rc < 0)
		return rc;
	rc = json_to_clone(&d, d.nodes, &c);
	json_free(&d);
	if (rc < 0)
		return pgsnap_err(err, EPROTO, "the service's answer holds no "
				  "clone");
	if (out)
		*out = c;
	return 0;
}

int pgsnap_reset(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		 pgsnap_error *err)
{
	return on_clone(s, "reset", ref, out, err, clone_reset);
}

static int keep_direct(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		       pgsnap_error *err)
{
	return life_keep(s, ref, out, err);
}

int pgsnap_keep(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		pgsnap_error *err)
{
	return on_clone(s, "keep", ref, out, err, keep_direct);
}

int pgsnap_rm(pgsnap_store *s, const char *ref, pgsnap_error *err)
{
	int r = rm_request(s, "id", ref, NULL, err);

	return r != 0 ? (r < 0 ? r : 0) : clone_rm(s, ref, err);
}

/* Nothing left: the service leaves within a round.  Wait for it (a
 * little), so that nothing of the store stays busy after rm --all: a
 * test unmounts the store's filesystem next. */
static void wait_service_gone(pgsnap_store *s, int ms)
{
	cleanup_free pgsnap_clone *v = NULL;
	int64_t deadline = mono_us() + ms * 1000LL;
	size_t n = 0;

	if (registry_list(s, &v, &n, NULL) < 0 || n)
		return;
	pthread_mutex_lock(&s->svc_mu);
	while (s->svc_ncache)
		client_close(s->svc_cache[--s->svc_ncache]);
	pthread_mutex_unlock(&s->svc_mu);
	while (service_running(s) && mono_us() < deadline)
		poll(NULL, 0, 5);
}

int pgsnap_rm_worker(pgsnap_store *s, const char *worker, size_t *removed,
		     pgsnap_error *err)
{
	cleanup_free pgsnap_clone *v = NULL;
	size_t n = 0, i;
	int r, first = 0;

	*removed = 0;
	if ((r = rm_request(s, worker ? "worker" : "all", worker ? worker : "1",
			    removed, err)) != 0) {
		if (r > 0 && !worker)
			wait_service_gone(s, 2000);
		return r < 0 ? r : 0;
	}
	/* No service: nobody keeps a pool either. */
	if ((r = registry_list(s, &v, &n, err)) < 0)
		return r;
	for (i = 0; i < n; i++) {
		pgsnap_error e2 = { 0 };
		if (worker && strcmp(v[i].worker, worker))
			continue;
		r = clone_rm(s, v[i].id, &e2);
		if (r == 0)
			(*removed)++;
		else if (r != -ENOENT && !first) {
			first = r;
			if (err)
				*err = e2;
		}
	}
	return first;
}

int pgsnap_rm_all(pgsnap_store *s, size_t *removed, pgsnap_error *err)
{
	return pgsnap_rm_worker(s, NULL, removed, err);
}

int pgsnap_gc(pgsnap_store *s, const pgsnap_gc_opts *po, size_t *removed,
	      pgsnap_error *err)
{
	static const pgsnap_gc_opts none = { 0 };
	cleanup_free pgsnap_clone *v = NULL;
	gc_opts o = { 0 };
	gc_result res;
	size_t n = 0;
	int r;

	if (!po)
		po = &none;
	if (removed)
		*removed = 0;
	/* --repair: a damaged record costs only its clone, which gc
	 * removes in any pass; kept for scripts that ask for it. */
	o.dry_run = po->dry_run;
	o.stop_timeout_ms = GC_STOP_TIMEOUT_MS;
	o.report = po->report;
	o.arg = po->arg;
	r = gc_run(s, &o, &res, err);
	if (r == 0 && !po->dry_run && res.unfinished_resets)
		reset_finish(s);
	if (removed)
		*removed = res.removed;
	if (r == 0 && !po->dry_run && registry_list(s, &v, &n, NULL) == 0)
		keep_watched(s, v, n);
	return r;
}

/* ---- snapshots that clones use ------------------------------------------- */

int pgsnap_snapshot_rm(pgsnap_store *s, const char *name, int force,
		       pgsnap_error *err)
{
	cleanup_close int lfd = -1;
	cleanup_free pgsnap_clone *v = NULL;
	json_doc d;
	jbuf b = { 0 };
	size_t n = 0, i;
	int r, rc;

	if ((r = snapshot_check(s, name, err)) < 0)
		return r;
	/* Its pooled servers are nobody's clones: they go first, and their
	 * keepers with them (or they would refill what we remove).  Before
	 * the lock: a keeper making a clone holds it shared. */
	jb_raw(&b, "forget");
	proto_put(&b, "snapshot", name);
	jb_raw(&b, "\n");
	if (!b.oom && ask(s, b.p, &d, &rc, NULL) && rc == 0)
		json_free(&d);
	free(b.p);
	pool_drain(s, NULL, name);
	if ((r = snap_lock(s, name, LOCK_EX, &lfd, err)) < 0)
		return r;
	if ((r = registry_list(s, &v, &n, err)) < 0)
		return r;
	for (i = 0, r = 0; i < n; i++)
		r += !strcmp(v[i].snapshot, name);
	if (r > 0 && !force)
		return pgsnap_err(err, EBUSY, "snapshot '%s' has %d clone%s "
			"alive (see 'pgsnap ls'); remove them first or use "
			"--force", name, r, r == 1 ? "" : "s");
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].snapshot, name) &&
		    (r = clone_rm(s, v[i].id, err)) < 0 && r != -ENOENT)
			return r;
	return snapshot_remove_dir(s, name, err);
}

/* ---- the service ---------------------------------------------------------------- */

int pgsnap_service_start(pgsnap_store *s, char *sock, size_t len,
			 pgsnap_error *err)
{
	svc_client *c;
	int r;

	/* Up and answering, not only started. */
	if ((r = client_open(s, true, &c, err)) < 0)
		return r;
	service_done(s, c, true);
	if (sock && (r = service_sock_path(s, sock, len)) < 0)
		return pgsnap_err(err, r, "no path for the service socket");
	return 0;
}

#define SERVICE_STOP_WAIT_MS 10000

int pgsnap_service_stop(pgsnap_store *s, pgsnap_error *err)
{
	json_doc d;
	int r, rc;

	int64_t until;

	r = ask(s, "stop\n", &d, &rc, err);
	if (r && rc == 0)
		json_free(&d);
	if (r && rc < 0 && rc != -ECONNRESET)
		return rc;
	/* Gone when this returns: its lock let go (a store about to be
	 * unmounted or removed must not have it in there). */
	until = mono_us() + SERVICE_STOP_WAIT_MS * 1000LL;
	while (service_running(s) && mono_us() < until)
		poll(NULL, 0, 5);
	return 0;
}

int pgsnap_service_status(pgsnap_store *s, char *sock, size_t len)
{
	if (sock && len)
		service_sock_path(s, sock, len);
	return service_running(s) ? 1 : 0;
}

/* ---- the XFS image store ------------------------------------------------ */

/* Everything that runs on the store at home stops first: its clones
 * (they would be lost) and its service (it would serve the old place). */
static int quiesce(pgsnap_store *s, const char *home, pgsnap_error *err)
{
	pgsnap_store_opts o = { .home = home, .user = s->user,
				.bindir = s->bindir, .as_is = 1 };
	pgsnap_store *on = s;
	size_t n;
	int r;

	if (strcmp(home, s->home) && (r = pgsnap_store_open(&on, &o, err)) < 0)
		return r;
	r = pgsnap_rm_all(on, &n, err);
	if (r == 0)
		r = pgsnap_service_stop(on, err);
	if (r == 0)
		trash_empty(on);
	if (on != s)
		pgsnap_store_close(on);
	return r < 0 ? pgsnap_err_wrap(err, r, "stopping what runs on the "
				       "store %s", home) : 0;
}

int pgsnap_store_xfs(pgsnap_store *s, unsigned long long bytes,
		     pgsnap_error *err)
{
	return xfs_store_make(s, bytes, quiesce, err);
}

int pgsnap_store_xfs_rm(pgsnap_store *s, pgsnap_error *err)
{
	return xfs_store_remove(s, quiesce, err);
}

void pgsnap_store_info_get(const pgsnap_store *s, pgsnap_store_info *info)
{
	xfs_store_info i;

	memset(info, 0, sizeof(*info));
	snprintf(info->snapshots, sizeof(info->snapshots), "%s/snapshots",
		 s->home);
	snprintf(info->clones, sizeof(info->clones), "%s", s->clones);
	xfs_store_info_get(s, &i);
	info->xfs_exists = i.exists;
	info->xfs_mounted = i.mounted;
	snprintf(info->xfs_image, sizeof(info->xfs_image), "%s", i.image);
	snprintf(info->xfs_mnt, sizeof(info->xfs_mnt), "%s", i.mnt);
	snprintf(info->xfs_dev, sizeof(info->xfs_dev), "%s", i.dev);
	info->xfs_size = i.size;
	info->xfs_disk = i.disk;
	info->xfs_used = i.used;
}
