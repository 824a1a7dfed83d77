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
 * suite asking at once wait for one lock, not for 64 in a row.  What finds
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
	bool done, served;
	struct handout *next;
} handout;

void handout_init(service *sv)
{
	sv->prepared = calloc(HANDOUT_PREPARED, sizeof(*sv->prepared));
	pthread_mutex_init(&sv->hmu, NULL);
	pthread_cond_init(&sv->hcv, NULL);
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
		pthread_mutex_lock(&sv->hmu);
		for (i = 0; i < n; i++)
			h[i]->done = true;
		pthread_cond_broadcast(&sv->hcv);
		pthread_mutex_unlock(&sv->hmu);
		all = rest;
	}
}

/* A lease for template t from a warm shared server: true when served. */
static bool take_combined(service *sv, const pgsnap_clone *t, pgsnap_clone *out)
{
	handout me = { t, out, false, false, NULL };

	pthread_mutex_lock(&sv->hmu);
	me.next = sv->pending;
	sv->pending = &me;
	while (!me.done) {
		handout *batch;
		if (sv->combining) {
			pthread_cond_wait(&sv->hcv, &sv->hmu);
			continue;
		}
		sv->combining = true;
		batch = sv->pending;
		sv->pending = NULL;
		pthread_mutex_unlock(&sv->hmu);
		combine(sv, batch);
		pthread_mutex_lock(&sv->hmu);
		sv->combining = false;
		pthread_cond_broadcast(&sv->hcv);
	}
	pthread_mutex_unlock(&sv->hmu);
	return me.served;
}

int handout_shared(service *sv, pgsnap_store *s, const pgsnap_new_opts *o,
		   pgsnap_clone *out, pgsnap_error *err)
{
	new_prep p;
	pgsnap_clone t;
	int r;

	if ((r = new_check(o, err)) < 0 ||
	    (r = prepared_for(sv, s, o, &p, err)) < 0)
		return r;
	new_template(s, o, &p, &t);
	if (take_combined(sv, &t, out))
		return 0;
	/* Nothing warm: the slow way, which may start a server. */
	return clone_new(s, o, false, out, err);
}
