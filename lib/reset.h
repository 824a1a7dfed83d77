/* reset.h - a clone back to its snapshot, in place (reset.c). */
#ifndef PGSNAP_RESET_H
#define PGSNAP_RESET_H

#include "internal.h"
#include "life.h"

/* Reset the clone ref names; *out (may be NULL) receives its record. */
int clone_reset(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		pgsnap_error *err);
/* The same, where the server a reset replaced (a pooled server took its
 * place) is claimed into *old (old->taken) for the caller to end after it
 * has answered (life_end), not before returning. */
int clone_reset_later(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		      life_victim *old, pgsnap_error *err);
/* End the server clone_reset_later replaced (nothing unless old->taken);
 * grace: after RESET_GRACE_MS, its caller having had its answer. */
void reset_end_old(const pgsnap_store *s, life_victim *old, bool grace);
/* Finish the resets whose process died (gc_result.unfinished_resets). */
void reset_finish(pgsnap_store *s);

#endif
