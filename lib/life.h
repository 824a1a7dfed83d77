/* life.h - the one way a clone is made and the one way it ends (life.c). */
#ifndef PGSNAP_LIFE_H
#define PGSNAP_LIFE_H

#include "internal.h"

#define LIFE_STOP_TIMEOUT_MS 10000   /* fast shutdown, then immediate */

/* PGSNAP_TEST_PAUSE=point stops this process there (SIGSTOP), so that a
 * test can kill it at a known instant. */
void test_pause(const pgsnap_store *s, const char *point);

typedef struct life_make_req {
	const pgsnap_new_opts *o;    /* -t, -6, -o */
	const clone_engine *engine;
	const char *snapdir;
	int *snap_lock;              /* the snapshot's shared lock: closed
					once cloned (a rebuild may go on) */
	/* Before the server is handed out (the pool warms it); may be NULL. */
	void (*prepare)(const pgsnap_store *s, const pgsnap_clone *c,
			void *arg);
	/* Under the registry lock, cur being the record of the started
	 * server made: turn it into what it becomes (REG_PUT), adding
	 * records if need be (a lease).  NULL: made with state `state`. */
	int (*commit)(const pgsnap_store *s, pgsnap_clone *cur,
		      const pgsnap_clone *made, void *arg);
	const char *state;           /* "ready", "pooled" */
	void *arg;
	pgsnap_clone *made;          /* private */
} life_make_req;

/* Make a clone from template c (snapshot, method, user, owner, limits...
 * filled in by the caller) and start its server; c receives the rest.
 * All or nothing. */
int life_make(const pgsnap_store *s, life_make_req *q, pgsnap_clone *c,
	      pgsnap_error *err);
/* Start the server of clone c (made by job) on its socket directory, with
 * its options; TCP (c->host set) on a free port or, same_port, on
 * c->port; then its password (c->password, or a new one).  c receives
 * the pid and port. */
int life_start(const pgsnap_store *s, pgsnap_clone *c, const clone_job *job,
	       bool same_port, pgsnap_error *err);
/* A registry_edit function that deletes the record. */
int life_drop_record(const pgsnap_store *s, pgsnap_clone *cur, void *arg);

/* A clone to end. */
typedef struct life_victim {
	pgsnap_clone c;              /* the record as judged (made up for an
					orphan); as claimed once taken */
	bool orphan;                 /* a directory with no record */
	bool other_boot;             /* its pids belong to another boot */
	bool taken;                  /* claimed by us */
	const char *why;
	/* private */
	bool keep_files;
	pid_t spid;
	unsigned long long sstart;
} life_victim;

typedef struct life_end_opts {
	int stop_timeout_ms;
	bool trash_in_background;    /* trash_kick, not trash_empty */
	bool honor_keep;             /* -k keeps files (not for rm) */
} life_end_opts;

/* Under the lock: claim v[0..n-1] (state "stopping", creator = us) when
 * want(cur, v) says the record is still the one to end (NULL: any); an
 * orphan gets a record.  Returns how many were taken. */
int life_claim(const pgsnap_store *s, life_victim *v, size_t n,
	       bool (*want)(const pgsnap_clone *cur, const life_victim *v),
	       pgsnap_error *err);
bool life_same_record(const pgsnap_clone *a, const pgsnap_clone *b);
bool life_want_same(const pgsnap_clone *cur, const life_victim *v);
/* End what was taken: stop all servers at once (a lease: its sessions),
 * release the engines, trash the directories, drop the records. */
void life_end(const pgsnap_store *s, life_victim *v, size_t n,
	      const life_end_opts *o);
/* Claim record c (if unchanged) and end it, removing its files. */
int life_end_one(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err);

#endif
