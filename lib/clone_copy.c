/*
 * clone_copy.c - the portable engine: a real copy, driven by the
 * snapshot's manifest (no walk or stat of the golden at clone time).
 *
 * A copy is planned by file size.  Small files (under 1 MB: nearly all,
 * a few KB each) cost the kernel's per-file work (create, allocate), so
 * their routes differ in how they keep both CPUs creating:
 *   write2    two threads, each creating files and writing them from the
 *             packed image (mapped once);
 *   cfr2      two threads, copy_file_range from the golden's files;
 *   uring, uringfix, uringat   io_uring (clone_uring.c).
 * Big files (1 MB or more: relation segments, up to 1 GB each) cost their
 * bytes.  They are taken first, largest first, by a thread of their own
 * (with write2 and cfr2, by whichever thread is free), so that the small
 * files go by meanwhile, on the other CPU:
 *   kcopy     copied by the kernel from the golden's file: copy_file_range,
 *             which reflinks where the filesystem can (XFS, btrfs), else
 *             sendfile; the image's copy of these bytes is never read;
 *   write     written from the image (FICLONE first on the golden's
 *             filesystem), whose big files are then read in ahead too.
 * The plan is chosen per filesystem of the clones from the bench's
 * figures (plan_for); PGSNAP_COPY_IMPL (small files) and PGSNAP_COPY_BIG
 * (big files) override it.  Files are created as the server user
 * (setfsuid, per thread), never as root and then chowned, and with
 * O_EXCL; only the bytes before a file's trailing zeros are written, the
 * rest stays a hole.
 */
#include "clone_impl.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

enum copy_impl { IMPL_URING, IMPL_CFR2, IMPL_WRITE2, IMPL_URINGFIX,
		 IMPL_URINGAT };
static const char *const impl_names[] = { "uring", "cfr2", "write2",
					  "uringfix", "uringat" };
enum big_route { BIG_KCOPY, BIG_WRITE };
static const char *const big_names[] = { "kcopy", "write" };

#define BIG_MIN (1u << 20)

typedef struct copy_plan {
	enum copy_impl small;
	enum big_route big;
	const char *why;
} copy_plan;

/*
 * The plan per filesystem of the clones, from bench-clone.sh (3 Dec 2026,
 * 2 shared CPUs, load 2-4; docs/design.md has the tables).  Small files,
 * default snapshot, engine alone (median ms, tmpfs/ext4/XFS): write2
 * 41.9/26.0/27.8, cfr2 47.1/26.2/35.2, uring 44.5/31.3/33.9, uringat
 * 50.0/30.3/34.0.  io_uring never won: the work is the kernel's create,
 * the same in its workers as in a thread, and the chains cost 1.15-1.3x
 * the CPU time of two threads.  Big files, 1 GB table, engine alone:
 * kcopy against write, ext4 392 against 562 ms (CPU 408 against 598: the
 * image's pages mapped and copied from user space), XFS 53 against 183 (a
 * reflink either way, but write reads the image in first), tmpfs a tie
 * (CPU 751 against 723).  So write2 and kcopy everywhere, until a
 * filesystem measures otherwise.
 */
static const struct {
	const char *fs;
	copy_plan plan;
} measured[] = {
	{ "tmpfs", { IMPL_WRITE2, BIG_KCOPY, "measured fastest on tmpfs" } },
	{ "ext4", { IMPL_WRITE2, BIG_KCOPY, "measured fastest on ext4" } },
	{ "xfs", { IMPL_WRITE2, BIG_KCOPY, "measured fastest on XFS" } },
};

const char *copy_uring_note(void)
{
	return "not chosen: measured slower than two threads for small "
	       "files (default snapshot, engine alone, tmpfs/ext4/XFS: "
	       "uringat 50.0/30.3/34.0 ms, uring 44.5/31.3/33.9, write2 "
	       "41.9/26.0/27.8; the chains cost 1.15-1.3x the CPU) and no "
	       "better for big files (a buffered file takes one writer at a "
	       "time; O_DIRECT to the bench machine's disk: 334 MB/s, through "
	       "the page cache 945); "
	       "PGSNAP_COPY_IMPL=uringat selects it";
}

static copy_plan plan_for(const char *dir)
{
	copy_plan p = { IMPL_WRITE2, BIG_KCOPY, "the default (not measured "
			"on this filesystem)" };
	const char *fs = fs_type_name(dir), *v;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(measured); i++)
		if (!strcmp(fs, measured[i].fs))
			p = measured[i].plan;
	v = getenv("PGSNAP_COPY_IMPL");
	for (i = 0; v && i < ARRAY_SIZE(impl_names); i++)
		if (!strcmp(v, impl_names[i])) {
			p.small = (enum copy_impl)i;
			p.why = "PGSNAP_COPY_IMPL";
		}
	v = getenv("PGSNAP_COPY_BIG");
	for (i = 0; v && i < ARRAY_SIZE(big_names); i++)
		if (!strcmp(v, big_names[i])) {
			p.big = (enum big_route)i;
			p.why = "PGSNAP_COPY_BIG";
		}
	return p;
}

void copy_plan_describe(const pgsnap_store *s, char *buf, size_t len)
{
	char clones[600];
	copy_plan p;

	snprintf(clones, sizeof(clones), "%s", s->clones);
	p = plan_for(clones);
	snprintf(buf, len, "small files %s, big files (%u MB or more) %s on "
		 "%s (%s)", impl_names[p.small], BIG_MIN >> 20,
		 big_names[p.big], fs_type_name(clones), p.why);
}

static bool same_fs(const char *a, const char *b)
{
	struct stat x, y;
	return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev;
}

/* ---- the image: mapped, the bytes to be read from it read in ahead --- */

static void populate(const copy_image *im, uint64_t from, uint64_t to)
{
	uint64_t page = 4096, a = from & ~(page - 1);

	/* Only a read-ahead: a failure leaves page faults to do it. */
	if (to > a)
		madvise((void *)(im->p + a), (size_t)(to - a),
			MADV_POPULATE_READ);
}

/* Read in the bytes of the files of l: the runs of the image they cover,
 * gaps under 64 KB bridged (files are packed in manifest order). */
static void populate_list(const copy_image *im, const copy_list *l)
{
	uint64_t a = 0, b = 0;
	size_t i;

	for (i = 0; i < l->n; i++) {
		const manifest_entry *e = l->e[i];
		if (!e->len)
			continue;
		if (b > a && e->off >= a && e->off <= b + (64u << 10)) {
			if (e->off + e->len > b)
				b = e->off + e->len;
			continue;
		}
		populate(im, a, b);
		a = e->off;
		b = e->off + e->len;
	}
	populate(im, a, b);
}

static int image_map(const clone_job *job, const manifest *m, copy_image *im,
		     bool writable, pgsnap_error *err)
{
	char path[700];
	cleanup_close int fd = -1;
	struct stat st;
	void *p;

	im->p = NULL;
	im->len = m->image_bytes;
	if (!im->len)
		return 0;
	snprintf(path, sizeof(path), "%s/" MANIFEST_IMAGE, job->snapdir);
	/* Registering buffers pins them for writing: only a writable
	 * shared mapping (of tmpfs or hugetlbfs pages) can be pinned. */
	fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", path);
	/* Pages past the end of a short file fault with SIGBUS. */
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < m->image_bytes)
		return pgsnap_err(err, EINVAL, "%s is shorter than its manifest "
				  "says (rebuild the snapshot)", path);
	p = mmap(NULL, im->len, PROT_READ | (writable ? PROT_WRITE : 0),
		 MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return pgsnap_errno(err, errno, "cannot map %s", path);
	im->p = p;
	return 0;
}

static void image_unmap(copy_image *im)
{
	if (im->p)
		munmap((void *)im->p, im->len);
	im->p = NULL;
}

/* ---- routes for one file -------------------------------------------- */

static int pwrite_all(int fd, const char *p, size_t len)
{
	off_t off = 0;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* From the golden's file in the kernel: copy_file_range (a reflink where
 * the filesystem shares extents), or sendfile where it cannot cross
 * filesystems.  Both move the output's file position.  The range ends on
 * a block boundary (the golden's bytes there are zeros) or a reflink
 * would be refused for its ragged end. */
static int kcopy(int golden, int fd, const manifest_entry *e, bool *cfr_ok)
{
	cleanup_close int in = openat(golden, e->path, O_RDONLY | O_CLOEXEC |
				      O_NOFOLLOW);
	uint64_t want = (e->len + 4095) & ~(uint64_t)4095;
	off_t pos = 0;

	if (in < 0)
		return -errno;
	if (want > e->size)
		want = e->size;
	while ((uint64_t)pos < want) {
		size_t left = (size_t)(want - (uint64_t)pos);
		ssize_t n;

		if (*cfr_ok) {
			n = copy_file_range(in, &pos, fd, NULL, left, 0);
			if (n < 0 && (errno == EXDEV || errno == EOPNOTSUPP ||
				      errno == ENOSYS || errno == EINVAL) &&
			    pos == 0) {
				*cfr_ok = false;
				continue;
			}
		} else {
			n = sendfile(fd, in, &pos, left);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
	}
	return 0;
}

/* A big file on the golden's own filesystem: a reflink (XFS, btrfs) is
 * far cheaper than writing it.  1 if done, 0 to write it, -errno. */
static int try_reflink(int golden, int fd, const manifest_entry *e,
		       bool *enabled)
{
	cleanup_close int in = -1;

	if (!*enabled || golden < 0)
		return 0;
	in = openat(golden, e->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return -errno;
	if (ioctl(fd, FICLONE, in) == 0)
		return 1;
	if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL ||
	    errno == ENOTTY) {
		*enabled = false; /* not here: stop asking */
		return 0;
	}
	return -errno;
}

static int cfr_all(int in, int out, size_t len)
{
	while (len) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- the run: big files first, by any free thread ------------------- */

typedef struct copy_run {
	const clone_job *job;
	copy_plan plan;
	copy_image im;
	int root, golden;
	copy_list big, small;
	atomic_size_t next_big, next_small;
	atomic_int stop;
} copy_run;

typedef struct worker {
	pthread_t tid;
	copy_run *run;
	bool small;             /* small files too, once the big are taken */
	bool cfr_ok, reflinks;
	pgsnap_error err;
	int r;
} worker;

/* The bytes of one file, by its route. */
static int copy_bytes(worker *w, int fd, const manifest_entry *e, bool big)
{
	copy_run *c = w->run;
	cleanup_close int in = -1;
	int r;

	if (big && c->plan.big == BIG_KCOPY)
		return kcopy(c->golden, fd, e, &w->cfr_ok);
	if (big && (r = try_reflink(c->golden, fd, e, &w->reflinks)) != 0)
		return r < 0 ? r : 0;
	if (big || c->plan.small != IMPL_CFR2)
		return pwrite_all(fd, c->im.p + e->off, (size_t)e->len);
	in = openat(c->golden, e->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return in < 0 ? -errno : cfr_all(in, fd, (size_t)e->len);
}

static int copy_one(worker *w, const manifest_entry *e, bool big)
{
	copy_run *c = w->run;
	int fd = copy_create(c->root, e, c->job->datadir, &w->err), r;

	if (fd < 0)
		return fd;
	r = e->len ? copy_bytes(w, fd, e, big) : 0;
	close(fd);
	if (r < 0)
		return pgsnap_errno(&w->err, r, "cannot copy %s/%s",
				    c->job->datadir, e->path);
	return 0;
}

static void *worker_run(void *arg)
{
	worker *w = arg;
	copy_run *c = w->run;
	fs_ids ids = fs_become(c->job->store); /* fsuid is per thread */
	size_t i;

	while (w->r == 0 && !atomic_load(&c->stop) &&
	       (i = atomic_fetch_add(&c->next_big, 1)) < c->big.n)
		w->r = copy_one(w, c->big.e[i], true);
	while (w->small && w->r == 0 && !atomic_load(&c->stop) &&
	       (i = atomic_fetch_add(&c->next_small, 1)) < c->small.n)
		w->r = copy_one(w, c->small.e[i], false);
	if (w->r < 0)
		atomic_store(&c->stop, 1);
	fs_restore(ids);
	return NULL;
}

static int by_len_desc(const void *a, const void *b)
{
	const manifest_entry *x = *(const manifest_entry *const *)a;
	const manifest_entry *y = *(const manifest_entry *const *)b;
	return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

/* Split the manifest's files into big (largest first) and small. */
static int plan_lists(copy_run *c, const manifest *m, pgsnap_error *err)
{
	size_t i, nf = 0;

	for (i = 0; i < m->n; i++)
		nf += m->e[i].type == 'f';
	c->big.e = calloc(nf ? nf : 1, sizeof(*c->big.e));
	c->small.e = calloc(nf ? nf : 1, sizeof(*c->small.e));
	if (!c->big.e || !c->small.e)
		return pgsnap_err(err, ENOMEM, "out of memory");
	for (i = 0; i < m->n; i++) {
		if (m->e[i].type != 'f')
			continue;
		if (m->e[i].len >= BIG_MIN)
			c->big.e[c->big.n++] = &m->e[i];
		else
			c->small.e[c->small.n++] = &m->e[i];
	}
	qsort(c->big.e, c->big.n, sizeof(*c->big.e), by_len_desc);
	return 0;
}

static bool uses_image(const copy_plan *p)
{
	return p->small != IMPL_CFR2 || p->big == BIG_WRITE;
}

/* The files, once the tree is made: the big by a helper thread, the
 * small here (io_uring) or by both threads. */
static int copy_files(copy_run *c, pgsnap_error *err)
{
	bool ring = c->plan.small != IMPL_WRITE2 &&
		    c->plan.small != IMPL_CFR2;
	worker w[2];
	bool started = false;
	int i, r = 0;

	memset(w, 0, sizeof(w));
	for (i = 0; i < 2; i++) {
		w[i].run = c;
		w[i].small = !ring;
		w[i].cfr_ok = w[i].reflinks = true;
	}
	if ((!ring || c->big.n) &&
	    pthread_create(&w[1].tid, NULL, worker_run, &w[1]) == 0)
		started = true;
	if (ring) {
		if (!started)
			worker_run(&w[1]);
		r = c->plan.small == IMPL_URINGAT ?
		    uring_chain_files(&c->small, c->root, &c->im,
				      c->job->datadir, err) :
		    uring_write_files(&c->small, c->root, &c->im,
				      c->plan.small == IMPL_URINGFIX,
				      c->job->datadir, err);
		if (r < 0)
			atomic_store(&c->stop, 1);
	} else {
		worker_run(&w[0]);
	}
	if (started)
		pthread_join(w[1].tid, NULL);
	for (i = 0; i < 2; i++)
		if (w[i].r < 0 && r == 0) {
			r = w[i].r;
			if (err)
				*err = w[i].err;
		}
	return r;
}

/* ---- the engine ----------------------------------------------------- */

static int copy_probe(const pgsnap_store *s, pgsnap_error *err)
{
	char plan[300];

	/* Works everywhere; say how it will copy. */
	copy_plan_describe(s, plan, sizeof(plan));
	if (err)
		snprintf(err->msg, sizeof(err->msg), "works (%s)", plan);
	return 0;
}

static int copy_clone(clone_job *job, pgsnap_error *err)
{
	copy_run c = { .job = job, .root = -1, .golden = -1 };
	manifest m;
	fs_ids ids;
	int r;

	c.plan = plan_for(job->dir);
	if ((r = clone_manifest_ensure(job->store, job->snapdir,
					  err)) < 0 ||
	    (r = manifest_load(job->snapdir, &m, err)) < 0)
		return r;
	if ((r = plan_lists(&c, &m, err)) < 0)
		goto out;
	if (uses_image(&c.plan) &&
	    (r = image_map(job, &m, &c.im, c.plan.small == IMPL_URINGFIX,
			   err)) < 0)
		goto out;
	/* kcopy and cfr2 read the golden; the write route reflinks from it
	 * when it shares the clone's filesystem. */
	if ((c.big.n && c.plan.big == BIG_KCOPY) || c.plan.small == IMPL_CFR2 ||
	    (c.big.n && same_fs(job->golden, job->dir))) {
		c.golden = open(job->golden, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c.golden < 0) {
			r = pgsnap_errno(err, errno, "cannot open %s",
					 job->golden);
			goto out;
		}
	}
	if (c.im.p && c.plan.small != IMPL_CFR2)
		populate_list(&c.im, &c.small);
	if (c.im.p && c.plan.big == BIG_WRITE)
		populate_list(&c.im, &c.big);
	ids = fs_become(job->store);
	r = clone_make_tree(job, &m, &c.root, err);
	if (r == 0)
		r = copy_files(&c, err);
	fs_restore(ids);
out:
	if (c.root >= 0)
		close(c.root);
	if (c.golden >= 0)
		close(c.golden);
	image_unmap(&c.im);
	free(c.big.e);
	free(c.small.e);
	manifest_free(&m);
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
