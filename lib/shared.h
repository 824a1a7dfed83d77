/* shared.h - new --shared: a fresh database of a shared server (shared.c). */
#ifndef PGSNAP_SHARED_H
#define PGSNAP_SHARED_H

#include "internal.h"

/* Hand out the next database of a shared server of t->opts_sig (one in
 * use first, else a pooled one), as a lease with t's creator, owner,
 * limits and worker, in one registry update.  1: *out is the lease; 0:
 * none has a database left. */
int shared_take(const pgsnap_store *s, const pgsnap_clone *t,
		pgsnap_clone *out, pgsnap_error *err);
/* The same for n callers of one variant at once, under one lock: the
 * first k of them (the return value) got a lease in out[0..k-1]. */
size_t shared_take_n(const pgsnap_store *s, const pgsnap_clone *const *t,
		     pgsnap_clone *const *out, size_t n, pgsnap_error *err);
/* The lock of variant sig's server starts (run/pool/SIG.start), taken:
 * an fd to close, or -errno. */
int shared_start_lock(const pgsnap_store *s, const char *sig);
/* A life_make commit: the server just started for template t becomes
 * shared, with t's lease of its first database in *out. */
typedef struct shared_commit_arg {
	const pgsnap_clone *t;
	pgsnap_clone *out;
	pgsnap_error *err;
} shared_commit_arg;
int shared_commit(const pgsnap_store *s, pgsnap_clone *cur,
		  const pgsnap_clone *made, void *arg);
/* After a lease of server ended: remove the server once it has no
 * database left to hand out and no lease. */
void shared_retire(const pgsnap_store *s, const char *server);
/* For the pool: give the databases of shared server c the relcache init
 * file the session conn (on `postgres`) has just built. */
struct pg_conn;
void shared_warm(const pgsnap_store *s, struct pg_conn *conn,
		 const pgsnap_clone *c);

#endif
