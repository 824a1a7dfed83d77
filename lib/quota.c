/*
 * quota.c - what a store may hold: PGSNAP_MAX_CLONES servers (a database
 * of a shared server is not one) and PGSNAP_MAX_BYTES of files (snapshots
 * and clones).  Checked before a server is made, not before a handout
 * from what runs already; at the limit, a gc pass first, then one clear
 * error.  Snapshots unused for PGSNAP_SNAPSHOT_TTL seconds go with gc.
 */
#include "internal.h"
#include "gc.h"
#include "quota.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static size_t servers(const pgsnap_store *s)
{
	cleanup_free pgsnap_clone *v = NULL;
	size_t n = 0, i, k = 0;

	if (registry_list(s, &v, &n, NULL) < 0)
		return 0;
	for (i = 0; i < n; i++)
		k += !clone_is_lease(&v[i]);
	return k;
}

static long long store_bytes(const pgsnap_store *s)
{
	char path[600];
	long long sum = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/snapshots", s->home);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		sum += tree_bytes(fd);
	snprintf(path, sizeof(path), "%s", s->clones);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		sum += tree_bytes(fd);
	return sum;
}

/* 0 when under the limits, else the error. */
static int over(const pgsnap_store *s, pgsnap_error *err)
{
	const store_cfg *c = &s->cfg;
	size_t n;
	long long b;

	if (c->max_clones && (n = servers(s)) >= (size_t)c->max_clones)
		return pgsnap_err(err, ENOSPC, "the store holds %zu servers "
				  "(PGSNAP_MAX_CLONES=%ld): remove some (pgsnap "
				  "ls, pgsnap rm) or raise the limit", n,
				  c->max_clones);
	if (c->max_bytes && (b = store_bytes(s)) >= c->max_bytes)
		return pgsnap_err(err, ENOSPC, "the store holds %lld MiB "
				  "(PGSNAP_MAX_BYTES=%lld MiB): remove clones or "
				  "snapshots (pgsnap rm, pgsnap snapshot gc --keep "
				  "N) or raise the limit", b >> 20,
				  c->max_bytes >> 20);
	return 0;
}

int limits_check(const pgsnap_store *s, pgsnap_error *err)
{
	gc_opts o = { 0 };
	gc_result res;

	if ((!s->cfg.max_clones && !s->cfg.max_bytes) || over(s, NULL) == 0)
		return 0;
	/* What is due goes first: the limit counts what is wanted. */
	o.stop_timeout_ms = GC_NEW_STOP_TIMEOUT_MS;
	gc_run(s, &o, &res, NULL);
	return over(s, err);
}
