/* pool.h - the warm pool: servers started ahead of need (pool.c). */
#ifndef PGSNAP_POOL_H
#define PGSNAP_POOL_H

#include "internal.h"

#define POOL_MAX 64

/* The variant of a clone: what makes its server differ from another's
 * (snapshot and which build of it, method, -t, -o, --now, --shared), as
 * 16 hex. */
void pool_sig(const pgsnap_new_opts *o, const char *snap, const char *snapdir,
	      const char *method, char *sig, size_t len);
/* Servers to keep warm for o (--pool, PGSNAP_POOL, else 2); 0: none. */
int pool_size(const pgsnap_store *s, const pgsnap_new_opts *o);
/* Hand out the oldest live pooled server of t->opts_sig, giving it the
 * caller's fields of t (creator, owner, limits, worker, created_ms), in
 * one registry update.  1: *out is it; 0: the pool has none. */
int pool_take(const pgsnap_store *s, const pgsnap_clone *t, pgsnap_clone *out,
	      pgsnap_error *err);
/* life_make callbacks for a server made for the pool: warm it (its first
 * session, off the caller's clock), then record it pooled and listed. */
void pool_warm(const pgsnap_store *s, const pgsnap_clone *c, void *arg);
int pool_commit(const pgsnap_store *s, pgsnap_clone *cur,
		const pgsnap_clone *made, void *arg);
/* Live pooled servers of sig (dead ones are ended on the way). */
int pool_count(const pgsnap_store *s, const char *sig);
/* End the servers still pooled of variant sig, or of snapshot snapshot
 * (NULL: any). */
void pool_drain(const pgsnap_store *s, const char *sig, const char *snapshot);

#endif
