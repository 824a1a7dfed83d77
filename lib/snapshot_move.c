/*
 * snapshot_move.c - snapshots in and out: save a live clone, export to a
 * portable archive, import one.
 *
 * Save: a live clone is made consistent without stopping it.  After a
 * CHECKPOINT, the server's whole process group is paused (SIGSTOP) while
 * its data directory is copied, then resumed: the copy is exactly what a
 * crash at that instant would leave (every write the server made is in the
 * page cache the copy reads), which PostgreSQL recovers from by design.
 * The copy is then started once on a private socket (crash recovery) and
 * shut down fast, so the new golden is clean like any other.  The clone
 * keeps its process, its port and its open connections; it only pauses
 * for the copy.  (pg_backup_start would need wal_level=replica, which the
 * default snapshot does not have; stopping and restarting the clone would
 * drop its connections.)
 *
 * Export/import: tar, run with argv (no shell).  Import runs tar as the
 * server user, so an archive can only write where that user can, and only
 * "meta" and "data" are taken from it.
 */
#include "snapshot.h"
#include "sha256.h"

#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define FREEZE_TIMEOUT_MS 10000
#define SETTLE_TIMEOUT_MS 120000

/* ---- save ------------------------------------------------------------------ */

static int find_clone(const pgsnap_store *s, const char *ref, pgsnap_clone *out,
		      pgsnap_error *err)
{
	int r = registry_find(s, ref, out, err);

	if (r < 0)
		return r;
	if (clone_is_lease(out))
		return pgsnap_err(err, EINVAL, "clone %s is one database of a "
				  "shared server (new --shared): only a server "
				  "of its own can be saved", out->id);
	if (strcmp(out->state, "ready") || !proc_alive(out->pid, out->pid_start))
		return pgsnap_err(err, ESRCH, "clone %s is not running (state "
				  "%s)", out->id, out->state);
	return 0;
}

/* The processes of group pgid; are they all stopped? */
static int group_state(pid_t pgid, bool *all_stopped)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	*all_stopped = true;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[64], buf[512], *p, st;
		long pgrp;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (read_file_buf(path, buf, sizeof(buf)) <= 0)
			continue;
		/* "pid (comm) S ppid pgrp ...": comm may hold anything. */
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1, " %c %*d %ld", &st, &pgrp) != 2)
			continue;
		if (pgrp != pgid)
			continue;
		n++;
		if (st != 'T' && st != 't' && st != 'Z' && st != 'X')
			*all_stopped = false;
	}
	closedir(d);
	return n;
}

/* Pause the server and all its backends; 0 once every one is stopped. */
static int freeze(pid_t pgid, pgsnap_error *err)
{
	int64_t deadline = mono_us() + FREEZE_TIMEOUT_MS * 1000LL;
	bool stopped;

	do {
		/* Again each round: a backend forked meanwhile is caught. */
		if (kill(-pgid, SIGSTOP) < 0)
			return pgsnap_errno(err, errno, "cannot pause server "
					    "group %d", (int)pgid);
		if (group_state(pgid, &stopped) > 0 && stopped)
			return 0;
		usleep(1000);
	} while (mono_us() < deadline);
	return pgsnap_err(err, ETIMEDOUT, "server group %d did not pause",
			  (int)pgid);
}

/* Recover a copied data directory and shut it down cleanly. */
static int settle(const pgsnap_store *s, const char *dir, pgsnap_error *err)
{
	char data[700], sock[700], logp[700], p[760], tail[700];
	server_start st = { 0 };
	pid_t pid = 0;
	int r;

	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(p, sizeof(p), "%s/postmaster.pid", data);
	unlink(p);
	snprintf(p, sizeof(p), "%s/postmaster.opts", data);
	unlink(p);
	if ((r = snap_sock_dir(s, dir, sock, sizeof(sock), err)) < 0)
		return r;
	snprintf(logp, sizeof(logp), "%s/server.log", dir);
	st.datadir = data;
	st.sockdir = sock;
	st.log_path = logp;
	st.port = 5432;
	st.server_opts = "-c fsync=off -c autovacuum=off";
	st.timeout_ms = SETTLE_TIMEOUT_MS;
	r = server_start_ready(s, &st, &pid, err);
	if (r == 0) {
		kill(pid, SIGINT);
		if (wait_pid_exit(pid, SETTLE_TIMEOUT_MS) < 0) {
			server_stop(pid, 0, 1000);
			r = pgsnap_err(err, ETIMEDOUT, "the copy did not shut "
				       "down");
		} else if (!datadir_clean(data)) {
			log_tail(logp, 3, tail, sizeof(tail));
			r = pgsnap_err(err, EIO, "the copy did not shut down "
				       "cleanly: %s", tail);
		}
	}
	rm_rf(sock);
	unlink(logp);
	snprintf(p, sizeof(p), "%s/postmaster.opts", data);
	unlink(p);
	return r;
}

static int install_checked(pgsnap_store *s, const char *build,
			   const char *name, int force, const char *key,
			   int *installed, pgsnap_error *err)
{
	cleanup_close int lfd = -1;
	char dir[600];
	snap_meta m;
	int r;

	if ((r = snap_lock(s, name, LOCK_EX, &lfd, err)) < 0)
		return r;
	snapshot_dir(s, name, dir, sizeof(dir));
	if (meta_read(dir, &m) == 0) {
		if (key && !strcmp(m.key, key)) {
			if (installed)
				*installed = 0;
			rm_rf(build);
			return 0;
		}
		if (!force)
			return pgsnap_err(err, EEXIST, "snapshot '%s' exists "
					  "(use --force to replace it)", name);
	}
	if ((r = snap_install(s, build, name, err)) < 0)
		return r;
	if (installed)
		*installed = 1;
	return 0;
}

static void fill_meta(pgsnap_store *s, snap_meta *m, const char *name,
		      const char *origin)
{
	pg_ident id;

	if (pg_identity(s, &id, NULL) == 0) {
		snprintf(m->pg_version, sizeof(m->pg_version), "%s", id.version);
		m->pg_major = id.major;
		snprintf(m->arch, sizeof(m->arch), "%s", id.arch);
	}
	m->format = SNAP_META_FORMAT;
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->origin, sizeof(m->origin), "%s", origin);
	m->created_ms = now_ms();
}

int pgsnap_snapshot_save(pgsnap_store *s, const char *ref, const char *name,
			 int force, pgsnap_error *err)
{
	char build[700], dir[600], rnd[33];
	unsigned char d[32];
	sha256_ctx hc;
	pgsnap_clone c;
	snap_meta m = { 0 };
	sigset_t block, saved;
	PGconn *conn;
	int r, r2;

	if (!name_valid(name, 63))
		return pgsnap_err(err, EINVAL, "snapshot name '%s' is invalid",
				  name);
	if ((r = find_clone(s, ref, &c, err)) < 0)
		return r;
	snapshot_dir(s, name, dir, sizeof(dir));
	if (!force && access(dir, F_OK) == 0)
		return pgsnap_err(err, EEXIST, "snapshot '%s' exists (use "
				  "--force to replace it)", name);
	if ((r = sql_connect(c.sockdir, c.port, c.dbname, &conn, err)) < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c.id);
	r = sql_exec(conn, "CHECKPOINT", err);
	PQfinish(conn);
	if (r < 0)
		return pgsnap_err_wrap(err, r, "clone %s: CHECKPOINT", c.id);
	if ((r = snap_build_dir(s, name, build, sizeof(build), err)) < 0)
		return r;
	/* The postmaster leads its own session (setsid at start): its group
	 * is the server, and only the server. */
	if (getpgid(c.pid) != c.pid) {
		r = pgsnap_err(err, EPERM, "clone %s: server %d does not lead "
			       "its process group; not pausing it", c.id,
			       (int)c.pid);
		goto fail;
	}
	/* Until the group runs again, a ^C or a CI timeout must not leave the
	 * clone paused forever: those signals wait for SIGCONT. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &saved);
	r = freeze(c.pid, err);
	if (r == 0)
		r = copy_datadir(s, c.datadir, build, err);
	r2 = kill(-c.pid, SIGCONT) < 0 ? -errno : 0;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	if (r == 0 && r2 < 0)
		r = pgsnap_errno(err, r2, "cannot resume clone %s", c.id);
	if (r < 0)
		goto fail;
	if ((r = settle(s, build, err)) < 0)
		goto fail;
	fill_meta(s, &m, name, "save");
	snprintf(m.from, sizeof(m.from), "%s", c.snapshot);
	/* Not reproducible: a key of its own, never equal to a built one. */
	random_hex(rnd, 32);
	sha256_init(&hc);
	sha256_update(&hc, "saved:", 6);
	sha256_update(&hc, c.id, strlen(c.id));
	sha256_update(&hc, rnd, strlen(rnd));
	sha256_final(&hc, d);
	sha256_hex(d, m.key);
	if ((r = meta_write(s, build, &m, err)) < 0 ||
	    (r = install_checked(s, build, name, force, NULL, NULL, err)) < 0)
		goto fail;
	return 0;
fail:
	rm_rf(build);
	return pgsnap_err_wrap(err, r, "snapshot save %s %s", c.id, name);
}

/* ---- export / import ------------------------------------------------------- */

static const char *compress_flag_for_name(const char *file)
{
	static const struct { const char *suffix, *flag; } t[] = {
		{ ".gz", "-z" }, { ".tgz", "-z" }, { ".zst", "--zstd" },
		{ ".xz", "-J" }, { ".bz2", "-j" },
	};
	size_t i, fl = strlen(file);

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		size_t sl = strlen(t[i].suffix);
		if (fl > sl && !strcmp(file + fl - sl, t[i].suffix))
			return t[i].flag;
	}
	return NULL;
}

/* tar cannot tell compression when reading a pipe or stdin: look. */
static const char *compress_flag_for_bytes(int fd)
{
	unsigned char b[6] = { 0 };

	if (pread(fd, b, sizeof(b), 0) < 4)
		return NULL;
	if (b[0] == 0x1f && b[1] == 0x8b)
		return "-z";
	if (b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
		return "--zstd";
	if (b[0] == 0xfd && !memcmp(b + 1, "7zXZ", 4))
		return "-J";
	if (!memcmp(b, "BZh", 3))
		return "-j";
	return NULL;
}

/* Where the archive stops, one member after data: a tar cut at a member
 * boundary reads without an error, so an archive that lacks its last member
 * is refused.  The manifest is the snapshot's own (every snapshot has one);
 * import writes its own again. */
#define LAST_MEMBER "manifest"

/* What tar's complaints mean, first match wins: a stream that does not
 * decompress also ends early, and a cut archive also misses the members
 * after the cut. */
static const struct {
	const char *said, *why;
} tar_says[] = {
	{ "Decoding error", "is damaged (it does not decompress)" },
	{ "invalid compressed data", "is damaged (it does not decompress)" },
	{ "crc error", "is damaged (it does not decompress)" },
	{ "Skipping to next header", "is damaged (a member's header is "
	  "corrupt)" },
	{ "Unexpected EOF", "is truncated (it ends inside a member)" },
	{ "unexpected end of file", "is truncated (it ends inside a member)" },
	{ "premature end", "is truncated (it ends inside a member)" },
	{ "does not look like a tar archive", "is not a tar archive" },
	{ "not in gzip format", "is not a tar archive" },
	{ "meta: Not found in archive", "is not a pgsnap snapshot archive "
	  "(no meta in it)" },
	{ LAST_MEMBER ": Not found in archive", "is incomplete: it ends before "
	  "its last member (truncated, or exported by an older pgsnap)" },
};

/* Run tar with its output in logp; a failure is said in one line. */
static int run_tar(const pgsnap_store *as, const char *const *argv, int in_fd,
		   const char *logp, const char *what, pgsnap_error *err)
{
	cleanup_free char *said = NULL;
	char tail[700];
	cleanup_close int lfd = -1;
	spawn_opts so = { 0 };
	size_t i;
	int r;

	unlink(logp);   /* a crashed run's, named after a pid like ours */
	lfd = open(logp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (lfd < 0)
		return pgsnap_errno(err, errno, "cannot create %s", logp);
	so.store = as;
	so.out_fd = lfd;
	so.in_fd = in_fd;
	r = run_process("/bin/tar", (char *const *)argv, &so);
	log_tail(logp, 3, tail, sizeof(tail));
	if (r > 0)
		read_file(logp, 1 << 16, &said, NULL);
	unlink(logp);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot run /bin/tar");
	if (r == 0)
		return 0;
	for (i = 0; said && i < ARRAY_SIZE(tar_says); i++)
		if (strstr(said, tar_says[i].said))
			return pgsnap_err(err, EINVAL, "%s %s", what,
					  tar_says[i].why);
	return pgsnap_err(err, EIO, "%s: tar failed (exit %d): %s", what, r,
			  tail[0] ? tail : "no output");
}

/* The archive is written next to file and renamed onto it: refuse what
 * cannot be, before tar says it less clearly. */
static int export_target(const char *file, pgsnap_error *err)
{
	char dir[4200], *slash;
	struct stat st;

	if (stat(file, &st) == 0 && S_ISDIR(st.st_mode))
		return pgsnap_err(err, EISDIR, "%s is a directory: give the "
				  "archive's file name (e.g. NAME.tar.zst)",
				  file);
	snprintf(dir, sizeof(dir), "%s", file);
	slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) < 0)
		return pgsnap_errno(err, errno, "cannot write %s: directory %s",
				    file, dir);
	if (!S_ISDIR(st.st_mode))
		return pgsnap_err(err, ENOTDIR, "cannot write %s: %s is not a "
				  "directory", file, dir);
	return 0;
}

int pgsnap_snapshot_export(pgsnap_store *s, const char *name, const char *file,
			   pgsnap_error *err)
{
	char dir[600], tmp[4200], logp[4220];
	const char *argv[16];
	const char *z = compress_flag_for_name(file);
	cleanup_close int lfd = -1;
	snap_meta m;
	int argc = 0, r;

	if (!name_valid(name, 63))
		return pgsnap_err(err, EINVAL, "snapshot name '%s' is invalid",
				  name);
	snapshot_dir(s, name, dir, sizeof(dir));
	/* Shared: not rebuilt under our feet. */
	if ((r = snap_lock(s, name, LOCK_SH, &lfd, err)) < 0)
		return r;
	if (meta_read(dir, &m) < 0)
		return pgsnap_err(err, ENOENT, "no snapshot named '%s'", name);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", file, (int)getpid()) >=
	    (int)sizeof(tmp))
		return pgsnap_err(err, ENAMETOOLONG, "%s: path too long", file);
	if ((r = export_target(file, err)) < 0)
		return r;
	snprintf(logp, sizeof(logp), "%s.log", tmp);
	argv[argc++] = "tar";
	argv[argc++] = "-c";
	if (z)
		argv[argc++] = z;
	argv[argc++] = "-f";
	argv[argc++] = tmp;
	argv[argc++] = "-C";
	argv[argc++] = dir;
	/* meta first: it is small and says what the archive is.  Not the
	 * stored recipe: its paths belong to this machine. */
	argv[argc++] = "meta";
	argv[argc++] = "data";
	argv[argc++] = LAST_MEMBER;
	argv[argc] = NULL;
	/* As the caller: the archive goes where the caller may write. */
	r = run_tar(NULL, argv, 0, logp, file, err);
	if (r == 0 && rename(tmp, file) < 0)
		r = pgsnap_errno(err, errno, "cannot rename %s to %s", tmp, file);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* What the archive says it is (meta): made by pgsnap, on this machine, by
 * this PostgreSQL major. */
static int check_identity(pgsnap_store *s, const char *file, const char *build,
			  snap_meta *m, pgsnap_error *err)
{
	pg_ident id;
	size_t i;
	int r;

	if (meta_read(build, m) < 0 || m->format != SNAP_META_FORMAT ||
	    strlen(m->key) != 64)
		return pgsnap_err(err, EINVAL, "%s is not a pgsnap snapshot "
				  "archive (no readable meta)", file);
	for (i = 0; i < 64; i++)
		if (!strchr("0123456789abcdef", m->key[i]))
			return pgsnap_err(err, EINVAL, "%s: bad key", file);
	if ((r = pg_identity(s, &id, err)) < 0)
		return r;
	if (strcmp(m->arch, id.arch))
		return pgsnap_err(err, EPROTO, "%s was made on %s, this machine "
			"is %s: a data directory does not move across "
			"architectures; refused", file, m->arch, id.arch);
	if (m->pg_major != id.major)
		return pgsnap_err(err, EPROTO, "%s was made by PostgreSQL %d, "
			"this is PostgreSQL %d (%s): refused", file,
			m->pg_major, id.major, s->bindir);
	return 0;
}

/* ... and holds a data directory of that major. */
static int check_archive(pgsnap_store *s, const char *file, const char *build,
			 snap_meta *m, pgsnap_error *err)
{
	char path[760];
	cleanup_free char *pgv = NULL;
	int r;

	if ((r = check_identity(s, file, build, m, err)) < 0)
		return r;
	snprintf(path, sizeof(path), "%s/data/PG_VERSION", build);
	if (read_file(path, 64, &pgv, NULL) < 0)
		return pgsnap_err(err, EINVAL, "%s holds no data directory",
				  file);
	if (strtol(pgv, NULL, 10) != m->pg_major)
		return pgsnap_err(err, EPROTO, "%s holds a data directory of "
			"PostgreSQL %ld, its meta says %d: refused", file,
			strtol(pgv, NULL, 10), m->pg_major);
	return 0;
}

int pgsnap_snapshot_import(pgsnap_store *s, const char *file, const char *name,
			   int force, char out_name[64], int *installed,
			   pgsnap_error *err)
{
	char build[700], logp[720], key[65];
	const char *argv[16];
	cleanup_close int fd = -1;
	snap_meta m;
	int argc = 0, r;

	if (installed)
		*installed = 0;
	if (name && !name_valid(name, 63))
		return pgsnap_err(err, EINVAL, "snapshot name '%s' is invalid",
				  name);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", file);
	if ((r = snap_build_dir(s, "import", build, sizeof(build), err)) < 0)
		return r;
	argv[argc++] = "tar";
	argv[argc++] = "-x";
	if (compress_flag_for_bytes(fd))
		argv[argc++] = compress_flag_for_bytes(fd);
	argv[argc++] = "-f";
	argv[argc++] = "-";
	argv[argc++] = "-C";
	argv[argc++] = build;
	argv[argc++] = "meta";
	argv[argc++] = "data";
	argv[argc++] = LAST_MEMBER;
	argv[argc] = NULL;
	/* In the build directory: no member of the archive is named so. */
	snprintf(logp, sizeof(logp), "%s/tar.log", build);
	if ((r = run_tar(s, argv, fd, logp, file, err)) < 0) {
		/* An archive of another machine or major is refused as that,
		 * even when it is also cut short: that is what to act on. */
		pgsnap_error why = { 0 };
		if (check_identity(s, file, build, &m, &why) == -EPROTO) {
			if (err)
				*err = why;
			r = -EPROTO;
		}
		goto fail;
	}
	if ((r = check_archive(s, file, build, &m, err)) < 0)
		goto fail;
	/* A copy: m.name is rewritten below. */
	snprintf(out_name, 64, "%s", name ? name : m.name);
	name = out_name;
	if (!name_valid(name, 63)) {
		r = pgsnap_err(err, EINVAL, "%s names snapshot '%s', which is "
			       "invalid here; give a NAME", file, name);
		goto fail;
	}
	memcpy(key, m.key, sizeof(key));
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.origin, sizeof(m.origin), "import");
	if ((r = meta_write(s, build, &m, err)) < 0 ||
	    (r = install_checked(s, build, name, force, key, installed,
				 err)) < 0)
		goto fail;
	return 0;
fail:
	rm_rf(build);
	return r;
}
