/*
 * clone_trash.c - removing a clone costs a rename: the clone directory
 * goes into RUN/trash at once and its files are deleted later, by a
 * detached process (trash_kick) or by gc (trash_empty).
 *
 * The deleter uses only system calls and the stack: it runs in a child
 * forked from a process that may have other threads (a library user), so
 * it touches no lock, no malloc, no stdio.  It never follows a symlink and
 * never descends into another filesystem: a mount left in a clone (an
 * overlay whose unmount failed) is detached first when we may, else left.
 */
#include "internal.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define TRASH_PASSES 8

struct dirent64_ {
	unsigned long long d_ino;
	long long d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* "/proc/self/fd/N/name" without snprintf (not async-signal-safe). */
static int fd_path(char *buf, size_t len, int fd, const char *name)
{
	static const char pre[] = "/proc/self/fd/";
	char digits[16];
	size_t n = 0, k = 0, nl = strlen(name);

	do {
		digits[k++] = (char)('0' + fd % 10);
		fd /= 10;
	} while (fd && k < sizeof(digits));
	if (sizeof(pre) + k + 1 + nl >= len)
		return -ENAMETOOLONG;
	memcpy(buf, pre, sizeof(pre) - 1);
	n = sizeof(pre) - 1;
	while (k)
		buf[n++] = digits[--k];
	buf[n++] = '/';
	memcpy(buf + n, name, nl + 1);
	return 0;
}

static int raw_rm_at(int dfd, const char *name, dev_t dev, int depth);

/* Delete what directory fd holds; 0 or the first error. */
static int raw_empty(int fd, dev_t dev, int depth)
{
	char buf[4096] __attribute__((aligned(8)));
	int ret = 0;

	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		long off;

		if (n < 0)
			return errno == EINTR ? ret : -errno;
		if (n == 0)
			return ret;
		for (off = 0; off < n;) {
			struct dirent64_ *d = (struct dirent64_ *)(buf + off);
			off += d->d_reclen;
			if (d->d_name[0] == '.' && (!d->d_name[1] ||
			    (d->d_name[1] == '.' && !d->d_name[2])))
				continue;
			int r = raw_rm_at(fd, d->d_name, dev, depth + 1);
			if (r < 0 && !ret)
				ret = r;
		}
	}
}

static int raw_rm_at(int dfd, const char *name, dev_t dev, int depth)
{
	struct stat st;
	int fd, r = 0, tries;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev) {
		char p[600];
		if (fd_path(p, sizeof(p), dfd, name) < 0 ||
		    umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ||
		    fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_dev != dev)
			return -EBUSY;
	}
	if (depth > 64)
		return -ELOOP;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* Another deleter may work on the same tree: retry a few times
	 * when a directory refills or is seen half-emptied. */
	for (tries = 0; tries < 4; tries++) {
		r = raw_empty(fd, dev, depth);
		if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) {
			r = 0;
			break;
		}
		if (errno != ENOTEMPTY && errno != EEXIST) {
			r = r ? r : -errno;
			break;
		}
		r = -ENOTEMPTY;
		lseek(fd, 0, SEEK_SET);
	}
	close(fd);
	return r;
}

/* Anything but "." and ".." in the directory fd (read from its start). */
static bool dir_has_entries(int fd)
{
	char buf[1024] __attribute__((aligned(8)));
	long n = syscall(SYS_getdents64, fd, buf, sizeof(buf)), off;

	for (off = 0; n > 0 && off < n;) {
		struct dirent64_ *d = (struct dirent64_ *)(buf + off);
		off += d->d_reclen;
		if (!(d->d_name[0] == '.' && (!d->d_name[1] ||
		      (d->d_name[1] == '.' && !d->d_name[2]))))
			return lseek(fd, 0, SEEK_SET) == 0;
	}
	return false;
}

static int open_dir(const char *path, dev_t *dev)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*dev = st.st_dev;
	return fd;
}

static int empty_path(const char *path)
{
	dev_t dev;
	cleanup_close int fd = open_dir(path, &dev);

	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	return raw_empty(fd, dev, 0);
}

int trash_empty(const pgsnap_store *s)
{
	char path[600];
	int r, r2;

	snprintf(path, sizeof(path), "%s", s->trash);
	r = empty_path(path);
	/* Overlay layers of large snapshots (clone_overlay.c). */
	snprintf(path, sizeof(path), "%s/snapshots/.overlay-trash", s->home);
	r2 = empty_path(path);
	return r < 0 ? r : r2;
}

int trash_kick(const pgsnap_store *s)
{
	char path[600];

	snprintf(path, sizeof(path), "%s", s->trash);
	return trash_kick_dir(s, path);
}

static void delete_run(void *arg)
{
	const dev_t *dev = arg;

	setpriority(PRIO_PROCESS, 0, 10);
	for (int pass = 0; pass < TRASH_PASSES && raw_empty(3, *dev, 0) == 0 &&
	     lseek(3, 0, SEEK_SET) == 0 && dir_has_entries(3); pass++)
		;
}

int trash_kick_dir(const pgsnap_store *s, const char *path)
{
	dev_t dev;
	cleanup_close int fd = open_dir(path, &dev);

	(void)s;
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	/* One deleter at a time: it holds the directory's lock (through its
	 * fd 3) until it exits, and goes over the directory again for what
	 * arrived meanwhile.  A fork per removal, per gc round, cost the
	 * service more CPU than handing out databases. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 0 : -errno;
	return spawn_detached(fd, delete_run, &dev);
}
