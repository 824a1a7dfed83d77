/* limits.h - what a store may hold (quota.c). */
#ifndef PGSNAP_QUOTA_H
#define PGSNAP_QUOTA_H

#include "internal.h"

/* Before a server is made: under PGSNAP_MAX_CLONES and PGSNAP_MAX_BYTES
 * (after a gc pass when not), or -ENOSPC saying which and what to do. */
int limits_check(const pgsnap_store *s, pgsnap_error *err);

#endif
