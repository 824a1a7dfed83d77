/*
 * judge.c - should a clone end, and why?
 *
 * A pure function of a record and of facts read beforehand (gc.c reads
 * them from /proc and the disk): every rule of a clone's life is here, in
 * one place, and unit tested over recorded inputs (test/unit/unit_judge.c).
 *
 * A "starting" or "stopping" record whose creator is alive belongs to that
 * process: never touched.  After a reboot (another boot id) no pid in a
 * record means anything.  A time limit (-w W) ends a clone once no client
 * has been on for W seconds, counted from when the last one left, and
 * never in its first W seconds.
 */
#include "internal.h"
#include "judge.h"

#include <string.h>

static void note_due(judge_out *o, int64_t due)
{
	if (!o->due_ms || due < o->due_ms)
		o->due_ms = due;
}

/* A shared server ends once every database was handed out and every
 * lease ended, or when none was handed out for PGSNAP_POOL_TTL. */
static const char *judge_shared(const judge_ctx *x, const pgsnap_clone *c,
				const judge_facts *f, judge_out *o)
{
	if (f->leases)
		return NULL;
	if (c->dbs_used >= c->dbs)
		return "all its databases were handed out and used";
	if (x->now_ms >= c->used_ms + x->pool_ttl_s * 1000)
		return "no database of it was handed out for PGSNAP_POOL_TTL "
		       "seconds";
	note_due(o, c->used_ms + x->pool_ttl_s * 1000);
	return NULL;
}

static const char *judge_limit(const judge_ctx *x, const pgsnap_clone *c,
			       const judge_facts *f, judge_out *o)
{
	long t = effective_timeout(c);
	int64_t due, idle;

	if (t <= 0)
		return NULL;
	idle = f->idle_since_ms > c->created_ms ? f->idle_since_ms
						: c->created_ms;
	due = idle + (int64_t)t * 1000;
	if (x->now_ms < due) {
		note_due(o, due);
		return NULL;
	}
	/* A paused server (snapshot save copies its files) is in use. */
	if (f->server_paused || f->clients > 0) {
		o->busy = true;
		return NULL;
	}
	if (f->clients < 0) {
		o->need_clients = true;
		return NULL;
	}
	return "its time limit is up: no client for that long";
}

void judge_record(const judge_ctx *x, const pgsnap_clone *c,
		  const judge_facts *f, judge_out *o)
{
	memset(o, 0, sizeof(*o));
	o->why = NULL;
	if (c->boot_id[0] && strcmp(c->boot_id, x->boot_id)) {
		o->other_boot = true;
		o->why = "made before the last reboot";
		return;
	}
	o->watched = record_watched(c);
	if (!f->paths_valid) {
		o->why = "its record names paths outside the store (only the "
			 "record goes)";
		return;
	}
	if (!strcmp(c->state, "kept")) {
		if (!f->dir_exists)
			o->why = "a kept clone whose directory is gone";
		return;
	}
	if (!strcmp(c->state, "starting") || !strcmp(c->state, "stopping") ||
	    !strcmp(c->state, "resetting")) {
		if (!f->creator_alive)
			o->why = !strcmp(c->state, "starting") ?
				"its creator died while making it" :
				!strcmp(c->state, "stopping") ?
				"its removal was interrupted" :
				"its reset was interrupted";
		return;
	}
	if (!f->server_alive)
		o->why = "its server died";
	else if (!f->dir_exists)
		o->why = "its directory is gone";
	else if (clone_is_shared(c))
		o->why = judge_shared(x, c, f, o);
	else if (clone_is_lease(c) && !f->parent_exists)
		o->why = "its shared server is gone";
	else if (c->owner > 0 && !f->owner_alive)
		o->why = "its owner process ended";
	else
		o->why = judge_limit(x, c, f, o);
}
