/* gc.h - one pass over a store: judge every clone, end what is due (gc.c). */
#ifndef PGSNAP_GC_H
#define PGSNAP_GC_H

#include "internal.h"

#define GC_STOP_TIMEOUT_MS 10000      /* fast shutdown, then immediate */
#define GC_NEW_MAX_VICTIMS 32         /* bounds the gc that new runs */
#define GC_NEW_STOP_TIMEOUT_MS 3000

typedef struct gc_opts {
	bool dry_run;
	int max_victims;             /* 0: all */
	int stop_timeout_ms;
	bool trash_in_background;    /* trash_kick, not trash_empty */
	void (*report)(void *arg, const char *verb, const char *what,
		       const char *why);
	void *arg;
} gc_opts;

typedef struct gc_result {
	size_t removed, adopted, removed_files;
	size_t watched;              /* records that need watching */
	int64_t next_due_ms;         /* earliest time a limit may be up */
	bool busy;                   /* a clone past its time has clients */
	size_t unfinished_resets;    /* for reset_finish (reset.c) */
} gc_result;

/* One pass: judge every record and clone directory, end what is due,
 * remove damaged records and stale files. */
int gc_run(const pgsnap_store *s, const gc_opts *o, gc_result *res,
	   pgsnap_error *err);
/* The bounded pass new makes when no service watches; errors ignored. */
void gc_before_new(const pgsnap_store *s);

#endif
