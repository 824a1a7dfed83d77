/*
 * snapshot_build.c - build one snapshot from a recipe.
 *
 * Aside, in home/snapshots/.build-NAME-RAND: initdb (or a copy of the
 * base snapshot), settings, then - when the recipe has inputs - a private
 * temporary server (Unix socket in the build directory, no TCP) that runs
 * the SQL files, exec commands, extensions and the mock time, is vacuumed
 * (frozen and analyzed, so that clones neither rewrite hint bits nor start
 * autovacuum on the fixtures) and shut down fast, which writes a shutdown
 * checkpoint: the golden is clean.  Only then is it installed under its
 * name.  Any failure removes the build directory and stops the server.
 *
 * SQL files are run by psql (ON_ERROR_STOP), not sent through libpq: real
 * schema files use COPY FROM stdin, \i, \copy and statements that refuse
 * a transaction block (CREATE DATABASE, VACUUM), which only psql's own
 * splitter handles.  psql names the file and the line where the failing
 * statement ends; the "LINE n:" it adds points inside the statement, and
 * we map that back to the line of the file.
 */
#include "snapshot.h"
#include "snapshot_psql.h"

#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define BUILD_PORT 5432
#define START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 120000

extern char **environ;

typedef struct build {
	pgsnap_store *s;
	const build_req *q;
	char dir[700];
	char data[760];
	char sock[700];
	char url[1024];
	pid_t pid;
	int64_t t0;
	char **envp;
	dbs_oids dbs;        /* the copies of `databases N` */
} build;

static void progress(build *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void progress(build *b, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	int n;

	if (!b->q->o || !b->q->o->progress)
		return;
	n = snprintf(msg, sizeof(msg), "[%5.1fs] %s: ",
		     (double)(mono_us() - b->t0) / 1e6, b->q->r->name);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	b->q->o->progress(b->q->o->progress_ctx, 0, msg);
}

static int run_initdb(build *b, pgsnap_error *err)
{
	const recipe *rc = b->q->r;
	char prog[600], logp[760], tail[700];
	const char *argv[80];
	int argc = 0, r;
	size_t i;
	cleanup_close int logfd = -1;
	spawn_opts so = { 0 };
	fs_ids ids;

	if (rc->n_initdb > 64)
		return pgsnap_err(err, E2BIG, "too many initdb options");
	snprintf(prog, sizeof(prog), "%s/initdb", b->s->bindir);
	snprintf(logp, sizeof(logp), "%s/build.log", b->dir);
	/* The full path: initdb (as postgres) finds its installation from
	 * argv[0], through PATH when it is a bare name. */
	argv[argc++] = prog;
	argv[argc++] = "-D";
	argv[argc++] = b->data;
	argv[argc++] = "-U";
	argv[argc++] = "postgres";
	argv[argc++] = "--auth-local=trust";
	argv[argc++] = "--auth-host=scram-sha-256";
	argv[argc++] = "--no-sync"; /* synced once, with syncfs, at install */
	argv[argc++] = "--no-instructions";
	for (i = 0; i < rc->n_initdb; i++)
		argv[argc++] = rc->initdb[i];
	argv[argc] = NULL;

	ids = fs_become(b->s);
	logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fs_restore(ids);
	if (logfd < 0)
		return pgsnap_errno(err, errno, "cannot create %s", logp);
	so.store = b->s;
	so.out_fd = logfd;
	so.cwd = b->dir;
	progress(b, "initdb");
	r = run_process(prog, (char *const *)argv, &so);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot run %s", prog);
	if (r != 0) {
		log_tail(logp, 3, tail, sizeof(tail));
		return pgsnap_err(err, EIO, "initdb failed (exit %d): %s", r,
				  tail);
	}
	return 0;
}

static bool needs_server(const recipe *rc)
{
	return rc->n_steps || rc->now || rc->databases;
}

static int copy_base(build *b, pgsnap_error *err)
{
	const char *base = b->q->r->from;
	char bdir[600], bdata[700];
	cleanup_close int lfd = -1;
	snap_meta m;
	int r;

	/* Shared: the base is not swapped while we copy it. */
	if ((r = snap_lock(b->s, base, LOCK_SH, &lfd, err)) < 0)
		return r;
	snapshot_dir(b->s, base, bdir, sizeof(bdir));
	if (meta_read(bdir, &m) < 0 || strcmp(m.key, b->q->base_key))
		return pgsnap_err(err, EAGAIN, "base snapshot '%s' changed "
				  "while this build started; run it again", base);
	snprintf(bdata, sizeof(bdata), "%s/data", bdir);
	progress(b, "copy of '%s'", base);
	/* A server writing to one link would write to all of them: links
	 * are kept only when none will run on the copy. */
	return copy_datadir_links(b->s, bdata, b->dir, !needs_server(b->q->r),
				  err);
}

static int write_settings(build *b, pgsnap_error *err)
{
	const recipe *rc = b->q->r;
	char path[800];
	FILE *f;
	fs_ids ids;
	size_t i;
	int r = 0;

	if (!rc->n_settings)
		return 0;
	snprintf(path, sizeof(path), "%s/postgresql.conf", b->data);
	ids = fs_become(b->s);
	f = fopen(path, "ae");
	fs_restore(ids);
	if (!f)
		return pgsnap_errno(err, errno, "cannot open %s", path);
	fprintf(f, "\n# pgsnap recipe '%s'\n", rc->name);
	for (i = 0; i < rc->n_settings; i++)
		fprintf(f, "%s\n", rc->settings[i]);
	if (fclose(f) != 0)
		r = pgsnap_errno(err, errno, "cannot write %s", path);
	return r;
}

/* The caller's environment, minus libpq's variables, plus the build
 * server's. */
static int make_env(build *b, pgsnap_error *err)
{
	size_t n = 0, i, o = 0;
	char enc[900], port[16];
	char *add[6];

	for (n = 0; environ[n]; n++)
		;
	b->envp = calloc(n + 8, sizeof(char *));
	if (!b->envp)
		return pgsnap_err(err, ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "PG", 2) &&
		    strncmp(environ[i], "DATABASE_URL=", 13))
			b->envp[o++] = environ[i];
	url_encode(b->sock, enc, sizeof(enc));
	snprintf(port, sizeof(port), "%d", BUILD_PORT);
	snprintf(b->url, sizeof(b->url), "postgresql://postgres@%s:%d/postgres",
		 enc, BUILD_PORT);
	if (asprintf(&add[0], "PGHOST=%s", b->sock) < 0)
		add[0] = NULL;
	if (asprintf(&add[1], "PGPORT=%s", port) < 0)
		add[1] = NULL;
	add[2] = strdup("PGUSER=postgres");
	add[3] = strdup("PGDATABASE=postgres");
	if (asprintf(&add[4], "DATABASE_URL=%s", b->url) < 0)
		add[4] = NULL;
	if (asprintf(&add[5], "PGSNAP_SNAPSHOT=%s", b->q->r->name) < 0)
		add[5] = NULL;
	for (i = 0; i < 6; i++) {
		if (!add[i])
			return pgsnap_err(err, ENOMEM, "out of memory");
		b->envp[o++] = add[i];
	}
	b->envp[o] = NULL;
	return 0;
}

static void free_env(build *b)
{
	size_t i, n;

	if (!b->envp)
		return;
	for (n = 0; b->envp[n]; n++)
		;
	/* The last six are ours. */
	for (i = n >= 6 ? n - 6 : 0; i < n; i++)
		free(b->envp[i]);
	free(b->envp);
	b->envp = NULL;
}

static int start_server(build *b, pgsnap_error *err)
{
	server_start st = { 0 };
	char logp[760];
	int r;

	if ((r = snap_sock_dir(b->s, b->dir, b->sock, sizeof(b->sock), err)) < 0) {
		b->sock[0] = '\0';
		return r;
	}
	if ((r = make_env(b, err)) < 0)
		return r;
	snprintf(logp, sizeof(logp), "%s/server.log", b->dir);
	st.datadir = b->data;
	st.sockdir = b->sock;
	st.log_path = logp;
	st.port = BUILD_PORT;
	st.tcp = false;
	/* Thrown away on a crash and synced once at install: durability
	 * while building buys nothing. */
	st.server_opts = "-c fsync=off -c synchronous_commit=off "
			 "-c full_page_writes=off -c autovacuum=off";
	st.timeout_ms = START_TIMEOUT_MS;
	progress(b, "starting the build server");
	return server_start_ready(b->s, &st, &b->pid, err);
}

static int stop_server(build *b, pgsnap_error *err)
{
	pid_t pid = b->pid;

	b->pid = 0;
	progress(b, "shutting down");
	if (kill(pid, SIGINT) < 0 && errno != ESRCH)
		return pgsnap_errno(err, errno, "cannot stop the build server");
	if (wait_pid_exit(pid, STOP_TIMEOUT_MS) < 0) {
		server_stop(pid, 0, 1000);
		return pgsnap_err(err, ETIMEDOUT, "the build server did not "
				  "shut down in %d s", STOP_TIMEOUT_MS / 1000);
	}
	if (!datadir_clean(b->data))
		return pgsnap_err(err, EIO, "the build server did not shut "
				  "down cleanly (see its log)");
	return 0;
}

static int connect_db(build *b, const char *db, PGconn **c, pgsnap_error *err)
{
	return sql_connect(b->sock, BUILD_PORT, db, c, err);
}

/* ---- running inputs ---------------------------------------------------- */

static int open_step_log(build *b, char *path, size_t len, pgsnap_error *err)
{
	int fd;

	snprintf(path, len, "%s/step.log", b->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	return fd < 0 ? pgsnap_errno(err, errno, "cannot create %s", path) : fd;
}

static int run_sql(build *b, const recipe_step *st, pgsnap_error *err)
{
	char psql[600], logp[800];
	const char *argv[] = { "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
			       "-f", st->arg, NULL };
	cleanup_close int fd = -1;
	spawn_opts so = { 0 };
	int r;

	if (access(st->arg, R_OK) < 0)
		return pgsnap_errno(err, errno, "sql %s", st->shown);
	find_psql(b->s, psql, sizeof(psql));
	if ((fd = open_step_log(b, logp, sizeof(logp), err)) < 0)
		return fd;
	so.out_fd = fd;
	so.cwd = st->cwd;
	so.envp = b->envp;
	progress(b, "sql %s", st->shown);
	r = run_process(psql, (char *const *)argv, &so);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot run %s", psql);
	return r ? sql_error(st, logp, r, err) : 0;
}

static int run_exec(build *b, const recipe_step *st, pgsnap_error *err)
{
	/* A shell, on purpose: --exec takes a shell command by definition
	 * ('make migrate', 'cd db && alembic upgrade head'). */
	const char *argv[] = { "sh", "-c", st->arg, NULL };
	char logp[800], tail[700];
	cleanup_close int fd = -1;
	spawn_opts so = { 0 };
	int r;

	if ((fd = open_step_log(b, logp, sizeof(logp), err)) < 0)
		return fd;
	so.out_fd = fd;
	so.cwd = st->cwd;
	so.envp = b->envp;
	progress(b, "exec %s", st->shown);
	r = run_process("/bin/sh", (char *const *)argv, &so);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot run /bin/sh");
	if (r == 0)
		return 0;
	log_tail(logp, 5, tail, sizeof(tail));
	return pgsnap_err(err, EIO, "exec '%s' failed (%s %d): %s", st->shown,
			  r > 128 ? "signal" : "exit", r > 128 ? r - 128 : r,
			  tail[0] ? tail : "no output");
}

static int run_extension(build *b, const recipe_step *st, pgsnap_error *err)
{
	PGconn *c;
	char *id, *q;
	int r;

	if ((r = connect_db(b, "postgres", &c, err)) < 0)
		return r;
	progress(b, "extension %s", st->arg);
	id = PQescapeIdentifier(c, st->arg, strlen(st->arg));
	if (!id || asprintf(&q, "CREATE EXTENSION IF NOT EXISTS %s CASCADE",
			    id) < 0) {
		PQfreemem(id);
		PQfinish(c);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	r = sql_exec(c, q, err);
	free(q);
	PQfreemem(id);
	PQfinish(c);
	return r < 0 ? pgsnap_err_wrap(err, r, "extension %s", st->arg) : 0;
}

static int run_now(build *b, pgsnap_error *err)
{
	PGconn *c;
	int r;

	if ((r = connect_db(b, "postgres", &c, err)) < 0)
		return r;
	progress(b, "mock now() = %s", b->q->r->now);
	r = mocktime_install(c, b->q->r->now, err);
	PQfinish(c);
	return r;
}

/* Freeze and analyze every database that takes connections. */
/* sql in every database a client can connect to. */
static int each_database(build *b, const char *sql, pgsnap_error *err)
{
	PGconn *c;
	PGresult *res;
	int r, i, n;

	if ((r = connect_db(b, "postgres", &c, err)) < 0)
		return r;
	res = PQexec(c, "SELECT datname FROM pg_database WHERE datallowconn "
			"AND NOT datistemplate ORDER BY 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = pgsnap_err(err, EIO, "%s", PQerrorMessage(c));
		PQclear(res);
		PQfinish(c);
		return r;
	}
	PQfinish(c);
	n = PQntuples(res);
	for (i = 0; i < n && r == 0; i++) {
		if ((r = connect_db(b, PQgetvalue(res, i, 0), &c, err)) < 0)
			break;
		r = sql_exec(c, sql, err);
		PQfinish(c);
	}
	PQclear(res);
	return r;
}

static int vacuum_all(build *b, pgsnap_error *err)
{
	int r;

	progress(b, "vacuum (freeze, analyze)");
	r = each_database(b, "VACUUM (FREEZE, ANALYZE)", err);
	return r < 0 ? pgsnap_err_wrap(err, r, "vacuum") : 0;
}

static int run_databases(build *b, pgsnap_error *err)
{
	PGconn *c;
	int r;

	if ((r = connect_db(b, "template1", &c, err)) < 0)
		return r;
	progress(b, "databases pgsnap_1..%d", b->q->r->databases);
	r = dbs_create(c, b->q->r->databases, b->s->pg_major, &b->dbs, err);
	PQfinish(c);
	return r < 0 ? pgsnap_err_wrap(err, r, "databases %d",
				       b->q->r->databases) : 0;
}

static int run_inputs(build *b, pgsnap_error *err)
{
	const recipe *rc = b->q->r;
	size_t i;
	int r = 0;

	if ((r = start_server(b, err)) < 0)
		return r;
	/* Extensions first: schemas use their types. */
	for (i = 0; i < rc->n_steps && r == 0; i++)
		if (rc->steps[i].kind == STEP_EXTENSION)
			r = run_extension(b, &rc->steps[i], err);
	for (i = 0; i < rc->n_steps && r == 0; i++) {
		if (rc->steps[i].kind == STEP_SQL)
			r = run_sql(b, &rc->steps[i], err);
		else if (rc->steps[i].kind == STEP_EXEC)
			r = run_exec(b, &rc->steps[i], err);
	}
	if (r == 0 && rc->now)
		r = run_now(b, err);
	if (r == 0)
		r = vacuum_all(b, err);
	if (r == 0 && rc->databases)
		r = run_databases(b, err);
	if (r == 0)
		r = stop_server(b, err);
	if (r == 0 && b->dbs.n) {
		dbs_stats st;
		progress(b, "linking identical files of the copies");
		r = dbs_dedup(b->s, b->data, &b->dbs, &st, err);
		if (r == 0)
			progress(b, "%llu files linked (%.1f MB), %llu differ",
				 (unsigned long long)st.linked,
				 (double)st.bytes / 1e6,
				 (unsigned long long)st.kept);
		if (r == 0)
			r = dbs_write_same(b->dir, b->data, &b->dbs, err);
	}
	return r;
}

/* ---- finishing ------------------------------------------------------------ */

static void remove_leftovers(build *b)
{
	static const char *const in_data[] = { "postmaster.pid",
					       "postmaster.opts" };
	static const char *const in_dir[] = { "server.log", "step.log",
					      "build.log" };
	char p[900];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(in_data); i++) {
		snprintf(p, sizeof(p), "%s/%s", b->data, in_data[i]);
		unlink(p);
	}
	for (i = 0; i < ARRAY_SIZE(in_dir); i++) {
		snprintf(p, sizeof(p), "%s/%s", b->dir, in_dir[i]);
		unlink(p);
	}
	if (b->sock[0])
		rm_rf(b->sock);
}

static int write_recipe_and_meta(build *b, pgsnap_error *err)
{
	const recipe *rc = b->q->r;
	char path[800];
	snap_meta m = { 0 };
	pg_ident id;
	fs_ids ids;
	int r;

	if (!rc->shipped) {
		snprintf(path, sizeof(path), "%s/recipe", b->dir);
		ids = fs_become(b->s);
		r = write_file_atomic(path, rc->source, rc->source_len, 0644);
		fs_restore(ids);
		if (r < 0)
			return pgsnap_errno(err, r, "cannot write %s", path);
	}
	key_cache_save(b->s, b->q->cache, b->dir, true);
	if ((r = pg_identity(b->s, &id, err)) < 0)
		return r;
	m.format = SNAP_META_FORMAT;
	snprintf(m.name, sizeof(m.name), "%s", rc->name);
	snprintf(m.key, sizeof(m.key), "%s", b->q->key);
	snprintf(m.pg_version, sizeof(m.pg_version), "%s", id.version);
	m.pg_major = id.major;
	snprintf(m.arch, sizeof(m.arch), "%s", id.arch);
	snprintf(m.from, sizeof(m.from), "%s", rc->from);
	snprintf(m.origin, sizeof(m.origin), "%s",
		 rc->shipped ? "shipped" : "recipe");
	snprintf(m.now, sizeof(m.now), "%s", rc->now ? rc->now : "");
	m.created_ms = now_ms();
	return meta_write(b->s, b->dir, &m, err);
}

int snap_build(pgsnap_store *s, const build_req *q, pgsnap_error *err)
{
	const recipe *rc = q->r;
	build b;
	int r;

	memset(&b, 0, sizeof(b));
	b.s = s;
	b.q = q;
	b.t0 = mono_us();
	if ((r = snap_build_dir(s, rc->name, b.dir, sizeof(b.dir), err)) < 0)
		return r;
	snprintf(b.data, sizeof(b.data), "%s/data", b.dir);
	if ((r = rc->from[0] ? copy_base(&b, err) : run_initdb(&b, err)) < 0 ||
	    (r = write_settings(&b, err)) < 0)
		goto fail;
	if (needs_server(rc) && (r = run_inputs(&b, err)) < 0)
		goto fail;
	remove_leftovers(&b);
	if ((r = write_recipe_and_meta(&b, err)) < 0 ||
	    (r = snap_install(s, b.dir, rc->name, 0, err)) < 0)
		goto fail;
	progress(&b, "done");
	free_env(&b);
	dbs_oids_free(&b.dbs);
	return 0;
fail:
	dbs_oids_free(&b.dbs);
	if (b.pid > 0)
		server_stop(b.pid, 0, 10000);
	if (b.sock[0])
		rm_rf(b.sock);
	rm_rf(b.dir);
	free_env(&b);
	return r;
}
