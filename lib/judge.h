/* judge.h - should a clone end, and why (judge.c): a pure function. */
#ifndef PGSNAP_JUDGE_H
#define PGSNAP_JUDGE_H

#include "internal.h"

typedef struct judge_ctx {
	int64_t now_ms;              /* wall clock */
	const char *boot_id;         /* this boot's */
	long pool_ttl_s;             /* PGSNAP_POOL_TTL */
} judge_ctx;

/* What the judge may look at, read beforehand (gc.c: gather). */
typedef struct judge_facts {
	bool paths_valid;            /* its dir and sockdir are pgsnap's */
	bool creator_alive;          /* the process at work on it */
	bool server_alive;           /* its postmaster, pid and start time */
	bool dir_exists;
	bool owner_alive;            /* --owner */
	bool parent_exists;          /* a lease: its server's record is there */
	bool server_paused;          /* stopped (snapshot save copies it) */
	int clients;                 /* client backends (a lease: of its
					database); -1: not counted yet */
	int64_t idle_since_ms;       /* when a client last left; 0: unknown */
	size_t leases;               /* a shared server: its leases */
} judge_facts;

typedef struct judge_out {
	const char *why;             /* the reason to end it; NULL: keep */
	bool other_boot;             /* its pids mean nothing now */
	bool watched;                /* kept, and someone must watch it */
	bool need_clients;           /* judge again with clients counted */
	bool busy;                   /* past its time but in use */
	int64_t due_ms;              /* when its time may be up (0: never) */
} judge_out;

void judge_record(const judge_ctx *x, const pgsnap_clone *c,
		  const judge_facts *f, judge_out *o);

#endif
