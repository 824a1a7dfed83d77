/*
 * registry.c - the records of a store's clones, a file each.
 *
 * RUN/records/ID holds clone ID's record (record.c: a header line and one
 * line of fields).  A record is written to a temp file and renamed over
 * the old one, so a reader sees the old or the new record, never a torn
 * one, and reads need no lock.  Writes are not fsynced: a record describes
 * processes of this boot, and after a reboot (another boot id) gc removes
 * it whatever it says.
 *
 * RUN/registry.lock is held around every read-modify-write of records and
 * for nothing longer: an update reads and writes a few small files, so its
 * cost does not grow with the number of clones.  What would need a scan
 * under the lock has an index instead: RUN/avail/SIG/ID (an empty file)
 * for each server of variant SIG that new may hand out (pooled, or shared
 * with databases left).  An index entry is only a hint, checked against
 * the record under the lock; a stale one is dropped there.
 *
 * A damaged record (a bad byte, a file cut short by a full disk) costs its
 * clone only: readers skip it, gc reports and removes it, and the clone's
 * directory is then judged like one with no record (a server still running
 * there is recorded again).
 */
#include "internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define RECORD_MAX (64u << 10)
#define OLD_REGISTRY_MAX (64u << 20)

static int rec_path(const pgsnap_store *s, const char *id, char *buf,
		    size_t len)
{
	if (!name_valid(id, sizeof(((pgsnap_clone *)0)->id) - 1))
		return -EINVAL;
	return snprintf(buf, len, "%s/records/%s", s->run, id) >= (int)len ?
		-ENAMETOOLONG : 0;
}

/* ---- the lock ------------------------------------------------------------ */

int registry_lock(const pgsnap_store *s, reg_lock *l, pgsnap_error *err)
{
	char path[600];
	int64_t t0;

	l->fd = -1;
	l->locked_us = 0;
	if (path_join(path, sizeof(path), s->run, "registry.lock") < 0)
		return pgsnap_err(err, ENAMETOOLONG, "store path too long");
	l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return pgsnap_errno(err, errno, "cannot open lock file %s", path);
	t0 = mono_us();
	while (flock(l->fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = pgsnap_errno(err, errno, "cannot lock %s", path);
			close(l->fd);
			l->fd = -1;
			return r;
		}
	}
	l->locked_us = mono_us();
	l->wait_us = l->locked_us - t0;
	l->trace = s->cfg.lock_trace;
	return 0;
}

/* PGSNAP_LOCK_TRACE=FILE appends "wait_us hold_us" for every lock taken:
 * how the benchmark measures what the lock costs each caller. */
static void trace_hold(const reg_lock *l)
{
	char line[64];
	int fd, n;

	if (!l->trace || !*l->trace || !l->locked_us)
		return;
	n = snprintf(line, sizeof(line), "%lld %lld\n", (long long)l->wait_us,
		     (long long)(mono_us() - l->locked_us));
	fd = open(l->trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) < 0) {
		/* a trace is best effort */
	}
	close(fd);
}

void registry_unlock(reg_lock *l)
{
	if (l->fd >= 0) {
		trace_hold(l);
		close(l->fd); /* closing drops the flock */
	}
	l->fd = -1;
	l->locked_us = 0;
}

void registry_unlockp(reg_lock *l)
{
	registry_unlock(l);
}

/* ---- blanks: empty record files made ahead ------------------------------- */

/*
 * On this project's machines (ext4 without a journal) creating a file costs
 * ~200 us, the inode allocator stepping over recently deleted inodes, where
 * writing an existing empty file and renaming it costs ~40 us: a burst of 64
 * handouts writes 64 records under one lock.  So the service makes empty
 * files RUN/records/.blank-N ahead, off the handouts' path, and a write takes
 * one instead of creating its temp file (and creates one as before when
 * none is there).  A blank is written only under the lock, like a temp
 * file, and truncated when taken: one a dead writer left half-written is a
 * blank again.  Readers skip dot files.
 */
#define BLANKS 128

static unsigned blank_hint;
/* Blanks this process took, or found taken, since it last made them (all,
 * at first): the keeper's every wake need not try 128 names. */
static unsigned blanks_taken = BLANKS;

static int blank_path(const pgsnap_store *s, unsigned i, char *buf, size_t len)
{
	return snprintf(buf, len, "%s/records/.blank-%03u", s->run, i) >=
		(int)len ? -ENAMETOOLONG : 0;
}

/* A blank opened for writing (its path in path), or -1. */
static int take_blank(const pgsnap_store *s, char *path, size_t len)
{
	int tries, fd;

	/* Taken in turn: a few misses mean they ran out. */
	for (tries = 0; tries < 4; tries++) {
		unsigned i = __atomic_fetch_add(&blank_hint, 1,
						__ATOMIC_RELAXED) % BLANKS;
		if (blank_path(s, i, path, len) < 0)
			return -1;
		fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
		/* Taken, or taken by another process: make more. */
		if (fd >= 0 || errno == ENOENT)
			__atomic_add_fetch(&blanks_taken, 1, __ATOMIC_RELAXED);
		if (fd >= 0 || errno != ENOENT)
			return fd;
	}
	return -1;
}

size_t registry_blanks_fill(const pgsnap_store *s)
{
	char path[700];
	size_t made = 0;
	unsigned i;

	if (!__atomic_exchange_n(&blanks_taken, 0, __ATOMIC_RELAXED))
		return 0;
	/* No lock: a blank is created whole (empty) or not at all. */
	for (i = 0; i < BLANKS; i++) {
		int fd;
		if (blank_path(s, i, path, sizeof(path)) < 0)
			return made;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
			  O_NOFOLLOW, 0600);
		if (fd >= 0) {
			close(fd);
			made++;
		}
	}
	return made;
}

void registry_blanks_drop(const pgsnap_store *s)
{
	char path[700];
	unsigned i;

	for (i = 0; i < BLANKS; i++)
		if (blank_path(s, i, path, sizeof(path)) == 0)
			unlink(path);
	__atomic_store_n(&blanks_taken, BLANKS, __ATOMIC_RELAXED);
}

/* ---- one record ---------------------------------------------------------- */

static int parse_record(const char *text, size_t len, pgsnap_clone *out,
			pgsnap_error *err)
{
	pgsnap_clone *v = NULL;
	size_t n = 0;
	int r = records_parse(text, len, &v, &n, err);

	if (r == 0 && n != 1)
		r = pgsnap_err(err, EINVAL, "%zu records in one file", n);
	if (r == 0)
		*out = v[0];
	free(v);
	return r;
}

int registry_get(const pgsnap_store *s, const char *id, pgsnap_clone *out,
		 pgsnap_error *err)
{
	char path[700];
	cleanup_free char *text = NULL;
	size_t len;
	int r;

	if ((r = rec_path(s, id, path, sizeof(path))) < 0)
		return pgsnap_err(err, ENOENT, "no clone '%s' in this store", id);
	r = read_file(path, RECORD_MAX, &text, &len);
	if (r == -ENOENT)
		return pgsnap_err(err, ENOENT, "no clone '%s' in this store", id);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot read record %s", path);
	r = parse_record(text, len, out, err);
	if (r == 0 && strcmp(out->id, id))
		r = pgsnap_err(err, EINVAL, "it names clone %s", out->id);
	if (r < 0)
		return pgsnap_err_wrap(err, -EBADMSG, "record %s is damaged "
				       "('pgsnap gc' removes it)", path);
	return 0;
}

/* Write path atomically with flags for the final name: 0 (replace) or
 * RENAME_NOREPLACE (a new record: -EEXIST when the id is taken). */
static int write_record(const pgsnap_store *s, const pgsnap_clone *c,
			unsigned flags, pgsnap_error *err)
{
	char path[700], tmp[800], rnd[9];
	cleanup_free char *text = NULL;
	cleanup_close int fd = -1;
	size_t len;
	int r;

	if ((r = rec_path(s, c->id, path, sizeof(path))) < 0)
		return pgsnap_err(err, r, "bad clone id '%s'", c->id);
	text = records_format(c, 1, &len);
	if (!text)
		return pgsnap_err(err, ENOMEM, "out of memory");
	fd = take_blank(s, tmp, sizeof(tmp));
	if (fd < 0) {
		random_hex(rnd, 8);
		snprintf(tmp, sizeof(tmp), "%s/records/.tmp-%s-%s", s->run,
			 c->id, rnd);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
			  O_NOFOLLOW, 0600);
	}
	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot write %s", tmp);
	r = write_all(fd, text, len);
	if (r == 0 && close(steal_fd(&fd)) < 0)
		r = -errno;
	if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, flags) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		if (r == -EEXIST)
			return r;
		return pgsnap_errno(err, r, "cannot write record %s", path);
	}
	return 0;
}

int registry_put(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err)
{
	return write_record(s, c, 0, err);
}

int registry_add(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err)
{
	return write_record(s, c, RENAME_NOREPLACE, err);
}

int registry_del(const pgsnap_store *s, const char *id)
{
	char path[700];

	if (rec_path(s, id, path, sizeof(path)) < 0)
		return -EINVAL;
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int registry_edit(const pgsnap_store *s, const char *id,
		  int (*fn)(const pgsnap_store *, pgsnap_clone *, void *),
		  void *arg, pgsnap_error *err)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	pgsnap_clone c;
	int r;

	if ((r = registry_lock(s, &l, err)) < 0)
		return r;
	r = registry_get(s, id, &c, NULL);
	if (r < 0 && r != -ENOENT)
		return pgsnap_err(err, r, "record %s is damaged ('pgsnap gc' "
				  "removes it)", id);
	r = fn(s, r == 0 ? &c : NULL, arg);
	if (r == REG_PUT)
		r = registry_put(s, &c, err);
	else if (r == REG_DEL)
		r = registry_del(s, id);
	else if (r < 0 && err && !err->msg[0])
		pgsnap_err(err, r, "registry update of %s failed", id);
	return r < 0 ? r : 0;
}

/* ---- every record -------------------------------------------------------- */

static int by_creation(const void *a, const void *b)
{
	const pgsnap_clone *x = a, *y = b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

int registry_scan(const pgsnap_store *s, reg_scan *out, pgsnap_error *err)
{
	char dir[600];
	struct dirent *e;
	cleanup_dir DIR *d = NULL;
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	snprintf(dir, sizeof(dir), "%s/records", s->run);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 :
			pgsnap_errno(err, errno, "cannot read %s", dir);
	while ((e = readdir(d))) {
		cleanup_free char *text = NULL;
		cleanup_close int fd = -1;
		pgsnap_clone c;
		size_t len;

		if (e->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue; /* removed since readdir */
		if (read_fd(fd, RECORD_MAX, &text, &len) < 0 ||
		    parse_record(text, len, &c, NULL) < 0 ||
		    strcmp(c.id, e->d_name)) {
			char (*b)[32] = realloc(out->bad, (out->nbad + 1) *
						sizeof(*out->bad));
			if (!b)
				goto oom;
			out->bad = b;
			snprintf(out->bad[out->nbad++], 32, "%.31s", e->d_name);
			continue;
		}
		if (out->n == cap) {
			pgsnap_clone *v;
			cap = cap ? cap * 2 : 16;
			v = realloc(out->v, cap * sizeof(*v));
			if (!v)
				goto oom;
			out->v = v;
		}
		out->v[out->n++] = c;
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), by_creation);
	return 0;
oom:
	registry_scan_free(out);
	return pgsnap_err(err, ENOMEM, "out of memory");
}

void registry_scan_free(reg_scan *sc)
{
	free(sc->v);
	free(sc->bad);
	memset(sc, 0, sizeof(*sc));
}

int registry_list(const pgsnap_store *s, pgsnap_clone **out, size_t *n,
		  pgsnap_error *err)
{
	reg_scan sc;
	int r = registry_scan(s, &sc, err);

	*out = NULL;
	*n = 0;
	if (r < 0)
		return r;
	*out = steal_ptr(&sc.v);
	*n = sc.n;
	registry_scan_free(&sc);
	return 0;
}

int registry_find(const pgsnap_store *s, const char *ref, pgsnap_clone *out,
		  pgsnap_error *err)
{
	reg_scan sc;
	size_t i;
	int r;

	/* An id is one file; anything else (URL, directory) a scan. */
	if (name_valid(ref, sizeof(out->id) - 1) &&
	    registry_get(s, ref, out, NULL) == 0)
		return 0;
	if ((r = registry_scan(s, &sc, err)) < 0)
		return r;
	r = pgsnap_err(err, ENOENT, "no clone '%s' in this store (see "
		       "'pgsnap ls')", ref);
	for (i = 0; i < sc.n; i++) {
		if (clone_matches(&sc.v[i], ref)) {
			*out = sc.v[i];
			r = 0;
			break;
		}
	}
	registry_scan_free(&sc);
	return r;
}

/* ---- the index of servers to hand out ------------------------------------ */

static int avail_path(const pgsnap_store *s, const char *sig, const char *id,
		      char *buf, size_t len)
{
	if (!name_valid(sig, 63) || (id && !name_valid(id, 31)))
		return -EINVAL;
	return snprintf(buf, len, "%s/avail/%s%s%s", s->run, sig,
			id ? "/" : "", id ? id : "") >= (int)len ?
		-ENAMETOOLONG : 0;
}

int registry_avail_add(const pgsnap_store *s, const char *sig, const char *id)
{
	char path[800];
	int fd;

	if (avail_path(s, sig, NULL, path, sizeof(path)) < 0)
		return -EINVAL;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	avail_path(s, sig, id, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

void registry_avail_del(const pgsnap_store *s, const char *sig, const char *id)
{
	char path[800];

	if (avail_path(s, sig, id, path, sizeof(path)) == 0)
		unlink(path);
}

int registry_avail(const pgsnap_store *s, const char *sig,
		   pgsnap_clone **out, size_t *n)
{
	char dir[800];
	cleanup_dir DIR *d = NULL;
	struct dirent *e;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (avail_path(s, sig, NULL, dir, sizeof(dir)) < 0 ||
	    !(d = opendir(dir)))
		return 0;
	while ((e = readdir(d))) {
		pgsnap_clone c;
		if (e->d_name[0] == '.')
			continue;
		/* A hint whose record is gone or changed: drop it. */
		if (registry_get(s, e->d_name, &c, NULL) < 0 ||
		    strcmp(c.opts_sig, sig)) {
			unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (*n == cap) {
			pgsnap_clone *v;
			cap = cap ? cap * 2 : 8;
			v = realloc(*out, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			*out = v;
		}
		(*out)[(*n)++] = c;
	}
	return 0;
}

/* ---- upkeep ---------------------------------------------------------------- */

int registry_init(const pgsnap_store *s, pgsnap_error *err)
{
	char path[600], old[600], moved[700];
	cleanup_free char *text = NULL;
	cleanup_free pgsnap_clone *v = NULL;
	size_t len, n = 0, dropped = 0, i;
	reg_lock l;
	int r;

	if (path_join(path, sizeof(path), s->run, "records") < 0 ||
	    path_join(old, sizeof(old), s->run, "registry") < 0)
		return pgsnap_err(err, ENAMETOOLONG, "store path too long");
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return pgsnap_errno(err, errno, "cannot create %s", path);
	snprintf(path, sizeof(path), "%s/avail", s->run);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return pgsnap_errno(err, errno, "cannot create %s", path);
	if (access(old, F_OK) < 0)
		return 0;
	/* The single registry file of pgsnap 0.1: a record file per clone
	 * now, once, under the lock. */
	if ((r = registry_lock(s, &l, err)) < 0)
		return r;
	if (read_file(old, OLD_REGISTRY_MAX, &text, &len) == 0 &&
	    records_salvage(text, len, &v, &n, &dropped) == 0) {
		for (i = 0; i < n; i++) {
			registry_add(s, &v[i], NULL);
			if (!strcmp(v[i].state, "pooled") ||
			    (clone_is_shared(&v[i]) && v[i].dbs_used < v[i].dbs))
				registry_avail_add(s, v[i].opts_sig, v[i].id);
		}
	}
	snprintf(moved, sizeof(moved), "%s.0.1-%lld", old, (long long)now_ms());
	r = rename(old, moved) < 0 && errno != ENOENT ?
		pgsnap_errno(err, errno, "cannot move %s aside", old) : 0;
	registry_unlock(&l);
	return r;
}

size_t registry_drop_stale_tmp(const pgsnap_store *s)
{
	char dir[600];
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	cleanup_dir DIR *d = NULL;
	struct dirent *e;
	size_t n = 0;

	/* Every write happens under the lock: a temp file seen while we
	 * hold it belongs to a writer that died. */
	snprintf(dir, sizeof(dir), "%s/records", s->run);
	if (registry_lock(s, &l, NULL) < 0 || !(d = opendir(dir)))
		return 0;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, ".tmp-", 5) &&
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	return n;
}

int registry_drop_damaged(const pgsnap_store *s, const char *name)
{
	char path[700];

	if (!name_valid(name, 255) ||
	    snprintf(path, sizeof(path), "%s/records/%s", s->run, name) >=
	    (int)sizeof(path))
		return -EINVAL;
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}
