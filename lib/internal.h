/*
 * internal.h - what the modules of libpgsnap share and the public header
 * does not promise.  Tests link the internal archive and may use it.
 */
#ifndef PGSNAP_INTERNAL_H
#define PGSNAP_INTERNAL_H

#include "pgsnap.h"
#include "pq.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- error.c -------------------------------------------------------- */

/* Set err to code (a positive or negative errno) and a formatted message;
 * returns the negative errno so callers can "return pgsnap_err(...)". */
int pgsnap_err(pgsnap_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like pgsnap_err, appending ": strerror(code)". */
int pgsnap_errno(pgsnap_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix context to an error already set: "context: old message";
 * returns code (the callee's return value, passed on) normalised as
 * pgsnap_err does, whether or not err is NULL. */
int pgsnap_err_wrap(pgsnap_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- cleanup attributes: one owner, one cleanup path ----------------- */

void pgsnap_freep(void *p);
void pgsnap_closep(int *fd);
void pgsnap_closedirp(void *d);     /* DIR ** */
void pgsnap_pqfinishp(void *conn);  /* PGconn ** (pq.c) */
#define cleanup_free __attribute__((cleanup(pgsnap_freep)))
#define cleanup_close __attribute__((cleanup(pgsnap_closep)))
#define cleanup_dir __attribute__((cleanup(pgsnap_closedirp)))
#define cleanup_pgconn __attribute__((cleanup(pgsnap_pqfinishp)))

static inline void *steal_ptr(void *pp)
{
	void **p = pp, *v = *p;
	*p = NULL;
	return v;
}
static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

/* ---- util.c ----------------------------------------------------------- */

int64_t now_ms(void);
int64_t mono_us(void);
/* Strict decimal parse of a whole string into [min, max]. */
int parse_long(const char *s, long min, long max, long *out);
int random_hex(char *buf, size_t nbytes_hex);
/* Join into a fixed buffer; -ENAMETOOLONG when it does not fit. */
int path_join(char *buf, size_t len, const char *a, const char *b);
int mkdir_p(const char *path, mode_t mode);
/* Remove a tree without following symlinks; missing is fine. */
int rm_rf(const char *path);
int rm_rf_at(int dirfd, const char *name);
/* Read a whole file (at most max bytes) into a NUL-terminated buffer. */
int read_file(const char *path, size_t max, char **out, size_t *len);
int read_fd(int fd, size_t max, char **out, size_t *len);
/* Read a small file (/proc entries, postmaster.pid) with one read() into
 * buf: at most len - 1 bytes, then NUL.  The bytes read, or -errno. */
ssize_t read_file_buf(const char *path, char *buf, size_t len);
/* write() all of p, again after a short write or EINTR; 0 or -errno. */
int write_all(int fd, const char *p, size_t len);
/* Write data to path atomically: temp file, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const char *data, size_t len,
		      mode_t mode);
/* Split a shell-like string into words (quotes and backslashes, no
 * expansion).  *argv is one allocation; free() it. */
int split_words(const char *s, char ***argv, int *argc);
/* Bytes on disk of what directory dfd holds (dfd is closed): blocks, a
 * hard-linked file's shared by its links, not crossing filesystems. */
int64_t tree_bytes(int dfd);
/* Start time of a process (field 22 of /proc/PID/stat), 0 if gone. */
unsigned long long proc_start_time(pid_t pid);
unsigned long long proc_self_start_time(void);  /* ours, asked once */
/* Its state letter (field 3: R, S, T, t, Z, ...), '?' if gone. */
char proc_state(pid_t pid);
/* Is pid alive and started at start (when start is not 0)? */
bool proc_alive(pid_t pid, unsigned long long start);
int read_boot_id(char *buf, size_t len);
/* Is the name safe as a single path component (ids, snapshot names)? */
bool name_valid(const char *s, size_t maxlen);

/* ---- guard.c: the process environment, checked before work --------- */

/* Enough file descriptors for a server (lifting a low soft limit). */
int guard_fd_limit(pgsnap_error *err);

/* ---- sockdir.c: the clone's socket directory, paths we may remove ---- */

/* Set c->sockdir: <dir>/sock, or /tmp/pgsnap-UID/<id> (/dev/shm/... when
 * /tmp is not ours to write) when that path is too long for sun_path.
 * Decided before the record is first saved. */
int sockdir_choose(const pgsnap_store *s, pgsnap_clone *c);
/* c->sockdir as postgres is told it: relative to its data directory when
 * both are in the clone's directory (else c->sockdir).  A postmaster
 * removes its socket by that path as it exits: a relative one is its own
 * wherever its directory has moved, so a reset may swap a pooled server's
 * directory with the clone's and let the old server stop on its own. */
const char *sockdir_arg(const pgsnap_clone *c, char *buf, size_t len);
/* Create c->sockdir, mode 0700, owned by the server user. */
int sockdir_make(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err);
/* NAME in the short private directory (/tmp/pgsnap-UID), for sockets
 * whose path in the store would be too long; and making that directory. */
int sockdir_short_path(const pgsnap_store *s, const char *name, char *buf,
		       size_t len);
int sockdir_short_make(const pgsnap_store *s, pgsnap_error *err);
/* Remove service sockets of ours nobody listens on (stores removed). */
size_t sockdir_short_gc(void);
/* Remove c->sockdir when it lives outside the clone directory. */
int sockdir_remove(const pgsnap_store *s, const pgsnap_clone *c);
/* Are the record's dir and sockdir where pgsnap puts them?  Nothing else
 * is ever stopped or removed on the word of a registry record. */
bool clone_paths_valid(const pgsnap_store *s, const pgsnap_clone *c);

/* ---- store.c ---------------------------------------------------------- */

/* Every PGSNAP_* setting, read once when the store is opened (store.c). */
typedef struct store_cfg {
	int pool;                  /* PGSNAP_POOL; -1: not set (2) */
	long pool_ttl_s;           /* PGSNAP_POOL_TTL (300) */
	int shared;                /* PGSNAP_SHARED: new --shared=N (0: off) */
	bool service;              /* PGSNAP_SERVICE (1): talk to the service */
	char worker[64];           /* PGSNAP_WORKER or the runner's worker */
	long max_clones;           /* PGSNAP_MAX_CLONES: servers (0: no limit) */
	long long max_bytes;       /* PGSNAP_MAX_BYTES: the store's (0: none) */
	long snapshot_ttl_s;       /* PGSNAP_SNAPSHOT_TTL: unused (0: kept) */
	char lock_trace[256];      /* PGSNAP_LOCK_TRACE: a file, for the bench */
	char test_pause[32];       /* PGSNAP_TEST_PAUSE (tests) */
	/* What makes the work of this process differ from another's on the
	 * same store (the binaries, the settings, as 16 hex): the service
	 * does a caller's work only when it has the same. */
	char sig[20];
} store_cfg;

struct pgsnap_store {
	char home[512];      /* snapshots live here (disk) */
	char run[512];       /* sockets, registry (RAM when possible) */
	char clones[512];    /* the clones: run/clones, or the disk's */
	char trash[512];     /* beside clones: a removed clone is renamed */
	char clones_why[160];/* why clones are not in run/ (doctor) */
	char bindir[512];    /* PostgreSQL binaries */
	char pg_version[32]; /* "15.18" */
	int pg_major;
	char user[64];       /* the server's OS user */
	uid_t uid;           /* its uid and gid */
	gid_t gid;
	bool as_root;        /* pgsnap runs as root: switch to uid/gid */
	char boot_id[40];
	store_cfg cfg;
	/* Connections to the service kept for reuse (pgsnap.c). */
	pthread_mutex_t svc_mu;
	void *svc_cache[4];
	int svc_ncache;
	void (*svc_free)(void *);
};

/* Switch this thread's filesystem identity to the server user (no-op when
 * not root); returns the previous ids for fs_restore. */
typedef struct fs_ids { int uid, gid; } fs_ids;
fs_ids fs_become(const pgsnap_store *s);
void fs_restore(fs_ids ids);
/* Create a directory owned by the server user, mode 0700. */
int mkdir_server(const pgsnap_store *s, const char *path);

/* ---- spawn.c ---------------------------------------------------------- */

/* An overlay to mount in a user+mount namespace of the child's own,
 * before it execs (overlayfs as an ordinary user). */
typedef struct spawn_overlay {
	const char *lower, *upper, *work, *target;
} spawn_overlay;

typedef struct spawn_opts {
	const pgsnap_store *store;   /* run as its server user when root */
	const spawn_overlay *overlay;
	int out_fd;                  /* stdout+stderr; -1: /dev/null */
	const char *cwd;
	bool new_session;            /* setsid(): survive our exit */
	char *const *envp;           /* NULL: environ */
	int in_fd;                   /* stdin; 0 (the default): /dev/null */
} spawn_opts;

/* vfork+execv (no shell); raw syscalls switch the uid in the child so no
 * glibc lock or buffer state is touched.  Returns the pid or -errno.
 * path NULL (with overlay): exit 0 once the overlay is mounted, a probe. */
pid_t spawn_process(const char *path, char *const argv[],
		    const spawn_opts *o);
/* Run to completion; returns exit status (0..255), 128+sig, or -errno. */
int run_process(const char *path, char *const argv[], const spawn_opts *o);
/* Run it with stdout+stderr into buf (at most len - 1 bytes, then NUL),
 * waiting up to timeout_ms for it to end; its exit status is not looked
 * at.  Returns the bytes read or -errno; o->out_fd is ignored. */
ssize_t spawn_capture(const char *path, char *const argv[],
		      const spawn_opts *o, int timeout_ms, char *buf, size_t len);
/* Wait for pid (any process, via pidfd) with a deadline in ms. 0 if it
 * ended, -ETIMEDOUT otherwise. Reaps it when it is our child. */
int wait_pid_exit(pid_t pid, int timeout_ms);
int pidfd_open_pid(pid_t pid);
/* Run fn(arg) in a detached process (orphaned to init, its own session)
 * holding nothing of ours: stdin/out/err on /dev/null, fd as its fd 3,
 * every other descriptor closed.  fn may use only system calls (we may
 * have other threads); the process exits when it returns.  0 or -errno. */
int spawn_detached(int fd, void (*fn)(void *arg), void *arg);

/* ---- server.c --------------------------------------------------------- */

typedef struct server_start {
	const char *datadir;
	const char *sockdir;
	const char *log_path;
	int port;
	bool tcp;
	const char *server_opts;     /* extra words for postgres */
	int timeout_ms;
	bool ipv6;                   /* with tcp: also listen on ::1 */
	const spawn_overlay *overlay;/* mounted in the server's namespace */
	const char *ready_dir;       /* where postmaster.pid appears
					(NULL: datadir) */
} server_start;

/* Start postgres on datadir and return once it accepts connections.
 * On failure the error holds the server's own last log lines. */
int server_start_ready(const pgsnap_store *s, const server_start *st,
		       pid_t *pid, pgsnap_error *err);
/* Remove the socket and lock file a dead server left in sockdir (a
 * zombie still counts as alive to postgres). */
void server_clear_socket(const char *sockdir, int port);
/* Fast shutdown; escalate to immediate and SIGKILL after deadlines. */
int server_stop(pid_t pid, unsigned long long start, int timeout_ms);
/* Immediate shutdown (SIGQUIT), SIGKILL after the deadline: for a server
 * whose files go with it, where a shutdown checkpoint is wasted work
 * (~6 ms instead of 10-35 ms for a fresh clone, measured). */
int server_quit(pid_t pid, unsigned long long start, int timeout_ms);
/* The last lines of a log file, joined with " | ", into buf. */
void log_tail(const char *path, int lines, char *buf, size_t len);
/* Pick a free TCP port on 127.0.0.1 (the server may still lose a race;
 * callers retry on "address in use"). */
int free_tcp_port(void);
/* A port free on both 127.0.0.1 and ::1; -EADDRNOTAVAIL without IPv6. */
int free_tcp_port_dual(void);

/* ---- record.c: a clone's record and what it says ----------------------- */

#define PGSNAP_DEFAULT_TIMEOUT_S 60   /* -w when not given */

/* Parse/format records as text: a header line, then a line per record
 * (exposed for tests and the fuzzer).  records_salvage keeps what parses
 * and counts the rest in *dropped. */
int records_parse(const char *text, size_t len, pgsnap_clone **recs,
		  size_t *n, pgsnap_error *err);
int records_salvage(const char *text, size_t len, pgsnap_clone **recs,
		    size_t *n, size_t *dropped);
char *records_format(const pgsnap_clone *recs, size_t n, size_t *len);
/* -w as a number of seconds (the default for -1); 0: no limit. */
long effective_timeout(const pgsnap_clone *c);
bool clone_is_lease(const pgsnap_clone *c);   /* one database of a server */
bool clone_is_shared(const pgsnap_clone *c);  /* a server handing them out */
/* Does this record need watching (a limit, an owner, a process at work)? */
bool record_watched(const pgsnap_clone *c);
/* Leases of server id among v[0..n-1]. */
size_t shared_leases(const pgsnap_clone *v, size_t n, const char *id);
/* Does ref (an id, URL, JDBC URL or directory) name clone c? */
bool clone_matches(const pgsnap_clone *c, const char *ref);

/* ---- registry.c: a record file per clone --------------------------------- */

typedef struct reg_lock {
	int fd;
	int64_t locked_us, wait_us;  /* for PGSNAP_LOCK_TRACE */
	const char *trace;
} reg_lock;
#define REG_LOCK_INIT { .fd = -1 }

/* Make RUN/records and RUN/avail; move a registry of pgsnap 0.1 into
 * record files (once). */
int registry_init(const pgsnap_store *s, pgsnap_error *err);
/* The lock around read-modify-write of records; never held across a
 * clone, a server start or stop. */
int registry_lock(const pgsnap_store *s, reg_lock *l, pgsnap_error *err);
void registry_unlock(reg_lock *l);
void registry_unlockp(reg_lock *l);
#define cleanup_registry __attribute__((cleanup(registry_unlockp)))
/* One record: -ENOENT when there is none, -EBADMSG when it is damaged. */
int registry_get(const pgsnap_store *s, const char *id, pgsnap_clone *out,
		 pgsnap_error *err);
/* Write (replace) a record; add one whose id must be new (-EEXIST, no
 * message, when taken); delete one.  Callers hold the lock. */
int registry_put(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err);
int registry_add(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err);
int registry_del(const pgsnap_store *s, const char *id);
/* Lock, read record id (NULL to fn when there is none), let fn change
 * it, write or delete it as fn says (REG_KEEP, REG_PUT, REG_DEL, or a
 * negative errno), unlock. */
enum { REG_KEEP = 0, REG_PUT = 1, REG_DEL = 2 };
int registry_edit(const pgsnap_store *s, const char *id,
		  int (*fn)(const pgsnap_store *, pgsnap_clone *, void *),
		  void *arg, pgsnap_error *err);
/* Every record, without the lock, in creation order; damaged ones only
 * by name (bad). */
typedef struct reg_scan {
	pgsnap_clone *v;
	size_t n;
	char (*bad)[32];
	size_t nbad;
} reg_scan;
int registry_scan(const pgsnap_store *s, reg_scan *out, pgsnap_error *err);
void registry_scan_free(reg_scan *sc);
/* The same as a plain array (free() it). */
int registry_list(const pgsnap_store *s, pgsnap_clone **out, size_t *n,
		  pgsnap_error *err);
/* The record ref names (id, URL, JDBC URL, directory); -ENOENT. */
int registry_find(const pgsnap_store *s, const char *ref, pgsnap_clone *out,
		  pgsnap_error *err);
/* The index of servers of variant sig that new may hand out. */
int registry_avail_add(const pgsnap_store *s, const char *sig, const char *id);
void registry_avail_del(const pgsnap_store *s, const char *sig,
			const char *id);
/* Their records (stale entries dropped); *out malloc'ed. */
int registry_avail(const pgsnap_store *s, const char *sig,
		   pgsnap_clone **out, size_t *n);
/* Make the empty record files that spare writes a file creation (the
 * service, off the handouts' path); how many were missing. */
size_t registry_blanks_fill(const pgsnap_store *s);
/* Remove them (under the lock: writers take them under it). */
void registry_blanks_drop(const pgsnap_store *s);
/* Temp files of writers that died; their number. */
size_t registry_drop_stale_tmp(const pgsnap_store *s);
/* Remove a damaged record file (name as registry_scan gave it). */
int registry_drop_damaged(const pgsnap_store *s, const char *name);

/* ---- proc.c: what /proc says about a clone's postgres ---------------- */

/* Line n (1-based) of datadir/postmaster.pid; its pid (0: none). */
int pidfile_line(const char *datadir, int n, char *buf, size_t len);
pid_t pidfile_pid(const char *datadir);
/* The live postmaster of this clone (the record's pid, or postmaster.pid's
 * if that process runs in the data directory), with its start time. */
pid_t find_server(const pgsnap_clone *c, unsigned long long *start);
/* Remove the System V segment a killed server left (nobody attached). */
void drop_stale_shm(const char *datadir);
/* Client backends of a postmaster (its children that are not helpers),
 * of database db only when db is not NULL; sig != 0: signal each of them
 * (those of db, whose titles say so). */
int server_clients(pid_t postmaster, const char *db, int sig);
/* Is pid stopped (SIGSTOP)? */
bool proc_stopped(pid_t pid);
/* When a client last left the clone's server (its log's mtime: servers
 * log disconnections); 0 when unknown. */
int64_t clone_idle_since_ms(const pgsnap_clone *c);

/* ---- snapshot.c ------------------------------------------------------- */

int snapshot_dir(const pgsnap_store *s, const char *name, char *buf,
		 size_t len);
/* The snapshot a new clone starts from, built or refreshed as the options
 * ask (shipped recipe, --build-if-stale, --now), refused when another
 * PostgreSQL major made it.  name receives its name; *lock_fd holds a
 * shared lock on it (a rebuild waits) until the caller has cloned it. */
int snapshot_for_new(pgsnap_store *s, const pgsnap_new_opts *o, char *name,
		     size_t len, int *lock_fd, pgsnap_error *err);

/* ---- clone.c: the engines (strategy) ---------------------------------- */

typedef struct clone_job {
	const pgsnap_store *store;
	const char *golden;          /* snapshot's data directory */
	const char *snapdir;         /* snapshot directory (manifest, ...) */
	const char *dir;             /* the clone's directory */
	char datadir[600];           /* out: where postgres runs */
	/* out, overlay as an ordinary user: the mount exists only in the
	 * server's own user+mount namespace (spawn_overlay), and its
	 * postmaster.pid shows up in ready_dir (the upper layer). */
	spawn_overlay overlay;
	char ov_upper[700], ov_work[700];
	const char *ready_dir;
} clone_job;

typedef struct clone_engine {
	pgsnap_method method;
	const char *name;
	/* Can this engine work for this store?  0 or -errno + reason. */
	int (*probe)(const pgsnap_store *s, pgsnap_error *err);
	/* Make job->datadir; on failure leave nothing made inside job->dir. */
	int (*clone)(clone_job *job, pgsnap_error *err);
	/* Undo what clone made (unmount etc.); files go with the clone dir. */
	int (*release)(const pgsnap_store *s, const char *dir);
} clone_engine;

const clone_engine *clone_engine_for(pgsnap_method m);
/* Called once for every new snapshot (build, save, import) on its
 * directory before it is renamed into place: write what the engines need
 * at clone time (the manifest, ...), so that cloning never walks the
 * golden. */
int clone_prepare_snapshot(const pgsnap_store *s, const char *snapdir,
			   pgsnap_error *err);
int clone_choose(const pgsnap_store *s, pgsnap_method want,
		 const clone_engine **out, pgsnap_error *err);
/* The same, knowing the snapshot (its size weighs in the automatic
 * choice: overlayfs copies a whole file up on its first write). */
int clone_choose_for(const pgsnap_store *s, pgsnap_method want,
		     const char *snapdir, const clone_engine **out,
		     pgsnap_error *err);
/* Lines "method NAME works|unavailable: why" and "new uses NAME: why";
 * fresh probes again instead of trusting the store's cached answers. */
int clone_describe(const pgsnap_store *s, const char *snapdir, bool fresh,
		   char *buf, size_t len);

/* ---- clone_trash.c: a removed clone is renamed into RUN/trash -------- */

/* Delete everything in the trash now (gc calls it). */
int trash_empty(const pgsnap_store *s);
/* Delete the trash in a detached background process; returns at once. */
int trash_kick(const pgsnap_store *s);
/* The same for what directory path holds. */
int trash_kick_dir(const pgsnap_store *s, const char *path);

/* ---- sql.c ------------------------------------------------------------ */

int sql_connect(const char *sockdir, int port, const char *dbname,
		PGconn **out, pgsnap_error *err);
int sql_exec(PGconn *conn, const char *sql, pgsnap_error *err);
int sql_set_password(PGconn *conn, const char *user, const char *password,
		     pgsnap_error *err);

/* ---- url.c ------------------------------------------------------------ */

size_t url_encode(const char *in, char *out, size_t len);

#endif
