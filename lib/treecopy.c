/*
 * treecopy.c - copy a data directory as the server user: every file,
 * directory and symlink, keeping modes and the hard links between files
 * (the copies of `databases N` are links in the golden).  A build copies
 * its base this way, save copies a paused clone.
 */
#include "snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int copy_bytes(int in, int out, off_t size)
{
	while (size > 0) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)size, 0);
		if (n < 0) {
			char buf[65536];
			if (errno != EXDEV && errno != ENOSYS && errno != EINVAL &&
			    errno != EOPNOTSUPP)
				return -errno;
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

/* Hard links of the source (the copies of `databases N`) stay links in
 * the copy: the first path of each linked inode, relative to the root. */
typedef struct linked {
	dev_t dev;
	ino_t ino;
	char *rel;
} linked;

typedef struct tree_copy {
	int root;               /* the destination's root */
	bool links;             /* keep hard links (else copy each path) */
	linked *v;
	size_t n;
	pgsnap_error *err;
} tree_copy;

static const linked *linked_find(const tree_copy *t, const struct stat *st)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].ino == st->st_ino && t->v[i].dev == st->st_dev)
			return &t->v[i];
	return NULL;
}

/* Best effort: without memory, a later link is only copied. */
static void linked_add(tree_copy *t, const struct stat *st, const char *rel)
{
	linked *nv = realloc(t->v, (t->n + 1) * sizeof(*nv));

	if (!nv)
		return;
	t->v = nv;
	nv[t->n].dev = st->st_dev;
	nv[t->n].ino = st->st_ino;
	if ((nv[t->n].rel = strdup(rel)))
		t->n++;
}

/* A plain walk, not the engines' manifest: the source may be a live
 * clone's data directory, which has none. */
static int copy_tree(tree_copy *t, int sfd, int dfd, const char *where)
{
	DIR *d = fdopendir(dup(sfd));
	pgsnap_error *err = t->err;
	struct dirent *e;
	int r = 0;

	if (!d)
		return pgsnap_errno(err, errno, "cannot read %s",
				    *where ? where : "the data directory");
	while ((e = readdir(d)) && r == 0) {
		const char *nm = e->d_name;
		char rel[4200];
		struct stat st;
		const linked *same;
		int a = -1, b = -1;

		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		snprintf(rel, sizeof(rel), "%s%s%s", where, *where ? "/" : "",
			 nm);
		if (fstatat(sfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			/* A live source may drop files (temp files). */
			if (errno != ENOENT)
				r = pgsnap_errno(err, errno, "cannot stat %s",
						 rel);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dfd, nm, st.st_mode & 07777) < 0)
				r = pgsnap_errno(err, errno, "cannot create %s",
						 rel);
			else if ((a = openat(sfd, nm, O_RDONLY | O_DIRECTORY |
					     O_NOFOLLOW | O_CLOEXEC)) < 0 ||
				 (b = openat(dfd, nm, O_RDONLY | O_DIRECTORY |
					     O_NOFOLLOW | O_CLOEXEC)) < 0)
				r = pgsnap_errno(err, errno, "cannot open %s",
						 rel);
			else
				r = copy_tree(t, a, b, rel);
		} else if (S_ISREG(st.st_mode) && t->links && st.st_nlink > 1 &&
			   (same = linked_find(t, &st))) {
			if (linkat(t->root, same->rel, dfd, nm, 0) < 0)
				r = pgsnap_errno(err, errno, "cannot link %s",
						 rel);
		} else if (S_ISREG(st.st_mode)) {
			a = openat(sfd, nm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			b = openat(dfd, nm, O_WRONLY | O_CREAT | O_EXCL |
				   O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777);
			if (a < 0 && errno == ENOENT && b < 0)
				continue;
			if (a < 0 || b < 0)
				r = pgsnap_errno(err, errno, "cannot copy %s",
						 rel);
			else if ((r = copy_bytes(a, b, st.st_size)) < 0)
				r = pgsnap_errno(err, r, "cannot copy %s", rel);
			else if (t->links && st.st_nlink > 1)
				linked_add(t, &st, rel);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlinkat(sfd, nm, target,
					       sizeof(target) - 1);
			if (n < 0)
				r = pgsnap_errno(err, errno, "cannot read link "
						 "%s", rel);
			else {
				target[n] = '\0';
				if (symlinkat(target, dfd, nm) < 0)
					r = pgsnap_errno(err, errno, "cannot "
						"create link %s", rel);
			}
		}
		if (a >= 0)
			close(a);
		if (b >= 0)
			close(b);
	}
	closedir(d);
	return r;
}

int copy_datadir_links(const pgsnap_store *s, const char *from,
			      const char *to_dir, bool links,
			      pgsnap_error *err)
{
	char to[700];
	cleanup_close int sfd = -1, dfd = -1;
	tree_copy t = { .links = links, .err = err };
	fs_ids ids;
	size_t i;
	int r;

	snprintf(to, sizeof(to), "%s/data", to_dir);
	sfd = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", from);
	/* Created as the server user, so they are its files. */
	ids = fs_become(s);
	if (mkdir(to, 0700) < 0)
		r = pgsnap_errno(err, errno, "cannot create %s", to);
	else if ((dfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = pgsnap_errno(err, errno, "cannot open %s", to);
	else {
		t.root = dfd;
		r = copy_tree(&t, sfd, dfd, "");
	}
	fs_restore(ids);
	for (i = 0; i < t.n; i++)
		free(t.v[i].rel);
	free(t.v);
	return r;
}

int copy_datadir(const pgsnap_store *s, const char *from, const char *to_dir,
		 pgsnap_error *err)
{
	return copy_datadir_links(s, from, to_dir, false, err);
}

