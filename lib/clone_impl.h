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
/* Is a snapshot of this size large (PGSNAP_CLONE_LARGE_MB)? */
bool clone_is_large(uint64_t bytes);
/* For a large snapshot whose clones' filesystem cannot reflink from it:
 * where overlay upper layers go instead, on the snapshots' filesystem
 * when that one reflinks (copy-up then reflinks); 0, or -errno. */
int overlay_upper_base(const pgsnap_store *s, char *buf, size_t len);

/* The type of the filesystem holding path ("ext4", "tmpfs", ...). */
const char *fs_type_name(const char *path);

/* Copy engine variants, for `pgsnap doctor` and the bench. */
const char *copy_impl_name(const pgsnap_store *s);
/* Is io_uring usable here?  0, or -errno with a reason in err. */
int uring_probe(pgsnap_error *err);

#endif
