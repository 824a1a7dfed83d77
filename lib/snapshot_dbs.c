/*
 * snapshot_dbs.c - the recipe directive `databases N`: copies pgsnap_1 ..
 * pgsnap_N of the snapshot's postgres database, for `new --shared` (a
 * fresh database inside a shared server is then only a registry update).
 *
 * The copies are made last, after vacuum (which would otherwise touch
 * them), by CREATE DATABASE ... TEMPLATE postgres STRATEGY FILE_COPY, from
 * template1: nothing may be connected to a template while it is copied.
 * CREATE DATABASE leaves behind what belongs to the database rather than
 * to its files: its settings (ALTER DATABASE SET, ALTER ROLE IN DATABASE
 * SET), its ACL and its comment.  These are copied row by row in the
 * shared catalogs, as superuser: exact, where regenerating ALTER
 * statements would have to re-quote list settings such as search_path.
 *
 * Once the server is stopped, every file of a copy that is byte-identical
 * to the postgres database's becomes a hard link to it: N copies of a big
 * schema cost no space in the golden, nor in its image (manifest.c packs a
 * linked file once).  Clones stay independent: the copy engines write every
 * path as its own file, FICLONE shares extents per path, and an overlay
 * copies a path up on its first write without touching its other links
 * (with index=off, which clone_overlay.c asks for).
 */
#include "json.h"
#include "snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define COPY_PATTERN "'^pgsnap_[1-9][0-9]*$'"

static int query(PGconn *c, const char *sql, PGresult **out,
		 pgsnap_error *err)
{
	PGresult *res = PQexec(c, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		PQclear(res);
		return pgsnap_err(err, EIO, "%s", msg);
	}
	*out = res;
	return 0;
}

static int exec_fmt(PGconn *c, pgsnap_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int exec_fmt(PGconn *c, pgsnap_error *err, const char *fmt, ...)
{
	cleanup_free char *sql = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&sql, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sql = NULL;
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	return sql_exec(c, sql, err);
}

/* Copies a base snapshot already had are replaced: the recipe's N and
 * the base's contents decide, not an older build's. */
static int drop_old(PGconn *c, pgsnap_error *err)
{
	PGresult *res;
	int i, r;

	if ((r = query(c, "SELECT quote_ident(datname) FROM pg_database "
		       "WHERE datname ~ " COPY_PATTERN, &res, err)) < 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++)
		r = exec_fmt(c, err, "DROP DATABASE %s", PQgetvalue(res, i, 0));
	PQclear(res);
	return r;
}

/* What CREATE DATABASE does not copy from postgres (oid): its ACL,
 * settings and comment, onto the databases whose name matches cond. */
static int copy_settings(PGconn *c, unsigned postgres, const char *cond,
			 pgsnap_error *err)
{
	int r = exec_fmt(c, err,
		"BEGIN;\n"
		"UPDATE pg_database SET datacl = (SELECT datacl FROM "
		"pg_database WHERE oid = %u) WHERE datname %s;\n"
		"INSERT INTO pg_db_role_setting SELECT d.oid, s.setrole, "
		"s.setconfig FROM pg_db_role_setting s, pg_database d WHERE "
		"s.setdatabase = %u AND d.datname %s;\n"
		"INSERT INTO pg_shdescription SELECT d.oid, s.classoid, "
		"s.description FROM pg_shdescription s, pg_database d WHERE "
		"s.objoid = %u AND s.classoid = 'pg_database'::regclass AND "
		"d.datname %s;\n"
		"COMMIT", postgres, cond, postgres, cond, postgres, cond);

	return r < 0 ? pgsnap_err_wrap(err, r, "copying the settings of "
				       "database postgres") : 0;
}

int dbs_recreate(PGconn *c, const char *name, int pg_major, pgsnap_error *err)
{
	PGresult *res;
	unsigned postgres;
	char cond[128];
	int r;

	/* Ours: pgsnap_N, no quoting needed. */
	if (strncmp(name, "pgsnap_", 7) || !name[7] ||
	    strspn(name + 7, "0123456789") != strlen(name + 7))
		return pgsnap_err(err, EINVAL, "'%s' is not a database of a "
				  "shared server", name);
	if ((r = query(c, "SELECT oid, quote_ident(pg_get_userbyid(datdba)) "
		       "FROM pg_database WHERE datname = 'postgres'", &res,
		       err)) < 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return pgsnap_err(err, ENOENT, "no database 'postgres' to copy");
	}
	postgres = (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	r = exec_fmt(c, err, "CREATE DATABASE %s TEMPLATE postgres %sOWNER %s",
		     name, pg_major >= 15 ? "STRATEGY FILE_COPY " : "",
		     PQgetvalue(res, 0, 1));
	PQclear(res);
	snprintf(cond, sizeof(cond), "= '%s'", name);
	return r < 0 ? r : copy_settings(c, postgres, cond, err);
}

int dbs_create(PGconn *c, int n, int pg_major, dbs_oids *out,
	       pgsnap_error *err)
{
	cleanup_free char *owner = NULL;
	PGresult *res;
	int k, r;

	memset(out, 0, sizeof(*out));
	if ((r = query(c, "SELECT oid, quote_ident(pg_get_userbyid(datdba)) "
		       "FROM pg_database WHERE datname = 'postgres'", &res,
		       err)) < 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return pgsnap_err(err, ENOENT, "the snapshot has no database "
				  "'postgres' to copy");
	}
	out->postgres = (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	owner = strdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!owner)
		return pgsnap_err(err, ENOMEM, "out of memory");
	if ((r = drop_old(c, err)) < 0)
		return r;
	for (k = 1; k <= n && r == 0; k++)
		r = exec_fmt(c, err, "CREATE DATABASE pgsnap_%d TEMPLATE postgres "
			     "%sOWNER %s", k, pg_major >= 15 ?
			     "STRATEGY FILE_COPY " : "", owner);
	if (r < 0 || (r = copy_settings(c, out->postgres, "~ " COPY_PATTERN,
					err)) < 0)
		return r;
	if ((r = query(c, "SELECT oid FROM pg_database WHERE datname ~ "
		       COPY_PATTERN, &res, err)) < 0)
		return r;
	out->copies = calloc((size_t)PQntuples(res) + 1, sizeof(unsigned));
	if (!out->copies) {
		PQclear(res);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	for (k = 0; k < PQntuples(res); k++)
		out->copies[out->n++] = (unsigned)strtoul(PQgetvalue(res, k, 0),
							  NULL, 10);
	PQclear(res);
	return 0;
}

void dbs_oids_free(dbs_oids *o)
{
	free(o->copies);
	memset(o, 0, sizeof(*o));
}

/* ---- deduplication ------------------------------------------------------ */

typedef struct cmpbuf {
	char *a, *b;
	size_t cap;
} cmpbuf;

static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* 1: same bytes, 0: not, < 0: -errno. */
static int same_bytes(int sfd, int dfd, const char *name, off_t size,
		      cmpbuf *cb)
{
	cleanup_close int a = openat(sfd, name, O_RDONLY | O_NOFOLLOW |
				     O_CLOEXEC);
	cleanup_close int b = openat(dfd, name, O_RDONLY | O_NOFOLLOW |
				     O_CLOEXEC);
	off_t left = size;
	int r;

	if (a < 0 || b < 0)
		return -errno;
	while (left > 0) {
		size_t n = (uint64_t)left < cb->cap ? (size_t)left : cb->cap;
		if ((r = read_full(a, cb->a, n)) < 0 ||
		    (r = read_full(b, cb->b, n)) < 0)
			return r;
		if (memcmp(cb->a, cb->b, n))
			return 0;
		left -= (off_t)n;
	}
	return 1;
}

static int dedup_dir(int sfd, int dfd, const char *where, cmpbuf *cb,
		     dbs_stats *st, pgsnap_error *err)
{
	static const char tmp[] = ".pgsnap-link";
	DIR *d = fdopendir(dup(dfd));
	struct dirent *e;
	int r = 0;

	if (!d)
		return pgsnap_errno(err, errno, "cannot read %s", where);
	while (r == 0 && (e = readdir(d))) {
		struct stat a, b;
		int same;

		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dfd, e->d_name, &b, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(b.st_mode))
			continue;
		if (fstatat(sfd, e->d_name, &a, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(a.st_mode) || a.st_size != b.st_size ||
		    a.st_mode != b.st_mode)
			continue;
		if (a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			continue;
		same = same_bytes(sfd, dfd, e->d_name, b.st_size, cb);
		if (same < 0) {
			r = pgsnap_errno(err, same, "cannot compare %s/%s",
					 where, e->d_name);
		} else if (same == 0) {
			st->kept++;
		} else if (linkat(sfd, e->d_name, dfd, tmp, 0) < 0 ||
			   renameat(dfd, tmp, dfd, e->d_name) < 0) {
			r = pgsnap_errno(err, errno, "cannot link %s/%s", where,
					 e->d_name);
			unlinkat(dfd, tmp, 0);
		} else {
			st->linked++;
			st->bytes += (uint64_t)b.st_blocks * 512;
		}
	}
	closedir(d);
	return r;
}

int dbs_dedup(const pgsnap_store *s, const char *datadir, const dbs_oids *o,
	      dbs_stats *st, pgsnap_error *err)
{
	char path[900];
	cleanup_close int sfd = -1;
	cmpbuf cb = { .cap = 1u << 18 };
	fs_ids ids;
	size_t i;
	int r = 0;

	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "%s/base/%u", datadir, o->postgres);
	sfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", path);
	cb.a = malloc(cb.cap);
	cb.b = malloc(cb.cap);
	if (!cb.a || !cb.b) {
		free(cb.a);
		free(cb.b);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	/* The files are the server user's; so are the new links. */
	ids = fs_become(s);
	for (i = 0; i < o->n && r == 0; i++) {
		cleanup_close int dfd = -1;
		snprintf(path, sizeof(path), "%s/base/%u", datadir, o->copies[i]);
		dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			r = pgsnap_errno(err, errno, "cannot open %s", path);
		else
			r = dedup_dir(sfd, dfd, path, &cb, st, err);
	}
	fs_restore(ids);
	free(cb.a);
	free(cb.b);
	return r;
}

/* ---- which copies are the postgres database --------------------------- */

/* Is every file of database dst in the golden the same inode as that
 * file of database src (the snapshot build links identical files)?  Then
 * the two are the same database, and src's relcache init file is right
 * for dst; anything else (a file that differs, one more or one less) and
 * it may not be: a stale relfrozenxid in it is enough to break VACUUM. */
bool dbs_same(const char *base, const char *src, const char *dst)
{
	char p[1200];
	cleanup_close int sfd = -1;
	struct dirent *e;
	size_t nd = 0, ns = 0;
	bool same = true;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", base, src);
	sfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof(p), "%s/%s", base, dst);
	if (sfd < 0 || !(d = opendir(p)))
		return false;
	while (same && (e = readdir(d))) {
		struct stat a, b;
		if (e->d_name[0] == '.')
			continue;
		nd++;
		same = fstatat(dirfd(d), e->d_name, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
		       fstatat(sfd, e->d_name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		       S_ISREG(a.st_mode) && a.st_ino == b.st_ino &&
		       a.st_dev == b.st_dev;
	}
	closedir(d);
	if (!same)
		return false;
	d = fdopendir(steal_fd(&sfd));
	if (!d)
		return false;
	while ((e = readdir(d)))
		ns += e->d_name[0] != '.';
	closedir(d);
	return ns == nd;
}

int dbs_write_same(const char *dir, const char *datadir, const dbs_oids *o,
		   pgsnap_error *err)
{
	char base[800], path[800], src[16], dst[16];
	jbuf b = { 0 };
	size_t i;
	int r;

	snprintf(base, sizeof(base), "%s/base", datadir);
	snprintf(src, sizeof(src), "%u", o->postgres);
	jb_raw(&b, src);
	jb_raw(&b, "\n");
	for (i = 0; i < o->n; i++) {
		snprintf(dst, sizeof(dst), "%u", o->copies[i]);
		if (dbs_same(base, src, dst)) {
			jb_raw(&b, dst);
			jb_raw(&b, "\n");
		}
	}
	snprintf(path, sizeof(path), "%s/" DBS_SAME_FILE, dir);
	r = b.oom ? -ENOMEM : write_file_atomic(path, b.p, b.len, 0644);
	free(b.p);
	return r < 0 ? pgsnap_errno(err, r, "cannot write %s", path) : 0;
}

int dbs_read_same(const char *snapdir, unsigned *src, unsigned **same,
		  size_t *n)
{
	cleanup_free char *text = NULL;
	char path[800], *p, *end;
	unsigned long v;
	size_t cap = 0;
	int r;

	*same = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/" DBS_SAME_FILE, snapdir);
	if ((r = read_file(path, 1 << 16, &text, NULL)) < 0)
		return r;
	for (p = text; *p; p = *end ? end + 1 : end) {
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || end == p || v > UINT_MAX || (*end && *end != '\n'))
			break;
		if (p == text) {
			*src = (unsigned)v;
			continue;
		}
		if (*n == cap) {
			unsigned *g = realloc(*same, (cap = cap ? cap * 2 : 16) *
					      sizeof(**same));
			if (!g)
				break;
			*same = g;
		}
		(*same)[(*n)++] = (unsigned)v;
	}
	if (*p || p == text) {
		free(*same);
		*same = NULL;
		*n = 0;
		return -EINVAL;
	}
	return 0;
}
