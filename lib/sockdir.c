/*
 * sockdir.c - where a clone's Unix socket lives, and which paths of a
 * registry record pgsnap may remove.
 *
 * A socket path must fit sun_path (108 bytes with its NUL), and postgres
 * appends "/.s.PGSQL.PORT".  The socket normally sits in the clone's own
 * directory (<run>/clones/<id>/sock); when that is too long (a deep
 * PGSNAP_HOME), it goes to /tmp/pgsnap-<uid>/<id> instead (/dev/shm when
 * we cannot write /tmp): a directory of ours, closed to other users, whose
 * path is recorded in the registry before it is made so that rm and gc
 * find it.  The long path never reaches connect() as a mysterious error.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <sys/socket.h>
#include <time.h>

static const char *const short_parents[] = { "/tmp", "/dev/shm" };

static bool fits_sun_path(const char *dir)
{
	struct sockaddr_un a;
	return strlen(dir) + sizeof("/.s.PGSQL.65535") <= sizeof(a.sun_path);
}

static void short_base(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/pgsnap-%u", short_parents[i],
		 (unsigned)geteuid());
}

/* The first short base that exists or can be made. */
static void short_base_pick(char *base, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(short_parents); i++) {
		short_base(i, base, len);
		if (access(base, F_OK) == 0 ||
		    access(short_parents[i], W_OK | X_OK) == 0)
			return;
	}
}

/* Is sockdir BASE/ID for one of our short bases?  Then *base is it. */
static bool is_short(const pgsnap_clone *c, char *base, size_t len)
{
	char want[700];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(short_parents); i++) {
		short_base(i, base, len);
		snprintf(want, sizeof(want), "%s/%s", base,
			 c->parent[0] ? c->parent : c->id);
		if (!strcmp(c->sockdir, want))
			return true;
	}
	return false;
}

int sockdir_choose(const pgsnap_store *s, pgsnap_clone *c)
{
	char base[64];

	(void)s;
	snprintf(c->sockdir, sizeof(c->sockdir), "%s/sock", c->dir);
	if (fits_sun_path(c->sockdir))
		return 0;
	/* The first parent where our base exists or can be made; the last
	 * one otherwise, to fail there with a clear message. */
	short_base_pick(base, sizeof(base));
	snprintf(c->sockdir, sizeof(c->sockdir), "%s/%s", base, c->id);
	return 0;
}

/* /tmp/pgsnap-UID: ours, a real directory, writable by no one else.  In a
 * sticky /tmp no one else can rename or remove it once it is ours. */
static int short_base_make(const pgsnap_store *s, const char *base,
			   pgsnap_error *err)
{
	cleanup_close int fd = -1;
	struct stat st;

	/* As root the server user must pass through: search only. */
	if (mkdir(base, s->as_root ? 0711 : 0700) < 0 && errno != EEXIST)
		return pgsnap_errno(err, errno, "cannot create %s", base);
	fd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return pgsnap_errno(err, errno, "cannot open %s (a symlink? "
				    "remove it)", base);
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return pgsnap_err(err, EPERM,
			"%s belongs to uid %u with mode %04o: not a private "
			"directory of ours; remove it (the store path is too "
			"long for a socket, so pgsnap needs it)", base,
			(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

int sockdir_short_path(const pgsnap_store *s, const char *name, char *buf,
		       size_t len)
{
	char base[64];

	(void)s;
	short_base_pick(base, sizeof(base));
	return snprintf(buf, len, "%s/%s", base, name) >= (int)len ?
		-ENAMETOOLONG : 0;
}

int sockdir_short_make(const pgsnap_store *s, pgsnap_error *err)
{
	char base[64];

	short_base_pick(base, sizeof(base));
	return short_base_make(s, base, err);
}

int sockdir_make(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err)
{
	char base[64];
	int r;

	if (!fits_sun_path(c->sockdir))
		return pgsnap_err(err, ENAMETOOLONG,
			"socket directory %s is too long for a Unix socket",
			c->sockdir);
	if (!is_short(c, base, sizeof(base))) {
		r = mkdir_server(s, c->sockdir);
		return r < 0 ? pgsnap_errno(err, r, "cannot create %s",
					    c->sockdir) : 0;
	}
	if ((r = short_base_make(s, base, err)) < 0)
		return r;
	/* Made by us in a directory only we can write, then handed over: the
	 * server user could not create it in there itself. */
	if (mkdir(c->sockdir, 0700) < 0)
		return pgsnap_errno(err, errno, "cannot create %s", c->sockdir);
	if (s->as_root && chown(c->sockdir, s->uid, s->gid) < 0) {
		r = pgsnap_errno(err, errno, "cannot give %s to user '%s'",
				 c->sockdir, s->user);
		rmdir(c->sockdir);
		return r;
	}
	return 0;
}

bool clone_paths_valid(const pgsnap_store *s, const pgsnap_clone *c)
{
	char want[700], base[64];

	/* A lease lives in its shared server's directory. */
	const char *owner = c->parent[0] ? c->parent : c->id;

	if (!name_valid(c->id, sizeof(c->id) - 1) ||
	    !name_valid(owner, sizeof(c->id) - 1))
		return false;
	snprintf(want, sizeof(want), "%s/%s", s->clones, owner);
	if (strcmp(c->dir, want))
		return false;
	if (!c->sockdir[0])
		return true;
	snprintf(want, sizeof(want), "%s/sock", c->dir);
	return !strcmp(c->sockdir, want) || is_short(c, base, sizeof(base));
}

const char *sockdir_arg(const pgsnap_clone *c, char *buf, size_t len)
{
	size_t n = strlen(c->dir), at = 0;
	const char *p;

	if (strncmp(c->datadir, c->dir, n) || c->datadir[n] != '/' ||
	    strncmp(c->sockdir, c->dir, n) || c->sockdir[n] != '/')
		return c->sockdir;
	for (p = c->datadir + n; *p; p++)
		if (*p == '/' && p[1] && at + 4 < len) {
			memcpy(buf + at, "../", 3);
			at += 3;
		}
	if (snprintf(buf + at, len - at, "%s", c->sockdir + n + 1) >=
	    (int)(len - at))
		return c->sockdir;
	return buf;
}

int sockdir_remove(const pgsnap_store *s, const pgsnap_clone *c)
{
	char inside[600];

	snprintf(inside, sizeof(inside), "%s/sock", c->dir);
	/* Inside the clone directory it goes with it. */
	if (!c->sockdir[0] || !strcmp(c->sockdir, inside) ||
	    !clone_paths_valid(s, c))
		return 0;
	return rm_rf(c->sockdir);
}

/* A service socket nobody listens on any more, and not just made. */
static bool stale_socket(int dfd, const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	char path[64];
	int fd, r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISSOCK(st.st_mode) || time(NULL) - st.st_mtime < 60)
		return false;
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, name);
	if (strlen(path) >= sizeof(a.sun_path))
		return false;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	r = connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
	close(fd);
	return r == ECONNREFUSED;
}

size_t sockdir_short_gc(void)
{
	char base[64];
	size_t i, n = 0;

	/* The sockets of services of deep stores that were killed with
	 * their store removed since: no one else would ever remove them. */
	for (i = 0; i < ARRAY_SIZE(short_parents); i++) {
		cleanup_dir DIR *d = NULL;
		struct dirent *e;
		short_base(i, base, sizeof(base));
		if (!(d = opendir(base)))
			continue;
		while ((e = readdir(d)))
			if (!strncmp(e->d_name, "svc-", 4) &&
			    stale_socket(dirfd(d), e->d_name) &&
			    unlinkat(dirfd(d), e->d_name, 0) == 0)
				n++;
	}
	return n;
}
