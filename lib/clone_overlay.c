/*
 * clone_overlay.c - the golden as the read-only lower layer of an
 * overlayfs, a per-clone upper layer: constant time whatever the size.
 *
 * CLONE/upper  the clone's own files (its root gives the data directory
 *              its owner and mode 0700, which postgres checks)
 * CLONE/work   overlayfs' scratch space, on the same filesystem
 * CLONE/data   the mount point, where postgres runs
 * Mounted "volatile": a clone never needs its writes to be durable, and
 * overlayfs then skips every sync of the upper layer.
 *
 * Copy-up: postgres opens relation files read-write even to read them, so
 * overlayfs copies a file up whole on its first use (about 1 s for 1 GB
 * onto tmpfs).  When the upper layer shares a filesystem that reflinks with
 * the golden, copy-up is a reflink instead.  So for a large snapshot whose
 * clones live elsewhere (RAM), the upper and work directories go to
 * SNAPSHOTS/.overlay/ID on the snapshots' filesystem when it reflinks, and
 * CLONE/upper is a symlink to them; release moves them to
 * SNAPSHOTS/.overlay-trash, deleted in the background.
 */
#include "clone_impl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

/* overlayfs splits its options at ',' and its layers at ':'. */
static bool opt_safe(const char *p)
{
	return !strpbrk(p, ",:\\\n");
}

static int do_mount(const char *lower, const char *upper, const char *work,
		    const char *target, bool user, pgsnap_error *err)
{
	char opts[2048];
	int n;

	if (!opt_safe(lower) || !opt_safe(upper) || !opt_safe(work))
		return pgsnap_err(err, EINVAL, "overlayfs cannot take a path "
				  "holding ',', ':' or '\\' (%s, %s)", lower,
				  upper);
	/* index=off: with the index, a copy-up of one hard link of the
	 * golden (the copies of `databases N`) would show through its other
	 * links; without it a copy-up breaks the link for that path only.
	 * Kernels built with OVERLAY_FS_INDEX default to on. */
	n = snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s,"
		     "index=off,volatile%s", lower, upper, work,
		     /* trusted.* xattrs need real root: user.overlay.* */
		     user ? ",userxattr" : "");
	if (n < 0 || (size_t)n >= sizeof(opts))
		return pgsnap_err(err, ENAMETOOLONG, "overlay paths too long");
	if (mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
		return pgsnap_errno(err, errno, "cannot mount an overlay on %s",
				    target);
	return 0;
}

/*
 * Overlay as an ordinary user (kernel 5.11+): the server is started in a
 * user and mount namespace of its own where the overlay is mounted
 * (spawn.c, spawn_overlay), so the mount lives and dies with the server.
 * The socket directory is outside the overlay, so clients in the normal
 * namespace reach the server as usual.
 */

/* overlayfs leaves its scratch directories (work/work, work/incompat/...)
 * mode 0: root deletes them anyway, their owner must open them up first. */
static void work_unlock(const char *path, int depth)
{
	char sub[PATH_MAX];
	struct dirent *e;
	DIR *d;

	if (depth > 8 || chmod(path, 0700) < 0 || !(d = opendir(path)))
		return;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") ||
		    !strcmp(e->d_name, ".."))
			continue;
		if (path_join(sub, sizeof(sub), path, e->d_name) == 0)
			work_unlock(sub, depth + 1);
	}
	closedir(d);
}

static void userns_unlock(const char *dir)
{
	char work[PATH_MAX], link[700];
	ssize_t n;

	if (path_join(work, sizeof(work), dir, "work") == 0)
		work_unlock(work, 0);
	/* Layers beside the golden: CLONE/upper -> .../ID/upper. */
	if (path_join(link, sizeof(link), dir, "upper") < 0 ||
	    (n = readlink(link, work, sizeof(work) - 6)) <= 0)
		return;
	work[n] = '\0';
	if (strrchr(work, '/')) {
		strcpy(strrchr(work, '/'), "/work");
		work_unlock(work, 0);
	}
}

static int userns_args(clone_job *job, const char *upper, const char *work,
		       pgsnap_error *err)
{
	if (!opt_safe(job->golden) || !opt_safe(upper) || !opt_safe(work))
		return pgsnap_err(err, EINVAL, "overlayfs cannot take a path "
				  "holding ',', ':' or '\\' (%s, %s)",
				  job->golden, upper);
	snprintf(job->ov_upper, sizeof(job->ov_upper), "%s", upper);
	snprintf(job->ov_work, sizeof(job->ov_work), "%s", work);
	job->overlay.lower = job->golden;
	job->overlay.upper = job->ov_upper;
	job->overlay.work = job->ov_work;
	job->overlay.target = job->datadir;
	/* postgres writes postmaster.pid at the data directory's root,
	 * which from out here is the upper layer. */
	job->ready_dir = job->ov_upper;
	return 0;
}

/* The real thing once, as this user: a child mounts a tiny overlay in
 * its own namespace and exits. */
static int userns_probe(const char *const d[4], pgsnap_error *err)
{
	spawn_overlay ov = { d[0], d[1], d[2], d[3] };
	spawn_opts so = { 0 };
	int r;

	so.overlay = &ov;
	so.out_fd = -1;
	r = run_process(NULL, NULL, &so);
	if (r < 0)
		return pgsnap_errno(err, r, "overlayfs as an ordinary user (in "
				    "a user namespace) failed");
	if (r != 0)
		return pgsnap_err(err, EPERM, "overlayfs as an ordinary user "
				  "(in a user namespace) failed (status %d)", r);
	return 0;
}

static int overlay_probe(const pgsnap_store *s, pgsnap_error *err)
{
	char base[600], d[4][700], suffix[9];
	static const char *const sub[] = { "l", "u", "w", "m" };
	int r = 0;
	size_t i;

	if (!opt_safe(s->home) || !opt_safe(s->run))
		return pgsnap_err(err, EINVAL, "the store path holds ',', ':' "
				  "or '\\', which overlayfs options cannot");
	/* A real mount of a tiny overlay beside the clones: the only sure
	 * answer (the kernel, the upper filesystem, a container's policy). */
	random_hex(suffix, 8);
	snprintf(base, sizeof(base), "%s/.probe-%s", s->clones, suffix);
	if (mkdir(base, 0700) < 0)
		return pgsnap_errno(err, errno, "cannot create %s", base);
	for (i = 0; i < 4 && r == 0; i++) {
		snprintf(d[i], sizeof(d[i]), "%s/%s", base, sub[i]);
		if (mkdir(d[i], 0700) < 0)
			r = pgsnap_errno(err, errno, "cannot create %s", d[i]);
	}
	if (r == 0 && !s->as_root) {
		const char *const dp[4] = { d[0], d[1], d[2], d[3] };
		r = userns_probe(dp, err);
		work_unlock(d[2], 0);
		rm_rf(base);
		return r;
	}
	if (r == 0)
		r = do_mount(d[0], d[1], d[2], d[3], false, err);
	if (r == 0 && umount2(d[3], MNT_DETACH) < 0)
		r = pgsnap_errno(err, errno, "cannot unmount %s", d[3]);
	rm_rf(base);
	if (r < 0)
		pgsnap_err_wrap(err, r, "overlayfs does not work here (upper "
				"layer on %s)", fs_type_name(s->run));
	return r;
}

int overlay_upper_base(const pgsnap_store *s, char *buf, size_t len)
{
	char snaps[600], clones[600];
	struct stat a, b;

	snprintf(snaps, sizeof(snaps), "%s/snapshots", s->home);
	snprintf(clones, sizeof(clones), "%s", s->clones);
	if (stat(snaps, &a) < 0 || stat(clones, &b) < 0)
		return -errno;
	/* Same filesystem: the upper layer in the clone already reflinks
	 * if that filesystem can. */
	if (a.st_dev == b.st_dev)
		return -EEXIST;
	if (ficlone_works(snaps, snaps, NULL) < 0)
		return -EOPNOTSUPP;
	if (snprintf(buf, len, "%s/.overlay", snaps) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* The upper and work directories: in the clone, or for a large snapshot
 * beside the golden (see the top of this file). */
static int make_layers(clone_job *job, char *upper, char *work, size_t len,
		       pgsnap_error *err)
{
	const pgsnap_store *s = job->store;
	const char *id = strrchr(job->dir, '/');
	char base[600], mine[700], link[700];
	int r;

	id = id ? id + 1 : job->dir;
	if (clone_is_large(clone_snapshot_bytes(job->snapdir)) &&
	    overlay_upper_base(s, base, sizeof(base)) == 0) {
		snprintf(mine, sizeof(mine), "%s/%s", base, id);
		if (snprintf(upper, len, "%s/upper", mine) >= (int)len ||
		    snprintf(work, len, "%s/work", mine) >= (int)len ||
		    path_join(link, sizeof(link), job->dir, "upper") < 0)
			return pgsnap_err(err, ENAMETOOLONG, "clone path too "
					  "long");
		r = mkdir_server(s, base);
		if (r < 0 && r != -EEXIST)
			return pgsnap_errno(err, r, "cannot create %s", base);
		if ((r = mkdir_server(s, mine)) < 0 ||
		    (r = mkdir_server(s, upper)) < 0 ||
		    (r = mkdir_server(s, work)) < 0)
			return pgsnap_errno(err, r, "cannot create the overlay "
					    "directories in %s", mine);
		/* Made last: release finds the layers through it. */
		if (symlink(upper, link) < 0) {
			r = pgsnap_errno(err, errno, "cannot link %s", link);
			rm_rf(mine);
			return r;
		}
		return 0;
	}
	if (path_join(upper, len, job->dir, "upper") < 0 ||
	    path_join(work, len, job->dir, "work") < 0)
		return pgsnap_err(err, ENAMETOOLONG, "clone path too long");
	if ((r = mkdir_server(s, upper)) < 0 ||
	    (r = mkdir_server(s, work)) < 0)
		return pgsnap_errno(err, r, "cannot create the overlay "
				    "directories in %s", job->dir);
	return 0;
}

/* Layers outside the clone directory go to their own trash. */
static void drop_layers(const pgsnap_store *s, const char *dir)
{
	char link[700], upper[700], trash[700], base[600];
	const char *id = strrchr(dir, '/');
	char *slash;
	ssize_t n;

	id = id ? id + 1 : dir;
	if (path_join(link, sizeof(link), dir, "upper") < 0)
		return;
	n = readlink(link, upper, sizeof(upper) - 1);
	if (n <= 0)
		return;
	upper[n] = '\0';
	slash = strrchr(upper, '/');
	if (!slash)
		return;
	*slash = '\0'; /* SNAPSHOTS/.overlay/ID */
	snprintf(base, sizeof(base), "%s/snapshots/.overlay-trash", s->home);
	mkdir_server(s, base);
	snprintf(trash, sizeof(trash), "%s/%s", base, id);
	if (rename(upper, trash) == 0)
		trash_kick_dir(s, base);
	unlink(link);
}

static int overlay_clone(clone_job *job, pgsnap_error *err)
{
	char upper[700], work[700];
	int r;

	if (path_join(job->datadir, sizeof(job->datadir), job->dir, "data") < 0)
		return pgsnap_err(err, ENAMETOOLONG, "clone path too long");
	if ((r = make_layers(job, upper, work, sizeof(upper), err)) < 0)
		return r;
	if ((r = mkdir_server(job->store, job->datadir)) < 0)
		r = pgsnap_errno(err, r, "cannot create %s", job->datadir);
	else
		r = job->store->as_root ?
		    do_mount(job->golden, upper, work, job->datadir, false,
			     err) : userns_args(job, upper, work, err);
	if (r < 0)
		drop_layers(job->store, job->dir);
	return r;
}

static int overlay_release(const pgsnap_store *s, const char *dir)
{
	char data[700];
	int r = 0;

	if (path_join(data, sizeof(data), dir, "data") < 0)
		return -ENAMETOOLONG;
	if (!s->as_root) {
		/* The mount lived in the server's namespace, gone with it. */
		userns_unlock(dir);
		drop_layers(s, dir);
		return 0;
	}
	if (umount2(data, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL &&
	    errno != ENOENT) {
		/* Busy (a straggling process, a shell in it): detach now,
		 * the kernel frees it when the last user goes. */
		if (errno != EBUSY ||
		    umount2(data, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			r = -errno;
	}
	if (r == 0)
		drop_layers(s, dir);
	return r;
}

const clone_engine clone_engine_overlay = {
	.method = PGSNAP_METHOD_OVERLAY,
	.name = "overlay",
	.probe = overlay_probe,
	.clone = overlay_clone,
	.release = overlay_release,
};
