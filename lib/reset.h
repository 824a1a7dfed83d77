/* reset.h - a clone back to its snapshot, in place (reset.c). */
#ifndef PGSNAP_RESET_H
#define PGSNAP_RESET_H

#include "internal.h"

/* Reset the clone ref names; *out (may be NULL) receives its record. */
int clone_reset(pgsnap_store *s, const char *ref, pgsnap_clone *out,
		pgsnap_error *err);

#endif
