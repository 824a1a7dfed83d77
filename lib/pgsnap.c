/*
 * pgsnap.c - the top of the library: new, list and remove clones.
 *
 * A clone's life: a record in state "starting" (so gc can tell a half-made
 * clone from an abandoned one), the directory, the clone of the snapshot,
 * the server, then the record in state "ready".  The registry lock is held
 * only to read and write records, never across a clone or a server start.
 */
#include "internal.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 10000
#define PORT_TRIES 20

static int edit_add(registry *reg, pgsnap_clone *found, void *arg)
{
	if (found)
		return -EEXIST;
	return registry_append(reg, arg);
}

static int edit_replace(registry *reg, pgsnap_clone *found, void *arg)
{
	(void)reg;
	if (!found)
		return -ENOENT;
	*found = *(pgsnap_clone *)arg;
	return 0;
}

static int edit_delete(registry *reg, pgsnap_clone *found, void *arg)
{
	(void)arg;
	if (found)
		registry_delete(reg, found);
	return 0;
}

/* Record a fresh random id (state "starting") before its directory is
 * made: gc then knows a clone directory with no record is garbage, never
 * one being made. */
static int record_new_clone(pgsnap_store *s, pgsnap_clone *c,
			    pgsnap_error *err)
{
	int tries, r = -EEXIST;

	for (tries = 0; tries < 8 && r == -EEXIST; tries++) {
		random_hex(c->id, 8);
		snprintf(c->dir, sizeof(c->dir), "%s/clones/%s", s->run, c->id);
		snprintf(c->datadir, sizeof(c->datadir), "%s/data", c->dir);
		sockdir_choose(s, c);
		r = registry_edit(s, c->id, edit_add, c, err);
	}
	return r;
}

static int start_server(pgsnap_store *s, const pgsnap_new_opts *o,
			pgsnap_clone *c, const clone_job *job,
			pgsnap_error *err)
{
	char logp[600];
	server_start st = { 0 };
	int tries, r;

	if ((r = sockdir_make(s, c, err)) < 0)
		return r;
	snprintf(logp, sizeof(logp), "%s/log", c->dir);
	st.datadir = c->datadir;
	st.sockdir = c->sockdir;
	st.log_path = logp;
	st.tcp = o->tcp;
	st.server_opts = o->server_opts;
	st.timeout_ms = START_TIMEOUT_MS;
	st.ipv6 = o->tcp && o->ipv6;
	if (job && job->wrapper[0]) {
		st.wrapper = job->wrapper;
		st.ready_dir = job->ready_dir;
	}
	for (tries = 0; tries < PORT_TRIES; tries++) {
		st.port = !o->tcp ? 5432 : st.ipv6 ? free_tcp_port_dual() :
			  free_tcp_port();
		if (st.port < 0)
			return pgsnap_errno(err, st.port, "no free TCP port%s",
					    st.ipv6 ? " on 127.0.0.1 and ::1" : "");
		r = server_start_ready(s, &st, &c->pid, err);
		if (r != -EADDRINUSE || !o->tcp)
			break;
	}
	if (r < 0)
		return r;
	c->port = st.port;
	c->pid_start = proc_start_time(c->pid);
	if (o->tcp) {
		/* TCP is reachable by every local user: a random password
		 * (SCRAM, see pg_hba.conf of the snapshot) guards it, while
		 * the private socket stays passwordless for the owner. */
		PGconn *conn;
		snprintf(c->host, sizeof(c->host), "127.0.0.1");
		random_hex(c->password, 24);
		r = sql_connect(c->sockdir, c->port, c->dbname, &conn, err);
		if (r < 0)
			return r;
		r = sql_set_password(conn, c->user, c->password, err);
		PQfinish(conn);
		if (r < 0)
			return pgsnap_err_wrap(err, r, "cannot set the TCP password");
	}
	return 0;
}

int clone_new(pgsnap_store *s, const pgsnap_new_opts *o, bool pooled,
	      pgsnap_clone *out, pgsnap_error *err)
{
	static const pgsnap_new_opts defaults = { 0 };
	char snap[64], snapdir[600], golden[700];
	cleanup_close int snap_lock_fd = -1, start_lock = -1;
	const clone_engine *eng;
	pgsnap_clone c;
	clone_job job = { 0 };
	bool made_dir = false, recorded = false, cloned = false;
	int r;

	if (!o)
		o = &defaults;
	if (o->owner > 0 && !proc_alive(o->owner, 0))
		return pgsnap_err(err, ESRCH, "--owner %d: no such process",
				  (int)o->owner);
	if (o->shared < 0 || o->shared > PGSNAP_SHARED_MAX)
		return pgsnap_err(err, EINVAL, "--shared=%d: the databases of a "
				  "shared server are 1 to %d", o->shared,
				  PGSNAP_SHARED_MAX);
	if (o->shared && o->keep)
		return pgsnap_err(err, EINVAL, "-k with --shared: a shared "
				  "server's files are not one test's to keep");
	if ((r = guard_fd_limit(err)) < 0)
		return r;
	gc_before_new(s);
	if ((r = snapshot_for_new(s, o, snap, sizeof(snap), &snap_lock_fd,
				  err)) < 0)
		return r;
	snapshot_dir(s, snap, snapdir, sizeof(snapdir));
	if ((r = clone_choose_for(s, o->method, snapdir, &eng, err)) < 0)
		return r;
	snprintf(golden, sizeof(golden), "%s/data", snapdir);

	memset(&c, 0, sizeof(c));
	snprintf(c.snapshot, sizeof(c.snapshot), "%s", snap);
	snprintf(c.method, sizeof(c.method), "%s", eng->name);
	snprintf(c.state, sizeof(c.state), "starting");
	snprintf(c.user, sizeof(c.user), "postgres");
	snprintf(c.dbname, sizeof(c.dbname), "postgres");
	snprintf(c.os_user, sizeof(c.os_user), "%s", s->user);
	snprintf(c.boot_id, sizeof(c.boot_id), "%s", s->boot_id);
	c.creator = getpid();
	c.creator_start = proc_start_time(c.creator);
	c.owner = o->owner;
	c.owner_start = o->owner ? proc_start_time(o->owner) : 0;
	c.timeout_s = o->timeout_s < 0 ? PGSNAP_DEFAULT_TIMEOUT_S : o->timeout_s;
	c.keep = o->keep;
	c.created_ms = now_ms();
	pool_sig(o, snap, snapdir, eng->name, c.opts_sig, sizeof(c.opts_sig));
	if (!pooled && o->shared > 0) {
		r = shared_take(s, &c, out, err);
		/* None has a database left: one caller starts a server (the
		 * lock is ours until we return) and the callers waiting on
		 * the lock take its databases, not a server each. */
		if (r == 0 && (start_lock = shared_start_lock(s, c.opts_sig)) >= 0)
			r = shared_take(s, &c, out, err);
		if (r != 0) {
			if (r > 0) /* shared servers are watched */
				supervisor_ensure(s, NULL);
			return r < 0 ? r : 0;
		}
	}
	if (!pooled && !o->shared && pool_size(o) > 0 &&
	    (r = pool_take(s, &c, out, err)) != 0) {
		if (r > 0 && record_watched(out))
			supervisor_ensure(s, NULL);
		return r < 0 ? r : 0;
	}

	if ((r = record_new_clone(s, &c, err)) < 0)
		return r;
	recorded = true;
	if ((r = mkdir_server(s, c.dir)) < 0) {
		pgsnap_errno(err, r, "cannot create clone directory %s", c.dir);
		goto fail;
	}
	made_dir = true;
	test_pause("clone");

	job.store = s;
	job.golden = golden;
	job.snapdir = snapdir;
	job.dir = c.dir;
	if ((r = eng->clone(&job, err)) < 0)
		goto fail;
	cloned = true;
	close(steal_fd(&snap_lock_fd));
	snprintf(c.datadir, sizeof(c.datadir), "%s", job.datadir);
	if ((r = start_server(s, o, &c, &job, err)) < 0)
		goto fail;
	c.dbs = o->shared;
	if (pooled)
		pool_warm(s, &c);
	test_pause("server");

	if (o->shared && !pooled) {
		/* Our lease carries the caller's fields; the server none. */
		if ((r = shared_commit(s, &c, &c, out, err)) < 0)
			goto fail;
		supervisor_ensure(s, NULL);
		return 0;
	}
	snprintf(c.state, sizeof(c.state), pooled ? "pooled" : "ready");
	if ((r = registry_edit(s, c.id, edit_replace, &c, err)) < 0)
		goto fail;
	/* Without a supervisor a limit is enforced only by the next gc: the
	 * clone itself is fine, so this is not a failure of new. */
	if (record_watched(&c))
		supervisor_ensure(s, NULL);
	*out = c;
	return 0;

fail:
	/* Roll back exactly what this call made, newest first. */
	if (c.pid > 0)
		server_stop(c.pid, c.pid_start, STOP_TIMEOUT_MS);
	if (cloned)
		eng->release(s, c.dir);
	if (made_dir) {
		sockdir_remove(s, &c);
		rm_rf(c.dir);
	}
	if (recorded)
		registry_edit(s, c.id, edit_delete, NULL, NULL);
	return r;
}

int pgsnap_new(pgsnap_store *s, const pgsnap_new_opts *o, pgsnap_clone *out,
	       pgsnap_error *err)
{
	return clone_new(s, o, false, out, err);
}

int pgsnap_list(pgsnap_store *s, pgsnap_clone **out, size_t *n,
		pgsnap_error *err)
{
	registry reg;
	int r = registry_lock(s, &reg, err);

	if (r < 0)
		return r;
	*out = steal_ptr(&reg.recs);
	*n = reg.n;
	registry_unlock(&reg);
	return 0;
}

/* Does ref name this clone: its id, its URL, its JDBC URL or its dir?
 * (rm and snapshot save take the same names.) */
bool clone_matches(const pgsnap_clone *c, const char *ref)
{
	char url[2048];

	if (!strcmp(ref, c->id) || !strcmp(ref, c->dir) ||
	    !strcmp(ref, c->datadir))
		return true;
	pgsnap_clone_url(c, url, sizeof(url));
	if (!strcmp(ref, url))
		return true;
	pgsnap_clone_jdbc_url(c, url, sizeof(url));
	return url[0] && !strcmp(ref, url);
}

/* Stop the server and remove the files of a clone that is already marked
 * "stopping" (so no one else touches it). */
static int destroy_clone(pgsnap_store *s, const pgsnap_clone *c,
			 pgsnap_error *err)
{
	const clone_engine *eng = NULL;
	pgsnap_method m;
	char trash[700];
	int r;

	if (!clone_paths_valid(s, c))
		return pgsnap_err(err, EPERM, "registry record %s names %s, "
				  "outside the store: not touching it",
				  c->id, c->dir);
	/* Its files go to the trash: only -k needs a clean shutdown. */
	r = c->keep ? server_stop(c->pid, c->pid_start, STOP_TIMEOUT_MS) :
		server_quit(c->pid, c->pid_start, STOP_TIMEOUT_MS);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot stop server %d of clone %s",
				    (int)c->pid, c->id);
	if (pgsnap_method_parse(c->method, &m) == 0)
		eng = clone_engine_for(m);
	if (eng)
		eng->release(s, c->dir);
	sockdir_remove(s, c);
	/* Rename first: the clone is gone from its place at once, whatever
	 * the cost of deleting its files. */
	snprintf(trash, sizeof(trash), "%s/trash/%s", s->run, c->id);
	if (rename(c->dir, trash) < 0) {
		if (errno != ENOENT)
			return pgsnap_errno(err, errno, "cannot move %s to %s",
					    c->dir, trash);
		return 0;
	}
	trash_kick(s); /* gc empties the trash when this could not */
	return 0;
}

/* The record and, for a shared server, its leases. */
static int edit_delete_all(registry *reg, pgsnap_clone *found, void *arg)
{
	char id[32];
	size_t i;

	(void)arg;
	if (!found)
		return 0;
	snprintf(id, sizeof(id), "%s", found->id);
	registry_delete(reg, found);
	for (i = reg->n; i-- > 0;)
		if (!strcmp(reg->recs[i].parent, id))
			registry_delete(reg, &reg->recs[i]);
	return 0;
}

static int edit_mark_stopping(registry *reg, pgsnap_clone *found, void *arg)
{
	(void)reg;
	if (!found)
		return -ENOENT;
	snprintf(found->state, sizeof(found->state), "stopping");
	/* The process at work on it: gc leaves it alone while we live. */
	found->creator = getpid();
	found->creator_start = proc_start_time(found->creator);
	*(pgsnap_clone *)arg = *found;
	return 0;
}

/* Only a clone still in the pool: one handed out meanwhile is not ours. */
static int edit_mark_stopping_pooled(registry *reg, pgsnap_clone *found,
				     void *arg)
{
	if (!found || strcmp(found->state, "pooled"))
		return -ENOENT;
	return edit_mark_stopping(reg, found, arg);
}

static int rm_one_edit(pgsnap_store *s, const char *id,
		       int (*mark)(registry *, pgsnap_clone *, void *),
		       pgsnap_error *err)
{
	pgsnap_clone c;
	int r = registry_edit(s, id, mark, &c, err);

	if (r < 0)
		return r;
	r = destroy_clone(s, &c, err);
	if (r < 0)
		return r;
	return registry_edit(s, id, edit_delete_all, NULL, err);
}

/* A lease ends alone; its server goes with its last one (shared.c). */
static int rm_lease(pgsnap_store *s, const char *id, pgsnap_error *err)
{
	pgsnap_clone c;
	char retire[32];
	int r = shared_end_lease(s, id, retire, sizeof(retire), err);

	if (r < 0 || !retire[0])
		return r;
	/* Already marked "stopping" for us: read it back and remove it. */
	if (registry_edit(s, retire, edit_mark_stopping, &c, NULL) < 0)
		return 0; /* someone else (rm --all) took it */
	if (destroy_clone(s, &c, NULL) == 0)
		registry_edit(s, retire, edit_delete_all, NULL, NULL);
	return 0; /* the lease ended; gc finishes a server that resists */
}

static int rm_one(pgsnap_store *s, const char *id, bool lease,
		  pgsnap_error *err)
{
	return lease ? rm_lease(s, id, err) :
		rm_one_edit(s, id, edit_mark_stopping, err);
}

int clone_rm_pooled(pgsnap_store *s, const char *id, pgsnap_error *err)
{
	return rm_one_edit(s, id, edit_mark_stopping_pooled, err);
}

int pgsnap_rm(pgsnap_store *s, const char *ref, pgsnap_error *err)
{
	registry reg;
	char id[32] = "";
	bool lease = false;
	size_t i;
	int r = registry_lock(s, &reg, err);

	if (r < 0)
		return r;
	for (i = 0; i < reg.n; i++) {
		if (clone_matches(&reg.recs[i], ref)) {
			snprintf(id, sizeof(id), "%s", reg.recs[i].id);
			lease = clone_is_lease(&reg.recs[i]);
			break;
		}
	}
	registry_unlock(&reg);
	if (!id[0])
		return pgsnap_err(err, ENOENT, "no clone '%s' in this store "
				  "(see 'pgsnap ls')", ref);
	return rm_one(s, id, lease, err);
}

int pgsnap_rm_all(pgsnap_store *s, size_t *removed, pgsnap_error *err)
{
	pgsnap_clone *v = NULL;
	size_t n = 0, i;
	int r, first = 0;

	/* First the pool keepers, or they would refill what we remove. */
	pool_stop_keepers(s);
	r = pgsnap_list(s, &v, &n, err);
	*removed = 0;
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		pgsnap_error e2;
		r = rm_one(s, v[i].id, clone_is_lease(&v[i]), &e2);
		if (r == 0)
			(*removed)++;
		else if (r != -ENOENT && !first) {
			first = r;
			if (err)
				*err = e2;
		}
	}
	free(v);
	/* Its supervisor leaves now rather than within a second: nothing of
	 * this store (the file system of its run directory) stays busy. */
	supervisor_nudge(s, 2000);
	return first;
}
