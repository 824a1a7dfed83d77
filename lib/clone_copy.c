/*
 * clone_copy.c - the portable engine: a real copy, driven by the
 * snapshot's manifest (no walk or stat of the golden at clone time).
 *
 * The cost of a copy is the kernel's per-file work (create, allocate), not
 * system calls, so the variants differ in how they keep both CPUs busy:
 *   uring   files created here, their contents written from the packed
 *           image (mapped once) by io_uring, asynchronously: the kernel's
 *           workers write while this thread creates the next files;
 *   cfr2    two threads, each creating files and copy_file_range'ing
 *           from the golden (the best plain-syscall copy measured);
 *   write2  two threads, each creating files and writing from the image.
 * With uring and write2, a big file (1 MB or more) on the golden's own
 * filesystem is reflinked when that filesystem can (XFS, btrfs): `cp -a` does as much
 * through copy_file_range, and no copy should lose to it.
 *   uringfix  uring with the image registered as fixed buffers (only
 *           where the image is on tmpfs: pages of a disk file cannot be
 *           pinned for writing); measured against uring by the bench.
 * PGSNAP_COPY_IMPL=uring|cfr2|write2|uringfix picks one; by default the
 * one the bench found fastest (write2, see impl_pick).  Files are created as the
 * server user (setfsuid, per thread), never as root and then chowned, and
 * with O_EXCL; only the bytes before a file's trailing zeros are written,
 * the rest stays a hole.
 */
#include "clone_impl.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

enum copy_impl { IMPL_URING, IMPL_CFR2, IMPL_WRITE2, IMPL_URINGFIX };
static const char *const impl_names[] = { "uring", "cfr2", "write2",
					  "uringfix" };
#define QD 128

/*
 * Which variant for clones made in dir.  The issue's rule: io_uring must at
 * least match the best plain-syscall copy measured in the same run, else
 * the faster one is used.  bench-clone.sh on a quiet machine (30-40 clones
 * per variant, three runs, 26 Nov 2026): on tmpfs io_uring took 12.0-12.4
 * ms against 9.2-10.3 ms for two plain threads (22-33% slower; inline
 * submission instead of IOSQE_ASYNC was slower still, 16.5 ms); on the
 * journaled ext4 image 24.1 against 17.4 ms, on XFS 21.7 against 16.6 ms.
 * Earlier runs on a loaded machine had io_uring ahead on tmpfs only; the
 * quiet runs decide.  So two threads writing from the image are the
 * default everywhere; PGSNAP_COPY_IMPL=uring selects io_uring.
 */
static enum copy_impl impl_pick(const char *dir)
{
	const char *v = getenv("PGSNAP_COPY_IMPL");
	size_t i;

	(void)dir;
	for (i = 0; v && i < ARRAY_SIZE(impl_names); i++)
		if (!strcmp(v, impl_names[i]))
			return (enum copy_impl)i;
	return IMPL_WRITE2;
}

const char *copy_impl_name(const pgsnap_store *s)
{
	char clones[600];

	snprintf(clones, sizeof(clones), "%s", s->clones);
	return impl_names[impl_pick(clones)];
}

int uring_probe(pgsnap_error *err)
{
	struct io_uring ring;
	int r = io_uring_queue_init(4, &ring, 0);

	if (r < 0)
		return pgsnap_errno(err, r, "io_uring is not available%s",
			r == -EPERM ? " (blocked by seccomp or "
			"kernel.io_uring_disabled)" : r == -ENOSYS ?
			" (kernel without io_uring)" : "");
	io_uring_queue_exit(&ring);
	return 0;
}

static bool same_fs(const char *a, const char *b)
{
	struct stat x, y;
	return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev;
}

/* The packed contents of every file, mapped read-only. */
typedef struct image {
	const char *p;
	size_t len;
} image;

static int image_map(const clone_job *job, const manifest *m, image *im,
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
		 MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED)
		return pgsnap_errno(err, errno, "cannot map %s", path);
	im->p = p;
	return 0;
}

static void image_unmap(image *im)
{
	if (im->p)
		munmap((void *)im->p, im->len);
	im->p = NULL;
}

static int create_file(int root, const manifest_entry *e, const char *datadir,
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

/* ---- io_uring ------------------------------------------------------- */

typedef struct slot {
	int fd;
	const manifest_entry *e;
	uint64_t done;
} slot;

typedef struct uring_copy {
	struct io_uring ring;
	slot slots[QD];
	int free_[QD], nfree;
	unsigned inflight;
	const image *im;
	bool fixed;             /* the image is registered */
	const char *datadir;
	pgsnap_error *err;
	int r;
} uring_copy;

#define FIXED_BUF (1ul << 30)

static void queue_write(uring_copy *u, int i)
{
	slot *s = &u->slots[i];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	uint64_t pos = s->e->off + s->done, left = s->e->len - s->done;
	unsigned len = left > (1u << 30) ? 1u << 30 : (unsigned)left;

	/* There is always room: one SQE per slot, QD slots. */
	if (u->fixed) {
		/* A write stays inside one registered buffer. */
		uint64_t end = (pos / FIXED_BUF + 1) * FIXED_BUF;
		if (pos + len > end)
			len = (unsigned)(end - pos);
		io_uring_prep_write_fixed(sqe, s->fd, u->im->p + pos, len,
					  s->done, (int)(pos / FIXED_BUF));
	} else {
		io_uring_prep_write(sqe, s->fd, u->im->p + pos, len, s->done);
	}
	/* Straight to the kernel's workers: they write while this thread
	 * creates the next files (inline, the writes would only serialise
	 * behind the creates). */
	sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data64(sqe, (uint64_t)i);
	u->inflight++;
}

static void reap_one(uring_copy *u, struct io_uring_cqe *cqe)
{
	int i = (int)io_uring_cqe_get_data64(cqe);
	slot *s = &u->slots[i];
	int res = cqe->res;

	io_uring_cqe_seen(&u->ring, cqe);
	u->inflight--;
	if (res < 0 || (res == 0 && s->done < s->e->len)) {
		if (u->r == 0)
			u->r = pgsnap_errno(u->err, res < 0 ? res : -EIO,
					    "cannot write %s/%s", u->datadir,
					    s->e->path);
	} else {
		s->done += (uint64_t)res;
		if (s->done < s->e->len && u->r == 0) {
			queue_write(u, i); /* short write: the rest */
			return;
		}
	}
	close(s->fd);
	s->fd = -1;
	u->free_[u->nfree++] = i;
}

/* Reap what is done; wait for at least one when want is set. */
static int reap(uring_copy *u, bool want)
{
	struct io_uring_cqe *cqe;
	int r;

	if (want) {
		r = io_uring_submit_and_wait(&u->ring, 1);
		if (r < 0 && r != -EINTR)
			return r;
	}
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0)
		reap_one(u, cqe);
	return 0;
}

/* A big file on the golden's own filesystem: a reflink (XFS, btrfs) is
 * far cheaper than writing it.  1 if done, 0 to write it, -errno. */
#define CLONE_MIN_BYTES (1u << 20)
static int try_reflink(int golden, int fd, const manifest_entry *e,
		       bool *enabled)
{
	cleanup_close int in = -1;

	if (!*enabled || golden < 0 || e->len < CLONE_MIN_BYTES)
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

static int uring_files(int root, int golden, const manifest *m,
		       const image *im, bool fixed, const char *datadir,
		       pgsnap_error *err)
{
	bool reflinks = true;
	static uring_copy zero;
	uring_copy *u = malloc(sizeof(*u));
	size_t i;
	int r, k;

	if (!u)
		return pgsnap_err(err, ENOMEM, "out of memory");
	*u = zero;
	r = io_uring_queue_init(QD, &u->ring, IORING_SETUP_SINGLE_ISSUER);
	if (r < 0)
		r = io_uring_queue_init(QD, &u->ring, 0);
	if (r < 0) {
		free(u);
		return pgsnap_errno(err, r, "cannot set up io_uring");
	}
	{
		/* Bounded workers: io-wq would start up to 4 per CPU for
		 * buffered writes, which then contend on the same
		 * filesystem locks.  Two measured best on two CPUs
		 * (PGSNAP_URING_WORKERS for the bench; 0: the kernel's). */
		unsigned w[2] = { 2, 2 };
		const char *v = getenv("PGSNAP_URING_WORKERS");
		long n;
		if (v && parse_long(v, 0, 64, &n) == 0)
			w[0] = w[1] = (unsigned)n;
		if (w[0])
			io_uring_register_iowq_max_workers(&u->ring, w);
	}
	if (fixed && im->len) {
		/* One registered buffer per GB (the kernel's limit). */
		struct iovec iov[64];
		unsigned nb = 0;
		size_t off;

		for (off = 0; off < im->len && nb < ARRAY_SIZE(iov); nb++) {
			iov[nb].iov_base = (void *)(im->p + off);
			iov[nb].iov_len = im->len - off < FIXED_BUF ?
					  im->len - off : FIXED_BUF;
			off += iov[nb].iov_len;
		}
		r = off < im->len ? -E2BIG :
			io_uring_register_buffers(&u->ring, iov, nb);
		if (r < 0) {
			io_uring_queue_exit(&u->ring);
			free(u);
			return pgsnap_errno(err, r, "cannot register the "
				"snapshot image as io_uring buffers (it must "
				"be on tmpfs or hugetlbfs, at most 64 GB)");
		}
		u->fixed = true;
	}
	for (k = 0; k < QD; k++)
		u->free_[k] = QD - 1 - k;
	u->nfree = QD;
	u->im = im;
	u->datadir = datadir;
	u->err = err;
	for (i = 0; i < m->n && u->r == 0; i++) {
		const manifest_entry *e = &m->e[i];
		int fd;

		if (e->type != 'f')
			continue;
		fd = create_file(root, e, datadir, err);
		if (fd < 0) {
			u->r = fd;
			break;
		}
		r = e->len ? try_reflink(golden, fd, e, &reflinks) : 1;
		if (r != 0) {
			close(fd);
			if (r < 0) {
				u->r = pgsnap_errno(err, r, "cannot reflink "
						    "%s/%s", datadir, e->path);
				break;
			}
			continue;
		}
		while (u->nfree == 0 && u->r == 0)
			if ((r = reap(u, true)) < 0)
				u->r = pgsnap_errno(err, r, "io_uring");
		if (u->r) {
			close(fd);
			break;
		}
		k = u->free_[--u->nfree];
		u->slots[k].fd = fd;
		u->slots[k].e = e;
		u->slots[k].done = 0;
		queue_write(u, k);
		/* Hand work over in batches: one syscall per 16 files. */
		if (io_uring_sq_ready(&u->ring) >= 16)
			io_uring_submit(&u->ring);
		reap(u, false);
	}
	/* Drain, on success and on failure alike: every fd is closed. */
	while (u->inflight)
		if ((r = reap(u, true)) < 0) {
			if (u->r == 0)
				u->r = pgsnap_errno(err, r, "io_uring");
			break;
		}
	r = u->r;
	io_uring_queue_exit(&u->ring);
	free(u);
	return r;
}

/* ---- two plain threads ---------------------------------------------- */

typedef struct worker {
	pthread_t tid;
	const clone_job *job;
	const manifest *m;
	const image *im;
	int root, golden, nth, of;
	bool cfr, reflinks;
	atomic_int *stop;
	pgsnap_error err;
	int r;
} worker;

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

static void *worker_run(void *arg)
{
	worker *w = arg;
	fs_ids ids = fs_become(w->job->store); /* fsuid is per thread */
	size_t i;
	int n = 0;

	for (i = 0; i < w->m->n && !atomic_load(w->stop); i++) {
		const manifest_entry *e = &w->m->e[i];
		int fd, r = 0;

		if (e->type != 'f' || n++ % w->of != w->nth)
			continue;
		fd = create_file(w->root, e, w->job->datadir, &w->err);
		if (fd < 0) {
			w->r = fd;
			break;
		}
		if (e->len && w->cfr) {
			int in = openat(w->golden, e->path, O_RDONLY |
					O_CLOEXEC | O_NOFOLLOW);
			r = in < 0 ? -errno : cfr_all(in, fd, (size_t)e->len);
			if (in >= 0)
				close(in);
		} else if (e->len) {
			r = try_reflink(w->golden, fd, e, &w->reflinks);
			if (r == 0)
				r = pwrite_all(fd, w->im->p + e->off,
					       (size_t)e->len);
			else if (r == 1)
				r = 0;
		}
		close(fd);
		if (r < 0) {
			w->r = pgsnap_errno(&w->err, r, "cannot copy %s/%s",
					    w->job->datadir, e->path);
			break;
		}
	}
	if (w->r < 0)
		atomic_store(w->stop, 1);
	fs_restore(ids);
	return NULL;
}

static int thread_files(const clone_job *job, int root, const manifest *m,
			const image *im, bool cfr, pgsnap_error *err)
{
	worker w[2];
	atomic_int stop = 0;
	cleanup_close int golden = -1;
	bool started = false;
	int i, r = 0;

	/* cfr2 reads the golden; write2 reflinks big files from it when
	 * it shares the clone's filesystem. */
	if (cfr || same_fs(job->golden, job->dir)) {
		golden = open(job->golden, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (golden < 0)
			return pgsnap_errno(err, errno, "cannot open %s",
					    job->golden);
	}
	memset(w, 0, sizeof(w));
	for (i = 0; i < 2; i++) {
		w[i].job = job;
		w[i].m = m;
		w[i].im = im;
		w[i].root = root;
		w[i].golden = golden;
		w[i].nth = i;
		w[i].of = 2;
		w[i].cfr = cfr;
		w[i].reflinks = true;
		w[i].stop = &stop;
	}
	/* One helper thread, and this one. */
	if (pthread_create(&w[1].tid, NULL, worker_run, &w[1]) == 0)
		started = true;
	else
		w[0].of = 1;
	worker_run(&w[0]);
	if (started)
		pthread_join(w[1].tid, NULL);
	for (i = 0; i < 2; i++) {
		if (w[i].r < 0 && r == 0) {
			r = w[i].r;
			if (err)
				*err = w[i].err;
		}
	}
	return r;
}

/* ---- the engine ----------------------------------------------------- */


static int copy_probe(const pgsnap_store *s, pgsnap_error *err)
{
	/* Works everywhere; say how it will copy. */
	if (err)
		snprintf(err->msg, sizeof(err->msg), "works (%s)",
			 copy_impl_name(s));
	return 0;
}

static int copy_clone(clone_job *job, pgsnap_error *err)
{
	cleanup_close int root = -1;
	enum copy_impl impl = impl_pick(job->dir);
	manifest m;
	image im = { 0 };
	fs_ids ids;
	int r;

	if ((r = manifest_load(job->snapdir, &m, err)) < 0)
		return r;
	if (impl != IMPL_CFR2 &&
	    (r = image_map(job, &m, &im, impl == IMPL_URINGFIX, err)) < 0) {
		manifest_free(&m);
		return r;
	}
	ids = fs_become(job->store);
	r = clone_make_tree(job, &m, &root, err);
	if (r == 0 && (impl == IMPL_URING || impl == IMPL_URINGFIX)) {
		cleanup_close int golden = same_fs(job->golden, job->dir) ?
			open(job->golden, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		r = uring_files(root, golden, &m, &im, impl == IMPL_URINGFIX,
				job->datadir, err);
	}
	else if (r == 0)
		r = thread_files(job, root, &m, &im, impl == IMPL_CFR2, err);
	fs_restore(ids);
	image_unmap(&im);
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
