/*
 * keeper.c - the warm pool's keepers: a thread of the service per variant
 * in use, keeping N servers of it started, warm and listed (pool.c).
 *
 * A keeper refills at once when one of its servers is handed out (it
 * watches RUN/avail/SIG, where a handout removes an entry), two servers
 * at a time (a start waits on its own processes: two cores take two), and
 * ends its servers once PGSNAP_POOL_TTL seconds pass without a handout:
 * idle servers cost memory.  When the snapshot is rebuilt, the servers it
 * makes are another variant: it moves to that one and ends the old ones.
 */
#include "internal.h"
#include "newclone.h"
#include "pool.h"
#include "service.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>

#define KEEPER_PARALLEL 2
#define KEEPER_FAILURES 3
#define KEEPER_STOP_MS 15000

struct keeper {
	keeper *next;
	service *sv;
	char key[1600];              /* the options that make the variant */
	pgsnap_new_opts o;           /* its strings point below */
	char snapshot[64], server_opts[1024], now[128];
	int size;
	int wake_fd;                 /* eventfd: a handout, or stop */
	bool running, stopping;
	char sig[64];                /* the variant of the servers it makes */
	pthread_cond_t done;
};

void keeper_variant_key(const pgsnap_new_opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s|%d|%d|%d|%s|%s|%d",
		 o->snapshot ? o->snapshot : "default", (int)o->method, o->tcp,
		 o->ipv6, o->server_opts ? o->server_opts : "",
		 o->now ? o->now : "", o->shared);
}

bool keeper_running(const service *sv)
{
	const keeper *k;

	for (k = sv->keepers; k; k = k->next)
		if (k->running)
			return true;
	return false;
}

typedef struct refill_job {
	pgsnap_store *s;
	const pgsnap_new_opts *o;
	pgsnap_clone c;
	int r;
	pthread_t th;
	bool started;
} refill_job;

static void *refill_one(void *arg)
{
	refill_job *j = arg;

	j->r = clone_new(j->s, j->o, true, &j->c, NULL);
	return NULL;
}

/* Start up to n servers at once; how many were made. */
static int refill(keeper *k, int n)
{
	refill_job job[KEEPER_PARALLEL];
	int i, ok = 0;

	memset(job, 0, sizeof(job));
	for (i = 0; i < n; i++) {
		job[i].s = (pgsnap_store *)k->sv->s;
		job[i].o = &k->o;
		job[i].started = i > 0 &&
			pthread_create(&job[i].th, NULL, refill_one, &job[i]) == 0;
	}
	refill_one(&job[0]);
	for (i = 1; i < n; i++) {
		if (job[i].started)
			pthread_join(job[i].th, NULL);
		else
			refill_one(&job[i]);
	}
	for (i = 0; i < n; i++) {
		if (job[i].r < 0)
			continue;
		ok++;
		/* A rebuilt snapshot: its servers are a new variant. */
		if (strcmp(job[i].c.opts_sig, k->sig)) {
			if (k->sig[0])
				pool_drain(k->sv->s, k->sig, NULL);
			snprintf(k->sig, sizeof(k->sig), "%s", job[i].c.opts_sig);
		}
	}
	return ok;
}

static int watch_avail(keeper *k, int ifd, int wd)
{
	char dir[700];

	if (wd >= 0)
		inotify_rm_watch(ifd, wd);
	snprintf(dir, sizeof(dir), "%s/avail/%s", k->sv->s->run, k->sig);
	return inotify_add_watch(ifd, dir, IN_DELETE | IN_MOVED_FROM);
}

static void *keeper_main(void *arg)
{
	keeper *k = arg;
	service *sv = k->sv;
	int64_t last_use = mono_us() / 1000;
	long ttl = sv->s->cfg.pool_ttl_s;
	int failures = 0, ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	int wd = -1;
	char watched[64] = "";

	for (;;) {
		struct pollfd p[2] = { { k->wake_fd, POLLIN, 0 }, { ifd, POLLIN, 0 } };
		char drain[4096];
		int64_t left;
		int have, made;
		bool stop;

		pthread_mutex_lock(&sv->mu);
		stop = k->stopping;
		pthread_mutex_unlock(&sv->mu);
		if (stop)
			break;
		/* Servers are started, and the pool counted, once a burst of
		 * handouts passed (what finds no warm database meanwhile
		 * starts a server of its own). */
		service_settle(sv);
		have = k->sig[0] ? pool_count(sv->s, k->sig) : 0;
		if (have >= 0 && have < k->size) {
			made = refill(k, k->size - have < KEEPER_PARALLEL ?
				      k->size - have : KEEPER_PARALLEL);
			if (!made && ++failures >= KEEPER_FAILURES)
				break;
			if (made)
				failures = 0;
			/* A handout (or our start): the pool is in use. */
			last_use = mono_us() / 1000;
			if (ifd >= 0 && strcmp(watched, k->sig)) {
				wd = watch_avail(k, ifd, wd);
				snprintf(watched, sizeof(watched), "%s", k->sig);
			}
			continue;
		}
		left = last_use + ttl * 1000 - mono_us() / 1000;
		if (left <= 0)
			break;
		/* The pool is full: the next burst's record files too. */
		registry_blanks_fill(sv->s);
		if (poll(p, ifd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left) > 0) {
			uint64_t v;
			if (read(k->wake_fd, &v, sizeof(v)) < 0) {
				/* not this one */
			}
			while (ifd >= 0 && read(ifd, drain, sizeof(drain)) > 0)
				;
		}
	}
	if (k->sig[0])
		pool_drain(sv->s, k->sig, NULL);
	if (ifd >= 0)
		close(ifd);
	pthread_mutex_lock(&sv->mu);
	k->running = false;
	k->stopping = false;
	pthread_cond_broadcast(&k->done);
	pthread_mutex_unlock(&sv->mu);
	service_wake(sv);
	return NULL;
}

static keeper *keeper_new(service *sv, const pgsnap_new_opts *o,
			  const char *key)
{
	keeper *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->sv = sv;
	snprintf(k->key, sizeof(k->key), "%s", key);
	k->o = *o;
	k->o.progress = NULL;
	k->o.build_if_stale = 0;
	k->o.worker = "";
	k->o.owner = 0; /* pooled servers are nobody's until taken */
	snprintf(k->snapshot, sizeof(k->snapshot), "%s",
		 o->snapshot ? o->snapshot : "default");
	k->o.snapshot = k->snapshot;
	snprintf(k->server_opts, sizeof(k->server_opts), "%s",
		 o->server_opts ? o->server_opts : "");
	k->o.server_opts = o->server_opts ? k->server_opts : NULL;
	snprintf(k->now, sizeof(k->now), "%s", o->now ? o->now : "");
	k->o.now = o->now ? k->now : NULL;
	k->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_cond_init(&k->done, NULL);
	if (k->wake_fd < 0) {
		free(k);
		return NULL;
	}
	k->next = sv->keepers;
	sv->keepers = k;
	return k;
}

static void kick(keeper *k)
{
	uint64_t one = 1;

	if (write(k->wake_fd, &one, sizeof(one)) < 0) {
		/* it is awake */
	}
}

void keeper_want(service *sv, const pgsnap_new_opts *o)
{
	char key[1600];
	pthread_attr_t at;
	pthread_t th;
	keeper *k;

	keeper_variant_key(o, key, sizeof(key));
	pthread_mutex_lock(&sv->mu);
	for (k = sv->keepers; k && strcmp(k->key, key); k = k->next)
		;
	if (!k && !sv->exiting)
		k = keeper_new(sv, o, key);
	if (k && !sv->exiting) {
		k->size = pool_size(sv->s, o);
		if (k->running) {
			kick(k);
		} else if (k->size > 0) {
			k->running = true;
			k->stopping = false;
			pthread_attr_init(&at);
			pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
			if (pthread_create(&th, &at, keeper_main, k) != 0)
				k->running = false;
			pthread_attr_destroy(&at);
		}
	}
	pthread_mutex_unlock(&sv->mu);
}

void keeper_describe(const service *sv, jbuf *b)
{
	const keeper *k;
	bool first = true;

	jb_raw(b, "[");
	for (k = sv->keepers; k; k = k->next) {
		if (!k->running)
			continue;
		jb_raw(b, first ? "{" : ", {");
		first = false;
		jb_field(b, "snapshot", k->snapshot);
		jb_field_int(b, "size", k->size);
		jb_field(b, "variant", k->sig);
		jb_raw(b, "}");
	}
	jb_raw(b, "]");
}

void keeper_stop(service *sv, const char *snap)
{
	struct timespec ts;
	keeper *k;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += KEEPER_STOP_MS / 1000;
	pthread_mutex_lock(&sv->mu);
	for (k = sv->keepers; k; k = k->next) {
		if (snap && strcmp(k->snapshot, snap))
			continue;
		if (k->running) {
			k->stopping = true;
			kick(k);
		}
	}
	/* They end their pooled servers on their way out. */
	for (k = sv->keepers; k; k = k->next)
		while ((!snap || !strcmp(k->snapshot, snap)) && k->running &&
		       pthread_cond_timedwait(&k->done, &sv->mu, &ts) == 0)
			;
	pthread_mutex_unlock(&sv->mu);
	if (snap)
		pool_drain(sv->s, NULL, snap);
}
