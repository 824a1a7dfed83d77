/*
 * internal.h - what the modules of libpgsnap share and the public header
 * does not promise.  Tests link the internal archive and may use it.
 */
#ifndef PGSNAP_INTERNAL_H
#define PGSNAP_INTERNAL_H

#include "pgsnap.h"
#include "pq.h"

#include <errno.h>
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
#define cleanup_free __attribute__((cleanup(pgsnap_freep)))
#define cleanup_close __attribute__((cleanup(pgsnap_closep)))

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
/* Start time of a process (field 22 of /proc/PID/stat), 0 if gone. */
unsigned long long proc_start_time(pid_t pid);
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
/* Create c->sockdir, mode 0700, owned by the server user. */
int sockdir_make(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err);
/* Remove c->sockdir when it lives outside the clone directory. */
int sockdir_remove(const pgsnap_store *s, const pgsnap_clone *c);
/* Are the record's dir and sockdir where pgsnap puts them?  Nothing else
 * is ever stopped or removed on the word of a registry record. */
bool clone_paths_valid(const pgsnap_store *s, const pgsnap_clone *c);

/* ---- store.c ---------------------------------------------------------- */

struct pgsnap_store {
	char home[512];      /* snapshots live here (disk) */
	char run[512];       /* clones, sockets, registry (RAM when possible) */
	char bindir[512];    /* PostgreSQL binaries */
	char pg_version[32]; /* "15.18" */
	int pg_major;
	char user[64];       /* the server's OS user */
	uid_t uid;           /* its uid and gid */
	gid_t gid;
	bool as_root;        /* pgsnap runs as root: switch to uid/gid */
	char boot_id[40];
};

/* Switch this thread's filesystem identity to the server user (no-op when
 * not root); returns the previous ids for fs_restore. */
typedef struct fs_ids { int uid, gid; } fs_ids;
fs_ids fs_become(const pgsnap_store *s);
void fs_restore(fs_ids ids);
/* Create a directory owned by the server user, mode 0700. */
int mkdir_server(const pgsnap_store *s, const char *path);

/* ---- spawn.c ---------------------------------------------------------- */

typedef struct spawn_opts {
	const pgsnap_store *store;   /* run as its server user when root */
	int out_fd;                  /* stdout+stderr; -1: /dev/null */
	const char *cwd;
	bool new_session;            /* setsid(): survive our exit */
	char *const *envp;           /* NULL: environ */
	int in_fd;                   /* stdin; 0 (the default): /dev/null */
} spawn_opts;

/* vfork+execv (no shell); raw syscalls switch the uid in the child so no
 * glibc lock or buffer state is touched.  Returns the pid or -errno. */
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
	const char *const *wrapper;  /* argv prefix that execs postgres */
	const char *ready_dir;       /* where postmaster.pid appears
					(NULL: datadir) */
} server_start;

/* Start postgres on datadir and return once it accepts connections.
 * On failure the error holds the server's own last log lines. */
int server_start_ready(const pgsnap_store *s, const server_start *st,
		       pid_t *pid, pgsnap_error *err);
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

/* ---- registry.c ------------------------------------------------------- */

typedef struct registry {
	int lock_fd;
	pgsnap_clone *recs;
	size_t n, cap;
	char path[600];
	int64_t locked_us, wait_us;  /* for PGSNAP_LOCK_TRACE */
} registry;

/* Take the lock and load the records; a corrupt or foreign file is an
 * error that names 'pgsnap gc --repair'. */
int registry_lock(const pgsnap_store *s, registry *r, pgsnap_error *err);
/* The same for --repair: keep the records that parse, count the rest in
 * *dropped (a foreign file counts as one and yields no record). */
int registry_lock_salvage(const pgsnap_store *s, registry *r, size_t *dropped,
			  pgsnap_error *err);
/* Read without the lock: every write is a rename, so this sees one
 * complete version.  For decisions re-checked under the lock. */
int registry_read(const pgsnap_store *s, pgsnap_clone **recs, size_t *n,
		  pgsnap_error *err);
void registry_unlock(registry *r);       /* also frees recs */
int registry_save(registry *r, pgsnap_error *err);
pgsnap_clone *registry_find(registry *r, const char *id);
/* Does ref (an id, URL, JDBC URL or directory) name clone c? */
bool clone_matches(const pgsnap_clone *c, const char *ref);
int registry_append(registry *r, const pgsnap_clone *c);
/* Lock, apply fn to record id (NULL when there is none: fn decides), save
 * unless fn returned an error, unlock. */
int registry_edit(pgsnap_store *s, const char *id,
		  int (*fn)(registry *, pgsnap_clone *, void *), void *arg,
		  pgsnap_error *err);
void registry_delete(registry *r, pgsnap_clone *c);
/* Parse/format the registry text (exposed for tests and the fuzzer). */
int registry_parse(const char *text, size_t len, pgsnap_clone **recs,
		   size_t *n, pgsnap_error *err);
char *registry_format(const pgsnap_clone *recs, size_t n, size_t *len);

/* ---- gc.c: what is no longer wanted ---------------------------------- */

#define PGSNAP_DEFAULT_TIMEOUT_S 60   /* -w when not given */
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
	int64_t next_due_ms;         /* earliest time limit ahead (wall ms) */
	bool busy;                   /* a clone past its time has clients */
} gc_result;

/* One pass: judge every record and clone directory, remove what is due. */
int gc_run(pgsnap_store *s, const gc_opts *o, gc_result *res,
	   pgsnap_error *err);
/* The bounded pass new makes when no supervisor runs; errors ignored. */
void gc_before_new(pgsnap_store *s);
/* -w as a number of seconds (the default for -1); 0: no limit. */
long effective_timeout(const pgsnap_clone *c);
/* Does this record need a supervisor (a limit, or a process at work)? */
bool record_watched(const pgsnap_clone *c);
/* Client backends of a postmaster (its children that are not helpers),
 * of database db only when db is not NULL; sig != 0: signal each of them
 * (those of db, whose titles say so). */
int server_clients(pid_t postmaster, const char *db, int sig);
/* PGSNAP_TEST_PAUSE=point stops this process there (SIGSTOP), so that a
 * test can kill it at a known instant. */
void test_pause(const char *point);

/* ---- supervisor.c: enforces -w and --owner --------------------------- */

bool supervisor_running(const pgsnap_store *s);
/* Ask the supervisor to look now (SIGTERM): it leaves if nothing is left
 * to watch.  Waits up to wait_ms for it to be gone. */
void supervisor_nudge(const pgsnap_store *s, int wait_ms);
/* Start the store's supervisor unless one runs. */
int supervisor_ensure(const pgsnap_store *s, pgsnap_error *err);
/* The supervisor itself (pgsnap __supervise); returns when there is
 * nothing left to watch. */
int supervisor_run(pgsnap_store *s, int lock_fd, pgsnap_error *err);

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
	 * server's own user+mount namespace, so the server starts through
	 * this argv prefix (NULL-terminated; pgsnap __userns-overlay ...),
	 * and its postmaster.pid shows up in ready_dir (the upper layer). */
	const char *wrapper[8];
	char wrap_buf[4][700];
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

/* The pgsnap binary, to run pgsnap's hidden commands: /proc/self/exe when
 * we are pgsnap, else PGSNAP_EXE (supervisor.c).  0 or -ENOENT. */
int pgsnap_exe_find(char *buf, size_t len);
/* pgsnap __userns-overlay: enter a new user+mount namespace mapping only
 * the caller, mount the overlay there, then exec prog with argv; with
 * prog NULL (the probe) return 0 once mounted.  Returns -errno. */
int overlay_userns_exec(const char *lower, const char *upper,
			const char *work, const char *target,
			const char *prog, char *const argv[],
			pgsnap_error *err);

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

/* ---- pgsnap.c ----------------------------------------------------------- */

/* pgsnap_new; pooled: a clone for the pool (state "pooled", never taken
 * from the pool itself). */
int clone_new(pgsnap_store *s, const pgsnap_new_opts *o, bool pooled,
	      pgsnap_clone *out, pgsnap_error *err);
/* Remove clone id if it is still in the pool; -ENOENT when it is not. */
int clone_rm_pooled(pgsnap_store *s, const char *id, pgsnap_error *err);

/* ---- shared.c: --shared, a fresh database in a shared server ----------- */

bool clone_is_lease(const pgsnap_clone *c);   /* one database of a server */
bool clone_is_shared(const pgsnap_clone *c);  /* a server handing them out */
/* Leases of server id among v[0..n-1]. */
size_t shared_leases(const pgsnap_clone *v, size_t n, const char *id);
/* Hand out the next database of a shared server of t->opts_sig (one in
 * use first, else a pooled one), as a lease with t's creator, owner and
 * limits, in one registry update.  1: *out is the lease; 0: none. */
int shared_take(pgsnap_store *s, const pgsnap_clone *t, pgsnap_clone *out,
		pgsnap_error *err);
/* The lock of variant sig's server starts (run/pool/SIG.start), taken:
 * an fd to close, or -errno. */
int shared_start_lock(const pgsnap_store *s, const char *sig);
/* A server srv just started for t: record it as shared with t's lease of
 * its first database (*out), in one registry update. */
int shared_commit(pgsnap_store *s, const pgsnap_clone *srv,
		  const pgsnap_clone *t, pgsnap_clone *out, pgsnap_error *err);
/* End lease id (its sessions are terminated).  When it was its server's
 * last and the server has no database left, the server is marked
 * "stopping" for us and its id is put in retire: the caller removes it. */
int shared_end_lease(pgsnap_store *s, const char *id, char *retire,
		     size_t len, pgsnap_error *err);
/* For pool_warm: give the databases of shared server c the relcache init
 * file the session conn (on `postgres`) has just built. */
struct pg_conn;
void shared_warm(const pgsnap_store *s, struct pg_conn *conn,
		 const pgsnap_clone *c);

/* ---- pool.c: the warm pool ---------------------------------------------- */

/* The variant of a clone: what makes its server differ from another's
 * (snapshot and which build of it, method, -t, -o, --now), as 16 hex. */
void pool_sig(const pgsnap_new_opts *o, const char *snap, const char *snapdir,
	      const char *method, char *sig, size_t len);
/* Clones to keep warm for o; 0: no pool. */
int pool_size(const pgsnap_new_opts *o);
/* PGSNAP_POOL_TTL: seconds an unused pooled server (or a shared one with
 * databases left) lives. */
long pool_ttl_s(void);
/* Hand out the oldest live pooled clone of tmpl->opts_sig, giving it the
 * caller's fields of tmpl (creator, owner, limits, created_ms), in one
 * registry update.  1: *out is it; 0: the pool has none. */
int pool_take(pgsnap_store *s, const pgsnap_clone *tmpl, pgsnap_clone *out,
	      pgsnap_error *err);
/* Ready a server for the pool before it is recorded as pooled. */
void pool_warm(const pgsnap_store *s, const pgsnap_clone *c);
/* Stop every keeper of the store and wait (bounded) until they are gone
 * with their pooled clones. */
void pool_stop_keepers(pgsnap_store *s);
/* Remove the pooled clones of snapshot snap and stop their keepers (the
 * snapshot is going away: they are nobody's clones). */
void pool_forget_snapshot(pgsnap_store *s, const char *snap);

#endif
