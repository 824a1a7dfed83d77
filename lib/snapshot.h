/* snapshot.h - internals shared by the snapshot modules (snapshot.c,
 * snapshot_build.c, snapshot_move.c, mocktime.c). */
#ifndef PGSNAP_SNAPSHOT_H
#define PGSNAP_SNAPSHOT_H

#include "internal.h"
#include "recipe.h"

#define SNAP_META_FORMAT 1

/* What meta says about a snapshot (home/snapshots/NAME/meta). */
typedef struct snap_meta {
	int format;
	char name[64];
	char key[65];
	char pg_version[32];
	int pg_major;
	char arch[32];
	char from[64];       /* base snapshot or the clone's snapshot (save) */
	char origin[16];     /* shipped, recipe, now, save, import */
	char now[128];
	int64_t created_ms;
	/* The boot id of the machine while the files may still be only in
	 * its page cache (import: synced in the background, snapsync.c);
	 * empty once they are on disk. */
	char unsynced[40];
} snap_meta;

/* The PostgreSQL this store runs: version, binary identity, machine. */
typedef struct pg_ident {
	char version[32];    /* "15.18" */
	int major;
	char bin[64];        /* size and mtime of postgres: same package,
			      * same identity on every machine */
	char arch[32];
} pg_ident;

int pg_identity(pgsnap_store *s, pg_ident *id, pgsnap_error *err);

/* snapstore.c: the name rules, and the errors naming what there is. */
int snapshot_check_name(const char *name, pgsnap_error *err);
bool snapshot_exists(const char *dir);
int snapshot_no_such(const pgsnap_store *s, const char *name,
		     pgsnap_error *err);
/* A snapshot of another PostgreSQL major: refused, saying how to rebuild
 * it (known: its recipe is there). */
int snapshot_check_major(pgsnap_store *s, const char *name,
			 const snap_meta *m, bool known, pgsnap_error *err);

int meta_read(const char *snapdir, snap_meta *m);
int meta_write(const pgsnap_store *s, const char *snapdir,
	       const snap_meta *m, pgsnap_error *err);
/* meta's text; its length, or -ENAMETOOLONG when len is too small. */
int meta_format(const snap_meta *m, char *buf, size_t len);
/* Was this snapshot still being written to disk when the machine last
 * restarted?  Then its files may be torn: it is never used. */
bool meta_lost(const pgsnap_store *s, const snap_meta *m);
/* The one line saying so; -ESTALE. */
int snapshot_lost(const char *name, bool known, pgsnap_error *err);

/* snapsync.c: make the snapshot directory dfd durable in a detached
 * process (syncfs), then write meta_text (the same meta without
 * `unsynced`) over its meta. */
int snap_sync_later(const pgsnap_store *s, int dfd, const char *meta_text,
		    size_t len);

/* home/snapshots/.NAME.lock, locked (LOCK_EX or LOCK_SH); *fd owns it. */
int snap_lock(const pgsnap_store *s, const char *name, int how, int *fd,
	      pgsnap_error *err);
/* Is NAME a valid name of an existing snapshot?  -ENOENT lists those
 * there are. */
int snapshot_check(const pgsnap_store *s, const char *name, pgsnap_error *err);
/* Remove snapshot NAME's directory (renamed away first, then deleted). */
int snapshot_remove_dir(const pgsnap_store *s, const char *name,
			pgsnap_error *err);
/* How many registry records (live or starting clones) use this snapshot. */
int snap_clones(const pgsnap_store *s, const char *name, pgsnap_error *err);
/* Put a complete build directory in place of NAME (atomic swap); the old
 * one is deleted, or retired while clones of it are alive.  Unless
 * SNAP_INSTALL_LAZY, the manifest is written first and the files synced;
 * with it, both are left for later (the manifest to the first clone that
 * needs it, the sync to snap_sync_later: meta must say `unsynced`). */
#define SNAP_INSTALL_LAZY 1
int snap_install(const pgsnap_store *s, const char *build, const char *name,
		 int flags, pgsnap_error *err);
/* snapshot_move.c: install build as NAME under its lock: refused when
 * NAME exists (unless force), nothing done when NAME has key already
 * (*installed 0); flags as snap_install's. */
int install_checked(pgsnap_store *s, const char *build, const char *name,
		    int force, const char *key, int flags, int *installed,
		    pgsnap_error *err);
/* A fresh .build-NAME-RAND directory owned by the server user. */
int snap_build_dir(const pgsnap_store *s, const char *name, char *buf,
		   size_t len, pgsnap_error *err);
/* A socket directory for a temporary server of the build in dir (dir/sock
 * unless too long for a Unix socket); remove it with rm_rf. */
int snap_sock_dir(const pgsnap_store *s, const char *dir, char *out,
		  size_t len, pgsnap_error *err);
/* pg_control says the cluster was shut down cleanly. */
bool datadir_clean(const char *datadir);
/* Copy a data directory as the server user (the snapshot's own copy),
 * treecopy.c; links: keep the hard links between its files. */
int copy_datadir(const pgsnap_store *s, const char *from, const char *to_dir,
		 pgsnap_error *err);
int copy_datadir_links(const pgsnap_store *s, const char *from,
		       const char *to_dir, bool links, pgsnap_error *err);

/* Hashes of input files by identity (dev, inode, size, mtime, ctime), kept
 * in the snapshot as "inputs": a key check reads only changed files. */
typedef struct key_cache {
	char *old;           /* the snapshot's inputs file, or NULL */
	char *cur;           /* this computation's entries */
	size_t cur_len;
} key_cache;
void key_cache_load(key_cache *c, const char *snapdir);
/* Write cur to dir/inputs (as the server user); unless always, only when
 * it differs from old. */
void key_cache_save(const pgsnap_store *s, const key_cache *c,
		    const char *dir, bool always);
void key_cache_free(key_cache *c);

/* Content key of a recipe (see snapshot_key.c); cache may be NULL. */
int recipe_key(pgsnap_store *s, const recipe *r, const char *base_key,
	       key_cache *cache, char out[65], pgsnap_error *err);

typedef struct build_req {
	const recipe *r;
	const char *key;
	const char *base_key;
	const key_cache *cache;      /* saved in the new snapshot */
	const pgsnap_build_opts *o;  /* progress */
} build_req;
/* Build r into a new directory and install it as r->name (the caller
 * holds the name's lock). */
int snap_build(pgsnap_store *s, const build_req *q, pgsnap_error *err);

/* Run the mock-time SQL on a connection (mocktime.c). */
typedef struct pg_conn PGconn;
int mocktime_install(PGconn *conn, const char *now, pgsnap_error *err);
/* "clock" or something that looks like a timestamp; the server checks. */
int mocktime_check(const char *now, pgsnap_error *err);

/* `databases N` (snapshot_dbs.c): on a connection to template1 of the
 * build server, make pgsnap_1..N copies of postgres with its settings and
 * ACL; out gets the oids. */
typedef struct dbs_oids {
	unsigned postgres;
	unsigned *copies;
	size_t n;
} dbs_oids;
int dbs_create(PGconn *c, int n, int pg_major, dbs_oids *out,
	       pgsnap_error *err);
void dbs_oids_free(dbs_oids *o);
/* Database name (a plain identifier) made again as a copy of postgres,
 * with its settings and ACL (a shared server's lease, reset). */
int dbs_recreate(PGconn *c, const char *name, int pg_major, pgsnap_error *err);
/* With the server stopped: files of the copies that are byte-identical to
 * postgres's become hard links to them. */
typedef struct dbs_stats {
	uint64_t linked, kept, bytes;   /* files linked, left, bytes saved */
} dbs_stats;
int dbs_dedup(const pgsnap_store *s, const char *datadir, const dbs_oids *o,
	      dbs_stats *st, pgsnap_error *err);
/* Is database dst of the golden (its base/ directory) file for file the
 * same inodes as database src (linked by dbs_dedup)?  Then src's relcache
 * init file is right for dst. */
bool dbs_same(const char *base, const char *src, const char *dst);
/* The copies that are the postgres database, written down at build time
 * in dir/same-dbs ("SRC\nDST\n..."), and read back: 0, or -errno (no file:
 * a snapshot of an older pgsnap). */
#define DBS_SAME_FILE "same-dbs"
int dbs_write_same(const char *dir, const char *datadir, const dbs_oids *o,
		   pgsnap_error *err);
int dbs_read_same(const char *snapdir, unsigned *src, unsigned **same,
		  size_t *n);

#endif
