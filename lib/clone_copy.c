/*
 * clone_copy.c - the portable engine: a real copy of the golden.
 *
 * Files are created as the server user (setfsuid), never as root and then
 * chowned, and with O_EXCL so that nothing existing is ever written over.
 */
#include "internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int copy_data(int in, int out, off_t size)
{
	while (size > 0) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)size, 0);
		if (n < 0) {
			char buf[65536];
			if (errno != EXDEV && errno != ENOSYS && errno != EINVAL)
				return -errno;
			/* Fallback for file systems that refuse. */
			n = read(in, buf, sizeof(buf));
			if (n < 0)
				return -errno;
			if (n && write(out, buf, (size_t)n) != n)
				return errno ? -errno : -EIO;
		}
		if (n == 0)
			break;
		size -= n;
	}
	return 0;
}

static int copy_tree(int sfd, int dfd, pgsnap_error *err, const char *where)
{
	DIR *d = fdopendir(dup(sfd));
	struct dirent *e;
	int r = 0;

	if (!d)
		return pgsnap_errno(err, errno, "cannot read %s", where);
	while ((e = readdir(d)) && r == 0) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(sfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = pgsnap_errno(err, errno, "cannot stat %s/%s", where,
					 e->d_name);
		} else if (S_ISDIR(st.st_mode)) {
			int s2, d2;
			if (mkdirat(dfd, e->d_name, st.st_mode & 07777) < 0) {
				r = pgsnap_errno(err, errno, "cannot create "
						 "directory %s", e->d_name);
				break;
			}
			s2 = openat(sfd, e->d_name, O_RDONLY | O_DIRECTORY |
				    O_CLOEXEC | O_NOFOLLOW);
			d2 = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY |
				    O_CLOEXEC | O_NOFOLLOW);
			if (s2 < 0 || d2 < 0)
				r = pgsnap_errno(err, errno, "cannot open %s",
						 e->d_name);
			else
				r = copy_tree(s2, d2, err, e->d_name);
			if (s2 >= 0)
				close(s2);
			if (d2 >= 0)
				close(d2);
		} else if (S_ISREG(st.st_mode)) {
			int in = openat(sfd, e->d_name, O_RDONLY | O_CLOEXEC |
					O_NOFOLLOW);
			int out = openat(dfd, e->d_name, O_WRONLY | O_CREAT |
					 O_EXCL | O_CLOEXEC | O_NOFOLLOW,
					 st.st_mode & 07777);
			if (in < 0 || out < 0)
				r = pgsnap_errno(err, errno, "cannot copy %s/%s",
						 where, e->d_name);
			else if ((r = copy_data(in, out, st.st_size)) < 0)
				r = pgsnap_errno(err, r, "cannot copy %s/%s",
						 where, e->d_name);
			if (in >= 0)
				close(in);
			if (out >= 0 && close(out) < 0 && !r)
				r = pgsnap_errno(err, errno, "cannot copy %s",
						 e->d_name);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlinkat(sfd, e->d_name, target,
					       sizeof(target) - 1);
			if (n < 0)
				r = pgsnap_errno(err, errno, "readlink %s",
						 e->d_name);
			else {
				target[n] = '\0';
				if (symlinkat(target, dfd, e->d_name) < 0)
					r = pgsnap_errno(err, errno,
						"cannot create symlink %s",
						e->d_name);
			}
		}
	}
	closedir(d);
	return r;
}

static int copy_probe(const pgsnap_store *s, pgsnap_error *err)
{
	(void)s;
	(void)err;
	return 0; /* works everywhere */
}

static int copy_clone(clone_job *job, pgsnap_error *err)
{
	cleanup_close int sfd = -1, dfd = -1;
	fs_ids ids;
	int r;

	if (path_join(job->datadir, sizeof(job->datadir), job->dir, "data") < 0)
		return pgsnap_err(err, ENAMETOOLONG, "clone path too long");
	sfd = open(job->golden, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return pgsnap_errno(err, errno, "cannot open snapshot %s",
				    job->golden);
	ids = fs_become(job->store);
	if (mkdir(job->datadir, 0700) < 0) {
		r = pgsnap_errno(err, errno, "cannot create %s", job->datadir);
	} else {
		dfd = open(job->datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = dfd < 0 ? pgsnap_errno(err, errno, "cannot open %s",
					   job->datadir)
			    : copy_tree(sfd, dfd, err, job->golden);
	}
	fs_restore(ids);
	return r;
}

static int copy_release(const pgsnap_store *s, const char *dir)
{
	(void)s;
	(void)dir;
	return 0;
}

const clone_engine clone_engine_copy = {
	.method = PGSNAP_METHOD_COPY,
	.name = "copy",
	.probe = copy_probe,
	.clone = copy_clone,
	.release = copy_release,
};
