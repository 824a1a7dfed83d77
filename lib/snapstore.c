/*
 * snapstore.c - where snapshots live: their directory, locks, putting a
 * complete build in place atomically, listing, removing, and collecting
 * leftovers (what a snapshot is, its meta: snapmeta.c).  The decisions of
 * `new` and builds (snapshot.c) rest on this.
 *
 * A snapshot is home/snapshots/NAME/ holding data/ (a cleanly shut down
 * data directory owned by the server user), meta (key, PostgreSQL version,
 * machine, origin) and, when it was built from a recipe, recipe (the
 * directives with absolute paths, so that it can be rebuilt).  It is built
 * aside in a .build-* directory and swapped into place only when complete,
 * under a per-name lock so that concurrent builders wait for one build.
 */
#include "snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

int snapshot_dir(const pgsnap_store *s, const char *name, char *buf,
		 size_t len)
{
	int n = snprintf(buf, len, "%s/snapshots/%s", s->home, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool snapshot_exists(const char *dir)
{
	char meta[700];
	snprintf(meta, sizeof(meta), "%s/meta", dir);
	return access(meta, F_OK) == 0;
}

int snapshot_check_name(const char *name, pgsnap_error *err)
{
	if (!name_valid(name, 63))
		return pgsnap_err(err, EINVAL,
			"snapshot name '%s' is invalid (letters, digits, '_', "
			"'-', '.'; at most 63; not starting with '.' or '-')",
			name);
	return 0;
}

/* ---- locks, build directories, installing ------------------------------- */

int snap_lock(const pgsnap_store *s, const char *name, int how, int *fd,
	      pgsnap_error *err)
{
	char path[700];
	int lfd;

	snprintf(path, sizeof(path), "%s/snapshots/.%s.lock", s->home, name);
	lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", path);
	while (flock(lfd, how) < 0) {
		int e = errno;
		if (e == EINTR)
			continue;
		close(lfd);
		if (e == EWOULDBLOCK)
			return -EWOULDBLOCK;
		return pgsnap_errno(err, e, "cannot lock %s", path);
	}
	*fd = lfd;
	return 0;
}

int snap_build_dir(const pgsnap_store *s, const char *name, char *buf,
		   size_t len, pgsnap_error *err)
{
	char suffix[17];
	int r;

	random_hex(suffix, 16);
	if (snprintf(buf, len, "%s/snapshots/.build-%s-%s", s->home, name,
		     suffix) >= (int)len)
		return pgsnap_err(err, ENAMETOOLONG, "snapshot path too long");
	r = mkdir_server(s, buf);
	return r < 0 ? pgsnap_errno(err, r, "cannot create %s", buf) : 0;
}

int snap_clones(const pgsnap_store *s, const char *name, pgsnap_error *err)
{
	cleanup_free pgsnap_clone *v = NULL;
	size_t i, k;
	int n = 0, r = registry_list(s, &v, &k, err);

	if (r < 0)
		return r;
	for (i = 0; i < k; i++)
		if (!strcmp(v[i].snapshot, name))
			n++;
	return n;
}

int snap_install(const pgsnap_store *s, const char *build, const char *name,
		 int flags, pgsnap_error *err)
{
	char final[600], retired[700], suffix[17];
	cleanup_close int dfd = -1;
	int r;

	/* The golden is written without fsync (initdb --no-sync, fsync=off
	 * while building): one syncfs makes it durable before it is named.
	 * Lazy (import): meta says the files may not be on disk yet. */
	if (!(flags & SNAP_INSTALL_LAZY)) {
		if ((r = clone_prepare_snapshot(s, build, err)) < 0)
			return r;
		dfd = open(build, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			syncfs(dfd);
	}
	snapshot_dir(s, name, final, sizeof(final));
	if (renameat2(AT_FDCWD, build, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EEXIST)
		return pgsnap_errno(err, errno, "cannot rename %s to %s", build,
				    final);
	if (renameat2(AT_FDCWD, build, AT_FDCWD, final, RENAME_EXCHANGE) < 0)
		return pgsnap_errno(err, errno, "cannot swap %s and %s", build,
				    final);
	/* build now holds the old snapshot.  Clones made by overlay still
	 * read it: retire it until they are gone (gc removes it). */
	if (snap_clones(s, name, NULL) > 0) {
		random_hex(suffix, 16);
		snprintf(retired, sizeof(retired), "%s/snapshots/.retired-%s-%s",
			 s->home, name, suffix);
		if (rename(build, retired) == 0)
			return 0;
	}
	rm_rf(build);
	return 0;
}

int snap_sock_dir(const pgsnap_store *s, const char *dir, char *out,
		  size_t len, pgsnap_error *err)
{
	const char *tmp = getenv("TMPDIR");
	int r;

	snprintf(out, len, "%s/sock", dir);
	if (strlen(out) + sizeof("/.s.PGSQL.5432") <= 107) {
		r = mkdir_server(s, out);
		return r < 0 ? pgsnap_errno(err, r, "cannot create %s", out) : 0;
	}
	/* sun_path holds 108 bytes: a short private directory instead, made
	 * by us (the server user may not write to /tmp) and given to it.
	 * A TMPDIR that points nowhere (or a closed /tmp) is passed over. */
	if (!tmp || tmp[0] != '/' || strlen(tmp) > 40)
		tmp = "/tmp";
	for (;;) {
		snprintf(out, len, "%s/pgsnap-build-XXXXXX", tmp);
		if (mkdtemp(out))
			break;
		if (strcmp(tmp, "/tmp") && strcmp(tmp, "/dev/shm"))
			tmp = "/tmp";
		else if (!strcmp(tmp, "/tmp"))
			tmp = "/dev/shm";
		else
			return pgsnap_errno(err, errno, "cannot create a socket "
					    "directory in $TMPDIR, /tmp or "
					    "/dev/shm");
	}
	if (s->as_root && chown(out, s->uid, s->gid) < 0) {
		r = pgsnap_errno(err, errno, "cannot give %s to %s", out,
				 s->user);
		rmdir(out);
		return r;
	}
	return 0;
}

/* ---- pg_control ------------------------------------------------------------ */

bool datadir_clean(const char *datadir)
{
	/* ControlFileData starts with system_identifier (8 bytes),
	 * pg_control_version and catalog_version_no (4 each), then state;
	 * DB_SHUTDOWNED is 1.  The layout of this head never changed. */
	char path[700];
	unsigned char buf[24];
	int32_t state;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/global/pg_control", datadir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != (ssize_t)sizeof(buf))
		return false;
	memcpy(&state, buf + 16, sizeof(state));
	return state == 1;
}

/* ---- refresh: make NAME current ---------------------------------------- */

static void list_names(const pgsnap_store *s, char *buf, size_t len)
{
	char dir[600];
	DIR *d;
	struct dirent *e;
	size_t o = 0;

	buf[0] = '\0';
	snprintf(dir, sizeof(dir), "%s/snapshots", s->home);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)) && o + 2 < len) {
		if (e->d_name[0] == '.')
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "",
				      e->d_name);
	}
	closedir(d);
}

int snapshot_no_such(const pgsnap_store *s, const char *name, pgsnap_error *err)
{
	char names[512];
	list_names(s, names, sizeof(names));
	return pgsnap_err(err, ENOENT, "no snapshot named '%s' (snapshots: %s)",
			  name, names[0] ? names : "none");
}

int snapshot_check_major(pgsnap_store *s, const char *name, const snap_meta *m,
		       bool known, pgsnap_error *err)
{
	pg_ident id;
	int r = pg_identity(s, &id, err);

	if (r < 0)
		return r;
	if (m->pg_major == id.major)
		return 0;
	return pgsnap_err(err, EPROTO,
		"snapshot '%s' was made by PostgreSQL %d, this is PostgreSQL "
		"%d (%s): %s", name, m->pg_major, id.major, s->bindir,
		known ? "rebuild it with 'pgsnap snapshot build' or 'pgsnap "
			"new --build-if-stale'"
		      : "it has no recipe to rebuild it from; re-create it "
			"with this PostgreSQL or set PGSNAP_PG_BINDIR");
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const pgsnap_snapshot_info *)a)->name,
		      ((const pgsnap_snapshot_info *)b)->name);
}

int pgsnap_snapshot_list(pgsnap_store *s, pgsnap_snapshot_info **out,
			 size_t *n, pgsnap_error *err)
{
	char dir[600], sub[700];
	pgsnap_snapshot_info *v = NULL;
	size_t cnt = 0, cap = 0, i, j;
	cleanup_free pgsnap_clone *recs = NULL;
	size_t nrecs;
	DIR *d;
	struct dirent *e;
	int r;

	snprintf(dir, sizeof(dir), "%s/snapshots", s->home);
	d = opendir(dir);
	if (!d)
		return pgsnap_errno(err, errno, "cannot read %s", dir);
	while ((e = readdir(d))) {
		pgsnap_snapshot_info *x;
		struct stat st;
		snap_meta m;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (meta_read(sub, &m) < 0)
			continue;
		if (cnt == cap) {
			pgsnap_snapshot_info *nv;
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				closedir(d);
				free(v);
				return pgsnap_err(err, ENOMEM, "out of memory");
			}
			v = nv;
		}
		x = &v[cnt++];
		memset(x, 0, sizeof(*x));
		snprintf(x->name, sizeof(x->name), "%s", e->d_name);
		memcpy(x->key, m.key, sizeof(x->key));
		memcpy(x->pg_version, m.pg_version, sizeof(x->pg_version));
		memcpy(x->origin, m.origin, sizeof(x->origin));
		memcpy(x->from, m.from, sizeof(x->from));
		x->created_ms = m.created_ms;
		snprintf(sub, sizeof(sub), "%s/%s/used", dir, e->d_name);
		if (stat(sub, &st) == 0)
			x->used_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
				     st.st_mtim.tv_nsec / 1000000;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			x->size = tree_bytes(fd);
	}
	closedir(d);
	if ((r = registry_list(s, &recs, &nrecs, err)) < 0) {
		free(v);
		return r;
	}
	for (i = 0; i < cnt; i++)
		for (j = 0; j < nrecs; j++)
			if (!strcmp(recs[j].snapshot, v[i].name))
				v[i].clones++;
	if (cnt)
		qsort(v, cnt, sizeof(*v), by_name);
	*out = v;
	*n = cnt;
	return 0;
}

int snapshot_remove_dir(const pgsnap_store *s, const char *name,
			pgsnap_error *err)
{
	char dir[600], trash[700], suffix[17];
	int r;

	snapshot_dir(s, name, dir, sizeof(dir));
	random_hex(suffix, 16);
	snprintf(trash, sizeof(trash), "%s/snapshots/.trash-%s-%s", s->home,
		 name, suffix);
	/* Gone from its name at once; the files follow. */
	if (rename(dir, trash) < 0)
		return errno == ENOENT ? snapshot_no_such(s, name, err)
				       : pgsnap_errno(err, errno, "cannot move %s",
						      dir);
	r = rm_rf(trash);
	return r < 0 ? pgsnap_errno(err, r, "cannot remove %s", trash) : 0;
}

int snapshot_check(const pgsnap_store *s, const char *name, pgsnap_error *err)
{
	char dir[600];
	int r;

	if ((r = snapshot_check_name(name, err)) < 0)
		return r;
	snapshot_dir(s, name, dir, sizeof(dir));
	return snapshot_exists(dir) ? 0 : snapshot_no_such(s, name, err);
}

static int by_use(const void *a, const void *b)
{
	const pgsnap_snapshot_info *x = a, *y = b;
	int64_t ux = x->used_ms > x->created_ms ? x->used_ms : x->created_ms;
	int64_t uy = y->used_ms > y->created_ms ? y->used_ms : y->created_ms;
	return ux < uy ? 1 : ux > uy ? -1 : 0;
}

/* Leftovers: .build-NAME-* of builders that died (their lock is free),
 * .retired-NAME-* and .trash-NAME-* once no clone of NAME is alive. */
static size_t gc_leftovers(pgsnap_store *s)
{
	char dir[600], path[700], name[64];
	DIR *d;
	struct dirent *e;
	size_t removed = 0;

	snprintf(dir, sizeof(dir), "%s/snapshots", s->home);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		const char *p = NULL;
		size_t len;
		int lfd = -1;
		bool build;

		if (!strncmp(e->d_name, ".build-", 7))
			p = e->d_name + 7;
		else if (!strncmp(e->d_name, ".retired-", 9))
			p = e->d_name + 9;
		else if (!strncmp(e->d_name, ".trash-", 7))
			p = e->d_name + 7;
		if (!p)
			continue;
		build = e->d_name[1] == 'b';
		len = strlen(p);
		if (len < 18 || len - 17 >= sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(len - 17), p);
		if (build) {
			/* Save and import hold no build lock: spare
			 * directories younger than an hour. */
			struct stat st;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (stat(path, &st) < 0 ||
			    time(NULL) - st.st_mtime < 3600)
				continue;
			if (snap_lock(s, name, LOCK_EX | LOCK_NB, &lfd, NULL) < 0)
				continue;
		} else if (snap_clones(s, name, NULL) != 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (rm_rf(path) == 0)
			removed++;
		if (lfd >= 0)
			close(lfd);
	}
	closedir(d);
	return removed;
}

int pgsnap_snapshot_gc(pgsnap_store *s, long keep, size_t *removed,
		       pgsnap_error *err)
{
	pgsnap_snapshot_info *v = NULL;
	size_t n = 0, i, kept = 0;
	int r;

	int64_t now = now_ms(), ttl = s->cfg.snapshot_ttl_s * 1000LL;

	*removed = gc_leftovers(s);
	if (keep < 0 && !ttl)
		return 0;
	if ((r = pgsnap_snapshot_list(s, &v, &n, err)) < 0)
		return r;
	if (n)
		qsort(v, n, sizeof(*v), by_use);
	for (i = 0; i < n; i++) {
		cleanup_close int lfd = -1;
		int64_t used = v[i].used_ms > v[i].created_ms ? v[i].used_ms
							       : v[i].created_ms;
		/* Removed: one without clones that is past the keep most
		 * recently used, or unused for PGSNAP_SNAPSHOT_TTL. */
		bool past_keep = keep >= 0 && kept >= (size_t)keep;
		bool expired = ttl && now - used >= ttl;
		if (v[i].clones > 0 || (!past_keep && !expired)) {
			kept++;
			continue;
		}
		/* Skip one being built or cloned right now. */
		if (snap_lock(s, v[i].name, LOCK_EX | LOCK_NB, &lfd, NULL) < 0)
			continue;
		if (snap_clones(s, v[i].name, NULL) != 0)
			continue;
		if (snapshot_remove_dir(s, v[i].name, NULL) == 0)
			(*removed)++;
	}
	free(v);
	return 0;
}
