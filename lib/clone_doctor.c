/*
 * clone_doctor.c - what `pgsnap doctor` reports: the PostgreSQL found, the
 * store and its filesystems, io_uring, the clone methods and the one
 * `new` will use, and why.  Text, one "key: value" a line; cmd prints it.
 */
#include "clone_impl.h"
#include "xfsstore.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

typedef struct out {
	char *p;
	size_t len, cap;
} out;

static void add(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!o->p)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < o->cap - o->len ? (size_t)n
						      : o->cap - o->len - 1;
}

/* First line of `BINDIR/postgres --version`. */
static void pg_version(const pgsnap_store *s, char *buf, size_t len)
{
	char prog[600];
	char *argv[] = { "postgres", "--version", NULL };
	spawn_opts so = { 0 };
	int pfd[2];
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	snprintf(buf, len, "unknown");
	snprintf(prog, sizeof(prog), "%s/postgres", s->bindir);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return;
	so.out_fd = pfd[1];
	pid = spawn_process(prog, argv, &so);
	close(pfd[1]);
	while (pid > 0 && got + 1 < len &&
	       (n = read(pfd[0], buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(pfd[0]);
	if (pid > 0) {
		wait_pid_exit(pid, 5000);
		buf[got] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
	}
}

/* The biggest snapshot of the store: its bytes, its name in name. */
static uint64_t biggest_snapshot(const pgsnap_store *s, char *name,
				 size_t len)
{
	char dir[600], snap[900];
	uint64_t best = 0, b;
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/snapshots", s->home);
	if (!(d = opendir(dir)))
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(snap, sizeof(snap), "%s/%s", dir, e->d_name);
		if ((b = clone_snapshot_bytes(snap)) > best) {
			best = b;
			snprintf(name, len, "%s", e->d_name);
		}
	}
	closedir(d);
	return best;
}

/* One line: whether the store is on an XFS image pgsnap made, or whether
 * one would help here and the command that makes it. */
static void xfs_advice(const pgsnap_store *s, bool reflinks, char *buf,
		       size_t len)
{
	char name[256] = "";
	xfs_store_info i;
	uint64_t big;

	xfs_store_info_get(s, &i);
	if (i.mounted) {
		snprintf(buf, len, "in use: the store lives on %s, mounted on "
			 "%s (pgsnap store: details; pgsnap store rm: removes "
			 "it)", i.image, i.mnt);
		return;
	}
	if (reflinks) {
		snprintf(buf, len, "not needed: the snapshots' filesystem (%s) "
			 "shares extents", fs_type_name(s->home));
		return;
	}
	big = biggest_snapshot(s, name, sizeof(name));
	if (!clone_is_large(big)) {
		snprintf(buf, len, "not needed yet: no large snapshot here (for "
			 "snapshots with big tables, 'pgsnap store xfs' as "
			 "root puts the store on a reflink XFS image)");
		return;
	}
	snprintf(buf, len, "would help: snapshot '%s' is large (%llu MB) and "
		 "%s cannot share extents, so a clone's first query on a big "
		 "table copies its file whole; %s'pgsnap store xfs --size "
		 "%lluG' puts the store on a reflink XFS image%s", name,
		 (unsigned long long)(big >> 20), fs_type_name(s->home),
		 geteuid() == 0 ? "" : "as root, ",
		 (unsigned long long)(XFS_STORE_DEFAULT_BYTES >> 30),
		 xfs_mkfs_found() ? "" :
		 " (install xfsprogs first)");
}

int pgsnap_doctor(pgsnap_store *s, char **text, pgsnap_error *err)
{
	static const char *const bins[] = { "postgres", "initdb", "pg_ctl" };
	char ver[256], path[700], snapdir[600], methods[4096];
	pgsnap_error ue = { 0 };
	out o = { 0 };
	size_t i;

	o.cap = 16384;
	o.p = malloc(o.cap);
	if (!o.p)
		return pgsnap_err(err, ENOMEM, "out of memory");
	o.p[0] = '\0';
	pg_version(s, ver, sizeof(ver));
	add(&o, "pgsnap: %s\n", PGSNAP_VERSION);
	add(&o, "postgresql: %s\n", ver);
	add(&o, "bindir: %s\n", s->bindir);
	for (i = 0; i < ARRAY_SIZE(bins); i++) {
		snprintf(path, sizeof(path), "%s/%s", s->bindir, bins[i]);
		add(&o, "binary %s: %s\n", bins[i],
		    access(path, X_OK) == 0 ? "ok" : "missing");
	}
	add(&o, "server user: %s (uid %u)%s\n", s->user, (unsigned)s->uid,
	    s->as_root ? ", files made with setfsuid" : "");
	snprintf(path, sizeof(path), "%s/snapshots", s->home);
	add(&o, "snapshots: %s (%s)\n", path, fs_type_name(path));
	snprintf(path, sizeof(path), "%s", s->clones);
	add(&o, "clones: %s (%s)\n", path, fs_type_name(path));
	if (s->clones_why[0])
		add(&o, "clones on disk: %s\n", s->clones_why);
	snprintf(path, sizeof(path), "%s", s->trash);
	add(&o, "trash: %s\n", path);
	if (uring_probe(&ue) == 0)
		add(&o, "io_uring: available; %s\n", copy_uring_note());
	else
		add(&o, "io_uring: %s\n", ue.msg);
	copy_plan_describe(s, path, sizeof(path));
	add(&o, "copy engine: %s\n", path);
	snprintf(path, sizeof(path), "%s/snapshots", s->home);
	xfs_advice(s, ficlone_works(path, path, NULL) == 0, methods,
			 sizeof(methods));
	add(&o, "xfs store: %s\n", methods);
	snapshot_dir(s, "default", snapdir, sizeof(snapdir));
	clone_describe(s, snapdir, true, methods, sizeof(methods));
	add(&o, "%s", methods);
	*text = o.p;
	return 0;
}
