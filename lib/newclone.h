/* newclone.h - what `new` hands out, and ending a clone by name
 * (newclone.c). */
#ifndef PGSNAP_NEWCLONE_H
#define PGSNAP_NEWCLONE_H

#include "internal.h"
#include "life.h"

/* The options as new applies them: shared from PGSNAP_SHARED when 0 (-1:
 * off), the worker from the environment when NULL; checked. */
int new_opts_resolve(const pgsnap_store *s, const pgsnap_new_opts *in,
		     pgsnap_new_opts *out, pgsnap_error *err);
/* A fresh clone for resolved options o: pooled, a lease, or made now;
 * pooled: a server made for the pool (state "pooled"). */
int clone_new(pgsnap_store *s, const pgsnap_new_opts *o, bool pooled,
	      pgsnap_clone *out, pgsnap_error *err);

/* clone_new in its steps, for the service, which keeps what the first
 * two decide per variant (a handout then costs a registry update):
 * check the options against the system (the owner lives, enough file
 * descriptors); settle the snapshot (held by *snap_lock), the engine and
 * the variant; fill a clone's record as far as the caller decides it;
 * hand out or make. */
typedef struct new_prep {
	char snap[64];
	char snapdir[600];
	const clone_engine *engine;
	char sig[64];
	unsigned long long meta_ino;
	int64_t meta_mtime_ns;
} new_prep;
int new_check(const pgsnap_new_opts *o, pgsnap_error *err);
int new_prepare(pgsnap_store *s, const pgsnap_new_opts *o, new_prep *p,
		int *snap_lock, pgsnap_error *err);
/* Is p still what new_prepare would decide (the snapshot not rebuilt)? */
bool new_prep_current(const new_prep *p);
/* owner_start: o->owner's start time if known (0: read from /proc). */
void new_template(const pgsnap_store *s, const pgsnap_new_opts *o,
		  const new_prep *p, unsigned long long owner_start,
		  pgsnap_clone *c);
int clone_new_prepared(pgsnap_store *s, const pgsnap_new_opts *o,
		       const new_prep *p, int *snap_lock, bool pooled,
		       pgsnap_clone *out, pgsnap_error *err);
/* n of them, the pool first, the rest in parallel; all or nothing. */
int clone_new_n(pgsnap_store *s, const pgsnap_new_opts *o, size_t n,
		pgsnap_clone *out, pgsnap_error *err);
/* End the clone ref names (id, URL, JDBC URL, directory): claim it (so
 * that it is gone from ls at once), then end it; a shared server with its
 * leases, a lease's server once it has no lease and no database left. */
int clone_rm_claim(const pgsnap_store *s, const char *ref, life_victim *v,
		   pgsnap_error *err);
void clone_rm_finish(const pgsnap_store *s, life_victim *v);
int clone_rm(const pgsnap_store *s, const char *ref, pgsnap_error *err);

#endif
