/*
 * store.c - where pgsnap keeps things and as whom it runs the server.
 *
 * Snapshots live in `home` (disk: they are expensive to build), clones,
 * sockets and the registry in `run` (RAM when the system offers it: clones
 * are throwaway).  PGSNAP_HOME, when set, holds both.
 */
#include "internal.h"
#include "sha256.h"
#include "xfsstore.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#ifndef PGSNAP_DEFAULT_BINDIR
#define PGSNAP_DEFAULT_BINDIR "/usr/lib/postgresql/15/bin"
#endif
#define TMPFS_MAGIC_ 0x01021994
/* A RAM filesystem smaller than this holds no clones (find_clones). */
#define RAM_CLONES_MIN (512ull << 20)

fs_ids fs_become(const pgsnap_store *s)
{
	fs_ids old = { -1, -1 };
	if (s->as_root) {
		old.gid = setfsgid(s->gid);
		old.uid = setfsuid(s->uid);
	}
	return old;
}

void fs_restore(fs_ids ids)
{
	if (ids.uid >= 0)
		setfsuid((uid_t)ids.uid);
	if (ids.gid >= 0)
		setfsgid((gid_t)ids.gid);
}

int mkdir_server(const pgsnap_store *s, const char *path)
{
	fs_ids ids = fs_become(s);
	int r = mkdir(path, 0700) < 0 ? -errno : 0;
	fs_restore(ids);
	return r;
}

static bool is_exec(const char *dir, const char *prog)
{
	char p[600];
	return !path_join(p, sizeof(p), dir, prog) && access(p, X_OK) == 0;
}

/* Ask pg_config (found on PATH) for the binaries. */
static int bindir_from_pg_config(char *buf, size_t len)
{
	ssize_t got;
	char *argv[] = { "pg_config", "--bindir", NULL };
	const char *path = getenv("PATH");
	char prog[600] = "";
	spawn_opts o = { 0 };

	if (!path)
		path = "/usr/bin:/bin";
	/* execve does not search PATH: do it here, by hand. */
	while (*path) {
		const char *c = strchrnul(path, ':');
		snprintf(prog, sizeof(prog), "%.*s/pg_config", (int)(c - path),
			 path);
		if (access(prog, X_OK) == 0)
			break;
		prog[0] = '\0';
		path = *c ? c + 1 : c;
	}
	if (!prog[0])
		return -ENOENT;
	got = spawn_capture(prog, argv, &o, 5000, buf, len);
	if (got < 0)
		return (int)got;
	buf[strcspn(buf, "\n")] = '\0';
	return got ? 0 : -ENOENT;
}

static int find_bindir(pgsnap_store *s, const pgsnap_store_opts *o,
		       pgsnap_error *err)
{
	const char *b = o && o->bindir ? o->bindir : getenv("PGSNAP_PG_BINDIR");

	if (b && *b) {
		snprintf(s->bindir, sizeof(s->bindir), "%s", b);
		if (!is_exec(s->bindir, "postgres") || !is_exec(s->bindir, "initdb"))
			return pgsnap_err(err, ENOENT,
				"PostgreSQL server binaries not found in %s "
				"(PGSNAP_PG_BINDIR): no executable postgres "
				"and initdb there", s->bindir);
		return 0;
	}
	/* The bindir seen at build time costs nothing; pg_config is the
	 * fallback when that installation went away. */
	snprintf(s->bindir, sizeof(s->bindir), "%s", PGSNAP_DEFAULT_BINDIR);
	if (is_exec(s->bindir, "postgres") && is_exec(s->bindir, "initdb"))
		return 0;
	if (bindir_from_pg_config(s->bindir, sizeof(s->bindir)) == 0 &&
	    is_exec(s->bindir, "postgres") && is_exec(s->bindir, "initdb"))
		return 0;
	return pgsnap_err(err, ENOENT,
		"PostgreSQL server binaries not found (no postgres and initdb "
		"in %s nor where pg_config points): install the PostgreSQL "
		"server or set PGSNAP_PG_BINDIR", PGSNAP_DEFAULT_BINDIR);
}

static int find_user(pgsnap_store *s, const pgsnap_store_opts *o,
		     pgsnap_error *err)
{
	const char *name = o && o->user ? o->user : getenv("PGSNAP_USER");
	struct passwd *pw;

	s->as_root = geteuid() == 0;
	if (!s->as_root) {
		s->uid = geteuid();
		s->gid = getegid();
		pw = getpwuid(s->uid);
		if (pw)
			snprintf(s->user, sizeof(s->user), "%s", pw->pw_name);
		else
			snprintf(s->user, sizeof(s->user), "%u", (unsigned)s->uid);
		if (name && *name && strcmp(name, s->user))
			return pgsnap_err(err, EPERM,
				"--user %s: only root can run the server as "
				"another user", name);
		return 0;
	}
	if (!name || !*name)
		name = "postgres";
	pw = getpwnam(name);
	if (!pw)
		return pgsnap_err(err, ENOENT,
			"running as root, the server needs an unprivileged "
			"user: no account named '%s' (create one or pass "
			"--user NAME)", name);
	if (pw->pw_uid == 0)
		return pgsnap_err(err, EPERM,
			"user '%s' is root: PostgreSQL refuses to run as root; "
			"pass --user NAME with an unprivileged account", name);
	s->uid = pw->pw_uid;
	s->gid = pw->pw_gid;
	snprintf(s->user, sizeof(s->user), "%s", pw->pw_name);
	return 0;
}

static bool is_tmpfs(const char *path)
{
	struct statfs f;
	return statfs(path, &f) == 0 && (unsigned long)f.f_type == TMPFS_MAGIC_;
}

static const char *user_home(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && *h == '/')
		return h;
	pw = getpwuid(geteuid());
	return pw && pw->pw_dir && *pw->pw_dir == '/' ? pw->pw_dir : NULL;
}

static int find_paths(pgsnap_store *s, const pgsnap_store_opts *o,
		      pgsnap_error *err)
{
	const char *home = o && o->home ? o->home : getenv("PGSNAP_HOME");
	const char *xdg;
	int n;

	if (home && *home) {
		if (home[0] != '/')
			return pgsnap_err(err, EINVAL,
				"PGSNAP_HOME '%s' is not an absolute path", home);
		n = snprintf(s->home, sizeof(s->home), "%s", home);
		if (n >= (int)sizeof(s->home) - 64)
			return pgsnap_err(err, ENAMETOOLONG,
				"PGSNAP_HOME '%.64s...' is too long", home);
		snprintf(s->run, sizeof(s->run), "%s/run", s->home);
		return 0;
	}
	if (s->as_root) {
		/* root's HOME is closed to the server user. */
		snprintf(s->home, sizeof(s->home), "/var/cache/pgsnap");
	} else if ((xdg = getenv("XDG_CACHE_HOME")) && *xdg == '/') {
		snprintf(s->home, sizeof(s->home), "%s/pgsnap", xdg);
	} else if ((xdg = user_home())) {
		snprintf(s->home, sizeof(s->home), "%s/.cache/pgsnap", xdg);
	} else {
		return pgsnap_err(err, ENOENT,
			"no place for the store: HOME is unset and the user "
			"has no home directory; set PGSNAP_HOME");
	}
	xdg = getenv("XDG_RUNTIME_DIR");
	if (!s->as_root && xdg && *xdg == '/' && access(xdg, W_OK) == 0)
		snprintf(s->run, sizeof(s->run), "%s/pgsnap", xdg);
	else if (is_tmpfs("/dev/shm") && access("/dev/shm", W_OK) == 0)
		snprintf(s->run, sizeof(s->run), "/dev/shm/pgsnap-%u",
			 (unsigned)geteuid());
	else
		snprintf(s->run, sizeof(s->run), "%s/run", s->home);
	return 0;
}

/* Clones live beside the registry, on RAM when it is there, unless that
 * RAM filesystem is too small to hold a useful number of them: a
 * container's /dev/shm is 64 MB, two copy clones of the default snapshot.
 * Then they go to the disk store (the registry and sockets stay). */
static void find_clones(pgsnap_store *s, bool explicit_home)
{
	struct statvfs v;
	unsigned long long total;
	char where[600];

	snprintf(s->clones, sizeof(s->clones), "%s/clones", s->run);
	snprintf(s->trash, sizeof(s->trash), "%s/trash", s->run);
	s->clones_why[0] = '\0';
	snprintf(where, sizeof(where), "%s", s->run);
	/* The run directory may not exist yet: its parent tells. */
	if (statvfs(where, &v) < 0 && (!strrchr(where, '/') ||
	    (*strrchr(where, '/') = '\0', statvfs(where, &v) < 0)))
		return;
	total = (unsigned long long)v.f_blocks * v.f_frsize;
	if (explicit_home || !is_tmpfs(where) || total >= RAM_CLONES_MIN)
		return;
	snprintf(s->clones, sizeof(s->clones), "%s/clones", s->home);
	snprintf(s->trash, sizeof(s->trash), "%s/trash", s->home);
	snprintf(s->clones_why, sizeof(s->clones_why), "%s holds %llu MiB in "
		 "all, too little for clones: they live on disk", where,
		 total >> 20);
}

/* A store directory must be ours (or root's) and not writable by others
 * (unless sticky, as /tmp): otherwise another user could swap its files. */
static int check_dir(const pgsnap_store *s, const char *path,
		     pgsnap_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return pgsnap_errno(err, errno, "store directory %s", path);
	if (!S_ISDIR(st.st_mode))
		return pgsnap_err(err, ENOTDIR, "store directory %s is not a "
				  "directory", path);
	if (st.st_uid != geteuid() && st.st_uid != 0 && st.st_uid != s->uid)
		return pgsnap_err(err, EPERM,
			"store directory %s belongs to uid %u, not to us",
			path, (unsigned)st.st_uid);
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		return pgsnap_err(err, EPERM,
			"store directory %s is writable by other users "
			"(mode %04o): refusing to use it", path,
			(unsigned)(st.st_mode & 07777));
	if (access(path, W_OK) < 0)
		return pgsnap_errno(err, errno, "store directory %s", path);
	return 0;
}

static int make_dir(const pgsnap_store *s, const char *path, bool server,
		    pgsnap_error *err)
{
	int r = mkdir_p(path, 0755);
	int fd;
	fs_ids ids;

	if (r < 0)
		return pgsnap_err(err, r, "cannot create store directory %s: "
				  "%s (set PGSNAP_HOME to a directory you can "
				  "write)", path, strerror(-r));
	/* The server user makes clones and snapshots in these: it owns them
	 * (one chown of the directory, not of every file in it). */
	if (server && s->as_root && chown(path, s->uid, s->gid) < 0)
		return pgsnap_errno(err, errno, "cannot give %s to user '%s'",
				    path, s->user);
	r = check_dir(s, path, err);
	if (r < 0)
		return r;
	/* Can the server's user get there?  Ask the kernel as that user. */
	ids = fs_become(s);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	fs_restore(ids);
	if (fd >= 0)
		close(fd);
	if (r < 0)
		return pgsnap_errno(err, r,
			"store directory %s is not reachable by the server's "
			"user '%s' (it needs search permission on every "
			"parent; set PGSNAP_HOME elsewhere)", path, s->user);
	return 0;
}

/* Mark clones/ "top directory" (FS_TOPDIR_FL, ext4's chattr +T): its
 * subdirectories are spread over block groups, as the root's are.  Else
 * each clone's ~1000 files go to the block group of clones/, the one
 * where the clones removed seconds before freed theirs, and ext4 skips
 * every recently freed inode one by one on each allocation: a cold copy
 * clone took 180-310 ms instead of 45 ms while clones came and went.
 * Other file systems ignore the flag or refuse it: nothing to do there. */
static void spread_subdirs(const pgsnap_store *s, const char *path)
{
	fs_ids ids = fs_become(s);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), flags;

	fs_restore(ids);
	if (fd < 0)
		return;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
	    !(flags & FS_TOPDIR_FL)) {
		flags |= FS_TOPDIR_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0) {
			/* not ext2/3/4, or not allowed: placement only */
		}
	}
	close(fd);
}

static int setting_long(const char *name, long min, long max, long dflt,
			long *out, pgsnap_error *err)
{
	const char *v = getenv(name);

	*out = dflt;
	if (!v || !*v)
		return 0;
	if (parse_long(v, min, max, out) < 0)
		return pgsnap_err(err, EINVAL, "%s '%s': expected a whole number "
				  "from %ld to %ld", name, v, min, max);
	return 0;
}

/* A size: a whole number of bytes, or with K, M, G or T (powers of 1024). */
static int setting_bytes(const char *name, long long *out, pgsnap_error *err)
{
	const char *v = getenv(name);
	unsigned long long b;

	*out = 0;
	if (!v || !*v)
		return 0;
	if (pgsnap_parse_size(v, &b) < 0 || b == 0)
		return pgsnap_err(err, EINVAL, "%s '%s': expected a size in bytes "
				  "(a whole number, or with K, M, G or T)", name, v);
	*out = (long long)b;
	return 0;
}

/* The runner's worker (and CI shard) that runs us, for ls and rm
 * --worker: PGSNAP_WORKER, else "SHARD/WORKER" from the variables test
 * runners and CI systems set. */
static void find_worker(char *buf, size_t len)
{
	static const struct { const char *var, *prefix; } shards[] = {
		{ "TEST_SHARD_INDEX", "shard-" },       /* Bazel */
		{ "CI_NODE_INDEX", "shard-" },          /* GitLab */
		{ "BUILDKITE_PARALLEL_JOB", "shard-" },
		{ "CIRCLE_NODE_INDEX", "shard-" },
	}, workers[] = {
		{ "PYTEST_XDIST_WORKER", "" },          /* gw0, gw1, ... */
		{ "JEST_WORKER_ID", "jest-" },
		{ "VITEST_POOL_ID", "vitest-" },
	};
	const char *v = getenv("PGSNAP_WORKER"), *shard = "", *sp = "";
	const char *w = "", *wp = "";
	size_t i;

	if (v && *v) {
		snprintf(buf, len, "%s", v);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(shards) && !*shard; i++)
		if ((v = getenv(shards[i].var)) && *v)
			shard = v, sp = shards[i].prefix;
	for (i = 0; i < ARRAY_SIZE(workers) && !*w; i++)
		if ((v = getenv(workers[i].var)) && *v)
			w = v, wp = workers[i].prefix;
	snprintf(buf, len, "%s%s%s%s%s", sp, shard, *shard && *w ? "/" : "",
		 wp, w);
}

static int find_settings(pgsnap_store *s, pgsnap_error *err)
{
	store_cfg *c = &s->cfg;
	const char *v;
	long l;
	int r;

	if ((r = setting_long("PGSNAP_POOL", 0, 64, -1, &l, err)) < 0)
		return r;
	c->pool = (int)l;
	if ((r = setting_long("PGSNAP_POOL_TTL", 1, 86400L * 365, 300,
			      &c->pool_ttl_s, err)) < 0)
		return r;
	if ((r = setting_long("PGSNAP_SHARED", 0, PGSNAP_SHARED_MAX, 0, &l,
			      err)) < 0)
		return r;
	c->shared = (int)l;
	if ((r = setting_long("PGSNAP_SERVICE", 0, 1, 1, &l, err)) < 0)
		return r;
	c->service = l;
	if ((r = setting_long("PGSNAP_MAX_CLONES", 1, 1000000, 0,
			      &c->max_clones, err)) < 0 ||
	    (r = setting_bytes("PGSNAP_MAX_BYTES", &c->max_bytes, err)) < 0 ||
	    (r = setting_long("PGSNAP_SNAPSHOT_TTL", 1, 86400L * 3650, 0,
			      &c->snapshot_ttl_s, err)) < 0)
		return r;
	find_worker(c->worker, sizeof(c->worker));
	if (strpbrk(c->worker, "\t\n\r"))
		return pgsnap_err(err, EINVAL, "the worker name (PGSNAP_WORKER) "
				  "holds a tab or newline");
	if ((v = getenv("PGSNAP_LOCK_TRACE")))
		snprintf(c->lock_trace, sizeof(c->lock_trace), "%s", v);
	if ((v = getenv("PGSNAP_TEST_PAUSE")))
		snprintf(c->test_pause, sizeof(c->test_pause), "%s", v);
	return 0;
}

static void config_sig(pgsnap_store *s)
{
	static const char *const vars[] = {
		"PGSNAP_COPY_IMPL", "PGSNAP_URING_WORKERS",
		"PGSNAP_CLONE_LARGE_MB", "PGSNAP_POOL_TTL", "PGSNAP_MAX_CLONES",
		"PGSNAP_MAX_BYTES", "PGSNAP_SNAPSHOT_TTL", "PGSNAP_LOCK_TRACE",
	};
	unsigned char d[32];
	char hex[65];
	sha256_ctx h;
	size_t i;

	sha256_init(&h);
	sha256_update(&h, s->bindir, strlen(s->bindir) + 1);
	sha256_update(&h, s->home, strlen(s->home) + 1);
	for (i = 0; i < ARRAY_SIZE(vars); i++) {
		const char *v = getenv(vars[i]);
		sha256_update(&h, v ? v : "", v ? strlen(v) + 1 : 1);
	}
	sha256_final(&h, d);
	sha256_hex(d, hex);
	snprintf(s->cfg.sig, sizeof(s->cfg.sig), "%.16s", hex);
}

int pgsnap_store_open(pgsnap_store **out, const pgsnap_store_opts *o,
		      pgsnap_error *err)
{
	cleanup_free pgsnap_store *s = calloc(1, sizeof(*s));
	char p[600];
	int r;

	if (!s)
		return pgsnap_err(err, ENOMEM, "out of memory");
	pthread_mutex_init(&s->svc_mu, NULL);
	if ((r = find_settings(s, err)) < 0 ||
	    (r = find_user(s, o, err)) < 0 ||
	    (r = find_paths(s, o, err)) < 0 ||
	    (r = find_bindir(s, o, err)) < 0 ||
	    (!(o && o->as_is) && (r = xfs_store_attach(s, err)) < 0))
		return r;
	find_clones(s, (o && o->home) || (getenv("PGSNAP_HOME") &&
					   *getenv("PGSNAP_HOME")));
	config_sig(s);
	if (strpbrk(s->home, "\t\n\r") || strpbrk(s->run, "\t\n\r"))
		return pgsnap_err(err, EINVAL,
			"the store path (PGSNAP_HOME) holds a tab or newline: "
			"not supported");
	umask(022);
	if ((r = make_dir(s, s->home, false, err)) < 0 ||
	    (r = path_join(p, sizeof(p), s->home, "snapshots")) < 0 ||
	    (r = make_dir(s, p, true, err)) < 0 ||
	    (r = make_dir(s, s->run, false, err)) < 0 ||
	    (r = make_dir(s, s->clones, true, err)) < 0 ||
	    (r = make_dir(s, s->trash, true, err)) < 0)
		return r == -ENAMETOOLONG ?
			pgsnap_err(err, r, "store path too long: %s", s->home) : r;
	spread_subdirs(s, s->clones);
	/* So are the build directories of snapshots/ (random names, so
	 * random groups): an import's tar or a build's initdb creates ~1000
	 * files there (import of default: tar 400-1400 ms of CPU -> 64-92). */
	if (path_join(p, sizeof(p), s->home, "snapshots") == 0)
		spread_subdirs(s, p);
	if ((r = registry_init(s, err)) < 0)
		return r;
	read_boot_id(s->boot_id, sizeof(s->boot_id));
	*out = steal_ptr(&s);
	return 0;
}

void pgsnap_store_close(pgsnap_store *s)
{
	int i;

	if (!s)
		return;
	for (i = 0; i < s->svc_ncache; i++)
		s->svc_free(s->svc_cache[i]);
	pthread_mutex_destroy(&s->svc_mu);
	free(s);
}
