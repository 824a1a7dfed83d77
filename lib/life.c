/*
 * life.c - the one way a clone is made and the one way it ends.
 *
 * Made: a record in state "starting" (with the creator's pid and start
 * time, so gc can tell a half-made clone from an abandoned one), the
 * directory, the engine's clone of the snapshot, the server, then the
 * record in its final state.  On failure exactly what this call made is
 * undone, newest first: no directory, no process, no record.
 *
 * Ended: the records are claimed under the registry lock (state
 * "stopping", creator = us, and only if each is still what the caller
 * judged), then every server is signalled at once and waited for, each
 * engine's work undone (an overlay unmounted), each directory renamed into
 * the trash (constant time; deleted in the background), and the records
 * dropped (or turned "kept" for -k).  `rm`, gc, the service, the pool and
 * shared servers all end clones here.  The lock is never held across a
 * clone, a server start or a stop.
 */
#include "internal.h"
#include "life.h"

#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define START_TIMEOUT_MS 60000
#define PORT_TRIES 20

void test_pause(const pgsnap_store *s, const char *point)
{
	if (s->cfg.test_pause[0] && !strcmp(s->cfg.test_pause, point))
		raise(SIGSTOP);
}

/* ---- making ---------------------------------------------------------------- */

/* Record a fresh random id (state "starting") before its directory is
 * made: gc then knows a clone directory with no record is garbage, never
 * one being made. */
static int record_new(const pgsnap_store *s, pgsnap_clone *c,
		      pgsnap_error *err)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	int tries, r;

	if ((r = registry_lock(s, &l, err)) < 0)
		return r;
	for (tries = 0; tries < 8; tries++) {
		random_hex(c->id, 8);
		snprintf(c->dir, sizeof(c->dir), "%s/%s", s->clones, c->id);
		snprintf(c->datadir, sizeof(c->datadir), "%s/data", c->dir);
		sockdir_choose(s, c);
		if (access(c->dir, F_OK) == 0)
			continue; /* an orphan directory gc has yet to see */
		r = registry_add(s, c, err);
		if (r != -EEXIST)
			return r;
	}
	return pgsnap_err(err, EEXIST, "no free clone id after %d tries", tries);
}

int life_start(const pgsnap_store *s, pgsnap_clone *c, const clone_job *job,
	       bool same_port, pgsnap_error *err)
{
	char logp[600], sock[600];
	server_start st = { 0 };
	bool tcp = c->host[0] != '\0';
	int tries, r;

	if ((r = sockdir_make(s, c, err)) < 0 && r != -EEXIST)
		return r;
	snprintf(logp, sizeof(logp), "%s/log", c->dir);
	st.datadir = c->datadir;
	st.sockdir = sockdir_arg(c, sock, sizeof(sock));
	st.log_path = logp;
	st.tcp = tcp;
	st.server_opts = c->options[0] ? c->options : NULL;
	st.timeout_ms = START_TIMEOUT_MS;
	st.ipv6 = tcp && c->ipv6;
	if (job->overlay.target) {
		st.overlay = &job->overlay;
		st.ready_dir = job->ready_dir;
	}
	for (tries = 0; tries < PORT_TRIES; tries++) {
		st.port = !tcp ? 5432 : same_port ? c->port : st.ipv6 ?
			  free_tcp_port_dual() : free_tcp_port();
		if (st.port < 0)
			return pgsnap_errno(err, st.port, "no free TCP port%s",
					    st.ipv6 ? " on 127.0.0.1 and ::1" : "");
		server_clear_socket(c->sockdir, st.port);
		r = server_start_ready(s, &st, &c->pid, err);
		if (r != -EADDRINUSE || !tcp || same_port)
			break;
	}
	if (r < 0)
		return r;
	c->port = st.port;
	c->pid_start = proc_start_time(c->pid);
	if (tcp) {
		/* TCP is reachable by every local user: a random password
		 * (SCRAM, see pg_hba.conf of the snapshot) guards it, while
		 * the private socket stays passwordless for the owner. */
		cleanup_pgconn PGconn *conn = NULL;
		if (!c->password[0])
			random_hex(c->password, 24);
		if ((r = sql_connect(c->sockdir, c->port, c->dbname, &conn,
				     err)) < 0)
			return r;
		if ((r = sql_set_password(conn, c->user, c->password, err)) < 0)
			return pgsnap_err_wrap(err, r, "cannot set the TCP password");
	}
	return 0;
}

static int commit_state(const pgsnap_store *s, pgsnap_clone *cur, void *arg)
{
	const life_make_req *q = arg;

	(void)s;
	/* rm may have claimed it meanwhile: then it is rm's to end. */
	if (!cur || strcmp(cur->state, "starting") || cur->creator != getpid())
		return -ESTALE;
	if (q->commit) {
		int r = q->commit(s, cur, q->made, q->arg);
		if (r == REG_PUT)
			*q->made = *cur;
		return r;
	}
	*cur = *q->made;
	snprintf(cur->state, sizeof(cur->state), "%s", q->state);
	*q->made = *cur;
	return REG_PUT;
}

int life_make(const pgsnap_store *s, life_make_req *q, pgsnap_clone *c,
	      pgsnap_error *err)
{
	const clone_engine *eng = q->engine;
	clone_job job = { 0 };
	char golden[700];
	bool made_dir = false, cloned = false;
	int r;

	snprintf(c->state, sizeof(c->state), "starting");
	c->creator = getpid();
	c->creator_start = proc_self_start_time();
	if ((r = record_new(s, c, err)) < 0)
		return r;
	if ((r = mkdir_server(s, c->dir)) < 0) {
		pgsnap_errno(err, r, "cannot create clone directory %s", c->dir);
		goto fail;
	}
	made_dir = true;
	test_pause(s, "clone");

	snprintf(golden, sizeof(golden), "%s/data", q->snapdir);
	job.store = s;
	job.golden = golden;
	job.snapdir = q->snapdir;
	job.dir = c->dir;
	if ((r = eng->clone(&job, err)) < 0)
		goto fail;
	cloned = true;
	if (q->snap_lock && *q->snap_lock >= 0)
		close(steal_fd(q->snap_lock));
	snprintf(c->datadir, sizeof(c->datadir), "%s", job.datadir);
	if ((r = life_start(s, c, &job, false, err)) < 0)
		goto fail;
	if (q->prepare)
		q->prepare(s, c, q->arg);
	test_pause(s, "server");

	q->made = c;
	if ((r = registry_edit(s, c->id, commit_state, q, err)) < 0)
		goto fail;
	return 0;

fail:
	/* Roll back exactly what this call made, newest first. */
	if (c->pid > 0)
		server_quit(c->pid, c->pid_start, LIFE_STOP_TIMEOUT_MS);
	if (cloned)
		eng->release(s, c->dir);
	if (made_dir) {
		sockdir_remove(s, c);
		rm_rf(c->dir);
	}
	registry_edit(s, c->id, life_drop_record, NULL, NULL);
	return r;
}

int life_drop_record(const pgsnap_store *s, pgsnap_clone *cur, void *arg)
{
	(void)s;
	(void)arg;
	return cur ? REG_DEL : REG_KEEP;
}

/* ---- ending ------------------------------------------------------------------ */

bool life_same_record(const pgsnap_clone *a, const pgsnap_clone *b)
{
	return !strcmp(a->state, b->state) && a->pid == b->pid &&
	       a->pid_start == b->pid_start && a->creator == b->creator &&
	       a->creator_start == b->creator_start &&
	       a->created_ms == b->created_ms &&
	       /* a shared server that handed out a database meanwhile */
	       a->dbs_used == b->dbs_used && a->used_ms == b->used_ms;
}

int life_claim(const pgsnap_store *s, life_victim *v, size_t n,
	       bool (*want)(const pgsnap_clone *cur, const life_victim *v),
	       pgsnap_error *err)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	unsigned long long me_start = proc_self_start_time();
	size_t i, claimed = 0;
	int r;

	if ((r = registry_lock(s, &l, err)) < 0)
		return r;
	for (i = 0; i < n; i++) {
		pgsnap_clone cur;
		bool have = registry_get(s, v[i].c.id, &cur, NULL) == 0;

		v[i].taken = false;
		if (v[i].orphan) {
			if (have)
				continue; /* someone recorded it meanwhile */
			cur = v[i].c;
		} else if (!have || (want && !want(&cur, &v[i]))) {
			continue;
		}
		snprintf(cur.state, sizeof(cur.state), "stopping");
		/* The process at work on it: gc leaves it alone while we
		 * live; a crash of ours leaves a record gc can judge.  A
		 * lease's end is one step (its sessions are told to go): its
		 * record goes at once, one update instead of two. */
		cur.creator = getpid();
		cur.creator_start = me_start;
		if (clone_is_lease(&cur) && !v[i].orphan ?
		    registry_del(s, cur.id) < 0 : registry_put(s, &cur, NULL) < 0)
			continue;
		if (cur.opts_sig[0])
			registry_avail_del(s, cur.opts_sig, cur.id);
		v[i].c = cur;
		v[i].taken = true;
		claimed++;
	}
	return (int)claimed;
}

/* Stop every claimed server at once, then wait for them together. */
static void stop_all(const pgsnap_store *s, life_victim *v, size_t n,
		     const life_end_opts *o)
{
	int64_t deadline;
	size_t i;

	for (i = 0; i < n; i++) {
		v[i].spid = 0;
		/* Nothing is signalled or removed on the word of a record
		 * that names paths pgsnap never makes: only it goes. */
		if (!v[i].taken || v[i].other_boot ||
		    !clone_paths_valid(s, &v[i].c))
			continue;
		/* A lease's server is its shared server's: only the
		 * lease's own sessions end. */
		if (clone_is_lease(&v[i].c)) {
			if (proc_alive(v[i].c.pid, v[i].c.pid_start))
				server_clients(v[i].c.pid, v[i].c.dbname, SIGTERM);
			continue;
		}
		v[i].spid = find_server(&v[i].c, &v[i].sstart);
		/* Its files go to the trash: only kept files need a clean
		 * shutdown (immediate is ~6 ms instead of 10-35 ms).  Its
		 * sessions are told too, and continued should a reset have
		 * stopped them (reset.c), after the postmaster: it then takes
		 * their exit for the shutdown, not for a crash. */
		if (v[i].spid <= 0)
			continue;
		kill(v[i].spid, v[i].keep_files ? SIGINT : SIGQUIT);
		if (!v[i].keep_files) {
			server_clients(v[i].spid, NULL, SIGQUIT);
			server_clients(v[i].spid, NULL, SIGCONT);
		}
	}
	deadline = mono_us() + (int64_t)o->stop_timeout_ms * 1000;
	for (i = 0; i < n; i++) {
		int64_t left = (deadline - mono_us()) / 1000;
		if (v[i].spid <= 0)
			continue;
		if (wait_pid_exit(v[i].spid, left > 0 ? (int)left : 0) < 0)
			server_stop(v[i].spid, v[i].sstart, 0);
	}
}

static void release(const pgsnap_store *s, life_victim *v)
{
	static const pgsnap_method all[] = { PGSNAP_METHOD_OVERLAY,
		PGSNAP_METHOD_REFLINK, PGSNAP_METHOD_COPY };
	const clone_engine *eng;
	char path[700], rnd[9];
	pgsnap_method m;
	size_t i;

	if (!v->other_boot)
		drop_stale_shm(v->c.datadir);
	/* Unknown method (orphans): every engine undoes what it may have
	 * done (unmounting what is not mounted is a no-op).  A kept clone
	 * stays as it is (an overlay stays mounted, to show its data) until
	 * rm releases it. */
	if (v->keep_files) {
		/* nothing to release yet */
	} else if (pgsnap_method_parse(v->c.method, &m) == 0 &&
		   (eng = clone_engine_for(m))) {
		eng->release(s, v->c.dir);
	} else {
		for (i = 0; i < ARRAY_SIZE(all); i++)
			if ((eng = clone_engine_for(all[i])))
				eng->release(s, v->c.dir);
	}
	if (v->keep_files) {
		/* Keep the data for inspection, not the dead server's
		 * socket and lock files. */
		cleanup_dir DIR *d = opendir(v->c.sockdir);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (!strncmp(e->d_name, ".s.PGSQL.", 9))
				unlinkat(dirfd(d), e->d_name, 0);
		snprintf(path, sizeof(path), "%s/postmaster.pid", v->c.datadir);
		unlink(path);
		return;
	}
	sockdir_remove(s, &v->c); /* a short one lives outside c.dir */
	/* Renamed now, deleted later: the clone leaves its place at once,
	 * whatever the cost of deleting its files. */
	random_hex(rnd, 8);
	snprintf(path, sizeof(path), "%s/%s.%s", s->trash, v->c.id, rnd);
	if (rename(v->c.dir, path) < 0 && errno != ENOENT)
		rm_rf(v->c.dir);
}

/* Drop the records of what we ended (-k: "kept"). */
static void settle(const pgsnap_store *s, life_victim *v, size_t n)
{
	cleanup_registry reg_lock l = REG_LOCK_INIT;
	size_t i;

	if (registry_lock(s, &l, NULL) < 0)
		return; /* gc finishes "stopping" records whose creator died */
	for (i = 0; i < n; i++) {
		pgsnap_clone cur;
		if (!v[i].taken || registry_get(s, v[i].c.id, &cur, NULL) < 0 ||
		    cur.creator != getpid() || strcmp(cur.state, "stopping"))
			continue;
		if (v[i].keep_files) {
			snprintf(cur.state, sizeof(cur.state), "kept");
			cur.pid = 0;
			cur.pid_start = 0;
			cur.creator = 0;
			cur.creator_start = 0;
			registry_put(s, &cur, NULL);
		} else {
			registry_del(s, cur.id);
		}
	}
}

void life_end(const pgsnap_store *s, life_victim *v, size_t n,
	      const life_end_opts *o)
{
	size_t i;
	bool any = false;

	/* -k keeps the files of a clone that ended by itself; rm removes
	 * them whatever -k said. */
	for (i = 0; i < n; i++)
		v[i].keep_files = o->honor_keep && v[i].c.keep && !v[i].orphan &&
				  !clone_is_lease(&v[i].c);
	stop_all(s, v, n, o);
	for (i = 0; i < n; i++) {
		if (!v[i].taken || !clone_paths_valid(s, &v[i].c))
			continue;
		if (!clone_is_lease(&v[i].c)) {
			release(s, &v[i]);
			any = true;
		}
	}
	settle(s, v, n);
	if (any && o->trash_in_background)
		trash_kick(s);
	else if (any)
		trash_empty(s);
}

int life_end_one(const pgsnap_store *s, const pgsnap_clone *c,
		 pgsnap_error *err)
{
	life_victim v = { 0 };
	life_end_opts o = { .stop_timeout_ms = LIFE_STOP_TIMEOUT_MS,
			    .trash_in_background = true };
	int r;

	if (!clone_paths_valid(s, c))
		return pgsnap_err(err, EPERM, "registry record %s names %s, "
				  "outside the store: not touching it",
				  c->id, c->dir);
	v.c = *c;
	r = life_claim(s, &v, 1, life_want_same, err);
	if (r < 0)
		return r;
	if (r == 0)
		return pgsnap_err(err, ENOENT, "clone %s changed or went away "
				  "meanwhile", c->id);
	life_end(s, &v, 1, &o);
	return 0;
}

bool life_want_same(const pgsnap_clone *cur, const life_victim *v)
{
	return life_same_record(cur, &v->c);
}

/* ---- keep: the clone outlives its owner and time limit ------------------ */

static int drop_limits(const pgsnap_store *s, pgsnap_clone *cur, void *arg)
{
	pgsnap_clone *c = arg;

	(void)s;
	if (!cur)
		return -ENOENT;
	if (strcmp(cur->state, "ready"))
		return -EINVAL;
	cur->owner = 0;
	cur->owner_start = 0;
	cur->timeout_s = 0;
	*c = *cur;
	return REG_PUT;
}

int life_keep(const pgsnap_store *s, const char *ref, pgsnap_clone *out,
	      pgsnap_error *err)
{
	pgsnap_clone c;
	int r;

	if ((r = registry_find(s, ref, &c, err)) < 0)
		return r;
	r = registry_edit(s, c.id, drop_limits, &c, NULL);
	if (r == -EINVAL)
		return pgsnap_err(err, EINVAL, "clone %s is %s: only a ready "
				  "clone is kept", c.id, c.state);
	if (r < 0)
		return pgsnap_err(err, r, "no clone '%s' in this store", ref);
	if (out)
		*out = c;
	return 0;
}
