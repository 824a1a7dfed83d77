/* unit_judge.c - every rule of a clone's life (judge.c), over recorded
 * inputs: a record, the facts gc read about it, and the time. */
#include "internal.h"
#include "judge.h"
#include "tap.h"

#include <string.h>

#define S 1000LL

static const judge_ctx ctx = { .now_ms = 1000 * S, .boot_id = "boot-a",
			       .pool_ttl_s = 300 };

/* A ready clone made at 900 s, -w 60, whose server and creator live. */
static void base(pgsnap_clone *c, judge_facts *f)
{
	memset(c, 0, sizeof(*c));
	memset(f, 0, sizeof(*f));
	snprintf(c->id, sizeof(c->id), "0000000a");
	snprintf(c->state, sizeof(c->state), "ready");
	snprintf(c->boot_id, sizeof(c->boot_id), "boot-a");
	c->created_ms = 900 * S;
	c->timeout_s = 60;
	f->creator_alive = f->server_alive = f->dir_exists = true;
	f->paths_valid = true;
	f->clients = -1;
}

static const char *why(const pgsnap_clone *c, const judge_facts *f,
		       const judge_ctx *x, judge_out *o)
{
	judge_record(x ? x : &ctx, c, f, o);
	return o->why ? o->why : "";
}

static void test_states(void)
{
	pgsnap_clone c;
	judge_facts f;
	judge_out o;

	base(&c, &f);
	snprintf(c.boot_id, sizeof(c.boot_id), "boot-b");
	f.server_alive = false;
	ok(strstr(why(&c, &f, NULL, &o), "reboot") && o.other_boot,
	   "another boot: removed, its pids trusted for nothing");

	base(&c, &f);
	snprintf(c.state, sizeof(c.state), "kept");
	f.server_alive = false;
	is_str(why(&c, &f, NULL, &o), "", "a kept clone stays");
	ok(!o.watched, "and needs no watching");
	f.dir_exists = false;
	ok(strstr(why(&c, &f, NULL, &o), "directory is gone") != NULL,
	   "a kept clone whose directory is gone goes");

	base(&c, &f);
	snprintf(c.state, sizeof(c.state), "starting");
	f.server_alive = false;
	is_str(why(&c, &f, NULL, &o), "", "a clone being made by a live "
	       "process is that process's");
	f.creator_alive = false;
	ok(strstr(why(&c, &f, NULL, &o), "creator died") != NULL,
	   "its creator died: half-made, removed");
	snprintf(c.state, sizeof(c.state), "stopping");
	ok(strstr(why(&c, &f, NULL, &o), "interrupted") != NULL,
	   "a removal whose process died is finished");

	base(&c, &f);
	f.server_alive = false;
	ok(strstr(why(&c, &f, NULL, &o), "server died") != NULL,
	   "its server died");
	base(&c, &f);
	f.paths_valid = false;
	ok(strstr(why(&c, &f, NULL, &o), "outside the store") != NULL,
	   "a record naming paths outside the store: only the record goes");
	base(&c, &f);
	f.dir_exists = false;
	ok(strstr(why(&c, &f, NULL, &o), "directory is gone") != NULL,
	   "its directory is gone");
	base(&c, &f);
	c.owner = 4242;
	f.owner_alive = true;
	is_str(why(&c, &f, NULL, &o), "", "its owner lives: kept");
	f.owner_alive = false;
	ok(strstr(why(&c, &f, NULL, &o), "owner") != NULL, "its owner ended");
}

static void test_time_limit(void)
{
	pgsnap_clone c;
	judge_facts f;
	judge_out o;
	judge_ctx x = ctx;

	base(&c, &f);
	x.now_ms = 959 * S;
	is_str(why(&c, &f, &x, &o), "", "59 s into -w 60: kept");
	ok(o.watched && o.due_ms == 960 * S, "watched, due at 60 s");
	x.now_ms = 961 * S;
	why(&c, &f, &x, &o);
	ok(!o.why && o.need_clients, "past 60 s: the clients are counted first");
	f.clients = 2;
	is_str(why(&c, &f, &x, &o), "", "with clients on: kept");
	ok(o.busy, "and watched closely (busy)");
	f.clients = 0;
	f.server_paused = true;
	is_str(why(&c, &f, &x, &o), "", "a paused server (snapshot save) is in use");
	f.server_paused = false;
	ok(strstr(why(&c, &f, &x, &o), "time limit") != NULL,
	   "no client for 60 s since it was made: removed");

	/* Idle means idle: counted from when the last client left. */
	f.idle_since_ms = 950 * S;
	is_str(why(&c, &f, &x, &o), "", "a client left at 50 s: kept at 61 s");
	ok(o.due_ms == 1010 * S, "due 60 s after that client left");
	x.now_ms = 1011 * S;
	f.clients = -1;
	why(&c, &f, &x, &o);
	ok(o.need_clients, "then the clients are counted");
	f.clients = 0;
	ok(strstr(why(&c, &f, &x, &o), "time limit") != NULL,
	   "and with none on, it goes");
	f.idle_since_ms = 800 * S; /* before it was made: its creation counts */
	x.now_ms = 959 * S;
	is_str(why(&c, &f, &x, &o), "", "never before its first 60 s");

	c.timeout_s = 0;
	x.now_ms = 100000 * S;
	is_str(why(&c, &f, &x, &o), "", "-w 0: never");
	ok(!o.watched, "and not watched without an owner");
	c.timeout_s = -1;
	x.now_ms = 900 * S + PGSNAP_DEFAULT_TIMEOUT_S * S + 1;
	f.clients = 0;
	f.idle_since_ms = 0;
	ok(strstr(why(&c, &f, &x, &o), "time limit") != NULL,
	   "-w not given: the default limit");
}

static void test_shared(void)
{
	pgsnap_clone c;
	judge_facts f;
	judge_out o;
	judge_ctx x = ctx;

	base(&c, &f);
	snprintf(c.state, sizeof(c.state), "shared");
	c.dbs = 16;
	c.dbs_used = 16;
	c.used_ms = 950 * S;
	f.leases = 1;
	is_str(why(&c, &f, &x, &o), "", "a shared server with a lease stays");
	f.leases = 0;
	ok(strstr(why(&c, &f, &x, &o), "handed out and used") != NULL,
	   "all databases handed out and no lease left: it goes");
	c.dbs_used = 3;
	is_str(why(&c, &f, &x, &o), "", "databases left, handed out 50 s ago: stays");
	ok(o.due_ms == 1250 * S, "due PGSNAP_POOL_TTL after the last handout");
	x.now_ms = 1251 * S;
	ok(strstr(why(&c, &f, &x, &o), "PGSNAP_POOL_TTL") != NULL,
	   "no handout for PGSNAP_POOL_TTL: it goes");

	base(&c, &f);
	snprintf(c.parent, sizeof(c.parent), "0000000b");
	f.parent_exists = true;
	is_str(why(&c, &f, NULL, &o), "", "a lease of a live server stays");
	f.parent_exists = false;
	ok(strstr(why(&c, &f, NULL, &o), "shared server is gone") != NULL,
	   "a lease whose server's record is gone goes");
}

int main(void)
{
	test_states();
	test_time_limit();
	test_shared();
	return done_testing();
}
