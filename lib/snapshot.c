/*
 * snapshot.c - golden data directories, built once and cloned many times.
 *
 * A snapshot is home/snapshots/NAME/ holding data/ (a cleanly shut down
 * data directory owned by the server user) and meta.  It is built aside in
 * a .build-* directory and renamed into place only when complete, under a
 * per-name lock so that concurrent builders wait for one build.
 */
#include "internal.h"
#include "recipe.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

int snapshot_dir(const pgsnap_store *s, const char *name, char *buf,
		 size_t len)
{
	int n = snprintf(buf, len, "%s/snapshots/%s", s->home, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool snapshot_exists(const char *dir)
{
	char meta[700];
	snprintf(meta, sizeof(meta), "%s/meta", dir);
	return access(meta, F_OK) == 0;
}

/* Append the recipe's settings to postgresql.conf, as the server user. */
static int write_settings(const pgsnap_store *s, const char *datadir,
			  const recipe *rc, pgsnap_error *err)
{
	char path[700];
	FILE *f;
	fs_ids ids;
	size_t i;
	int r = 0;

	snprintf(path, sizeof(path), "%s/postgresql.conf", datadir);
	ids = fs_become(s);
	f = fopen(path, "ae");
	fs_restore(ids);
	if (!f)
		return pgsnap_errno(err, errno, "cannot open %s", path);
	fprintf(f, "\n# pgsnap recipe '%s'\n", rc->name);
	for (i = 0; i < rc->n_settings; i++)
		fprintf(f, "%s\n", rc->settings[i]);
	if (fclose(f) != 0)
		r = pgsnap_errno(err, errno, "cannot write %s", path);
	return r;
}

static int run_initdb(const pgsnap_store *s, const char *build,
		      const recipe *rc, pgsnap_error *err)
{
	char prog[600], data[700], logp[700], tail[700];
	const char *argv[64];
	int argc = 0, r;
	size_t i;
	cleanup_close int logfd = -1;
	spawn_opts so = { 0 };
	fs_ids ids;

	snprintf(prog, sizeof(prog), "%s/initdb", s->bindir);
	snprintf(data, sizeof(data), "%s/data", build);
	snprintf(logp, sizeof(logp), "%s/build.log", build);
	argv[argc++] = "initdb";
	argv[argc++] = "-D";
	argv[argc++] = data;
	argv[argc++] = "-U";
	argv[argc++] = "postgres";
	argv[argc++] = "--auth-local=trust";
	argv[argc++] = "--auth-host=scram-sha-256";
	argv[argc++] = "--no-sync"; /* synced once, with syncfs, below */
	argv[argc++] = "--no-instructions";
	for (i = 0; i < rc->n_initdb && argc < 60; i++)
		argv[argc++] = rc->initdb[i];
	argv[argc] = NULL;

	ids = fs_become(s);
	logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fs_restore(ids);
	if (logfd < 0)
		return pgsnap_errno(err, errno, "cannot create %s", logp);
	so.store = s;
	so.out_fd = logfd;
	so.cwd = build;
	r = run_process(prog, (char *const *)argv, &so);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot run %s", prog);
	if (r != 0) {
		log_tail(logp, 3, tail, sizeof(tail));
		return pgsnap_err(err, EIO, "initdb failed (exit %d): %s", r,
				  tail);
	}
	return 0;
}

static int write_meta(const pgsnap_store *s, const char *build,
		      const recipe *rc, pgsnap_error *err)
{
	char path[700], ver[64] = "", buf[1024];
	cleanup_free char *pgv = NULL;
	struct stat st;
	int n, r;

	snprintf(path, sizeof(path), "%s/data/PG_VERSION", build);
	if (read_file(path, 64, &pgv, NULL) == 0)
		snprintf(ver, sizeof(ver), "%.*s", (int)strcspn(pgv, "\n"), pgv);
	snprintf(path, sizeof(path), "%s/postgres", s->bindir);
	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof(st));
	n = snprintf(buf, sizeof(buf),
		     "format=1\nname=%s\npg_major=%s\nbindir=%s\n"
		     "bin_id=%llu:%llu:%lld:%lld\ncreated_ms=%lld\n",
		     rc->name, ver, s->bindir, (unsigned long long)st.st_dev,
		     (unsigned long long)st.st_ino, (long long)st.st_size,
		     (long long)st.st_mtime, (long long)now_ms());
	snprintf(path, sizeof(path), "%s/meta", build);
	r = write_file_atomic(path, buf, (size_t)n, 0644);
	return r < 0 ? pgsnap_errno(err, r, "cannot write %s", path) : 0;
}

static int build_from_recipe(pgsnap_store *s, const char *final,
			     const recipe *rc, pgsnap_error *err)
{
	char build[700], data[760], suffix[17];
	cleanup_close int dfd = -1;
	int r;

	random_hex(suffix, 8);
	snprintf(build, sizeof(build), "%s/snapshots/.build-%s-%s", s->home,
		 rc->name, suffix);
	snprintf(data, sizeof(data), "%s/data", build);
	r = mkdir_server(s, build);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot create %s", build);
	if ((r = run_initdb(s, build, rc, err)) < 0 ||
	    (r = write_settings(s, data, rc, err)) < 0 ||
	    (r = write_meta(s, build, rc, err)) < 0 ||
	    (r = clone_prepare_snapshot(s, build, err)) < 0)
		goto fail;
	dfd = open(build, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		syncfs(dfd);
	if (rename(build, final) < 0) {
		r = pgsnap_errno(err, errno, "cannot rename %s to %s", build,
				 final);
		goto fail;
	}
	return 0;
fail:
	rm_rf(build);
	return r;
}

/* The names of existing snapshots, for error messages. */
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

int snapshot_build_default(pgsnap_store *s, const char *name,
			   pgsnap_error *err)
{
	char final[600], lockp[700];
	const char *text = recipe_shipped(name);
	cleanup_close int lfd = -1;
	recipe rc;
	int r;

	if ((r = snapshot_dir(s, name, final, sizeof(final))) < 0)
		return pgsnap_err(err, r, "snapshot path too long");
	if (!text) {
		char names[512];
		list_names(s, names, sizeof(names));
		return pgsnap_err(err, ENOENT,
			"no snapshot named '%s' (snapshots: %s)", name,
			names[0] ? names : "none");
	}
	/* Concurrent builders queue here; the first builds, the rest find it. */
	snprintf(lockp, sizeof(lockp), "%s/snapshots/.%s.lock", s->home, name);
	lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", lockp);
	while (flock(lfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return pgsnap_errno(err, errno, "cannot lock %s", lockp);
	if (snapshot_exists(final))
		return 0;
	r = recipe_parse(name, text, &rc, err);
	if (r == 0)
		r = build_from_recipe(s, final, &rc, err);
	recipe_free(&rc);
	if (r < 0)
		return pgsnap_err_wrap(err, "building snapshot '%s'", name);
	return 0;
}

int pgsnap_snapshot_ensure(pgsnap_store *s, const char *name,
			   pgsnap_error *err)
{
	char dir[600];

	if (!name_valid(name, 63))
		return pgsnap_err(err, EINVAL,
			"snapshot name '%s' is invalid (letters, digits, '_', "
			"'-', '.'; at most 63; not starting with '.' or '-')",
			name);
	if (snapshot_dir(s, name, dir, sizeof(dir)) < 0)
		return pgsnap_err(err, ENAMETOOLONG, "snapshot path too long");
	if (snapshot_exists(dir))
		return 0;
	return snapshot_build_default(s, name, err);
}
