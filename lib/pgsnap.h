/*
 * pgsnap.h - fresh, real PostgreSQL servers in milliseconds.
 *
 * The public API of libpgsnap.  A *store* holds named *snapshots* (golden,
 * cleanly shut down data directories) and the *clones* made from them; each
 * clone is a running postgres server on a copy-on-write copy of a snapshot.
 *
 *     pgsnap_store *s;  pgsnap_clone c;  pgsnap_error e;  char url[1024];
 *     pgsnap_new_opts o = { .timeout_s = -1 };
 *     if (pgsnap_store_open(&s, NULL, &e) < 0 || pgsnap_new(s, &o, &c, &e) < 0)
 *             die(e.msg);
 *     pgsnap_clone_url(&c, url, sizeof(url));   ... PQconnectdb(url) ...
 *     pgsnap_rm(s, c.id, &e);
 *     pgsnap_store_close(s);
 *
 * Build with `pkg-config --cflags --libs pgsnap`; a full example is
 * docs/examples/c/harness.c, the manual pgsnap(1) describes the store.
 *
 * Conventions: every function that can fail returns 0 on success or a
 * negative errno, and fills the caller's pgsnap_error (which may be NULL)
 * with a one-line message.  The library never prints and never exits.
 * Structures marked "public" may grow new fields at their end only.
 * A store handle may be shared by threads: it is read-only once open
 * (stores of the same directory coordinate through the registry's file
 * lock and the service, also across processes).  Strings passed in are copied or only read during the
 * call.  Sizes are in bytes, times in seconds unless named _ms.
 *
 * ABI: libpgsnap.so.0 exports exactly the PGSNAP_API functions, listed in
 * lib/libpgsnap.map (a new one goes there too, in a new version node).
 */
#ifndef PGSNAP_H
#define PGSNAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PGSNAP_VERSION "0.2.0"

#define PGSNAP_API __attribute__((visibility("default")))

#define PGSNAP_SHARED_MAX 1000     /* databases in one shared server */

/* Error: the negative errno a call returned and a one-line message. */
typedef struct pgsnap_error {
	int code;
	char msg[1024];
} pgsnap_error;

typedef struct pgsnap_store pgsnap_store;

/* Options of pgsnap_store_open(); zero means "default" everywhere. */
typedef struct pgsnap_store_opts {
	const char *home;      /* PGSNAP_HOME; NULL: environment, then default */
	const char *user;      /* server user when running as root */
	const char *bindir;    /* PostgreSQL binaries; NULL: PGSNAP_PG_BINDIR, pg_config */
	int as_is;             /* stay off the store's XFS image, mounted or
				  not (pgsnap_store_xfs, _xfs_rm open it so) */
} pgsnap_store_opts;

/* Open the store (creating its directories when missing) and find the
 * PostgreSQL binaries and the server user; opts may be NULL.  *out is
 * the caller's: close it with pgsnap_store_close().  Errors: -ENOENT
 * (no PostgreSQL, no such user), -EPERM (unsafe directory, --user root),
 * -EINVAL / -ENAMETOOLONG (PGSNAP_HOME), or the failing call's errno. */
PGSNAP_API int pgsnap_store_open(pgsnap_store **out, const pgsnap_store_opts *opts,
		      pgsnap_error *err);
/* Free the handle (NULL is fine); the store's clones keep running. */
PGSNAP_API void pgsnap_store_close(pgsnap_store *store);

/* Clone methods; PGSNAP_METHOD_AUTO lets the store pick the best one. */
typedef enum pgsnap_method {
	PGSNAP_METHOD_AUTO = 0,
	PGSNAP_METHOD_OVERLAY,
	PGSNAP_METHOD_REFLINK,
	PGSNAP_METHOD_COPY,
} pgsnap_method;

/* "auto", "overlay", "reflink", "copy": a static string. */
PGSNAP_API const char *pgsnap_method_name(pgsnap_method m);
/* The inverse; -EINVAL for an unknown name. */
PGSNAP_API int pgsnap_method_parse(const char *name, pgsnap_method *out);

/* Options of pgsnap_new(); all-zero means the defaults, except timeout_s,
 * where 0 means "never" and a negative value "the default". */
typedef struct pgsnap_new_opts {
	const char *snapshot;      /* NULL: "default" */
	int tcp;                   /* also listen on 127.0.0.1, free port */
	int ipv6;                  /* with tcp: also listen on ::1 */
	const char *server_opts;   /* extra postgres options, shell-like words */
	pgsnap_method method;      /* clone method */
	long timeout_s;            /* -w: once up, stop when no client is connected;
				      0: never; <0: default (60 s) */
	int keep;                  /* -k: keep the data directory after stop */
	pid_t owner;               /* the clone dies with this process; 0: none */
	const char *now;           /* mock now(): a timestamp or "clock"; NULL: off */
	int build_if_stale;        /* rebuild the snapshot from its recipe first */
	int no_pool;               /* never take a pooled clone */
	/* Snapshot builds on the way (see pgsnap_build_opts); may be NULL. */
	void (*progress)(void *ctx, int final, const char *msg);
	void *progress_ctx;
	/* Warm pool: clones of this variant to keep started and ready
	 * (pgsnap_pool_kick); 0: PGSNAP_POOL, else 2.  no_pool disables. */
	int pool;
	/* --shared: a fresh database in a shared server instead of a server
	 * of its own; the number of databases each shared server holds
	 * (see pgsnap_new), 1 to PGSNAP_SHARED_MAX.  0: PGSNAP_SHARED (off
	 * when unset); -1: off. */
	int shared;
	/* The test runner's worker, shown by ls (pgsnap_rm_worker ends its
	 * clones); NULL: PGSNAP_WORKER or the runner's own variables
	 * (PYTEST_XDIST_WORKER, JEST_WORKER_ID, ... see pgsnap(1)). */
	const char *worker;
} pgsnap_new_opts;

/* A clone as the registry knows it (public). */
typedef struct pgsnap_clone {
	char id[32];
	char snapshot[64];
	char method[16];
	char state[16];            /* starting, ready, stopping, pooled */
	char user[64];             /* database user */
	char dbname[64];
	char password[64];         /* empty unless TCP */
	char os_user[64];          /* the server's OS user */
	char dir[512];             /* clone directory (data/, log, ...) */
	char datadir[512];
	char sockdir[512];
	char host[64];             /* "127.0.0.1" when TCP, else empty */
	int port;
	pid_t pid;                 /* postmaster */
	unsigned long long pid_start; /* its start time, clock ticks since boot */
	pid_t owner;               /* --owner: the clone dies with it */
	unsigned long long owner_start;
	pid_t creator;             /* the process at work on it (starting, stopping) */
	unsigned long long creator_start;
	int64_t created_ms;        /* wall clock, ms since the epoch */
	long timeout_s;
	int keep;
	char boot_id[40];
	char opts_sig[64];         /* hash of the server-changing options (pool) */
	/* --shared.  A lease (one database of a shared server) names its
	 * server in parent and shares its pid, port, socket and directory;
	 * a shared server (state "shared") holds dbs databases, dbs_used of
	 * them handed out, the last at used_ms. */
	char parent[32];
	int dbs;
	int dbs_used;
	int64_t used_ms;
	/* The test runner's worker that asked for it (pgsnap_new_opts). */
	char worker[64];
	/* The server's options (-o, --ipv6): pgsnap_reset starts it again
	 * with them. */
	char options[1024];
	int ipv6;
} pgsnap_clone;

/* Clone the snapshot (building it first when it is the shipped recipe
 * and missing), start a server on the clone and return once it accepts
 * connections; *out receives a copy of its record (the caller's memory).
 * The server outlives the store handle and the calling process (unless
 * opts->owner says otherwise): remove it with pgsnap_rm().  On failure
 * nothing is left: no directory, no process, no record; err then holds the
 * server's own last log line when it did not start.  opts may be NULL. */
PGSNAP_API int pgsnap_new(pgsnap_store *store, const pgsnap_new_opts *opts,
	       pgsnap_clone *out, pgsnap_error *err);

/* n fresh servers (out[0..n-1]) in one call: pooled clones first, the rest
 * started in parallel.  All or nothing: on failure none is left. */
PGSNAP_API int pgsnap_new_n(pgsnap_store *store, const pgsnap_new_opts *opts,
		 size_t n, pgsnap_clone *out, pgsnap_error *err);

/* The service.  Each store has one long-lived process that hands out
 * clones over a Unix socket (docs/protocol.md), ends them when their time
 * is up or their owner died, and keeps the warm pool: pgsnap_new hands out
 * a pooled server of the same variant (snapshot, method, -t, -o, --now,
 * --shared) when there is one, and the service starts another in the
 * background (opts->pool of them, default PGSNAP_POOL or 2, for
 * PGSNAP_POOL_TTL seconds, 300, after the last handout).  pgsnap_new and
 * pgsnap_rm talk to it when it runs and start it when a clone needs it;
 * nothing needs to be done by hand.  It runs in a child process of the
 * first caller that needed it, and leaves when nothing is left to do.
 *
 * pgsnap_service_start starts it unless it runs and returns once it
 * answers; sock (may be NULL) receives the path of its socket.
 * pgsnap_service_stop asks it to leave (its pooled servers go with it; the
 * clones stay, and any later call starts it again). */
PGSNAP_API int pgsnap_service_start(pgsnap_store *store, char *sock, size_t len,
				    pgsnap_error *err);
PGSNAP_API int pgsnap_service_stop(pgsnap_store *store, pgsnap_error *err);
/* 1 when the service runs, else 0; sock (may be NULL) receives the path
 * its socket has or would have. */
PGSNAP_API int pgsnap_service_status(pgsnap_store *store, char *sock, size_t len);

/* URL forms of a clone, NUL-terminated in buf.  Return the length of the
 * whole URL, as snprintf() does: a result >= len means buf was too small
 * and holds a truncated URL.  The libpq URL of a socket clone names the
 * socket directory %-encoded in its host part; with TCP it carries the
 * password.  The JDBC URL needs TCP: for a socket-only clone it is ""
 * (return 0). */
PGSNAP_API int pgsnap_clone_url(const pgsnap_clone *c, char *buf, size_t len);
PGSNAP_API int pgsnap_clone_jdbc_url(const pgsnap_clone *c, char *buf, size_t len);
/* The libpq key=value form ("host='...' port=... user=... dbname=..."),
 * for drivers that refuse a %-encoded socket path in a URL. */
PGSNAP_API int pgsnap_clone_conninfo(const pgsnap_clone *c, char *buf, size_t len);
/* The clone as one JSON object, the fields of `pgsnap new --json` and of
 * the service's answers (docs/protocol.md).  Returns the length written
 * as snprintf() does; 0 when out of memory. */
PGSNAP_API int pgsnap_clone_json(const pgsnap_clone *c, char *buf, size_t len);

/* The clone ref names (its id, URL, JDBC URL or directory) into *out;
 * -ENOENT when none.  Its server's log is out->dir/log (for a database of
 * a shared server, its server's). */
PGSNAP_API int pgsnap_find(pgsnap_store *store, const char *ref,
			   pgsnap_clone *out, pgsnap_error *err);

/* The clones of the store (every state), in creation order.  *out is
 * malloc'ed (NULL or not when *n is 0): free() it. */
PGSNAP_API int pgsnap_list(pgsnap_store *store, pgsnap_clone **out, size_t *n,
		pgsnap_error *err);

/* Stop a clone (fast shutdown, escalating after deadlines) and remove its
 * files and record; ref is its id, URL, JDBC URL or directory.  -ENOENT
 * when no clone of this store matches. */
PGSNAP_API int pgsnap_rm(pgsnap_store *store, const char *ref, pgsnap_error *err);

/* The clone ref names, back to its snapshot in place: the same URL, port,
 * socket and password, the data as the snapshot has it; its sessions are
 * ended.  A database of a shared server is dropped and replaced by a fresh
 * copy under its name.  *out (may be NULL) receives its record.  On
 * failure the clone is left without a server: pgsnap_gc removes it, or a
 * second reset starts it again. */
PGSNAP_API int pgsnap_reset(pgsnap_store *store, const char *ref,
			    pgsnap_clone *out, pgsnap_error *err);

/* Keep the clone ref names, to look at after a failed test: its owner and
 * time limit are dropped, it runs until pgsnap_rm.  *out (may be NULL)
 * receives its record. */
PGSNAP_API int pgsnap_keep(pgsnap_store *store, const char *ref,
			   pgsnap_clone *out, pgsnap_error *err);

/* Remove every clone of this store (and its warm pool); *removed counts
 * them.  Goes on past a failure and returns the first one. */
PGSNAP_API int pgsnap_rm_all(pgsnap_store *store, size_t *removed, pgsnap_error *err);
/* The same for the clones of one worker (pgsnap_new_opts.worker). */
PGSNAP_API int pgsnap_rm_worker(pgsnap_store *store, const char *worker,
				size_t *removed, pgsnap_error *err);

/* Options of pgsnap_gc(). */
typedef struct pgsnap_gc_opts {
	int dry_run;               /* only report what would be removed */
	int repair;                /* rebuild a corrupt registry first */
	/* Called for each action: verb is "remove", "recover" (a running
	 * clone whose record was lost) or "rebuild" (the registry). */
	void (*report)(void *arg, const char *verb, const char *what,
		       const char *why);
	void *arg;
} pgsnap_gc_opts;

/* Remove clones whose time is up, whose owner or server died, half-made
 * clones, records with no directory and stale files.  *removed counts the
 * clones removed (or that would be). */
PGSNAP_API int pgsnap_gc(pgsnap_store *store, const pgsnap_gc_opts *opts,
			 size_t *removed, pgsnap_error *err);

/* Make sure the named snapshot exists (building the shipped recipe if it is
 * one), returning 0 when it is ready. */
PGSNAP_API int pgsnap_snapshot_ensure(pgsnap_store *store, const char *name,
			   pgsnap_error *err);

/* A report on this machine and store for `pgsnap doctor`: PostgreSQL,
 * paths and filesystems, io_uring, clone methods and the one `new` uses.
 * Lines of "key: value"; *text is malloc'ed, free() it. */
/* Where the store lives and, when it has one, its XFS image. */
typedef struct pgsnap_store_info {
	char snapshots[600], clones[600];
	int xfs_exists, xfs_mounted;
	char xfs_image[600], xfs_mnt[600], xfs_dev[64];
	unsigned long long xfs_size;   /* the image's apparent size */
	unsigned long long xfs_disk;   /* bytes of the host's disk it takes */
	unsigned long long xfs_used;   /* bytes used inside */
} pgsnap_store_info;
PGSNAP_API void pgsnap_store_info_get(const pgsnap_store *store,
				      pgsnap_store_info *info);
/* As root: move the store (opened with as_is) onto a sparse XFS image
 * with reflink of bytes, HOME/xfs.img mounted on HOME/xfs: its clones
 * and service are stopped, its snapshots copied.  Already there: 0. */
PGSNAP_API int pgsnap_store_xfs(pgsnap_store *store, unsigned long long bytes,
				pgsnap_error *err);
/* As root: stop the clones on the image, unmount it, free its loop device,
 * delete it.  1 when there was none. */
PGSNAP_API int pgsnap_store_xfs_rm(pgsnap_store *store, pgsnap_error *err);
/* "20G", "512M", "1T", "4096": bytes (K, M, G, T: powers of 1024).
 * 0, or -EINVAL. */
PGSNAP_API int pgsnap_parse_size(const char *text, unsigned long long *bytes);

PGSNAP_API int pgsnap_doctor(pgsnap_store *store, char **text,
			     pgsnap_error *err);

/* ---- snapshots (issue 5) ------------------------------------------------
 * A snapshot is built from a recipe: directives such as "sql FILE",
 * "exec COMMAND", "extension NAME", "setting NAME = VALUE", "initdb OPT",
 * "input PATH", "from BASE", "now TIME", "include RECIPE" (see
 * snapshots/README.md).  Its key is a SHA-256 of everything that shapes it;
 * a build whose key matches the installed snapshot does nothing. */

typedef struct pgsnap_build_opts {
	const char *recipe_file;   /* read first; NULL: none */
	const char *const *directives; /* then these lines, in order */
	size_t n_directives;
	const char *cwd;           /* base of relative paths; NULL: getcwd */
	int force;                 /* rebuild even when the key matches */
	/* Progress of a build: final=0 for each step (which input, elapsed),
	 * final=1 once per snapshot built ("snapshot 'x' built ..."). */
	void (*progress)(void *ctx, int final, const char *msg);
	void *progress_ctx;
} pgsnap_build_opts;

typedef struct pgsnap_build_result {
	char key[65];
	int built;                 /* 1: built now; 0: it was up to date */
	int64_t build_ms;
	int bases_built;           /* base snapshots (re)built on the way */
} pgsnap_build_result;

/* Build NAME unless a snapshot with the same key is installed. */
PGSNAP_API int pgsnap_snapshot_build(pgsnap_store *store, const char *name,
			  const pgsnap_build_opts *opts,
			  pgsnap_build_result *res, pgsnap_error *err);
/* The key NAME would have, without building anything (a base's key is
 * computed from its recipe, or recorded when it has none). */
PGSNAP_API int pgsnap_snapshot_key(pgsnap_store *store, const char *name,
			const pgsnap_build_opts *opts, char key[65],
			pgsnap_error *err);

typedef struct pgsnap_snapshot_info {
	char name[64];
	char key[65];
	char pg_version[32];
	char origin[16];           /* shipped, recipe, now, save, import */
	char from[64];
	int64_t size;              /* bytes on disk */
	int64_t created_ms;
	int64_t used_ms;           /* last clone made; 0: never */
	int clones;                /* live clones */
} pgsnap_snapshot_info;

/* The snapshots of the store, by name.  *out is malloc'ed; free() it. */
PGSNAP_API int pgsnap_snapshot_list(pgsnap_store *store,
			 pgsnap_snapshot_info **out, size_t *n,
			 pgsnap_error *err);
/* Remove a snapshot; refused while clones of it are alive unless force
 * (which removes those clones first). */
PGSNAP_API int pgsnap_snapshot_rm(pgsnap_store *store, const char *name,
		       int force, pgsnap_error *err);
/* Freeze a live clone (id or URL) into a new snapshot NAME. */
PGSNAP_API int pgsnap_snapshot_save(pgsnap_store *store, const char *clone,
			 const char *name, int force, pgsnap_error *err);
/* A portable archive (tar; .gz/.zst/.xz compress) with key, PostgreSQL
 * version and machine. */
PGSNAP_API int pgsnap_snapshot_export(pgsnap_store *store, const char *name,
			   const char *file, pgsnap_error *err);
/* Install an archive as name (NULL: the name it was exported under);
 * *installed (may be NULL) is 0 when the same key was already there. */
PGSNAP_API int pgsnap_snapshot_import(pgsnap_store *store, const char *file,
			   const char *name, int force, char out_name[64],
			   int *installed, pgsnap_error *err);
/* Keep the keep most recently used snapshots (those with live clones are
 * always kept) and remove leftovers of dead builds.  *removed counts. */
PGSNAP_API int pgsnap_snapshot_gc(pgsnap_store *store, long keep,
		       size_t *removed, pgsnap_error *err);

#ifdef __cplusplus
}
#endif
#endif
