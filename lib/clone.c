/*
 * clone.c - one entry point for the clone engines (a strategy table).
 *
 * Each engine makes a clone's data directory from a snapshot; the caller
 * owns the clone directory and removes it on failure, so an engine only
 * undoes what it did outside that directory (a mount, say).
 */
#include "internal.h"

#include <string.h>

extern const clone_engine clone_engine_copy;

static const clone_engine *const engines[] = {
	&clone_engine_copy,
};

const clone_engine *clone_engine_for(pgsnap_method m)
{
	size_t i;
	for (i = 0; i < ARRAY_SIZE(engines); i++)
		if (engines[i]->method == m)
			return engines[i];
	return NULL;
}

static const char *const method_names[] = {
	[PGSNAP_METHOD_AUTO] = "auto",
	[PGSNAP_METHOD_OVERLAY] = "overlay",
	[PGSNAP_METHOD_REFLINK] = "reflink",
	[PGSNAP_METHOD_COPY] = "copy",
};

const char *pgsnap_method_name(pgsnap_method m)
{
	return (unsigned)m < ARRAY_SIZE(method_names) ? method_names[m] : "?";
}

int pgsnap_method_parse(const char *name, pgsnap_method *out)
{
	size_t i;
	for (i = 0; i < ARRAY_SIZE(method_names); i++) {
		if (!strcmp(name, method_names[i])) {
			*out = (pgsnap_method)i;
			return 0;
		}
	}
	return -EINVAL;
}

int clone_choose(const pgsnap_store *s, pgsnap_method want,
		 const clone_engine **out, pgsnap_error *err)
{
	const clone_engine *e;
	size_t i;
	int r;

	if (want != PGSNAP_METHOD_AUTO) {
		e = clone_engine_for(want);
		if (!e)
			return pgsnap_err(err, ENOTSUP,
				"clone method '%s' is not available in this "
				"build", pgsnap_method_name(want));
		r = e->probe(s, err);
		if (r < 0)
			return pgsnap_err_wrap(err, "clone method '%s' cannot "
					       "work here", e->name);
		*out = e;
		return 0;
	}
	/* engines[] is in order of preference. */
	for (i = 0; i < ARRAY_SIZE(engines); i++) {
		if (engines[i]->probe(s, NULL) == 0) {
			*out = engines[i];
			return 0;
		}
	}
	return pgsnap_err(err, ENOTSUP, "no clone method works here");
}

int clone_prepare_snapshot(const pgsnap_store *s, const char *snapdir,
			   pgsnap_error *err)
{
	(void)s;
	(void)snapdir;
	(void)err;
	return 0; /* the plain copy engine needs nothing prepared */
}
