/*
 * clone_uring.c - the copy engine's io_uring routes for small files (the
 * big ones take the route of clone_copy.c's plan, in a thread of theirs).
 *
 *   uring     files created here (openat), their bytes written by the
 *             kernel's workers (IOSQE_ASYNC) while this thread creates the
 *             next ones; uringfix: the same with the image registered as
 *             fixed buffers (only where the image is on tmpfs).
 *   uringat   this thread only queues: each file is one linked chain
 *             OPENAT (into a direct descriptor) -> FTRUNCATE -> WRITE ->
 *             CLOSE, which one kernel worker runs from start to end.  The
 *             creates, the costly part, are spread over the workers as
 *             write2 spreads them over its threads, without a system call
 *             or a file table slot per file.
 * Both bound the kernel's workers to two (PGSNAP_URING_WORKERS): io-wq
 * would start up to four per CPU, which then contend on the same
 * filesystem locks.  The files are created with the calling thread's fs
 * identity (the server user), which the workers inherit.
 */
#include "clone_impl.h"

#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>

#define QD 128
/* One write never crosses a registered buffer (the kernel's limit). */
#define FIXED_BUF (1ul << 30)
#define MAX_WRITE (1u << 30)

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

static int ring_init(struct io_uring *ring, unsigned entries,
		     pgsnap_error *err)
{
	unsigned w[2] = { 2, 2 };
	const char *v = getenv("PGSNAP_URING_WORKERS");
	long n;
	int r = io_uring_queue_init(entries, ring, IORING_SETUP_SINGLE_ISSUER);

	if (r < 0)
		r = io_uring_queue_init(entries, ring, 0);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot set up io_uring");
	/* Two measured best on two CPUs; 0: the kernel's default. */
	if (v && parse_long(v, 0, 64, &n) == 0)
		w[0] = w[1] = (unsigned)n;
	if (w[0])
		io_uring_register_iowq_max_workers(ring, w);
	return 0;
}

/* ---- uring: created here, written by the workers -------------------- */

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
	const copy_image *im;
	bool fixed;             /* the image is registered */
	const char *datadir;
	pgsnap_error *err;
	int r;
} uring_copy;

static void queue_write(uring_copy *u, int i)
{
	slot *s = &u->slots[i];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	uint64_t pos = s->e->off + s->done, left = s->e->len - s->done;
	unsigned len = left > MAX_WRITE ? MAX_WRITE : (unsigned)left;

	/* There is always room: one SQE per slot, QD slots. */
	if (u->fixed) {
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

static int register_image(uring_copy *u, pgsnap_error *err)
{
	/* One registered buffer per GB. */
	struct iovec iov[64];
	unsigned nb = 0;
	size_t off;
	int r;

	for (off = 0; off < u->im->len && nb < ARRAY_SIZE(iov); nb++) {
		iov[nb].iov_base = (void *)(u->im->p + off);
		iov[nb].iov_len = u->im->len - off < FIXED_BUF ?
				  u->im->len - off : FIXED_BUF;
		off += iov[nb].iov_len;
	}
	r = off < u->im->len ? -E2BIG :
		io_uring_register_buffers(&u->ring, iov, nb);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot register the snapshot "
				    "image as io_uring buffers (it must be on "
				    "tmpfs or hugetlbfs, at most 64 GB)");
	u->fixed = true;
	return 0;
}

int uring_write_files(const copy_list *l, int root, const copy_image *im,
		      bool fixed, const char *datadir, pgsnap_error *err)
{
	static const uring_copy zero;
	cleanup_free uring_copy *u = malloc(sizeof(*u));
	size_t i;
	int r, k;

	if (!u)
		return pgsnap_err(err, ENOMEM, "out of memory");
	*u = zero;
	if ((r = ring_init(&u->ring, QD, err)) < 0)
		return r;
	u->im = im;
	if (fixed && im->len && (r = register_image(u, err)) < 0) {
		io_uring_queue_exit(&u->ring);
		return r;
	}
	for (k = 0; k < QD; k++)
		u->free_[k] = QD - 1 - k;
	u->nfree = QD;
	u->datadir = datadir;
	u->err = err;
	for (i = 0; i < l->n && u->r == 0; i++) {
		const manifest_entry *e = l->e[i];
		int fd = copy_create(root, e, datadir, err);

		if (fd < 0) {
			u->r = fd;
			break;
		}
		if (!e->len) {
			close(fd);
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
	io_uring_queue_exit(&u->ring);
	return u->r;
}

/* ---- uringat: one linked chain per file, run by a worker ------------ */

/* IORING_OP_FTRUNCATE (kernel 6.9) is newer than the liburing this
 * builds against; its number is fixed by the kernel's ABI. */
#define OP_FTRUNCATE 55
#define SLOTS 64                /* files in flight */

enum { OP_OPEN, OP_TRUNC, OP_WRITE, OP_CLOSE };

typedef struct chain {
	const manifest_entry *e;
	uint64_t done;          /* bytes written */
	unsigned pending;       /* completions still to come */
	bool open;              /* its direct descriptor is installed */
	bool failed;
} chain;

typedef struct chains {
	struct io_uring ring;
	chain c[SLOTS];
	int free_[SLOTS], nfree;
	unsigned busy;          /* chains with completions to come */
	int root;
	const copy_image *im;
	const char *datadir;
	pgsnap_error *err;
	int r;
} chains;

/* After the prep (which clears the flags): whose and which it is. */
static void mark(chains *u, struct io_uring_sqe *sqe, int k, int op,
		 unsigned flags)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)k << 2 | (uint64_t)op);
	sqe->flags |= (__u8)flags;
	u->c[k].pending++;
}

/* There is always room: at most SLOTS chains of four entries wait to be
 * submitted, in a ring of SLOTS * 4. */
static void queue_rest(chains *u, int k, bool write)
{
	chain *c = &u->c[k];
	struct io_uring_sqe *sqe;

	if (write) {
		uint64_t left = c->e->len - c->done;
		sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_write(sqe, k, u->im->p + c->e->off + c->done,
				    left > MAX_WRITE ? MAX_WRITE :
				    (unsigned)left, c->done);
		mark(u, sqe, k, OP_WRITE, IOSQE_FIXED_FILE | IOSQE_IO_LINK);
	}
	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_close_direct(sqe, (unsigned)k);
	mark(u, sqe, k, OP_CLOSE, 0);
}

static void queue_chain(chains *u, int k, const manifest_entry *e)
{
	chain *c = &u->c[k];
	struct io_uring_sqe *sqe;

	c->e = e;
	c->done = 0;
	c->pending = 0;
	c->open = c->failed = false;
	/* Creating may block: straight to a worker, which then runs the
	 * rest of the chain itself.  (O_CLOEXEC has no meaning for a
	 * direct descriptor, and the kernel refuses it.) */
	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_openat_direct(sqe, u->root, e->path, O_WRONLY | O_CREAT |
				    O_EXCL | O_NOFOLLOW, e->mode, (unsigned)k);
	mark(u, sqe, k, OP_OPEN, IOSQE_IO_LINK | IOSQE_ASYNC);
	if (e->size > e->len) {
		sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_rw(OP_FTRUNCATE, sqe, k, NULL, 0, e->size);
		mark(u, sqe, k, OP_TRUNC, IOSQE_FIXED_FILE | IOSQE_IO_LINK);
	}
	queue_rest(u, k, e->len > 0);
	u->busy++;
}

static void chain_fail(chains *u, chain *c, int res, const char *what)
{
	c->failed = true;
	if (u->r == 0)
		u->r = pgsnap_errno(u->err, res, "cannot %s %s/%s", what,
				    u->datadir, c->e->path);
}

static void chain_done(chains *u, struct io_uring_cqe *cqe)
{
	uint64_t d = io_uring_cqe_get_data64(cqe);
	int k = (int)(d >> 2), op = (int)(d & 3), res = cqe->res;
	chain *c = &u->c[k];

	io_uring_cqe_seen(&u->ring, cqe);
	c->pending--;
	/* -ECANCELED: an earlier link failed (or a write came up short)
	 * and the rest of the chain was not run. */
	if (op == OP_OPEN && res >= 0)
		c->open = true;
	else if (op == OP_OPEN)
		chain_fail(u, c, res, "create");
	else if (op == OP_TRUNC && res < 0 && res != -ECANCELED)
		chain_fail(u, c, res, "size");
	else if (op == OP_WRITE && res < 0 && res != -ECANCELED)
		chain_fail(u, c, res, "write");
	else if (op == OP_WRITE && res == 0 && c->done < c->e->len)
		chain_fail(u, c, -EIO, "write");
	else if (op == OP_WRITE && res > 0)
		c->done += (uint64_t)res;
	else if (op == OP_CLOSE && res != -ECANCELED) {
		/* Closed, or a close that failed: nothing more to do. */
		c->open = false;
		if (res < 0)
			chain_fail(u, c, res, "close");
	}
	if (c->pending)
		return;
	if (c->open) {
		/* A short write broke the chain before its close (write the
		 * rest, then close), or something failed: close only. */
		queue_rest(u, k, !c->failed && u->r == 0 &&
			   c->done < c->e->len);
		return;
	}
	u->busy--;
	u->free_[u->nfree++] = k;
}

static int chains_reap(chains *u, bool wait)
{
	struct io_uring_cqe *cqe;
	int r;

	if (wait) {
		r = io_uring_submit_and_wait(&u->ring, 1);
		if (r < 0 && r != -EINTR)
			return r;
	}
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0)
		chain_done(u, cqe);
	return 0;
}

/* Is every operation of a chain there (FTRUNCATE: kernel 6.9)? */
static int chains_supported(struct io_uring *ring, pgsnap_error *err)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	bool ok = p && io_uring_opcode_supported(p, IORING_OP_OPENAT) &&
		  io_uring_opcode_supported(p, IORING_OP_CLOSE) &&
		  io_uring_opcode_supported(p, OP_FTRUNCATE);

	if (p)
		io_uring_free_probe(p);
	return ok ? 0 : pgsnap_err(err, EOPNOTSUPP, "io_uring here cannot "
				   "truncate (kernel 6.9 or later needed for "
				   "the uringat copy)");
}

int uring_chain_files(const copy_list *l, int root, const copy_image *im,
		      const char *datadir, pgsnap_error *err)
{
	static const chains zero;
	cleanup_free chains *u = malloc(sizeof(*u));
	size_t i;
	int r, k;

	if (!u)
		return pgsnap_err(err, ENOMEM, "out of memory");
	*u = zero;
	/* Four entries a chain, every slot's chain queued at once. */
	if ((r = ring_init(&u->ring, SLOTS * 4, err)) < 0)
		return r;
	r = chains_supported(&u->ring, err);
	if (r == 0 && (r = io_uring_register_files_sparse(&u->ring, SLOTS)) < 0)
		pgsnap_errno(err, r, "cannot register io_uring files");
	if (r < 0) {
		io_uring_queue_exit(&u->ring);
		return r;
	}
	for (k = 0; k < SLOTS; k++)
		u->free_[k] = SLOTS - 1 - k;
	u->nfree = SLOTS;
	u->root = root;
	u->im = im;
	u->datadir = datadir;
	u->err = err;
	for (i = 0; i < l->n && u->r == 0; i++) {
		while (u->nfree == 0 && u->r == 0)
			if ((r = chains_reap(u, true)) < 0)
				u->r = pgsnap_errno(err, r, "io_uring");
		if (u->r)
			break;
		queue_chain(u, u->free_[--u->nfree], l->e[i]);
		/* Batches of 8 files: the workers start on the first while
		 * the next are queued. */
		if (io_uring_sq_ready(&u->ring) >= 32)
			io_uring_submit(&u->ring);
		chains_reap(u, false);
	}
	/* Drain, on success and on failure alike: every slot is closed. */
	while (u->busy)
		if ((r = chains_reap(u, true)) < 0) {
			if (u->r == 0)
				u->r = pgsnap_errno(err, r, "io_uring");
			break;
		}
	io_uring_queue_exit(&u->ring);
	return u->r;
}
