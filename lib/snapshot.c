/*
 * snapshot.c - golden data directories, built once and cloned many times:
 * the decisions.  Which recipe a snapshot has, whether its key changed
 * (snapshot_key.c) and it must be built (snapshot_build.c), the snapshots
 * derived from another by one directive (`--now`, `--shared`), and what
 * `new` clones.  Where snapshots live and what they are is snapstore.c;
 * save/export/import snapshot_move.c.
 */
#include "snapshot.h"
#include "snapshot_ext.h"
#include "sha256.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#define MAX_BASE_DEPTH 8

/* refresh() flags */
#define KEY_ONLY 1       /* compute the key, build nothing */
#define BASE_AS_IS 2     /* take the base's recorded key: do not refresh it */

static int load_recipe(pgsnap_store *s, const char *name, recipe *r,
		       bool *known, pgsnap_error *err)
{
	char dir[600], path[700];
	cleanup_free char *text = NULL;
	const char *shipped = recipe_shipped(name);
	snap_meta m;
	int rc;

	*known = false;
	snapshot_dir(s, name, dir, sizeof(dir));
	/* A snapshot built, saved or imported under a shipped name by the
	 * user is not the shipped recipe's. */
	if (shipped && (meta_read(dir, &m) < 0 || !strcmp(m.origin, "shipped"))) {
		*known = true;
		return recipe_parse(name, shipped, r, err);
	}
	snprintf(path, sizeof(path), "%s/recipe", dir);
	rc = read_file(path, 1 << 20, &text, NULL);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return pgsnap_errno(err, rc, "cannot read %s", path);
	*known = true;
	if ((rc = recipe_init(r, name, "/", err)) < 0)
		return rc;
	return recipe_add_text(r, text, path, err);
}

static int refresh(pgsnap_store *s, const char *name, recipe *given,
		   const pgsnap_build_opts *o, int flags, int depth,
		   pgsnap_build_result *res, pgsnap_error *err);

/* Bring a base up to date and give its key.  A base without a recipe
 * (saved, imported) is taken as it is. */
static int base_key(pgsnap_store *s, const char *base,
		    const pgsnap_build_opts *o, int flags, int depth,
		    char key[65], pgsnap_build_result *res, pgsnap_error *err)
{
	pgsnap_build_result br = { 0 };
	char dir[600];
	snap_meta m;
	int r;

	if (depth >= MAX_BASE_DEPTH)
		return pgsnap_err(err, ELOOP, "snapshot '%s': bases nest deeper "
				  "than %d (a loop?)", base, MAX_BASE_DEPTH);
	r = flags & BASE_AS_IS ? -ENOPKG
			       : refresh(s, base, NULL, o, flags & KEY_ONLY,
					 depth + 1, &br, err);
	if (r == 0) {
		memcpy(key, br.key, 65);
		res->bases_built += br.built + br.bases_built;
		return 0;
	}
	if (r != -ENOPKG)
		return pgsnap_err_wrap(err, r, "base snapshot '%s'", base);
	snapshot_dir(s, base, dir, sizeof(dir));
	if (meta_read(dir, &m) < 0)
		return snapshot_no_such(s, base, err);
	if (meta_lost(s, &m))
		return snapshot_lost(base, false, err);
	if ((r = snapshot_check_major(s, base, &m, false, err)) < 0)
		return r;
	memcpy(key, m.key, 65);
	return 0;
}

static void store_recipe(const pgsnap_store *s, const char *dir,
			 const recipe *r)
{
	char path[700];
	cleanup_free char *old = NULL;
	fs_ids ids;

	snprintf(path, sizeof(path), "%s/recipe", dir);
	if (read_file(path, 1 << 20, &old, NULL) == 0 &&
	    !strcmp(old, r->source))
		return;
	ids = fs_become(s);
	write_file_atomic(path, r->source, r->source_len, 0644);
	fs_restore(ids);
}

/* -ENOPKG (and no error text) when NAME has no known recipe. */
static int refresh(pgsnap_store *s, const char *name, recipe *given,
		   const pgsnap_build_opts *o, int flags, int depth,
		   pgsnap_build_result *res, pgsnap_error *err)
{
	char dir[600], bkey[65] = "", key[65];
	cleanup_close int lfd = -1;
	recipe own;
	recipe *r = given;
	key_cache kc;
	bool known = true;
	snap_meta m;
	build_req q = { 0 };
	int64_t t0 = mono_us();
	int rc;

	memset(&own, 0, sizeof(own));
	snapshot_dir(s, name, dir, sizeof(dir));
	key_cache_load(&kc, dir);
	if (!r) {
		r = &own;
		if ((rc = load_recipe(s, name, r, &known, err)) < 0)
			goto out;
		if (!known) {
			rc = -ENOPKG;
			goto out;
		}
	}
	if ((rc = recipe_finish(r, err)) < 0)
		goto out;
	/* A missing input is reported before any base is built for it. */
	for (size_t i = 0; i < r->n_steps; i++) {
		if (r->steps[i].kind == STEP_SQL &&
		    access(r->steps[i].arg, R_OK) < 0) {
			rc = pgsnap_errno(err, errno, "cannot read %s",
					  r->steps[i].shown);
			goto out;
		}
	}
	/* So is a missing extension package (snapshot_ext.c). */
	if ((rc = ext_check(s, r, err)) < 0)
		goto out;
	if (r->from[0] && (rc = base_key(s, r->from, o, flags, depth, bkey,
					 res, err)) < 0)
		goto out;
	if ((rc = recipe_key(s, r, bkey, &kc, key, err)) < 0)
		goto out;
	memcpy(res->key, key, sizeof(key));
	if (flags & KEY_ONLY)
		goto out;
	if ((rc = snap_lock(s, name, LOCK_EX, &lfd, err)) < 0)
		goto out;
	/* After the lock: a concurrent builder of the same key has finished
	 * by now, and this finds its work. */
	if (meta_read(dir, &m) == 0 && !strcmp(m.key, key) &&
	    m.pg_major == s->pg_major && !meta_lost(s, &m) &&
	    !(o && o->force && depth == 0)) {
		res->built = 0;
		/* An imported snapshot learns the local recipe here. */
		if (given && !r->shipped)
			store_recipe(s, dir, r);
		key_cache_save(s, &kc, dir, false);
		goto out;
	}
	q.r = r;
	q.key = key;
	q.base_key = bkey;
	q.cache = &kc;
	q.o = o;
	rc = snap_build(s, &q, err);
	if (rc < 0) {
		pgsnap_err_wrap(err, rc, "building snapshot '%s'", name);
		goto out;
	}
	res->built = 1;
	res->build_ms = (mono_us() - t0) / 1000;
	if (o && o->progress) {
		char msg[200];
		snprintf(msg, sizeof(msg), "snapshot '%s' built in %.1f s "
			 "(key %.12s)", name, (double)res->build_ms / 1000, key);
		o->progress(o->progress_ctx, 1, msg);
	}
out:
	key_cache_free(&kc);
	recipe_free(&own);
	return rc;
}

static int recipe_from_opts(const char *name, const pgsnap_build_opts *o,
			    recipe *r, pgsnap_error *err)
{
	size_t i;
	int rc = recipe_init(r, name, o ? o->cwd : NULL, err);

	if (rc < 0)
		return rc;
	if (o && o->recipe_file) {
		char line[4200];
		snprintf(line, sizeof(line), "include %s", o->recipe_file);
		if ((rc = recipe_add_line(r, line, "--recipe", 1, err)) < 0)
			return rc;
	}
	/* Flags are relative to where the command runs: record that. */
	if (o && o->n_directives) {
		char line[4200];
		snprintf(line, sizeof(line), "cd %s", r->cwd);
		if ((rc = recipe_add_line(r, line, "flags", 0, err)) < 0)
			return rc;
	}
	for (i = 0; o && i < o->n_directives; i++)
		if ((rc = recipe_add_line(r, o->directives[i], "flags",
					  (int)i + 1, err)) < 0)
			return rc;
	if (!o || (!o->recipe_file && !o->n_directives)) {
		const char *t = recipe_shipped(name);
		if (!t)
			return pgsnap_err(err, EINVAL, "snapshot '%s': nothing "
				"to build from (give -f, --exec, --recipe... or "
				"name a shipped recipe)", name);
		recipe_free(r);
		return recipe_parse(name, t, r, err);
	}
	return 0;
}

int pgsnap_snapshot_build(pgsnap_store *s, const char *name,
			  const pgsnap_build_opts *o, pgsnap_build_result *res,
			  pgsnap_error *err)
{
	pgsnap_build_result dummy;
	recipe r;
	int rc;

	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	if ((rc = snapshot_check_name(name, err)) < 0)
		return rc;
	rc = recipe_from_opts(name, o, &r, err);
	if (rc == 0)
		rc = refresh(s, name, &r, o, 0, 0, res, err);
	recipe_free(&r);
	return rc;
}

int pgsnap_snapshot_key(pgsnap_store *s, const char *name,
			const pgsnap_build_opts *o, char key[65],
			pgsnap_error *err)
{
	pgsnap_build_result res = { 0 };
	recipe r;
	int rc;

	if ((rc = snapshot_check_name(name, err)) < 0)
		return rc;
	rc = recipe_from_opts(name, o, &r, err);
	if (rc == 0)
		rc = refresh(s, name, &r, o, KEY_ONLY, 0, &res, err);
	recipe_free(&r);
	if (rc == 0)
		memcpy(key, res.key, 65);
	return rc;
}

/* ---- what `new` needs ---------------------------------------------------- */

static void touch_used(const pgsnap_store *s, const char *dir)
{
	char path[700];
	fs_ids ids;
	int fd;

	snprintf(path, sizeof(path), "%s/used", dir);
	if (utimensat(AT_FDCWD, path, NULL, 0) == 0)
		return;
	ids = fs_become(s);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	fs_restore(ids);
	if (fd >= 0)
		close(fd);
}

static int ensure(pgsnap_store *s, const char *name, bool if_stale,
		  const pgsnap_build_opts *o, pgsnap_error *err)
{
	pgsnap_build_result res = { 0 };
	char dir[600];
	snap_meta m;
	bool have;
	int r;

	snapshot_dir(s, name, dir, sizeof(dir));
	have = meta_read(dir, &m) == 0;
	if (have && !if_stale) {
		bool lost = meta_lost(s, &m), known;
		pg_ident id;
		char rp[700];

		if ((r = pg_identity(s, &id, err)) < 0)
			return r;
		if (m.pg_major == id.major && !lost)
			return 0;
		/* A shipped recipe is ours to rebuild; a user's recipe
		 * may have moved: let the user ask for it. */
		if (strcmp(m.origin, "shipped")) {
			snprintf(rp, sizeof(rp), "%s/recipe", dir);
			known = access(rp, F_OK) == 0;
			return lost ? snapshot_lost(name, known, err)
				    : snapshot_check_major(s, name, &m, known,
							   err);
		}
	}
	if (!have && !if_stale && !recipe_shipped(name))
		return snapshot_no_such(s, name, err);
	r = refresh(s, name, NULL, o, 0, 0, &res, err);
	if (r == -ENOPKG) {
		if (!have)
			return snapshot_no_such(s, name, err);
		if (meta_lost(s, &m))
			return snapshot_lost(name, false, err);
		return snapshot_check_major(s, name, &m, false, err);
	}
	return r;
}

int pgsnap_snapshot_ensure(pgsnap_store *s, const char *name,
			   pgsnap_error *err)
{
	int r = snapshot_check_name(name, err);
	return r < 0 ? r : ensure(s, name, false, NULL, err);
}

/* The snapshot derived from base by one more directive (what: the option
 * asking for it, for errors): named "<base>.<tag>-<hash of base and arg>",
 * built once per (base, arg) and cloned like any other.  The base was
 * settled by the caller (refreshed only when it asked for
 * --build-if-stale): a derived snapshot does not rebuild it behind its
 * back. */
static int derived_snapshot(pgsnap_store *s, const char *base,
			    const char *tag, const char *what,
			    const char *directive, const char *arg,
			    const pgsnap_build_opts *o, char *name, size_t len,
			    pgsnap_error *err)
{
	pgsnap_build_result res = { 0 };
	unsigned char d[32];
	char hex[65], line[256];
	sha256_ctx c;
	recipe r;
	int rc;

	sha256_init(&c);
	sha256_update(&c, base, strlen(base) + 1);
	sha256_update(&c, arg, strlen(arg));
	sha256_final(&c, d);
	sha256_hex(d, hex);
	snprintf(name, len, "%.46s.%s-%.12s", base, tag, hex);
	if ((rc = recipe_init(&r, name, "/", err)) < 0)
		goto out;
	snprintf(line, sizeof(line), "from %s", base);
	if ((rc = recipe_add_line(&r, line, what, 1, err)) < 0)
		goto out;
	snprintf(line, sizeof(line), "%s %s", directive, arg);
	if ((rc = recipe_add_line(&r, line, what, 2, err)) < 0)
		goto out;
	rc = refresh(s, name, &r, o, BASE_AS_IS, 0, &res, err);
out:
	recipe_free(&r);
	return rc;
}

/* With a mock now(), baked in, so that `new --now` costs no extra
 * connection (see snapshots/README.md, "Mock time"). */
static int now_snapshot(pgsnap_store *s, const char *base, const char *now,
			const pgsnap_build_opts *o, char *name, size_t len,
			pgsnap_error *err)
{
	int rc = mocktime_check(now, err);

	return rc < 0 ? rc : derived_snapshot(s, base, "now", "--now", "now",
					      now, o, name, len, err);
}

/* Whose golden holds n copies of postgres (`databases N`): what a shared
 * server of `new --shared` clones (clone_new checked n). */
static int shared_snapshot(pgsnap_store *s, const char *base, int n,
			   const pgsnap_build_opts *o, char *name, size_t len,
			   pgsnap_error *err)
{
	char num[16];

	snprintf(num, sizeof(num), "%d", n);
	return derived_snapshot(s, base, "dbs", "--shared", "databases", num,
				o, name, len, err);
}

int snapshot_for_new(pgsnap_store *s, const pgsnap_new_opts *o, char *name,
		     size_t len, int *lock_fd, pgsnap_error *err)
{
	const char *base = o->snapshot ? o->snapshot : "default";
	pgsnap_build_opts bo = { 0 };
	char dir[600];
	int r;

	*lock_fd = -1;
	bo.progress = o->progress;
	bo.progress_ctx = o->progress_ctx;
	if ((r = snapshot_check_name(base, err)) < 0)
		return r;
	if ((r = ensure(s, base, o->build_if_stale, &bo, err)) < 0)
		return r;
	snprintf(name, len, "%s", base);
	if (o->now &&
	    (r = now_snapshot(s, base, o->now, &bo, name, len, err)) < 0)
		return r;
	if (o->shared > 0) {
		char from[64];
		snprintf(from, sizeof(from), "%s", name);
		if ((r = shared_snapshot(s, from, o->shared, &bo, name, len,
					 err)) < 0)
			return r;
	}
	/* Shared: a rebuild waits until this clone has its copy. */
	if ((r = snap_lock(s, name, LOCK_SH, lock_fd, err)) < 0)
		return r;
	snapshot_dir(s, name, dir, sizeof(dir));
	touch_used(s, dir);
	return 0;
}

/* ---- ls, rm, gc ------------------------------------------------------------ */

