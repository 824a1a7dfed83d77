/*
 * handout.c - the service's fast path of `new --shared`: a database of a
 * warm server in one registry update, whatever the number of callers.
 *
 * What `new` decides before it hands out (the snapshot settled, the
 * engine, the variant: newclone.c, new_prepare) is the same for every
 * request of a kind: the service keeps it per kind of request and checks
 * it against the snapshot's meta file (a rebuild is a new one) with one
 * stat, preparing again at least once a minute (which also marks the
 * snapshot used).  Callers that arrive together are served together: the
 * first takes the pending requests of everyone and hands out all their
 * databases under one registry lock (flat combining), so 64 workers of a
 * suite asking at once wait for one lock, not for 64 in a row.  The
 * combining thread answers them too, and each waiter sleeps on a condition
 * variable of its own: on two cores, waking 64 threads at every batch for
 * them to answer in turn cost more than the handouts (service-handout-64's
 * p90 went from 17-20 ms to 10-12 ms with both).  What finds
 * no warm database goes the slow way (newclone.c: one caller starts a
 * server, the others take its databases).
 */
#include "internal.h"
#include "newclone.h"
#include "service.h"
#include "shared.h"

#include <stdio.h>
#include <string.h>

#define PREP_MAX_AGE_MS 60000

struct prepared {
	char key[1600];
	new_prep p;
	int64_t made_ms;
	int64_t used_ms;
};

typedef struct handout {
	const pgsnap_clone *t;
	pgsnap_clone *out;
	handout_deliver *deliver;
	void *ctx;
	bool done, served;
	pthread_cond_t cv;           /* its own: no herd wakes for one answer */
	struct handout *next;
	struct handout *batch_next;  /* the batch, as combine reorders next */
} handout;

void handout_init(service *sv)
{
	sv->prepared = calloc(HANDOUT_PREPARED, sizeof(*sv->prepared));
	pthread_mutex_init(&sv->hmu, NULL);
}

/* The decisions of new for o, from the cache when still current. */
static int prepared_for(service *sv, pgsnap_store *s, const pgsnap_new_opts *o,
			new_prep *p, pgsnap_error *err)
{
	char key[1600];
	int64_t now = now_ms();
	prepared *e, *lru = NULL;
	size_t i;
	int r;

	if (!sv->prepared) {
		cleanup_close int lock = -1;
		return new_prepare(s, o, p, &lock, err);
	}
	keeper_variant_key(o, key, sizeof(key));
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < HANDOUT_PREPARED; i++) {
		e = &sv->prepared[i];
		if (!strcmp(e->key, key) && now - e->made_ms < PREP_MAX_AGE_MS) {
			*p = e->p;
			e->used_ms = now;
			pthread_mutex_unlock(&sv->mu);
			if (new_prep_current(p))
				return 0;
			pthread_mutex_lock(&sv->mu);
			break;
		}
	}
	pthread_mutex_unlock(&sv->mu);
	{
		cleanup_close int lock = -1;
		if ((r = new_prepare(s, o, p, &lock, err)) < 0)
			return r;
	}
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < HANDOUT_PREPARED; i++) {
		e = &sv->prepared[i];
		if (!strcmp(e->key, key) || !e->key[0]) {
			lru = e;
			break;
		}
		if (!lru || e->used_ms < lru->used_ms)
			lru = e;
	}
	snprintf(lru->key, sizeof(lru->key), "%s", key);
	lru->p = *p;
	lru->made_ms = lru->used_ms = now;
	pthread_mutex_unlock(&sv->mu);
	return 0;
}

/* Serve every pending request of the same variant as the first. */
static void combine(service *sv, handout *all)
{
	const pgsnap_clone *t[64];
	pgsnap_clone *out[64];
	handout *h[64];
	size_t n, k, i;

	while (all) {
		handout *rest = NULL, *next;
		for (n = 0; all; all = next) {
			next = all->next;
			if (n < ARRAY_SIZE(h) &&
			    !strcmp(all->t->opts_sig, (n ? h[0] : all)->t->opts_sig)) {
				h[n] = all;
				t[n] = all->t;
				out[n++] = all->out;
			} else {
				all->next = rest;
				rest = all;
			}
		}
		k = shared_take_n(sv->s, t, out, n, NULL);
		for (i = 0; i < n; i++)
			h[i]->served = i < k;
		all = rest;
	}
}

/* As the combiner, with sv->hmu held: serve batches until none is pending
 * (a few at most, then the next caller in line takes over). */
static void combine_pending(service *sv)
{
	handout *batch, *h;
	int rounds = 0;

	sv->combining = true;
	while (sv->pending && rounds++ < 8) {
		batch = sv->pending;
		sv->pending = NULL;
		pthread_mutex_unlock(&sv->hmu);
		for (h = batch; h; h = h->next)
			h->batch_next = h->next;
		combine(sv, batch);
		for (h = batch; h; h = h->batch_next)
			if (h->served && h->deliver)
				h->deliver(h->ctx, h->out);
		pthread_mutex_lock(&sv->hmu);
		for (h = batch; h; h = h->batch_next) {
			h->done = true;
			pthread_cond_signal(&h->cv);
		}
	}
	sv->combining = false;
	if (sv->pending)
		pthread_cond_signal(&sv->pending->cv);
}

/* A lease for template t from a warm shared server: true when served.
 * Each waiter sleeps on its own condition variable: waking all of them
 * at every batch cost milliseconds of context switches on two cores. */
static bool take_combined(service *sv, const pgsnap_clone *t, pgsnap_clone *out,
			  handout_deliver *deliver, void *ctx)
{
	handout me = { .t = t, .out = out, .deliver = deliver, .ctx = ctx };

	pthread_cond_init(&me.cv, NULL);
	pthread_mutex_lock(&sv->hmu);
	me.next = sv->pending;
	sv->pending = &me;
	while (!me.done) {
		if (!sv->combining)
			combine_pending(sv);
		else
			pthread_cond_wait(&me.cv, &sv->hmu);
	}
	pthread_mutex_unlock(&sv->hmu);
	pthread_cond_destroy(&me.cv);
	return me.served;
}

int handout_shared(service *sv, pgsnap_store *s, const pgsnap_new_opts *o,
		   unsigned long long owner_start, pgsnap_clone *out,
		   handout_deliver *deliver, void *ctx, pgsnap_error *err)
{
	new_prep p;
	pgsnap_clone t;
	int r;

	__atomic_store_n(&sv->handout_us, mono_us(), __ATOMIC_RELAXED);
	/* An owner that is the connected peer lives: no /proc read. */
	if ((r = owner_start ? guard_fd_limit(err) : new_check(o, err)) < 0 ||
	    (r = prepared_for(sv, s, o, &p, err)) < 0)
		return r;
	new_template(s, o, &p, owner_start, &t);
	if (take_combined(sv, &t, out, deliver, ctx))
		return deliver ? 1 : 0;
	/* Nothing warm: the slow way, which may start a server. */
	return clone_new(s, o, false, out, err);
}
