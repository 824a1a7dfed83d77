/*
 * gc.c - one pass over a store: judge every record and every clone
 * directory, and end what is due.
 *
 * The records are read without the lock (each file is whole), the facts
 * the judge needs read from /proc and the disk (reading /proc is slow
 * next to the lock's other work), every record judged (judge.c), then the
 * victims claimed and ended together (life.c): their servers are stopped
 * in parallel.  A directory with no record is a half-made clone, unless a
 * server still runs there: that one lost its record and is recorded again
 * (pids are trusted only with their start time, a server found through
 * postmaster.pid only if its cwd is that data directory).
 */
#include "internal.h"
#include "gc.h"
#include "judge.h"
#include "life.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define OVERLAYFS_MAGIC_ 0x794c7630

typedef struct gc_pass {
	const pgsnap_store *s;
	const gc_opts *o;
	gc_result *res;
	judge_ctx x;
	reg_scan sc;
	const pgsnap_clone **by_id;  /* sc.v sorted by id */
	life_victim *v;              /* to end */
	size_t nv, capv;
	life_victim *ad;             /* to record again */
	size_t nad, capad;
} gc_pass;

static int cmp_id(const void *a, const void *b)
{
	return strcmp((*(const pgsnap_clone *const *)a)->id,
		      (*(const pgsnap_clone *const *)b)->id);
}

static const pgsnap_clone *find_rec(const gc_pass *g, const char *id)
{
	pgsnap_clone key;
	const pgsnap_clone *kp = &key, **hit;

	if (!g->sc.n)
		return NULL;
	snprintf(key.id, sizeof(key.id), "%s", id);
	hit = bsearch(&kp, g->by_id, g->sc.n, sizeof(*g->by_id), cmp_id);
	return hit ? *hit : NULL;
}

static int push(life_victim **v, size_t *n, size_t *cap,
		const pgsnap_clone *c, const char *why)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		life_victim *nv = realloc(*v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].c = *c;
	(*v)[*n].why = why;
	(*n)++;
	return 0;
}

static int add_victim(gc_pass *g, const pgsnap_clone *c, bool adopt,
		      const char *why)
{
	return adopt ? push(&g->ad, &g->nad, &g->capad, c, why) :
		push(&g->v, &g->nv, &g->capv, c, why);
}

static bool dir_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The facts judge_record looks at, clients not yet counted. */
static void gather(const gc_pass *g, const pgsnap_clone *c, judge_facts *f)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	f->clients = -1;
	f->paths_valid = clone_paths_valid(g->s, c);
	f->creator_alive = proc_alive(c->creator, c->creator_start);
	f->server_alive = proc_alive(c->pid, c->pid_start);
	f->dir_exists = dir_exists(c->dir);
	f->owner_alive = c->owner > 0 && proc_alive(c->owner, c->owner_start);
	f->parent_exists = clone_is_lease(c) && find_rec(g, c->parent);
	f->server_paused = f->server_alive && proc_stopped(c->pid);
	f->idle_since_ms = clone_idle_since_ms(c);
	if (clone_is_shared(c))
		for (i = 0; i < g->sc.n; i++)
			f->leases += !strcmp(g->sc.v[i].parent, c->id);
}

static int judge_one(gc_pass *g, const pgsnap_clone *c)
{
	judge_facts f;
	judge_out o;

	gather(g, c, &f);
	judge_record(&g->x, c, &f, &o);
	if (o.need_clients) {
		f.clients = server_clients(c->pid, clone_is_lease(c) ?
					   c->dbname : NULL, 0);
		judge_record(&g->x, c, &f, &o);
	}
	if (o.why) {
		int r = add_victim(g, c, false, o.why);
		if (r == 0)
			g->v[g->nv - 1].other_boot = o.other_boot;
		return r;
	}
	if (o.watched) {
		g->res->watched++;
		if (o.due_ms && (!g->res->next_due_ms ||
				 o.due_ms < g->res->next_due_ms))
			g->res->next_due_ms = o.due_ms;
	}
	g->res->busy |= o.busy;
	return 0;
}

/* A clone directory with no record: a server still running there is
 * somebody's clone whose record was lost (a damaged record, a store of an
 * older pgsnap): adopt it.  Anything else is a half-made clone. */
static int judge_orphan(gc_pass *g, const char *id)
{
	pgsnap_clone c;
	struct statfs fs;
	char line[256];
	long port;

	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "%s", id);
	snprintf(c.dir, sizeof(c.dir), "%s/%s", g->s->clones, id);
	snprintf(c.datadir, sizeof(c.datadir), "%s/data", c.dir);
	sockdir_choose(g->s, &c); /* where new put it: maybe a short one */
	snprintf(c.boot_id, sizeof(c.boot_id), "%s", g->s->boot_id);
	c.pid = find_server(&c, &c.pid_start);
	if (c.pid <= 0 || pidfile_line(c.datadir, 4, line, sizeof(line)) < 0 ||
	    parse_long(line, 1, 65535, &port) < 0) {
		c.pid = 0;
		return add_victim(g, &c, false, "a clone directory with no "
				  "record (half-made)");
	}
	c.port = (int)port;
	if (pidfile_line(c.datadir, 6, line, sizeof(line)) == 0 &&
	    !strcmp(line, "127.0.0.1"))
		snprintf(c.host, sizeof(c.host), "%s", line);
	snprintf(c.snapshot, sizeof(c.snapshot), "unknown");
	/* The method decides how rm releases it: an overlay is unmounted,
	 * the others are plain files. */
	snprintf(c.method, sizeof(c.method), "%s",
		 statfs(c.datadir, &fs) == 0 && fs.f_type == OVERLAYFS_MAGIC_ ?
		 "overlay" : "copy");
	snprintf(c.state, sizeof(c.state), "ready");
	snprintf(c.user, sizeof(c.user), "postgres");
	snprintf(c.dbname, sizeof(c.dbname), "postgres");
	snprintf(c.os_user, sizeof(c.os_user), "%s", g->s->user);
	c.created_ms = g->x.now_ms;
	c.timeout_s = PGSNAP_DEFAULT_TIMEOUT_S;
	return add_victim(g, &c, true, "a server runs there but its record "
			  "was lost");
}

static int judge_all(gc_pass *g, pgsnap_error *err)
{
	char dir[600];
	cleanup_dir DIR *d = NULL;
	struct dirent *e;
	size_t i;
	int r = 0;

	g->by_id = malloc((g->sc.n ? g->sc.n : 1) * sizeof(*g->by_id));
	if (!g->by_id)
		return pgsnap_err(err, ENOMEM, "out of memory");
	for (i = 0; i < g->sc.n; i++)
		g->by_id[i] = &g->sc.v[i];
	qsort(g->by_id, g->sc.n, sizeof(*g->by_id), cmp_id);
	for (i = 0; i < g->sc.n && r == 0; i++)
		r = judge_one(g, &g->sc.v[i]);
	snprintf(dir, sizeof(dir), "%s", g->s->clones);
	d = opendir(dir);
	if (!d && errno != ENOENT)
		return pgsnap_errno(err, errno, "cannot read %s", dir);
	while (d && r == 0 && (e = readdir(d))) {
		size_t k;
		bool damaged = false;
		if (e->d_name[0] == '.' || find_rec(g, e->d_name) ||
		    !name_valid(e->d_name, sizeof(g->sc.v->id) - 1))
			continue;
		/* A damaged record's clone waits until the record is
		 * removed (this pass, unless a dry run): then it is an
		 * orphan like any other. */
		for (k = 0; k < g->sc.nbad; k++)
			damaged |= !strcmp(g->sc.bad[k], e->d_name);
		if (damaged && g->o->dry_run)
			continue;
		r = judge_orphan(g, e->d_name);
	}
	return r < 0 ? pgsnap_err(err, r, "out of memory") : 0;
}

static void report(const gc_pass *g, const char *verb, const char *what,
		   const char *why)
{
	if (g->o->report)
		g->o->report(g->o->arg, verb, what, why);
}

/* Records that do not parse: reported, and removed unless they were
 * rewritten meanwhile (checked again under the lock). */
static void drop_damaged(gc_pass *g)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	char what[128];
	size_t i;

	if (!g->sc.nbad || (!g->o->dry_run &&
			    registry_lock(g->s, &l, NULL) < 0))
		return;
	for (i = 0; i < g->sc.nbad; i++) {
		pgsnap_clone c;
		snprintf(what, sizeof(what), "record %s", g->sc.bad[i]);
		if (g->o->dry_run) {
			report(g, "remove", what, "it is damaged (unreadable)");
			continue;
		}
		if (registry_get(g->s, g->sc.bad[i], &c, NULL) != -EBADMSG &&
		    name_valid(g->sc.bad[i], sizeof(c.id) - 1))
			continue;
		if (registry_drop_damaged(g->s, g->sc.bad[i]) == 0) {
			report(g, "remove", what, "it is damaged (unreadable)");
			g->res->removed_files++;
		}
	}
}

/* Under the lock: record the servers whose records were lost. */
static void adopt(gc_pass *g)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	size_t i;

	if (!g->nad || registry_lock(g->s, &l, NULL) < 0)
		return;
	for (i = 0; i < g->nad; i++)
		g->ad[i].taken = registry_add(g->s, &g->ad[i].c, NULL) == 0;
}

static void empty_trash(gc_pass *g)
{
	char dir[600], what[700];
	cleanup_dir DIR *d = NULL;
	struct dirent *e;
	bool any = false;

	snprintf(dir, sizeof(dir), "%s", g->s->trash);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		any = true;
		if (g->o->dry_run) {
			snprintf(what, sizeof(what), "%s/%s", dir, e->d_name);
			report(g, "remove", what, "left in the trash");
		}
	}
	if (!any || g->o->dry_run)
		return;
	/* The service and new must not wait for a large delete. */
	if (g->o->trash_in_background)
		trash_kick(g->s);
	else
		trash_empty(g->s);
}

static bool want_unchanged(const pgsnap_clone *cur, const life_victim *v)
{
	return life_same_record(cur, &v->c);
}

static void report_all(gc_pass *g, const life_victim *v, size_t n,
		       const char *verb, size_t *count)
{
	char what[64];
	size_t i;

	for (i = 0; i < n; i++) {
		if (!v[i].taken && !g->o->dry_run)
			continue;
		snprintf(what, sizeof(what), "clone %s", v[i].c.id);
		report(g, verb, what, v[i].why);
		(*count)++;
	}
}

int gc_run(const pgsnap_store *s, const gc_opts *o, gc_result *res,
	   pgsnap_error *err)
{
	gc_pass g = { 0 };
	life_end_opts eo = { 0 };
	size_t i;
	int r;

	memset(res, 0, sizeof(*res));
	g.s = s;
	g.o = o;
	g.res = res;
	g.x.now_ms = now_ms();
	g.x.boot_id = s->boot_id;
	g.x.pool_ttl_s = s->cfg.pool_ttl_s;
	if ((r = registry_scan(s, &g.sc, err)) < 0)
		return r;
	drop_damaged(&g);
	if ((r = judge_all(&g, err)) < 0)
		goto out;
	if (o->max_victims > 0 && g.nv > (size_t)o->max_victims)
		g.nv = (size_t)o->max_victims;
	if (o->dry_run) {
		report_all(&g, g.v, g.nv, "remove", &res->removed);
		report_all(&g, g.ad, g.nad, "recover", &res->adopted);
		empty_trash(&g);
		goto out;
	}
	for (i = 0; i < g.nv; i++)
		g.v[i].orphan = !find_rec(&g, g.v[i].c.id);
	if (g.nv && (r = life_claim(s, g.v, g.nv, want_unchanged, err)) < 0)
		goto out;
	eo.stop_timeout_ms = o->stop_timeout_ms;
	eo.trash_in_background = o->trash_in_background;
	eo.honor_keep = true;
	life_end(s, g.v, g.nv, &eo);
	adopt(&g);
	report_all(&g, g.v, g.nv, "remove", &res->removed);
	report_all(&g, g.ad, g.nad, "recover", &res->adopted);
	res->removed_files += registry_drop_stale_tmp(s);
	res->removed_files += sockdir_short_gc();
	empty_trash(&g);
out:
	free(g.v);
	free(g.ad);
	free(g.by_id);
	registry_scan_free(&g.sc);
	return r;
}

void gc_before_new(const pgsnap_store *s)
{
	char path[600];
	cleanup_close int fd = -1;
	gc_opts o = { 0 };
	gc_result res;

	/* Two news need not do it twice (gc.lock). */
	if (path_join(path, sizeof(path), s->run, "gc.lock") < 0)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
		return;
	o.max_victims = GC_NEW_MAX_VICTIMS;
	o.trash_in_background = true;
	o.stop_timeout_ms = GC_NEW_STOP_TIMEOUT_MS;
	gc_run(s, &o, &res, NULL);
}
