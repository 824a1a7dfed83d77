/*
 * gc.c - remove what is no longer wanted, and what crashed runs left.
 *
 * One pass: read the registry without the lock, judge every record and
 * every clone directory (reading /proc is slow next to the lock's other
 * work), then take the lock once to claim the victims (state "stopping",
 * creator = us, only if the record did not change meanwhile), stop all
 * their servers at once, move their directories to the trash, and take
 * the lock once more to drop the records.  The lock is never held across
 * a server stop or a file removal.
 *
 * A "starting" or "stopping" record whose creator is alive belongs to that
 * process: never touched.  Pids are trusted only with their start time, a
 * server found through postmaster.pid only if its cwd is that data
 * directory, and after a reboot (another boot_id) no pid at all.
 */
#include "internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define OVERLAYFS_MAGIC_ 0x794c7630

enum action { A_REMOVE = 1, A_ADOPT };

typedef struct victim {
	pgsnap_clone c;              /* the record as judged (or made up) */
	enum action action;
	bool orphan;                 /* a directory with no record */
	bool other_boot;             /* its pids belong to another boot */
	bool taken;                  /* claimed under the lock by us */
	const char *why;
	pid_t spid;                  /* its server, once found */
	unsigned long long sstart;
	bool keep;                   /* -k: keep the files */
	char trash[700];             /* where its directory went */
} victim;

typedef struct gc_pass {
	pgsnap_store *s;
	const gc_opts *o;
	gc_result *res;
	victim *v;
	size_t nv, capv;
	int64_t now;
	const pgsnap_clone *recs;    /* the registry as read (shared servers) */
	size_t nrecs;
} gc_pass;

void test_pause(const char *point)
{
	const char *p = getenv("PGSNAP_TEST_PAUSE");

	if (p && !strcmp(p, point))
		raise(SIGSTOP);
}

long effective_timeout(const pgsnap_clone *c)
{
	return c->timeout_s < 0 ? PGSNAP_DEFAULT_TIMEOUT_S : c->timeout_s;
}

/* ---- who is the server of a data directory? -------------------------- */

/* postgres chdirs into its data directory: that is how a pid read from a
 * stale postmaster.pid is told from a process that reused the number. */
static bool cwd_is(pid_t pid, const char *dir)
{
	char link[64], cwd[PATH_MAX], real[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
	n = readlink(link, cwd, sizeof(cwd) - 1);
	if (n <= 0)
		return false;
	cwd[n] = '\0';
	if (!realpath(dir, real))
		snprintf(real, sizeof(real), "%s", dir);
	return !strcmp(cwd, real);
}

/* Line n (1-based) of datadir/postmaster.pid into buf. */
static int pidfile_line(const char *datadir, int n, char *buf, size_t len)
{
	char path[PATH_MAX];
	cleanup_free char *text = NULL;
	const char *p;
	size_t l;

	if (path_join(path, sizeof(path), datadir, "postmaster.pid") < 0 ||
	    read_file(path, 8192, &text, NULL) < 0)
		return -ENOENT;
	for (p = text; n > 1 && p; n--) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		return -ENOENT;
	l = strcspn(p, "\n");
	if (l >= len)
		l = len - 1;
	memcpy(buf, p, l);
	buf[l] = '\0';
	return 0;
}

static pid_t pidfile_pid(const char *datadir)
{
	char line[64];
	long v;

	if (pidfile_line(datadir, 1, line, sizeof(line)) < 0 ||
	    parse_long(line, 1, INT_MAX, &v) < 0)
		return 0;
	return (pid_t)v;
}

/* The live postmaster of this clone, if any. */
static pid_t find_server(const pgsnap_clone *c, unsigned long long *start)
{
	pid_t pid;

	if (c->pid > 0 && c->pid_start && proc_alive(c->pid, c->pid_start)) {
		*start = c->pid_start;
		return c->pid;
	}
	pid = pidfile_pid(c->datadir);
	if (pid > 0 && pid != getpid() && cwd_is(pid, c->datadir)) {
		*start = proc_start_time(pid);
		if (*start)
			return pid;
	}
	return 0;
}

/* A server killed with SIGKILL leaves its System V segment behind (the
 * next start in the same directory would reclaim it, but the directory is
 * about to go): remove it if no one is attached and it is that server's. */
static void drop_stale_shm(const char *datadir)
{
	char line[128];
	unsigned long key, id;
	struct shmid_ds ds;
	pid_t pid = pidfile_pid(datadir);

	if (pid <= 0 || pidfile_line(datadir, 7, line, sizeof(line)) < 0 ||
	    sscanf(line, "%lu %lu", &key, &id) != 2 || id > INT_MAX)
		return;
	if (shmctl((int)id, IPC_STAT, &ds) == 0 && ds.shm_nattch == 0 &&
	    ds.shm_cpid == pid && (unsigned long)ds.shm_perm.__key == key)
		shmctl((int)id, IPC_RMID, NULL);
}

/* ---- clients of a server ---------------------------------------------- */

/* Process titles of the postmaster's own helpers ("postgres: NAME"); any
 * other child is a client backend (or about to become one: a child not yet
 * retitled counts too, so a connecting client is never cut off). */
static const char *const helper_titles[] = {
	"checkpointer", "background writer", "walwriter", "autovacuum ",
	"logical replication ", "archiver", "startup", "stats collector",
	"parallel worker", "walreceiver", "wal summarizer", "slotsync",
	"io worker", "syslogger",
};

/* Is child pid a client backend (of database db, when not NULL)?  Titles
 * read "postgres: USER DB HOST STATE"; a child not yet retitled counts for
 * every database but is never signalled. */
static bool is_client(pid_t pid, const char *db, bool *titled)
{
	char path[64], title[256];
	const char *p;
	size_t i, len;

	*titled = false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (read_file_buf(path, title, sizeof(title)) <= 0)
		return false; /* exiting */
	if (strncmp(title, "postgres: ", 10))
		return true;
	for (i = 0; i < ARRAY_SIZE(helper_titles); i++)
		if (!strncmp(title + 10, helper_titles[i],
			     strlen(helper_titles[i])))
			return false;
	if (!db)
		return true;
	p = strchr(title + 10, ' ');
	if (!p)
		return true;
	p++;
	len = strlen(db);
	*titled = true;
	return !strncmp(p, db, len) && (p[len] == ' ' || p[len] == '\0');
}

static int client_seen(pid_t pid, const char *db, int sig)
{
	bool titled;

	if (!is_client(pid, db, &titled))
		return 0;
	if (sig && titled)
		kill(pid, sig);
	return 1;
}

int server_clients(pid_t postmaster, const char *db, int sig)
{
	char path[64], *p, *end;
	cleanup_free char *kids = NULL;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
		 (int)postmaster, (int)postmaster);
	if (read_file(path, 1 << 20, &kids, NULL) == 0) {
		for (p = kids; *p; p = end) {
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 0)
				n += client_seen((pid_t)pid, db, sig);
		}
		return n;
	}
	/* Kernels without CONFIG_PROC_CHILDREN: walk /proc for the ppid. */
	DIR *d = opendir("/proc");
	struct dirent *e;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char stat[512];
		long pid, ppid;
		char *q;
		if (parse_long(e->d_name, 1, INT_MAX, &pid) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if (read_file_buf(path, stat, sizeof(stat)) <= 0)
			continue;
		q = strrchr(stat, ')');
		if (q && sscanf(q, ") %*c %ld", &ppid) == 1 &&
		    ppid == postmaster)
			n += client_seen((pid_t)pid, db, sig);
	}
	closedir(d);
	return n;
}

static bool proc_stopped(pid_t pid)
{
	char st = proc_state(pid);
	return st == 'T' || st == 't';
}

/* ---- judging ------------------------------------------------------------ */

static int add_victim(gc_pass *g, const pgsnap_clone *c, enum action a,
		      const char *why)
{
	victim *v;

	if (g->nv == g->capv) {
		size_t cap = g->capv ? g->capv * 2 : 16;
		v = realloc(g->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		g->v = v;
		g->capv = cap;
	}
	v = &g->v[g->nv++];
	memset(v, 0, sizeof(*v));
	v->c = *c;
	v->action = a;
	v->why = why;
	v->keep = c->keep;
	return 0;
}

static bool dir_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool record_watched(const pgsnap_clone *c)
{
	return strcmp(c->state, "kept") &&
	       (clone_is_shared(c) || effective_timeout(c) > 0 || c->owner > 0 ||
		!strcmp(c->state, "starting") ||
		!strcmp(c->state, "stopping"));
}

static void note_watched(gc_pass *g, const pgsnap_clone *c)
{
	long t = effective_timeout(c);
	int64_t due;

	if (!record_watched(c))
		return;
	g->res->watched++;
	if (t > 0 && !strcmp(c->state, "ready")) {
		due = c->created_ms + (int64_t)t * 1000;
		if (due > g->now && (!g->res->next_due_ms ||
				     due < g->res->next_due_ms))
			g->res->next_due_ms = due;
	}
}

static const pgsnap_clone *find_rec(const pgsnap_clone *v, size_t n,
				    const char *id)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].id, id))
			return &v[i];
	return NULL;
}

/* A shared server (shared.c) ends once every database was handed out and
 * every lease ended, or when none was handed out for PGSNAP_POOL_TTL. */
static const char *judge_shared(gc_pass *g, const pgsnap_clone *c)
{
	if (shared_leases(g->recs, g->nrecs, c->id))
		return NULL;
	if (c->dbs_used >= c->dbs)
		return "all its databases were handed out and used";
	if (g->now >= c->used_ms + pool_ttl_s() * 1000)
		return "no database of it was handed out for PGSNAP_POOL_TTL "
		       "seconds";
	return NULL;
}

/* The reason to remove c, or NULL to keep it. */
static const char *judge(gc_pass *g, const pgsnap_clone *c, bool *other_boot)
{
	long t;

	*other_boot = false;
	if (c->boot_id[0] && strcmp(c->boot_id, g->s->boot_id)) {
		*other_boot = true;
		return "made before the last reboot";
	}
	if (!strcmp(c->state, "kept"))
		return dir_exists(c->dir) ? NULL :
			"a kept clone whose directory is gone";
	if (!strcmp(c->state, "starting") || !strcmp(c->state, "stopping")) {
		if (proc_alive(c->creator, c->creator_start))
			return NULL;
		return !strcmp(c->state, "starting") ?
			"its creator died while making it" :
			"its removal was interrupted";
	}
	if (!proc_alive(c->pid, c->pid_start))
		return "its server died";
	if (!dir_exists(c->dir))
		return "its directory is gone";
	if (clone_is_shared(c))
		return judge_shared(g, c);
	if (clone_is_lease(c) && !find_rec(g->recs, g->nrecs, c->parent))
		return "its shared server is gone";
	if (c->owner > 0 && !proc_alive(c->owner, c->owner_start))
		return "its owner process ended";
	t = effective_timeout(c);
	if (t > 0 && g->now >= c->created_ms + (int64_t)t * 1000) {
		/* A stopped server (snapshot save pauses one while it copies
		 * the files) counts as in use. */
		if (!proc_stopped(c->pid) &&
		    server_clients(c->pid, clone_is_lease(c) ? c->dbname : NULL,
				   0) == 0)
			return "its time limit is up and no client is "
			       "connected";
		g->res->busy = true;
	}
	return NULL;
}

/* A clone directory with no record: a server still running there is
 * somebody's clone whose record was lost (a registry rebuilt, a store of
 * an older pgsnap): adopt it.  Anything else is a half-made clone. */
static int judge_orphan(gc_pass *g, const char *id)
{
	pgsnap_clone c;
	struct statfs fs;
	char line[256];
	long port;
	int r;

	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "%s", id);
	snprintf(c.dir, sizeof(c.dir), "%s/clones/%s", g->s->run, id);
	snprintf(c.datadir, sizeof(c.datadir), "%s/data", c.dir);
	sockdir_choose(g->s, &c); /* where new put it: maybe a short one */
	snprintf(c.boot_id, sizeof(c.boot_id), "%s", g->s->boot_id);
	c.pid = find_server(&c, &c.pid_start);
	if (c.pid > 0 && pidfile_line(c.datadir, 4, line, sizeof(line)) == 0 &&
	    parse_long(line, 1, 65535, &port) == 0) {
		c.port = (int)port;
		if (pidfile_line(c.datadir, 6, line, sizeof(line)) == 0 &&
		    !strcmp(line, "127.0.0.1"))
			snprintf(c.host, sizeof(c.host), "%s", line);
		snprintf(c.snapshot, sizeof(c.snapshot), "unknown");
		/* The method decides how rm releases it: an overlay is
		 * unmounted, the others are plain files. */
		snprintf(c.method, sizeof(c.method), "%s",
			 statfs(c.datadir, &fs) == 0 &&
			 fs.f_type == OVERLAYFS_MAGIC_ ? "overlay" : "copy");
		snprintf(c.state, sizeof(c.state), "ready");
		snprintf(c.user, sizeof(c.user), "postgres");
		snprintf(c.dbname, sizeof(c.dbname), "postgres");
		snprintf(c.os_user, sizeof(c.os_user), "%s", g->s->user);
		c.created_ms = g->now;
		c.timeout_s = PGSNAP_DEFAULT_TIMEOUT_S;
		r = add_victim(g, &c, A_ADOPT, "a server runs there but the "
			       "registry had lost its record");
	} else {
		c.pid = 0;
		r = add_victim(g, &c, A_REMOVE, "a clone directory with no "
			       "record (half-made)");
	}
	if (r == 0)
		g->v[g->nv - 1].orphan = true;
	return r;
}

static int judge_all(gc_pass *g, const pgsnap_clone *recs, size_t n,
		     pgsnap_error *err)
{
	char dir[600];
	DIR *d;
	struct dirent *e;
	size_t i;
	int r = 0;

	for (i = 0; i < n; i++) {
		bool other;
		const char *why = judge(g, &recs[i], &other);
		if (!why) {
			note_watched(g, &recs[i]);
			continue;
		}
		if (add_victim(g, &recs[i], A_REMOVE, why) < 0)
			return pgsnap_err(err, ENOMEM, "out of memory");
		g->v[g->nv - 1].other_boot = other;
	}
	snprintf(dir, sizeof(dir), "%s/clones", g->s->run);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 :
			pgsnap_errno(err, errno, "cannot read %s", dir);
	while ((e = readdir(d)) && r == 0) {
		if (e->d_name[0] == '.' || find_rec(recs, n, e->d_name) ||
		    !name_valid(e->d_name, sizeof(recs->id) - 1))
			continue;
		r = judge_orphan(g, e->d_name);
	}
	closedir(d);
	return r < 0 ? pgsnap_err(err, r, "out of memory") : 0;
}

/* ---- acting --------------------------------------------------------- */

static bool same_record(const pgsnap_clone *a, const pgsnap_clone *b)
{
	return !strcmp(a->state, b->state) && a->pid == b->pid &&
	       a->pid_start == b->pid_start && a->creator == b->creator &&
	       a->creator_start == b->creator_start &&
	       a->created_ms == b->created_ms &&
	       /* a shared server that handed out a database meanwhile */
	       a->dbs_used == b->dbs_used && a->used_ms == b->used_ms;
}

/* Files a writer died with: registry.tmp.PID.  Writes happen under the
 * lock, so any such file seen while we hold it is stale. */
static bool stale_tmp(gc_pass *g, bool unlink_them)
{
	DIR *d = opendir(g->s->run);
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "registry.tmp.", 13))
			continue;
		found = true;
		if (unlink_them && unlinkat(dirfd(d), e->d_name, 0) == 0)
			g->res->removed_files++;
	}
	closedir(d);
	return found;
}

static void drop_stale_tmp(gc_pass *g)
{
	registry reg;

	if (!stale_tmp(g, false) || registry_lock(g->s, &reg, NULL) < 0)
		return;
	stale_tmp(g, true);
	registry_unlock(&reg);
}

/* Under the lock: claim the victims (re-checked against the current
 * registry), add adopted records. */
static int claim(gc_pass *g, pgsnap_error *err)
{
	registry reg;
	unsigned long long me_start = proc_start_time(getpid());
	size_t i, claimed = 0;
	int r = registry_lock(g->s, &reg, err);

	if (r < 0)
		return r;
	for (i = 0; i < g->nv; i++) {
		victim *v = &g->v[i];
		pgsnap_clone *cur = registry_find(&reg, v->c.id);
		if (v->orphan) {
			if (cur)
				continue; /* someone recorded it meanwhile */
			if (v->action == A_ADOPT) {
				if (registry_append(&reg, &v->c) < 0)
					continue;
				claimed++;
				v->taken = true;
				continue;
			}
			/* Claim an unrecorded directory with a record of
			 * ours, so that a crash now leaves a record. */
			snprintf(v->c.state, sizeof(v->c.state), "stopping");
			v->c.creator = getpid();
			v->c.creator_start = me_start;
			if (registry_append(&reg, &v->c) < 0)
				continue;
		} else {
			if (!cur || !same_record(cur, &v->c))
				continue;
			snprintf(cur->state, sizeof(cur->state), "stopping");
			cur->creator = getpid();
			cur->creator_start = me_start;
			v->c = *cur;
		}
		v->taken = true;
		claimed++;
	}
	r = claimed ? registry_save(&reg, err) : 0;
	registry_unlock(&reg);
	if (r < 0)
		for (i = 0; i < g->nv; i++)
			g->v[i].taken = false;
	return r;
}

/* Stop every claimed server at once: fast shutdown for all, then wait. */
static void stop_servers(gc_pass *g)
{
	int64_t deadline;
	size_t i;

	for (i = 0; i < g->nv; i++) {
		victim *v = &g->v[i];
		if (!v->taken || v->action != A_REMOVE || v->other_boot)
			continue;
		/* A lease's server is its shared server's: only the
		 * lease's own sessions end. */
		if (clone_is_lease(&v->c)) {
			if (proc_alive(v->c.pid, v->c.pid_start))
				server_clients(v->c.pid, v->c.dbname, SIGTERM);
			continue;
		}
		v->spid = find_server(&v->c, &v->sstart);
		if (v->spid > 0)
			kill(v->spid, SIGINT);
	}
	deadline = mono_us() + (int64_t)g->o->stop_timeout_ms * 1000;
	for (i = 0; i < g->nv; i++) {
		victim *v = &g->v[i];
		int64_t left = (deadline - mono_us()) / 1000;
		if (v->spid <= 0)
			continue;
		if (wait_pid_exit(v->spid, left > 0 ? (int)left : 0) < 0)
			server_stop(v->spid, v->sstart, 0);
	}
}

static void trash_name(gc_pass *g, const victim *v, char *buf, size_t len)
{
	char rnd[9];
	random_hex(rnd, 8);
	snprintf(buf, len, "%s/trash/%s.%s", g->s->run, v->c.id, rnd);
}

static void release_files(gc_pass *g, victim *v)
{
	static const pgsnap_method all[] = { PGSNAP_METHOD_OVERLAY,
		PGSNAP_METHOD_REFLINK, PGSNAP_METHOD_COPY };
	const clone_engine *eng;
	pgsnap_method m;
	char path[700];
	size_t i;

	if (!v->other_boot)
		drop_stale_shm(v->c.datadir);
	/* Unknown method (orphans): every engine undoes what it may have
	 * done (unmounting what is not mounted is a no-op).  A kept clone
	 * stays as it is (an overlay stays mounted, to show its data) until
	 * rm releases it. */
	if (v->keep && !v->orphan) {
		/* nothing to release yet */
	} else if (pgsnap_method_parse(v->c.method, &m) == 0 &&
	    (eng = clone_engine_for(m))) {
		eng->release(g->s, v->c.dir);
	} else {
		for (i = 0; i < ARRAY_SIZE(all); i++)
			if ((eng = clone_engine_for(all[i])))
				eng->release(g->s, v->c.dir);
	}
	if (v->keep) {
		/* Keep the data for inspection, not the dead server's
		 * socket and lock files. */
		DIR *d = opendir(v->c.sockdir);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (!strncmp(e->d_name, ".s.PGSQL.", 9))
				unlinkat(dirfd(d), e->d_name, 0);
		if (d)
			closedir(d);
		snprintf(path, sizeof(path), "%s/postmaster.pid", v->c.datadir);
		unlink(path);
		return;
	}
	sockdir_remove(g->s, &v->c); /* a short one lives outside c.dir */
	/* Renamed now, deleted once the record is gone: the clone leaves
	 * its place at once, whatever the cost of deleting its files. */
	trash_name(g, v, v->trash, sizeof(v->trash));
	if (rename(v->c.dir, v->trash) < 0) {
		v->trash[0] = '\0';
		if (errno != ENOENT)
			rm_rf(v->c.dir);
	}
}

/* Under the lock: drop the records of what we removed. */
static int settle(gc_pass *g, pgsnap_error *err)
{
	registry reg;
	size_t i;
	int r = registry_lock(g->s, &reg, err);

	if (r < 0)
		return r;
	for (i = 0; i < g->nv; i++) {
		victim *v = &g->v[i];
		pgsnap_clone *cur;
		if (!v->taken || v->action != A_REMOVE)
			continue;
		cur = registry_find(&reg, v->c.id);
		if (!cur || cur->creator != getpid() ||
		    strcmp(cur->state, "stopping"))
			continue;
		if (v->keep && !v->orphan) {
			snprintf(cur->state, sizeof(cur->state), "kept");
			cur->pid = 0;
			cur->pid_start = 0;
			cur->creator = 0;
			cur->creator_start = 0;
		} else {
			registry_delete(&reg, cur);
		}
	}
	r = registry_save(&reg, err);
	registry_unlock(&reg);
	return r;
}

/* What a crashed rm left in the trash, and what we put there. */
static void empty_trash(gc_pass *g)
{
	char dir[600], what[700];
	DIR *d;
	struct dirent *e;
	bool any = false;

	snprintf(dir, sizeof(dir), "%s/trash", g->s->run);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		any = true;
		if (g->o->dry_run && g->o->report) {
			snprintf(what, sizeof(what), "%s/%s", dir, e->d_name);
			g->o->report(g->o->arg, "remove", what,
				     "left in the trash");
		}
	}
	closedir(d);
	if (!any || g->o->dry_run)
		return;
	/* The supervisor and new must not wait for a large delete. */
	if (g->o->trash_in_background)
		trash_kick(g->s);
	else
		trash_empty(g->s);
}

static void report(gc_pass *g, const victim *v)
{
	char what[128];

	if (!g->o->report)
		return;
	snprintf(what, sizeof(what), "clone %s", v->c.id);
	g->o->report(g->o->arg, v->action == A_ADOPT ? "recover" : "remove",
		     what, v->why);
}

int gc_run(pgsnap_store *s, const gc_opts *o, gc_result *res,
	   pgsnap_error *err)
{
	gc_pass g = { 0 };
	cleanup_free pgsnap_clone *recs = NULL;
	size_t n, i;
	int r;

	memset(res, 0, sizeof(*res));
	g.s = s;
	g.o = o;
	g.res = res;
	g.now = now_ms();
	r = registry_read(s, &recs, &n, err);
	if (r < 0)
		return r;
	g.recs = recs;
	g.nrecs = n;
	r = judge_all(&g, recs, n, err);
	if (r < 0)
		goto out;
	if (o->max_victims > 0 && g.nv > (size_t)o->max_victims)
		g.nv = (size_t)o->max_victims;
	if (o->dry_run) {
		for (i = 0; i < g.nv; i++)
			report(&g, &g.v[i]);
		res->removed = g.nv;
		empty_trash(&g);
		goto out;
	}
	if (g.nv) {
		r = claim(&g, err);
		if (r < 0)
			goto out;
		stop_servers(&g);
		for (i = 0; i < g.nv; i++) {
			victim *v = &g.v[i];
			if (!v->taken)
				continue;
			if (v->action == A_REMOVE && !clone_is_lease(&v->c))
				release_files(&g, v);
			report(&g, v);
			res->removed += v->action == A_REMOVE;
			res->adopted += v->action == A_ADOPT;
		}
		r = settle(&g, err);
	}
	drop_stale_tmp(&g);
	empty_trash(&g);
out:
	free(g.v);
	return r;
}

/* ---- public: pgsnap gc, and the cheap one before new ------------------ */

static int repair(pgsnap_store *s, const pgsnap_gc_opts *o,
		  pgsnap_error *err)
{
	registry reg;
	size_t dropped = 0;
	char bad[700];
	int r = registry_lock_salvage(s, &reg, &dropped, err);

	if (r < 0)
		return r;
	if (dropped && !o->dry_run) {
		/* Keep the damaged file for whoever wants to know why. */
		snprintf(bad, sizeof(bad), "%s.bad-%lld", reg.path,
			 (long long)now_ms());
		if (rename(reg.path, bad) < 0)
			r = pgsnap_errno(err, errno, "cannot move %s aside",
					 reg.path);
		else
			r = registry_save(&reg, err);
		if (r == 0 && o->report)
			o->report(o->arg, "rebuild", reg.path, "from the records "
				  "that could be read and the clones on disk "
				  "(damaged file kept as registry.bad-*)");
	} else if (dropped && o->report) {
		o->report(o->arg, "rebuild", reg.path, "it is corrupt");
	}
	registry_unlock(&reg);
	return r;
}

int pgsnap_gc(pgsnap_store *s, const pgsnap_gc_opts *po, size_t *removed,
	      pgsnap_error *err)
{
	static const pgsnap_gc_opts none = { 0 };
	gc_opts o = { 0 };
	gc_result res;
	int r;

	if (!po)
		po = &none;
	if (removed)
		*removed = 0;
	if (po->repair && (r = repair(s, po, err)) < 0)
		return r;
	if (po->dry_run && po->repair) {
		/* The registry may still be unreadable: judge nothing. */
		registry reg;
		if (registry_lock(s, &reg, NULL) < 0)
			return 0;
		registry_unlock(&reg);
	}
	o.dry_run = po->dry_run;
	o.stop_timeout_ms = GC_STOP_TIMEOUT_MS;
	o.report = po->report;
	o.arg = po->arg;
	r = gc_run(s, &o, &res, err);
	if (removed)
		*removed = res.removed;
	return r;
}

void gc_before_new(pgsnap_store *s)
{
	char path[600];
	cleanup_close int fd = -1;
	gc_opts o = { 0 };
	gc_result res;

	/* A running supervisor does this work; two news need not do it
	 * twice (gc.lock): both ways, new pays for gc only when no one
	 * else would. */
	if (supervisor_running(s))
		return;
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
