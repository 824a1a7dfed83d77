/*
 * clone_doctor.c - what `pgsnap doctor` reports: the PostgreSQL found, the
 * store and its filesystems, io_uring, the clone methods and the one
 * `new` will use, and why.  Text, one "key: value" a line; cmd prints it.
 */
#include "clone_impl.h"
#include "xfsstore.h"

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
	snprintf(path, sizeof(path), "%s/clones", s->run);
	add(&o, "clones: %s (%s)\n", path, fs_type_name(path));
	snprintf(path, sizeof(path), "%s/trash", s->run);
	add(&o, "trash: %s\n", path);
	if (uring_probe(&ue) == 0)
		add(&o, "io_uring: available; %s\n", copy_uring_note());
	else
		add(&o, "io_uring: %s\n", ue.msg);
	copy_plan_describe(s, path, sizeof(path));
	add(&o, "copy engine: %s\n", path);
	snprintf(path, sizeof(path), "%s/snapshots", s->home);
	xfs_store_advice(s, ficlone_works(path, path, NULL) == 0, methods,
			 sizeof(methods));
	add(&o, "xfs store: %s\n", methods);
	snapshot_dir(s, "default", snapdir, sizeof(snapdir));
	clone_describe(s, snapdir, true, methods, sizeof(methods));
	add(&o, "%s", methods);
	*text = o.p;
	return 0;
}
