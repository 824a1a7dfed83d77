/*
 * xfsstore.c - the store on an XFS image pgsnap makes and manages.
 *
 * Without a filesystem that shares extents, the first query that touches
 * a big table costs a copy of it (overlay copies the whole relation file up
 * when postgres opens it; the copy engine writes it).  Most CI machines
 * have ext4 only, but run jobs as root: root can make a sparse image file,
 * put XFS with reflink on it and mount it through a loop device.
 *
 *   HOME/xfs.img   the image (sparse: it takes what is written)
 *   HOME/xfs       where it is mounted; the whole store (snapshots, clones,
 *                  registry) then lives there, as if PGSNAP_HOME pointed at
 *                  it, so the reflink method works and overlay copy-up is a
 *                  reflink.
 * The image's presence is the switch: every pgsnap process that opens the
 * store (xfs_store_attach, from pgsnap_store_open) moves onto the mount,
 * and mounts it first when it is not (after a reboot the image is there,
 * the mount is not).  The loop device is set up with AUTOCLEAR, so that it
 * goes with the mount.  HOME's directory lock (flock) orders the processes
 * that mount, make or remove it.
 */
#include "xfsstore.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#define XFS_MAGIC_ 0x58465342

static void store_paths(const char *home, char *img, char *mnt, size_t len)
{
	snprintf(img, len, "%s/" XFS_STORE_IMAGE, home);
	snprintf(mnt, len, "%s/" XFS_STORE_MOUNT, home);
}

/* The loop device mounted on mnt, when it is img's: its name in dev. */
static bool mounted_here(const char *img, const char *mnt, char *dev,
			 size_t len)
{
	char sys[128], back[PATH_MAX], real[PATH_MAX];
	struct statfs f;
	struct stat m;
	ssize_t n;
	int fd;

	if (stat(mnt, &m) < 0 || statfs(mnt, &f) < 0 ||
	    f.f_type != XFS_MAGIC_ || !realpath(img, real))
		return false;
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/loop/backing_file",
		 major(m.st_dev), minor(m.st_dev));
	fd = open(sys, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, back, sizeof(back) - 1);
	close(fd);
	if (n <= 0)
		return false;
	back[n] = '\0';
	back[strcspn(back, "\n")] = '\0';
	if (strcmp(back, real))
		return false;
	snprintf(dev, len, "/dev/loop%u", minor(m.st_dev));
	return true;
}

/* Attach img to a free loop device (AUTOCLEAR: it goes with the last
 * user, the mount) and mount it on mnt. */
static int loop_mount(const char *img, const char *mnt, pgsnap_error *err)
{
	cleanup_close int ctl = -1, imgfd = -1, dev = -1;
	struct loop_config cfg;
	char path[64];
	int tries;

	imgfd = open(img, O_RDWR | O_CLOEXEC);
	if (imgfd < 0)
		return pgsnap_errno(err, errno, "cannot open the store image "
				    "%s", img);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return pgsnap_errno(err, errno, "cannot open /dev/loop-control "
				    "(no loop devices here?)");
	for (tries = 0; dev < 0; tries++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE), e;

		if (n < 0)
			return pgsnap_errno(err, errno, "no free loop device");
		snprintf(path, sizeof(path), "/dev/loop%d", n);
		dev = open(path, O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return pgsnap_errno(err, errno, "cannot open %s (a "
					    "container without loop device "
					    "nodes?)", path);
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (unsigned)imgfd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", img);
		if (ioctl(dev, LOOP_CONFIGURE, &cfg) == 0)
			break;
		e = errno;
		close(dev);
		dev = -1;
		/* Another process took it between GET_FREE and now. */
		if (e != EBUSY || tries == 16)
			return pgsnap_errno(err, e, "cannot attach %s to %s",
					    img, path);
	}
	if (mount(path, mnt, "xfs", MS_NOSUID | MS_NODEV | MS_NOATIME,
		  NULL) < 0)
		return pgsnap_errno(err, errno, "cannot mount the store image "
				    "%s on %s (pgsnap store rm removes it)",
				    img, mnt);
	return 0;
}

/* The whole store moves: clones under run/ (a disk, never RAM). */
static void relocate(pgsnap_store *s, const char *mnt)
{
	snprintf(s->home, sizeof(s->home), "%s", mnt);
	snprintf(s->run, sizeof(s->run), "%s/run", mnt);
	snprintf(s->clones, sizeof(s->clones), "%s/clones", s->run);
	snprintf(s->trash, sizeof(s->trash), "%s/trash", s->run);
}

static int home_lock(const char *home, pgsnap_error *err)
{
	int fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", home);
	if (flock(fd, LOCK_EX) < 0) {
		int r = pgsnap_errno(err, errno, "cannot lock %s", home);
		close(fd);
		return r;
	}
	return fd;
}

static int attach(pgsnap_store *s, pgsnap_error *err)
{
	char img[600], mnt[600], dev[64];
	cleanup_close int lock = -1;
	int r;

	store_paths(s->home, img, mnt, sizeof(img));
	if (access(img, F_OK) < 0)
		return 0;
	if (mounted_here(img, mnt, dev, sizeof(dev))) {
		relocate(s, mnt);
		return 0;
	}
	if (geteuid() != 0)
		return pgsnap_err(err, EPERM, "the store's XFS image %s is not "
				  "mounted (after a reboot?): run 'pgsnap "
				  "store' as root once to mount it again", img);
	if ((lock = home_lock(s->home, err)) < 0)
		return lock;
	/* Another process may have mounted it while we waited. */
	if (!mounted_here(img, mnt, dev, sizeof(dev))) {
		if (mkdir(mnt, 0755) < 0 && errno != EEXIST)
			return pgsnap_errno(err, errno, "cannot create %s", mnt);
		if ((r = loop_mount(img, mnt, err)) < 0)
			return r;
	}
	relocate(s, mnt);
	return 0;
}

int xfs_store_attach(pgsnap_store *s, pgsnap_error *err)
{
	return attach(s, err);
}

/* The HOME whose image s lives on (s opened and moved onto it), or s's
 * own HOME. */
static void raw_home(const pgsnap_store *s, char *home, size_t len)
{
	const char *slash = strrchr(s->home, '/');
	char img[600], dev[64];

	snprintf(home, len, "%s", s->home);
	if (!slash || slash == s->home || strcmp(slash + 1, XFS_STORE_MOUNT))
		return;
	snprintf(home, len, "%.*s", (int)(slash - s->home), s->home);
	snprintf(img, sizeof(img), "%s/" XFS_STORE_IMAGE, home);
	if (!mounted_here(img, s->home, dev, sizeof(dev)))
		snprintf(home, len, "%s", s->home);
}

void xfs_store_info_get(const pgsnap_store *s, xfs_store_info *i)
{
	char home[512];
	struct stat st;
	struct statvfs v;

	memset(i, 0, sizeof(*i));
	raw_home(s, home, sizeof(home));
	store_paths(home, i->image, i->mnt, sizeof(i->image));
	if (stat(i->image, &st) < 0)
		return;
	i->exists = true;
	i->size = (uint64_t)st.st_size;
	i->disk = (uint64_t)st.st_blocks * 512;
	i->mounted = mounted_here(i->image, i->mnt, i->dev, sizeof(i->dev));
	if (i->mounted && statvfs(i->mnt, &v) == 0)
		i->used = (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize;
}

/* ---- making it -------------------------------------------------------- */

static const char *find_prog(const char *name, char *buf, size_t len)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin",
					    "/bin" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(buf, len, "%s/%s", dirs[i], name);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* Run argv to its end; its output in out (for the error); exit status. */
static int run_output(const char *prog, char *const argv[], char *out,
		      size_t len)
{
	spawn_opts so = { 0 };
	size_t got = 0;
	ssize_t n;
	int p[2], st;
	pid_t pid;

	out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	so.out_fd = p[1];
	pid = spawn_process(prog, argv, &so);
	close(p[1]);
	while (pid > 0 && got + 1 < len &&
	       (n = read(p[0], out + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(p[0]);
	out[got] = '\0';
	for (char *c = out; *c; c++)
		if (*c == '\n')
			*c = ' ';
	if (pid < 0)
		return (int)pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int make_image(const char *img, uint64_t bytes, pgsnap_error *err)
{
	char tmp[620], mkfs[64], out[1024];
	char *argv[] = { "mkfs.xfs", "-q", "-m", "reflink=1", "-L", "pgsnap",
			 tmp, NULL };
	cleanup_close int fd = -1;
	int r;

	if (!find_prog("mkfs.xfs", mkfs, sizeof(mkfs)))
		return pgsnap_err(err, ENOENT, "mkfs.xfs not found (install "
				  "xfsprogs)");
	snprintf(tmp, sizeof(tmp), "%s.tmp", img);
	unlink(tmp); /* a crashed make's */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot create %s", tmp);
	if (ftruncate(fd, (off_t)bytes) < 0) {
		r = pgsnap_errno(err, errno, "cannot size %s", tmp);
		unlink(tmp);
		return r;
	}
	r = run_output(mkfs, argv, out, sizeof(out));
	if (r != 0) {
		unlink(tmp);
		return r < 0 ? pgsnap_errno(err, r, "cannot run %s", mkfs) :
		       pgsnap_err(err, EIO, "mkfs.xfs failed: %s", out);
	}
	if (rename(tmp, img) < 0) {
		r = pgsnap_errno(err, errno, "cannot rename %s", tmp);
		unlink(tmp);
		return r;
	}
	return 0;
}

/* The snapshots built so far, copied onto the new store (sharing
 * nothing with the originals, which stay for after a removal). */
static int copy_snapshots(const char *home, const char *mnt,
			  pgsnap_error *err)
{
	char from[620], to[620], out[1024];
	char *argv[] = { "cp", "-a", "--", from, to, NULL };
	int r;

	snprintf(from, sizeof(from), "%s/snapshots", home);
	snprintf(to, sizeof(to), "%s/snapshots", mnt);
	if (access(from, F_OK) < 0)
		return 0;
	r = run_output("/bin/cp", argv, out, sizeof(out));
	if (r != 0)
		return r < 0 ? pgsnap_errno(err, r, "cannot run cp") :
		       pgsnap_err(err, EIO, "cannot copy the snapshots onto "
				  "the XFS store: %s", out);
	return 0;
}

static int unmount_detach(const char *mnt, const char *dev,
			  pgsnap_error *err);

int xfs_store_make(pgsnap_store *s, uint64_t bytes, xfs_quiesce_fn quiesce,
		   pgsnap_error *err)
{
	char img[600], mnt[600], dev[64], home[512];
	cleanup_close int lock = -1;
	struct statvfs v;
	int r;

	raw_home(s, home, sizeof(home));
	store_paths(home, img, mnt, sizeof(img));
	if (geteuid() != 0)
		return pgsnap_err(err, EPERM, "an XFS store needs root (a loop "
				  "device and a mount)");
	if (bytes < XFS_STORE_MIN_BYTES)
		return pgsnap_err(err, EINVAL, "an XFS store needs at least "
				  "%llu MB", XFS_STORE_MIN_BYTES >> 20);
	if (access(img, F_OK) == 0)
		return strcmp(s->home, mnt) ? attach(s, err) : 0;
	if (statvfs(home, &v) == 0 &&
	    (uint64_t)v.f_bavail * v.f_frsize < bytes)
		return pgsnap_err(err, ENOSPC, "%s has %llu MB free, less than "
				  "the %llu MB asked for (--size)", home,
				  (unsigned long long)((uint64_t)v.f_bavail *
				  v.f_frsize >> 20),
				  (unsigned long long)(bytes >> 20));
	/* What runs on the old store goes: its clones would be lost. */
	if ((r = quiesce(s, home, err)) < 0)
		return r;
	if ((lock = home_lock(home, err)) < 0)
		return lock;
	if ((r = make_image(img, bytes, err)) < 0)
		return r;
	if ((mkdir(mnt, 0755) < 0 && errno != EEXIST) ||
	    (r = loop_mount(img, mnt, err)) < 0) {
		if (r == 0)
			r = pgsnap_errno(err, errno, "cannot create %s", mnt);
		unlink(img);
		rmdir(mnt);
		return r;
	}
	if ((r = copy_snapshots(home, mnt, err)) < 0) {
		if (mounted_here(img, mnt, dev, sizeof(dev)))
			unmount_detach(mnt, dev, NULL);
		unlink(img);
		rmdir(mnt);
		return r;
	}
	relocate(s, mnt);
	return 0;
}

/* ---- removing it ------------------------------------------------------- */

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Unmount, waiting (bounded) for the stragglers of the clones just
 * stopped (a trash deleter, a service on its way out) to let go; then
 * make sure the loop device is free. */
static int unmount_detach(const char *mnt, const char *dev,
			  pgsnap_error *err)
{
	/* Generous: a deleter on a loaded machine may take a while. */
	int64_t until = mono_us() + 60 * 1000000LL;
	cleanup_close int fd = -1;

	while (umount2(mnt, UMOUNT_NOFOLLOW) < 0) {
		if (errno != EBUSY || mono_us() > until)
			return pgsnap_errno(err, errno, "cannot unmount %s (a "
					    "process still using the store?)",
					    mnt);
		pause_ms(20);
	}
	/* AUTOCLEAR has freed it when the mount went; a device set up by
	 * hand without it is freed here (ENXIO: free already). */
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && ioctl(fd, LOOP_CLR_FD) < 0 && errno != ENXIO)
		return pgsnap_errno(err, errno, "cannot detach %s", dev);
	return 0;
}

int xfs_store_remove(pgsnap_store *s, xfs_quiesce_fn quiesce,
		     pgsnap_error *err)
{
	char img[600], mnt[600], dev[64], home[512];
	cleanup_close int lock = -1;
	int r;

	raw_home(s, home, sizeof(home));
	store_paths(home, img, mnt, sizeof(img));
	if (access(img, F_OK) < 0)
		return 1;
	if (geteuid() != 0)
		return pgsnap_err(err, EPERM, "removing the XFS store needs "
				  "root (unmounting it)");
	if (mounted_here(img, mnt, dev, sizeof(dev))) {
		if ((r = quiesce(s, mnt, err)) < 0)
			return r;
		if ((lock = home_lock(home, err)) < 0)
			return lock;
		if ((r = unmount_detach(mnt, dev, err)) < 0)
			return r;
	}
	if (unlink(img) < 0)
		return pgsnap_errno(err, errno, "cannot remove %s", img);
	if (rmdir(mnt) < 0 && errno != ENOENT)
		return pgsnap_errno(err, errno, "cannot remove %s", mnt);
	return 0;
}

bool xfs_mkfs_found(void)
{
	char buf[64];
	return find_prog("mkfs.xfs", buf, sizeof(buf)) != NULL;
}

void xfs_store_mnt(const pgsnap_store *s, char *mnt, size_t len)
{
	char home[512], img[600];

	raw_home(s, home, sizeof(home));
	store_paths(home, img, mnt, len);
}
