/*
 * clone_util.c - what the clone engines share (clone_impl.h): the type of
 * a filesystem, a snapshot's size from its manifest, and making a clone's
 * tree of directories and symlinks.
 */
#include "clone_impl.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>

const char *fs_type_name(const char *path)
{
	static const struct { unsigned long magic; const char *name; } t[] = {
		{ 0xEF53, "ext4" }, { 0x58465342, "xfs" },
		{ 0x01021994, "tmpfs" }, { 0x9123683E, "btrfs" },
		{ 0x794c7630, "overlay" }, { 0x6969, "nfs" },
		{ 0x2fc12fc1, "zfs" }, { 0xF2F52010, "f2fs" },
		{ 0x65735546, "fuse" }, { 0x858458f6, "ramfs" },
	};
	struct statfs f;
	size_t i;

	if (statfs(path, &f) < 0)
		return "?";
	for (i = 0; i < ARRAY_SIZE(t); i++)
		if ((unsigned long)f.f_type == t[i].magic)
			return t[i].name;
	return "other";
}

uint64_t clone_snapshot_bytes(const char *snapdir)
{
	char path[700], buf[256];
	unsigned long long dirs, files, bytes;
	cleanup_close int fd = -1;
	ssize_t n;

	if (!snapdir)
		return 0;
	snprintf(path, sizeof(path), "%s/" MANIFEST_NAME, snapdir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		snprintf(path, sizeof(path), "%s/" MANIFEST_BYTES, snapdir);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
			return 0;
		buf[n] = '\0';
		return strtoull(buf, NULL, 10);
	}
	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "pgsnap-manifest 1\nstats\t%llu\t%llu\t%llu", &dirs,
		   &files, &bytes) != 3)
		return 0;
	return bytes;
}

int clone_manifest_ensure(const pgsnap_store *s, const char *snapdir,
			  pgsnap_error *err)
{
	char path[700];
	cleanup_close int lfd = -1;
	fs_ids ids;

	snprintf(path, sizeof(path), "%s/" MANIFEST_NAME, snapdir);
	if (access(path, F_OK) == 0)
		return 0;
	/* One maker at a time (image.tmp is one name); the others wait and
	 * find its work.  The caller holds the snapshot's lock shared, so
	 * the snapshot is not replaced meanwhile. */
	snprintf(path, sizeof(path), "%s/" MANIFEST_LOCK, snapdir);
	ids = fs_become(s);
	lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	fs_restore(ids);
	if (lfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", path);
	while (flock(lfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return pgsnap_errno(err, errno, "cannot lock %s", path);
	snprintf(path, sizeof(path), "%s/" MANIFEST_NAME, snapdir);
	if (access(path, F_OK) == 0)
		return 0;
	return manifest_write(s, snapdir, err);
}

/* PGSNAP_CLONE_LARGE_MB moves the line (tests, benchmarks). */
bool clone_is_large(uint64_t bytes)
{
	const char *v = getenv("PGSNAP_CLONE_LARGE_MB");
	long mb;

	if (v && parse_long(v, 0, 1L << 30, &mb) == 0)
		return bytes >= (uint64_t)mb << 20;
	return bytes >= CLONE_LARGE_BYTES;
}

int clone_make_tree(clone_job *job, const manifest *m, int *root,
		    pgsnap_error *err)
{
	cleanup_close int fd = -1;
	size_t i;

	if (path_join(job->datadir, sizeof(job->datadir), job->dir, "data") < 0)
		return pgsnap_err(err, ENAMETOOLONG, "clone path too long");
	if (mkdir(job->datadir, 0700) < 0)
		return pgsnap_errno(err, errno, "cannot create %s",
				    job->datadir);
	fd = open(job->datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", job->datadir);
	for (i = 0; i < m->n; i++) {
		const manifest_entry *e = &m->e[i];
		if (e->type == 'd' && mkdirat(fd, e->path, e->mode) < 0)
			return pgsnap_errno(err, errno, "cannot create "
					    "directory %s/%s", job->datadir,
					    e->path);
		if (e->type == 'l' && symlinkat(e->target, fd, e->path) < 0)
			return pgsnap_errno(err, errno, "cannot create "
					    "symlink %s/%s", job->datadir,
					    e->path);
	}
	*root = steal_fd(&fd);
	return 0;
}

/* A file of the manifest, created empty and sized (the copy engines'). */
int copy_create(int root, const manifest_entry *e, const char *datadir,
		pgsnap_error *err)
{
	int fd = openat(root, e->path, O_WRONLY | O_CREAT | O_EXCL |
			O_CLOEXEC | O_NOFOLLOW, e->mode);
	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot create %s/%s", datadir,
				    e->path);
	/* The trailing zeros: a hole, never written. */
	if (e->size > e->len && ftruncate(fd, (off_t)e->size) < 0) {
		int r = pgsnap_errno(err, errno, "cannot size %s/%s", datadir,
				     e->path);
		close(fd);
		return r;
	}
	return fd;
}
