/*
 * serve.c - the requests of the service protocol (docs/protocol.md): a
 * thread per connection reads a line and answers it with one JSON line.
 * A malformed request gets an error line and the connection lives on; a
 * line too long, or not ASCII, gets one and the connection is closed.
 */
#include "internal.h"
#include "json.h"
#include "newclone.h"
#include "pool.h"
#include "proto.h"
#include "life.h"
#include "reset.h"
#include "service.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

enum { ST_OK = 0, ST_FAIL = 1, ST_BAD = 2 };

/* 1 with a line in *line (NUL-terminated, no newline), 0 at EOF, -E2BIG
 * for a line too long, -EILSEQ for one that is not printable ASCII. */
static int read_line(conn *c, char **line, size_t *len)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		ssize_t n;

		if (nl) {
			size_t i, l = (size_t)(nl - c->buf);
			*nl = '\0';
			*line = c->buf;
			*len = l;
			for (i = 0; i < l; i++)
				if ((unsigned char)c->buf[i] < 0x20 ||
				    (unsigned char)c->buf[i] > 0x7e)
					return -EILSEQ;
			return 1;
		}
		if (c->len == sizeof(c->buf))
			return -E2BIG;
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -errno;
		c->len += (size_t)n;
	}
}

/* Drop the line just answered from the buffer. */
static void consume(conn *c, size_t len)
{
	size_t used = len + 1;

	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
}

static int answer(conn *c, jbuf *b)
{
	size_t off = 0;

	if (b->oom)
		return -ENOMEM;
	while (off < b->len) {
		ssize_t n = send(c->fd, b->p + off, b->len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		off += (size_t)n;
	}
	return 0;
}

static int fail(conn *c, const pgsnap_error *e, int status)
{
	jbuf b = { 0 };
	int r;

	proto_error(&b, e, status);
	r = answer(c, &b);
	free(b.p);
	return r;
}

/* ---- background work ------------------------------------------------------ */

typedef struct task {
	service *sv;
	bool reset;                  /* reset's replaced server, not rm's */
	size_t n;
	life_victim v[];
} task;

static void *task_main(void *arg)
{
	task *t = arg;
	service *sv = t->sv;
	bool idle;
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->reset)
			reset_end_old(sv->s, &t->v[i], true);
		else
			clone_rm_finish(sv->s, &t->v[i]);
	free(t);
	pthread_mutex_lock(&sv->mu);
	idle = --sv->tasks == 0 && !sv->conns;
	pthread_mutex_unlock(&sv->mu);
	/* The watcher looks again when it may leave, not after every rm (a
	 * round reads every record). */
	if (idle)
		service_wake(sv);
	return NULL;
}

/* End claimed clones after the answer, in a thread of their own. */
static void finish_later(service *sv, task *t)
{
	pthread_attr_t at;
	pthread_t th;

	pthread_mutex_lock(&sv->mu);
	sv->tasks++;
	pthread_mutex_unlock(&sv->mu);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, task_main, t) != 0)
		task_main(t);
	pthread_attr_destroy(&at);
}

/* ---- new, warm ----------------------------------------------------------------- */

static const char *const new_keys[] = {
	"snapshot", "shared", "timeout", "owner", "tcp", "ipv6", "now",
	"options", "method", "keep", "pool", "build_if_stale", "worker",
	"count", "user", NULL
};

/* The snapshots built on the way, for the answer's "built". */
static void on_built(void *ctx, int final, const char *msg)
{
	jbuf *b = ctx;

	if (!final)
		return;
	jb_raw(b, b->len ? ", " : "");
	jb_str(b, msg);
}

static int flag(const proto_req *q, const char *key, int *out,
		pgsnap_error *err)
{
	long v = 0;
	int r = proto_long(q, key, 0, 1, &v, err);

	if (r > 0)
		*out = (int)v;
	return r;
}

/* The options of `new` (and `warm`) from a request: ST_BAD on error. */
static int new_opts(const proto_req *q, pgsnap_new_opts *o, long *count,
		    pgsnap_error *err)
{
	const char *m = proto_get(q, "method");
	long v;

	memset(o, 0, sizeof(*o));
	o->timeout_s = -1;
	o->shared = -1;
	*count = 1;
	if (proto_check(q, new_keys, err) < 0)
		return ST_BAD;
	o->snapshot = proto_get(q, "snapshot");
	o->now = proto_get(q, "now");
	o->server_opts = proto_get(q, "options");
	o->worker = proto_get(q, "worker");
	if (m && pgsnap_method_parse(m, &o->method) < 0) {
		pgsnap_err(err, EINVAL, "method '%s': expected overlay, reflink, "
			   "copy or auto", m);
		return ST_BAD;
	}
	if (proto_long(q, "shared", 0, PGSNAP_SHARED_MAX, &v, err) < 0)
		return ST_BAD;
	if (proto_get(q, "shared") && v > 0)
		o->shared = (int)v;
	if (proto_long(q, "timeout", 0, 365L * 86400, &o->timeout_s, err) < 0)
		return ST_BAD;
	if (proto_long(q, "owner", 1, 1 << 22, &v, err) < 0)
		return ST_BAD;
	if (proto_get(q, "owner"))
		o->owner = (pid_t)v;
	if (proto_long(q, "pool", 0, 64, &v, err) < 0)
		return ST_BAD;
	if (proto_get(q, "pool")) {
		o->pool = (int)v;
		o->no_pool = v == 0;
	}
	if (flag(q, "tcp", &o->tcp, err) < 0 || flag(q, "ipv6", &o->ipv6, err) < 0 ||
	    flag(q, "keep", &o->keep, err) < 0 ||
	    flag(q, "build_if_stale", &o->build_if_stale, err) < 0 ||
	    proto_long(q, "count", 1, 1000, count, err) < 0)
		return ST_BAD;
	if (o->ipv6)
		o->tcp = 1;
	return ST_OK;
}

/* A new request's answer, which the thread that served it writes. */
typedef struct new_reply {
	conn *c;
	jbuf built;                  /* the snapshots built on the way */
	long count;
	bool list;
	int r;
} new_reply;

/* handout_deliver: one clone's fields, or a list of count. */
static void new_answer(void *ctx, const pgsnap_clone *v)
{
	new_reply *nr = ctx;
	jbuf b = { 0 };

	jb_new_answer(&b, nr->built.len ? nr->built.p : NULL, v,
		      (size_t)nr->count, nr->list);
	nr->r = answer(nr->c, &b);
	free(b.p);
}

static int do_new(conn *c, const proto_req *q, pgsnap_error *err)
{
	pgsnap_store *s;
	pgsnap_new_opts o, ro;
	cleanup_free pgsnap_clone *v = NULL;
	new_reply nr = { .c = c };
	int r;

	if ((r = new_opts(q, &o, &nr.count, err)) != ST_OK)
		return r;
	if (!(s = service_store_for(c->sv, proto_get(q, "user"), err)))
		return ST_FAIL;
	o.progress = on_built;
	o.progress_ctx = &nr.built;
	if (new_opts_resolve(s, &o, &ro, err) < 0)
		return ST_BAD;
	if (!(v = calloc((size_t)nr.count, sizeof(*v)))) {
		pgsnap_err(err, ENOMEM, "out of memory");
		return ST_FAIL;
	}
	nr.list = nr.count != 1 || proto_get(q, "count");
	/* A database of a shared server: the fast path (handout.c). */
	if (nr.count == 1 && ro.shared > 0 && !ro.build_if_stale)
		r = handout_shared(c->sv, s, &ro, conn_owner_start(c, ro.owner), v,
				   nr.list ? NULL : new_answer, &nr, err);
	else
		r = clone_new_n(s, &ro, (size_t)nr.count, v, err);
	if (r == 0)
		new_answer(&nr, v);
	free(nr.built.p);
	if (r < 0)
		return ST_FAIL;
	/* After the answer: the caller uses its clone while the pool refills
	 * (the pool is the service's server user's only). */
	if (pool_size(s, &ro) > 0 && s == c->sv->s)
		keeper_want(c->sv, &ro);
	return nr.r < 0 ? nr.r : ST_OK;
}

static int do_warm(conn *c, const proto_req *q, pgsnap_error *err)
{
	pgsnap_new_opts o, ro;
	jbuf b = { 0 };
	long count;
	int r;

	if ((r = new_opts(q, &o, &count, err)) != ST_OK)
		return r;
	if (new_opts_resolve(c->sv->s, &o, &ro, err) < 0)
		return ST_BAD;
	if (pool_size(c->sv->s, &ro) > 0 && (!proto_get(q, "user") ||
	    !strcmp(proto_get(q, "user"), c->sv->s->user)))
		keeper_want(c->sv, &ro);
	jb_raw(&b, "{\"ok\": true}\n");
	r = answer(c, &b);
	free(b.p);
	return r < 0 ? r : ST_OK;
}

/* ---- rm, ls, logs, ping, forget, stop ------------------------------------------ */

static bool listed(const pgsnap_clone *c, bool all, const char *worker)
{
	if (worker && strcmp(c->worker, worker))
		return false;
	/* Pooled and shared servers are nobody's yet, a clone starting has
	 * no server (nor port) yet, one stopping is on its way out. */
	return all || (strcmp(c->state, "pooled") && strcmp(c->state, "starting") &&
		       strcmp(c->state, "shared") && strcmp(c->state, "stopping"));
}

static int do_rm(conn *c, const proto_req *q, pgsnap_error *err)
{
	static const char *const keys[] = { "id", "all", "worker", "wait", NULL };
	const pgsnap_store *s = c->sv->s;
	const char *id = proto_get(q, "id"), *worker = proto_get(q, "worker");
	cleanup_free pgsnap_clone *all = NULL;
	int wait = 0, everything = 0, r;
	size_t n = 0, i, k = 0;
	jbuf b = { 0 };
	task *t;

	if (proto_check(q, keys, err) < 0 || flag(q, "wait", &wait, err) < 0 ||
	    flag(q, "all", &everything, err) < 0)
		return ST_BAD;
	if (!!id + !!everything + !!worker != 1) {
		pgsnap_err(err, EINVAL, "rm: give one of id=, all=1, worker=");
		return ST_BAD;
	}
	if (everything) {
		keeper_stop(c->sv, NULL); /* or they refill what we end */
		/* Everything gone: the service need not linger after. */
		pthread_mutex_lock(&c->sv->mu);
		c->sv->leave_now = true;
		pthread_mutex_unlock(&c->sv->mu);
	}
	if (!id && registry_list(s, &all, &n, err) < 0)
		return ST_FAIL;
	t = calloc(1, sizeof(*t) + (id ? 1 : n) * sizeof(t->v[0]));
	if (!t) {
		pgsnap_err(err, ENOMEM, "out of memory");
		return ST_FAIL;
	}
	t->sv = c->sv;
	if (id && (r = clone_rm_claim(s, id, &t->v[0], err)) < 0) {
		free(t);
		return ST_FAIL;
	}
	k = id ? 1 : 0;
	for (i = 0; i < n; i++)
		if ((everything || !strcmp(all[i].worker, worker)) &&
		    clone_rm_claim(s, all[i].id, &t->v[k], NULL) == 0)
			k++;
	t->n = k;
	if (wait || everything) {
		for (i = 0; i < t->n; i++)
			clone_rm_finish(s, &t->v[i]);
		free(t);
		t = NULL;
	}
	jb_raw(&b, "{\"ok\": true");
	jb_field_int(&b, "removed", (long long)k);
	jb_raw(&b, "}\n");
	r = answer(c, &b);
	free(b.p);
	if (t)
		finish_later(c->sv, t);
	return r < 0 ? r : ST_OK;
}

static int do_ls(conn *c, const proto_req *q, pgsnap_error *err)
{
	static const char *const keys[] = { "all", "worker", NULL };
	cleanup_free pgsnap_clone *v = NULL;
	const char *worker = proto_get(q, "worker");
	int all = 0, r;
	size_t n, i, k = 0;
	jbuf b = { 0 };

	if (proto_check(q, keys, err) < 0 || flag(q, "all", &all, err) < 0)
		return ST_BAD;
	if (registry_list(c->sv->s, &v, &n, err) < 0)
		return ST_FAIL;
	jb_raw(&b, "{\"ok\": true, \"clones\": [");
	for (i = 0; i < n; i++) {
		if (!listed(&v[i], all, worker))
			continue;
		jb_raw(&b, k++ ? ", " : "");
		jb_clone(&b, &v[i]);
	}
	jb_raw(&b, "]}\n");
	r = answer(c, &b);
	free(b.p);
	return r < 0 ? r : ST_OK;
}

static int do_logs(conn *c, const proto_req *q, pgsnap_error *err)
{
	static const char *const keys[] = { "id", NULL };
	const char *id = proto_get(q, "id");
	char path[700];
	pgsnap_clone cl;
	jbuf b = { 0 };
	int r;

	if (proto_check(q, keys, err) < 0)
		return ST_BAD;
	if (!id) {
		pgsnap_err(err, EINVAL, "logs: give id=");
		return ST_BAD;
	}
	if (registry_find(c->sv->s, id, &cl, err) < 0)
		return ST_FAIL;
	snprintf(path, sizeof(path), "%s/log", cl.dir);
	jb_raw(&b, "{\"ok\": true");
	jb_field(&b, "id", cl.id);
	jb_field(&b, "log", path);
	jb_raw(&b, "}\n");
	r = answer(c, &b);
	free(b.p);
	return r < 0 ? r : ST_OK;
}

/* reset and keep: one clone by id=, its record in the answer. */
/* A verb on one clone; what it replaced (a reset's old server) ends after
 * the answer. */
static int do_on_clone(conn *c, const proto_req *q, pgsnap_error *err,
		       bool reset)
{
	pgsnap_store *s = (pgsnap_store *)c->sv->s;
	static const char *const keys[] = { "id", NULL };
	const char *id = proto_get(q, "id");
	life_victim later = { 0 };
	pgsnap_clone cl;
	jbuf b = { 0 };
	bool failed;
	task *t;
	int r = 0;

	if (proto_check(q, keys, err) < 0)
		return ST_BAD;
	if (!id) {
		pgsnap_err(err, EINVAL, "%s: give id=", reset ? "reset" : "keep");
		return ST_BAD;
	}
	failed = (reset ? clone_reset_later(s, id, &cl, &later, err) :
		  life_keep(s, id, &cl, err)) < 0;
	if (!failed) {
		jb_raw(&b, "{\"ok\": true");
		jb_clone_fields(&b, &cl);
		jb_raw(&b, "}\n");
		r = answer(c, &b);
		free(b.p);
	}
	if (later.taken && (t = calloc(1, sizeof(*t) + sizeof(later)))) {
		t->sv = c->sv;
		t->reset = true;
		t->n = 1;
		t->v[0] = later;
		finish_later(c->sv, t);
	}
	return failed ? ST_FAIL : r < 0 ? r : ST_OK;
}

static int do_reset(conn *c, const proto_req *q, pgsnap_error *err)
{
	return do_on_clone(c, q, err, true);
}

static int do_keep(conn *c, const proto_req *q, pgsnap_error *err)
{
	return do_on_clone(c, q, err, false);
}

static int do_forget(conn *c, const proto_req *q, pgsnap_error *err)
{
	static const char *const keys[] = { "snapshot", NULL };
	const char *snap = proto_get(q, "snapshot");
	jbuf b = { 0 };
	int r;

	if (proto_check(q, keys, err) < 0)
		return ST_BAD;
	if (!snap) {
		pgsnap_err(err, EINVAL, "forget: give snapshot=");
		return ST_BAD;
	}
	keeper_stop(c->sv, snap);
	jb_raw(&b, "{\"ok\": true}\n");
	r = answer(c, &b);
	free(b.p);
	return r < 0 ? r : ST_OK;
}

static int do_ping(conn *c, const proto_req *q, pgsnap_error *err)
{
	static const char *const keys[] = { NULL };
	jbuf b = { 0 };
	int r;

	if (proto_check(q, keys, err) < 0)
		return ST_BAD;
	jb_raw(&b, "{\"ok\": true}\n");
	r = answer(c, &b);
	free(b.p);
	return r < 0 ? r : ST_OK;
}

static int do_stop(conn *c, const proto_req *q, pgsnap_error *err)
{
	static const char *const keys[] = { NULL };
	jbuf b = { 0 };

	if (proto_check(q, keys, err) < 0)
		return ST_BAD;
	/* The pools go; the clones stay, watched again by the next service
	 * any call starts. */
	keeper_stop(c->sv, NULL);
	{
		cleanup_registry reg_lock l = REG_LOCK_INIT;
		if (registry_lock(c->sv->s, &l, err) < 0)
			return ST_FAIL;
		service_quit(c->sv);
	}
	jb_raw(&b, "{\"ok\": true}\n");
	answer(c, &b);
	free(b.p);
	service_exit(c->sv, 0);
}

static int do_status(conn *c, const proto_req *q, pgsnap_error *err)
{
	static const char *const keys[] = { NULL };
	service *sv = c->sv;
	jbuf b = { 0 };
	int r;

	if (proto_check(q, keys, err) < 0)
		return ST_BAD;
	jb_raw(&b, "{\"ok\": true");
	jb_field_int(&b, "pid", getpid());
	pthread_mutex_lock(&sv->mu);
	jb_field_int(&b, "connections", sv->conns);
	jb_field_int(&b, "tasks", sv->tasks);
	jb_key(&b, "keepers");
	keeper_describe(sv, &b);
	pthread_mutex_unlock(&sv->mu);
	jb_raw(&b, "}\n");
	r = answer(c, &b);
	free(b.p);
	return r < 0 ? r : ST_OK;
}

static const struct verb {
	const char *name;
	int (*fn)(conn *c, const proto_req *q, pgsnap_error *err);
} verbs[] = {
	{ "new", do_new }, { "rm", do_rm }, { "ls", do_ls },
	{ "logs", do_logs }, { "ping", do_ping }, { "warm", do_warm },
	{ "reset", do_reset }, { "keep", do_keep },
	{ "forget", do_forget }, { "stop", do_stop }, { "status", do_status },
};

static int hello(conn *c)
{
	pgsnap_error e = { 0 };
	jbuf b = { 0 };
	char *line;
	size_t len;
	int r = read_line(c, &line, &len);

	if (c->refused) {
		pgsnap_err(&e, EACCES, "uid %u may not use this store (its owner "
			   "is uid %u)", c->uid, (unsigned)geteuid());
		fail(c, &e, ST_FAIL);
		return -EACCES;
	}
	if (r <= 0 && r != -EILSEQ)
		return r == 0 ? -EPIPE : r;
	if (r < 0 || strcmp(line, PROTO_HELLO)) {
		pgsnap_err(&e, EPROTO, "expected '%s' first (protocol %d, see "
			   "docs/protocol.md)", PROTO_HELLO, PROTO_VERSION);
		fail(c, &e, ST_BAD);
		return -EPROTO;
	}
	consume(c, len);
	jb_raw(&b, "{\"ok\": true");
	jb_field_int(&b, "protocol", PROTO_VERSION);
	jb_field(&b, "version", PGSNAP_VERSION);
	jb_field_int(&b, "pid", getpid());
	jb_field(&b, "config", c->sv->s->cfg.sig);
	jb_raw(&b, "}\n");
	r = answer(c, &b);
	free(b.p);
	return r;
}

void *conn_main(void *arg)
{
	conn *c = arg;
	proto_req *q = malloc(sizeof(*q));
	struct sched_param sp = { 0 };

	/* Batch: a burst's wakeups do not preempt the thread answering it
	 * (what it spawns is not batch: spawn.c). */
	sched_setscheduler(gettid(), SCHED_BATCH, &sp);
	if (q && hello(c) == 0) {
		for (;;) {
			pgsnap_error e = { 0 };
			char *line;
			size_t len, i;
			int r = read_line(c, &line, &len), st = ST_BAD;

			if (r == -E2BIG || r == -EILSEQ) {
				if (r == -E2BIG)
					pgsnap_err(&e, r, "request longer than %d "
						   "bytes", PROTO_LINE_MAX - 1);
				else
					pgsnap_err(&e, r, "a request is printable "
						   "ASCII (values are %%-encoded)");
				fail(c, &e, ST_BAD);
				break;
			}
			if (r <= 0)
				break;
			if (proto_parse(line, len, q, &e) == 0) {
				for (i = 0; i < ARRAY_SIZE(verbs); i++)
					if (!strcmp(q->verb, verbs[i].name))
						break;
				if (i == ARRAY_SIZE(verbs))
					pgsnap_err(&e, EINVAL, "unknown verb '%s'",
						   q->verb);
				else
					st = verbs[i].fn(c, q, &e);
			}
			consume(c, len);
			if (st < 0)
				break; /* the client went away */
			if (st != ST_OK && fail(c, &e, st) < 0)
				break;
		}
	}
	free(q);
	conn_done(c);
	return NULL;
}
