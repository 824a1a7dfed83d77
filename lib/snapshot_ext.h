/* snapshot_ext.h - the files that make the extensions of a recipe
 * (snapshot_ext.c), for its key. */
#ifndef PGSNAP_SNAPSHOT_EXT_H
#define PGSNAP_SNAPSHOT_EXT_H

#include "internal.h"
#include "recipe.h"

/* One thing that goes into the key: a name, or a file whose bytes count
 * (and its base name: paths stay out of keys). */
typedef struct ext_part {
	const char *tag;     /* static: "ext", "ext-control", ... */
	char *text;          /* the name, or the file's path */
	bool file;
} ext_part;

typedef struct ext_parts {
	ext_part *v;
	size_t n;
} ext_parts;

/* What makes each extension r creates (and each one they require) and
 * each library of its shared_preload_libraries, in a fixed order.  A
 * missing one is an error that names the package to install. */
int ext_parts_of(pgsnap_store *s, const recipe *r, ext_parts *out,
		 pgsnap_error *err);
void ext_parts_free(ext_parts *p);
/* The same check, for before anything is built. */
int ext_check(pgsnap_store *s, const recipe *r, pgsnap_error *err);

#endif
