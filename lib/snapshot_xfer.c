/*
 * snapshot_xfer.c - a snapshot out to a portable archive, and in again
 * (CI shards sharing one build through their CI system's cache).
 *
 * tar, run with argv (no shell).  Import runs tar as the server user, so
 * an archive can only write where that user can, and only "meta" and
 * "data" (and the manifest, to tell a complete archive) are taken from
 * it.  What a CI shard waits for is only that: the manifest and packed
 * image that copy clones need are made by the first such clone
 * (clone_manifest_ensure), and the files reach the disk in the background
 * (snapsync.c).
 */
#include "snapshot.h"
#include "manifest.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

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

/* tar's output goes to logp; meanwhile the caller may work (import asks
 * for the PostgreSQL version then). */
static pid_t tar_start(const pgsnap_store *as, const char *const *argv,
		       int in_fd, const char *logp, pgsnap_error *err)
{
	cleanup_close int lfd = -1;
	spawn_opts so = { 0 };
	pid_t pid;

	unlink(logp);   /* a crashed run's, named after a pid like ours */
	lfd = open(logp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (lfd < 0)
		return pgsnap_errno(err, errno, "cannot create %s", logp);
	so.store = as;
	so.out_fd = lfd;
	so.in_fd = in_fd;
	pid = spawn_process("/bin/tar", (char *const *)argv, &so);
	return pid < 0 ? pgsnap_errno(err, pid, "cannot run /bin/tar") : pid;
}

/* Wait for tar; a failure is said in one line. */
static int tar_wait(pid_t pid, const char *logp, const char *what,
		    pgsnap_error *err)
{
	cleanup_free char *said = NULL;
	char tail[700];
	size_t i;
	int status, r;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			unlink(logp);
			return pgsnap_errno(err, errno, "waiting for tar");
		}
	}
	r = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	log_tail(logp, 3, tail, sizeof(tail));
	if (r > 0)
		read_file(logp, 1 << 16, &said, NULL);
	unlink(logp);
	if (r == 0)
		return 0;
	for (i = 0; said && i < ARRAY_SIZE(tar_says); i++)
		if (strstr(said, tar_says[i].said))
			return pgsnap_err(err, EINVAL, "%s %s", what,
					  tar_says[i].why);
	return pgsnap_err(err, EIO, "%s: tar failed (exit %d): %s", what, r,
			  tail[0] ? tail : "no output");
}

static int run_tar(const pgsnap_store *as, const char *const *argv, int in_fd,
		   const char *logp, const char *what, pgsnap_error *err)
{
	pid_t pid = tar_start(as, argv, in_fd, logp, err);

	return pid < 0 ? (int)pid : tar_wait(pid, logp, what, err);
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
	if (meta_lost(s, &m))
		return snapshot_lost(name, false, err);
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

/* Where the files' size is kept until the manifest is made: the automatic
 * clone method asks (clone_snapshot_bytes). */
static void write_bytes(const pgsnap_store *s, const char *build)
{
	char path[720], num[32];
	int dfd, fd, n;
	fs_ids ids;

	snprintf(path, sizeof(path), "%s/data", build);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	n = snprintf(num, sizeof(num), "%lld\n", (long long)tree_bytes(dfd));
	snprintf(path, sizeof(path), "%s/" MANIFEST_BYTES, build);
	ids = fs_become(s);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	fs_restore(ids);
	if (fd >= 0) {
		write_all(fd, num, (size_t)n);
		close(fd);
	}
}

int pgsnap_snapshot_import(pgsnap_store *s, const char *file, const char *name,
			   int force, char out_name[64], int *installed,
			   pgsnap_error *err)
{
	char build[700], logp[720], path[720], key[65], text[2048];
	const char *argv[16];
	cleanup_close int fd = -1, bfd = -1;
	int done = 0, argc = 0, n, r;
	pg_ident id;
	snap_meta m;
	pid_t pid;

	if (!installed)
		installed = &done;
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
	if ((pid = tar_start(s, argv, fd, logp, err)) < 0) {
		r = (int)pid;
		goto fail;
	}
	/* While tar works: `postgres -V` (20-40 ms in a fresh store), which
	 * check_identity needs; a failure is reported there. */
	pg_identity(s, &id, NULL);
	if ((r = tar_wait(pid, logp, file, err)) < 0) {
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
	/* The archive's manifest only said it was complete: the one that
	 * copy clones follow is made here, from the files, when needed. */
	snprintf(path, sizeof(path), "%s/" LAST_MEMBER, build);
	if (unlink(path) < 0 && errno != ENOENT) {
		r = pgsnap_errno(err, errno, "cannot remove %s", path);
		goto fail;
	}
	write_bytes(s, build);
	memcpy(key, m.key, sizeof(key));
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.origin, sizeof(m.origin), "import");
	/* Once on disk, meta says so without `unsynced`. */
	m.unsynced[0] = '\0';
	if ((n = meta_format(&m, text, sizeof(text))) < 0) {
		r = pgsnap_err(err, -n, "%s: meta too long", file);
		goto fail;
	}
	snprintf(m.unsynced, sizeof(m.unsynced), "%s", s->boot_id);
	/* The directory, whatever name it has when the syncer runs. */
	bfd = open(build, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0) {
		r = pgsnap_errno(err, errno, "cannot open %s", build);
		goto fail;
	}
	if ((r = meta_write(s, build, &m, err)) < 0 ||
	    (r = install_checked(s, build, name, force, key, SNAP_INSTALL_LAZY,
				 installed, err)) < 0)
		goto fail;
	if (*installed)
		snap_sync_later(s, bfd, text, (size_t)n);
	return 0;
fail:
	rm_rf(build);
	return r;
}
