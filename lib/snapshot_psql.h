/* snapshot_psql.h - psql for a recipe's SQL steps (snapshot_psql.c). */
#ifndef PGSNAP_SNAPSHOT_PSQL_H
#define PGSNAP_SNAPSHOT_PSQL_H

#include "internal.h"
#include "recipe.h"

/* The psql beside the server binaries, else on PATH. */
void find_psql(const pgsnap_store *s, char *buf, size_t len);
/* psql's "psql:FILE:LINE: ERROR:  msg" in the log at logp (exit status
 * status) as one error "FILE, line N: ERROR: msg"; returns -EIO. */
int sql_error(const recipe_step *st, const char *logp, int status,
	      pgsnap_error *err);

#endif
