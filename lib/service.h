/* service.h - the store's service (service.c), its requests (serve.c) and
 * its pool keepers (keeper.c); docs/protocol.md is the protocol. */
#ifndef PGSNAP_SERVICE_H
#define PGSNAP_SERVICE_H

#include "internal.h"
#include "proto.h"

#include <pthread.h>

typedef struct keeper keeper;
typedef struct prepared prepared;
struct handout;

typedef struct service {
	const pgsnap_store *s;
	int lock_fd;                 /* RUN/service.lock, held for life */
	int listen_fd;
	int wake_fd;                 /* eventfd: the watcher looks now */
	char sock[600];
	pthread_mutex_t mu;          /* what follows */
	int conns;                   /* open connections */
	int64_t last_use_ms;         /* a connection opened or closed */
	bool leave_now;              /* rm all=1: no lingering */
	int tasks;                   /* clones being ended in the background */
	bool exiting;
	keeper *keepers;             /* the pool variants kept warm */
	/* Stores of other server users (as root, new -u NAME). */
	pgsnap_store *others[8];
	pid_t sentinel;              /* restarts us if we are killed */
	int sentinel_fd;
	/* handout.c: new's decisions per kind of request (under mu), and
	 * the requests waiting to be served together (under hmu). */
	struct prepared *prepared;
	pthread_mutex_t hmu;
	struct handout *pending;
	bool combining;
	int64_t handout_us;          /* the last handout asked (atomic) */
} service;

typedef struct conn {
	service *sv;
	int fd;
	bool refused;                /* another user's: told so, then closed */
	unsigned uid;
	pid_t pid;                   /* the peer, alive while connected */
	unsigned long long pid_start; /* its start time once asked; 0: not */
	size_t len;                  /* bytes read into buf */
	char buf[PROTO_LINE_MAX];
} conn;

/* ---- service.c ---- */

/* The socket's path: RUN/service.sock, or a short one for a deep store. */
int service_sock_path(const pgsnap_store *s, char *buf, size_t len);
bool service_running(const pgsnap_store *s);
/* Start the store's service unless one runs; returns once it listens. */
int service_ensure(const pgsnap_store *s, pgsnap_error *err);
/* The service itself, in the child service_ensure forked: never returns. */
void service_main(const pgsnap_store *s, int lock_fd, int ready_fd)
	__attribute__((noreturn));
void service_wake(service *sv);
/* Wait (briefly) for a burst of handouts to pass. */
void service_settle(service *sv);
/* The store whose server user is user (ours, or one opened for it). */
pgsnap_store *service_store_for(service *sv, const char *user,
				pgsnap_error *err);
/* Stop listening and let go of the service lock (callers hold the
 * registry lock, then exit). */
void service_quit(service *sv);
/* Leave on purpose (the sentinel then does not start another service). */
void service_exit(service *sv, int status) __attribute__((noreturn));
void conn_done(conn *c);
/* owner's start time if it is c's peer (alive while connected: its pid is
 * no other's), read once per connection; else 0. */
unsigned long long conn_owner_start(conn *c, pid_t owner);

/* ---- handout.c: the fast path of new --shared ---- */

/* A database of a warm shared server for resolved options o (the slow way
 * when none has one left); owner_start: o->owner's start time when the
 * caller knows it (0: read from /proc).  deliver (may be NULL) answers the caller: when
 * its database comes from a batch served by another thread, that thread
 * calls it at once (so a burst of callers is answered by one thread, not
 * by waking each in turn), and handout_shared returns 1: answered. */
typedef void handout_deliver(void *ctx, const pgsnap_clone *out);
int handout_shared(service *sv, pgsnap_store *s, const pgsnap_new_opts *o,
		   unsigned long long owner_start, pgsnap_clone *out,
		   handout_deliver *deliver, void *ctx, pgsnap_error *err);
#define HANDOUT_PREPARED 16          /* kinds of requests remembered */
void handout_init(service *sv);

/* ---- serve.c: a connection's requests ---- */

void *conn_main(void *arg);

/* ---- keeper.c: the warm pool's keepers, a thread per variant ---- */

/* Keep pool_size(o) servers of o's variant warm (a keeper per variant;
 * o is copied).  The handout that prompted it: kick the keeper. */
void keeper_want(service *sv, const pgsnap_new_opts *o);
/* Stop the keepers (of snapshot snap, or all when NULL), waiting until
 * their pooled servers are gone. */
void keeper_stop(service *sv, const char *snap);
/* The options that make a variant (a keeper's and handout.c's key). */
void keeper_variant_key(const pgsnap_new_opts *o, char *buf, size_t len);
/* Is any keeper running?  (sv->mu held.) */
bool keeper_running(const service *sv);
/* The running keepers as a JSON array (sv->mu held). */
void keeper_describe(const service *sv, jbuf *b);

#endif
