/*
 * clone_impl.h - what the clone engines (clone*.c) share with each other
 * and nobody else.
 */
#ifndef PGSNAP_CLONE_IMPL_H
#define PGSNAP_CLONE_IMPL_H

#include "internal.h"
#include "manifest.h"

extern const clone_engine clone_engine_overlay;
extern const clone_engine clone_engine_reflink;
extern const clone_engine clone_engine_copy;

/* Snapshots at least this big (bytes of data) count as large: overlayfs
 * would copy a whole relation file up on its first touch. */
#define CLONE_LARGE_BYTES (256ull << 20)

/* Create job->datadir (0700) and every directory and symlink of the
 * manifest under it; *root receives an fd on the new data directory.
 * Runs with the caller's fs identity (call between fs_become/restore). */
int clone_make_tree(clone_job *job, const manifest *m, int *root,
		    pgsnap_error *err);

/* Can a file made in directory from be reflinked into directory to? */
int ficlone_works(const char *from, const char *to, pgsnap_error *err);
/* The bytes of a snapshot's data, from its manifest (0: unknown). */
uint64_t clone_snapshot_bytes(const char *snapdir);
/* Make the snapshot's manifest and packed image unless it has them (an
 * imported snapshot, until its first clone that follows a manifest). */
int clone_manifest_ensure(const pgsnap_store *s, const char *snapdir,
			  pgsnap_error *err);
/* Is a snapshot of this size large (PGSNAP_CLONE_LARGE_MB)? */
bool clone_is_large(uint64_t bytes);
/* For a large snapshot whose clones' filesystem cannot reflink from it:
 * where overlay upper layers go instead, on the snapshots' filesystem
 * when that one reflinks (copy-up then reflinks); 0, or -errno. */
int overlay_upper_base(const pgsnap_store *s, char *buf, size_t len);

/* The type of the filesystem holding path ("ext4", "tmpfs", ...). */
const char *fs_type_name(const char *path);

/* Copy engine variants, for `pgsnap doctor` and the bench: the plan for
 * clones of this store (small files / big files, see clone_copy.c). */
void copy_plan_describe(const pgsnap_store *s, char *buf, size_t len);
/* Why the copy does not use io_uring by default, with the figures. */
const char *copy_uring_note(void);
/* Is io_uring usable here?  0, or -errno with a reason in err. */
int uring_probe(pgsnap_error *err);

/* ---- the copy engine's parts (clone_copy.c, clone_uring.c) ---------- */

/* The snapshot's packed image: mapped (only the small files' bytes are
 * read in ahead), and open for the kernel-side copies. */
typedef struct copy_image {
	const char *p;
	size_t len;
} copy_image;

/* Files a route copies, in the order it should take them. */
typedef struct copy_list {
	const manifest_entry **e;
	size_t n;
} copy_list;

/* Create e under root, O_EXCL, sized to its full size (trailing zeros
 * stay a hole): the fd, or -errno with err set. */
int copy_create(int root, const manifest_entry *e, const char *datadir,
		pgsnap_error *err);
/* io_uring routes for small files (clone_uring.c); run with the server
 * user's fs identity, which the kernel's workers inherit. */
int uring_write_files(const copy_list *l, int root, const copy_image *im,
		      bool fixed, const char *datadir, pgsnap_error *err);
int uring_chain_files(const copy_list *l, int root, const copy_image *im,
		      const char *datadir, pgsnap_error *err);

#endif
