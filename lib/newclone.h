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
