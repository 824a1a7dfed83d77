/*
 * clone_reflink.c - a clone whose files share the golden's extents (XFS
 * with reflink, btrfs): no data is copied, whatever the size; a block is
 * copied only when either side writes it.
 *
 * Works only when the snapshots and the clones are on one filesystem that
 * shares extents (PGSNAP_HOME on XFS or btrfs holds both).
 */
#include "clone_impl.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

int ficlone_works(const char *from, const char *to, pgsnap_error *err)
{
	char src[700], dst[700], suffix[9];
	static const char block[4096] = "pgsnap reflink probe";
	cleanup_close int in = -1, out = -1;
	int r = 0;

	random_hex(suffix, 8);
	snprintf(src, sizeof(src), "%s/.probe-%s", from, suffix);
	snprintf(dst, sizeof(dst), "%s/.probe-%s.2", to, suffix);
	in = open(src, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (in < 0)
		return pgsnap_errno(err, errno, "cannot create %s", src);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		r = pgsnap_errno(err, errno, "cannot create %s", dst);
	else if (write(in, block, sizeof(block)) != (ssize_t)sizeof(block))
		r = pgsnap_errno(err, errno ? errno : EIO, "cannot write %s",
				 src);
	else if (ioctl(out, FICLONE, in) < 0)
		r = pgsnap_errno(err, errno, "%s (%s) cannot share extents "
				 "(FICLONE)", from, fs_type_name(from));
	unlink(src);
	if (out >= 0)
		unlink(dst);
	return r;
}

static int reflink_probe(const pgsnap_store *s, pgsnap_error *err)
{
	char snaps[600], clones[600];
	struct stat a, b;

	snprintf(snaps, sizeof(snaps), "%s/snapshots", s->home);
	snprintf(clones, sizeof(clones), "%s", s->clones);
	if (stat(snaps, &a) < 0 || stat(clones, &b) < 0)
		return pgsnap_errno(err, errno, "cannot stat the store");
	if (a.st_dev != b.st_dev)
		return pgsnap_err(err, EXDEV, "snapshots (%s, %s) and clones "
				  "(%s, %s) are on different filesystems",
				  snaps, fs_type_name(snaps), clones,
				  fs_type_name(clones));
	return ficlone_works(snaps, clones, err);
}

static int reflink_file(int sfd, int dfd, const manifest_entry *e,
			const char *golden, pgsnap_error *err)
{
	cleanup_close int in = -1, out = -1;

	out = openat(dfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		     O_NOFOLLOW, e->mode);
	if (out < 0)
		return pgsnap_errno(err, errno, "cannot create %s", e->path);
	if (e->size == 0)
		return 0;
	in = openat(sfd, e->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return pgsnap_errno(err, errno, "cannot read %s/%s", golden,
				    e->path);
	if (ioctl(out, FICLONE, in) < 0)
		return pgsnap_errno(err, errno, "cannot reflink %s/%s", golden,
				    e->path);
	return 0;
}

static int reflink_clone(clone_job *job, pgsnap_error *err)
{
	cleanup_close int sfd = -1, root = -1;
	manifest m;
	fs_ids ids;
	size_t i;
	int r;

	if ((r = clone_manifest_ensure(job->store, job->snapdir,
					  err)) < 0 ||
	    (r = manifest_load(job->snapdir, &m, err)) < 0)
		return r;
	sfd = open(job->golden, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		manifest_free(&m);
		return pgsnap_errno(err, errno, "cannot open snapshot %s",
				    job->golden);
	}
	/* Read the golden and create the clone as the server user. */
	ids = fs_become(job->store);
	r = clone_make_tree(job, &m, &root, err);
	for (i = 0; r == 0 && i < m.n; i++)
		if (m.e[i].type == 'f')
			r = reflink_file(sfd, root, &m.e[i], job->golden, err);
	fs_restore(ids);
	manifest_free(&m);
	return r;
}

static int reflink_release(const pgsnap_store *s, const char *dir)
{
	(void)s;
	(void)dir;
	return 0;
}

const clone_engine clone_engine_reflink = {
	.method = PGSNAP_METHOD_REFLINK,
	.name = "reflink",
	.probe = reflink_probe,
	.clone = reflink_clone,
	.release = reflink_release,
};
