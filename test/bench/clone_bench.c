/*
 * clone_bench.c - times the clone engines, alone (no server) and to a
 * first query, for scripts/bench-clone.sh.  Links the internal archive.
 *
 *   clone_bench clone HOME SNAPSHOT WHAT N
 *       N clones of SNAPSHOT, WHAT = overlay | reflink | copy (the copy
 *       variant from PGSNAP_COPY_IMPL) | cp-a (coreutils' default:
 *       --reflink=auto since 9.0) | cp-a-never (--reflink=never, a real
 *       copy); one line per clone on
 *       stdout: "clone_ms remove_ms how cpu_ms" where each clone is removed
 *       alternately by pgsnap's way (release + rename into the trash,
 *       then the trash emptied untimed) and by `rm -rf` (timed); cpu_ms
 *       is the CPU time the clone took (threads, io_uring workers, cp).
 *   clone_bench first HOME SNAPSHOT WHAT N SQL
 *       the same clones, each then started with pgsnap's own start
 *       (server_start_ready, unix socket only) and asked SQL over libpq,
 *       then stopped (immediate) and removed, untimed; one line per run:
 *       "total_ms clone_ms start_ms query_ms": what a user of WHAT waits
 *       for, where WHAT has no `pgsnap new` (cp -a) or beside one.
 *   clone_bench cli HOME N SQL PGSNAP ARGS...
 *       N times `PGSNAP ARGS...` (pgsnap new ...), then SQL on the URL it
 *       prints, over libpq, timed together (what a user waits for); then
 *       `PGSNAP rm URL`, untimed.  One line per run: "total_ms".
 * Before each timed run the store is let quiet (its trash emptied, dirty
 * pages written: sync), unless BENCH_QUIESCE=0: a run then pays for the
 * deletion and writeback of the ones before it, as back-to-back calls do.
 *   clone_bench prepare HOME SNAPSHOT
 *       write the manifest of HOME/snapshots/SNAPSHOT (made by hand).
 */
#include "internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static double ms(int64_t a, int64_t b)
{
	return (double)(b - a) / 1000.0;
}

/* CPU time (user + system, ms) of this process's threads, the kernel's
 * io_uring workers among them, and of its waited-for children. */
static double cpu_ms(void)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
			b.ru_stime.tv_sec) * 1e3 +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec +
			b.ru_utime.tv_usec + b.ru_stime.tv_usec) / 1e3;
}

static int open_home(const char *home, pgsnap_store **s)
{
	pgsnap_store_opts o = { 0 };
	pgsnap_error err = { 0 };

	o.home = home;
	if (pgsnap_store_open(s, &o, &err) < 0) {
		fprintf(stderr, "clone_bench: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int run_argv(const pgsnap_store *s, char **argv)
{
	spawn_opts so = { 0 };
	(void)s;
	so.out_fd = -1;
	return run_process(argv[0], argv, &so);
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	while (d && empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return empty;
}

/* Let the store be quiet: no deleter at work in its trash, no dirty page
 * waiting to be written (the previous clone's). */
static void quiesce(const pgsnap_store *s)
{
	const char *v = getenv("BENCH_QUIESCE");
	char trash[600];
	int64_t until = mono_us() + 30 * 1000000;

	if (v && !strcmp(v, "0"))
		return;
	snprintf(trash, sizeof(trash), "%s/trash", s->run);
	while (!dir_empty(trash) && mono_us() < until)
		usleep(20000);
	sync();
}

/* `pgsnap new ...` then sql on the URL it printed, n times. */
static int mode_cli(const pgsnap_store *s, long n, const char *sql,
		    char **cmd)
{
	long i;

	for (i = 0; i < n; i++) {
		char out[4096], *url, *rm[4];
		spawn_opts so = { 0 };
		ssize_t got;
		int64_t t0, t1;
		PGconn *conn;
		PGresult *res;
		bool ok;

		quiesce(s);
		t0 = mono_us();
		got = spawn_capture(cmd[0], cmd, &so, 600000, out, sizeof(out));
		while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == ' '))
			out[--got] = '\0';
		url = got > 0 ? strrchr(out, '\n') : NULL;
		url = url ? url + 1 : out;
		if (strncmp(url, "postgres", 8)) {
			fprintf(stderr, "clone_bench: %s\n", out);
			return 1;
		}
		conn = PQconnectdb(url);
		res = PQexec(conn, sql);
		ok = PQresultStatus(res) == PGRES_TUPLES_OK ||
		     PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		t1 = mono_us();
		if (!ok)
			fprintf(stderr, "clone_bench: %s", PQerrorMessage(conn));
		PQfinish(conn);
		rm[0] = cmd[0];
		rm[1] = "rm";
		rm[2] = url;
		rm[3] = NULL;
		run_argv(s, rm);
		if (!ok)
			return 1;
		printf("%.3f\n", ms(t0, t1));
		fflush(stdout);
	}
	return 0;
}

/* Start a server on the clone in dir (made by job) and run sql on it;
 * the server is stopped before returning.  Times in *start, *query. */
static int start_and_query(const pgsnap_store *s, const clone_job *job,
			   const char *dir, const char *sql, double *start,
			   double *query, pgsnap_error *err)
{
	char sock[760], logp[760], data[760];
	server_start st = { 0 };
	PGconn *conn;
	pid_t pid;
	int64_t t0, t1, t2;
	int r;

	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(logp, sizeof(logp), "%s/log", dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	if ((r = mkdir_server(s, sock)) < 0)
		return pgsnap_errno(err, r, "mkdir %s", sock);
	st.datadir = data;
	st.sockdir = sock;
	st.log_path = logp;
	st.port = 5432;
	st.timeout_ms = 60000;
	if (job->overlay.target) {
		st.overlay = &job->overlay;
		st.ready_dir = job->ready_dir;
	}
	t0 = mono_us();
	if ((r = server_start_ready(s, &st, &pid, err)) < 0)
		return r;
	t1 = mono_us();
	r = sql_connect(sock, 5432, "postgres", &conn, err);
	if (r == 0) {
		r = sql_exec(conn, sql, err);
		PQfinish(conn);
	}
	t2 = mono_us();
	server_quit(pid, proc_start_time(pid), 10000);
	*start = ms(t0, t1);
	*query = ms(t1, t2);
	return r;
}

int main(int argc, char **argv)
{
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	char snapdir[600], golden[700], dir[700], trash[700];
	const clone_engine *eng = NULL;
	pgsnap_method m = PGSNAP_METHOD_AUTO;
	const char *sql;
	long n, i;
	int r;

	if (argc == 4 && !strcmp(argv[1], "prepare")) {
		if (open_home(argv[2], &s) < 0)
			return 1;
		snapshot_dir(s, argv[3], snapdir, sizeof(snapdir));
		if (clone_prepare_snapshot(s, snapdir, &err) < 0) {
			fprintf(stderr, "clone_bench: %s\n", err.msg);
			return 1;
		}
		return 0;
	}
	if (argc >= 6 && !strcmp(argv[1], "cli")) {
		if (parse_long(argv[3], 1, 100000, &n) < 0 ||
		    open_home(argv[2], &s) < 0)
			return 2;
		r = mode_cli(s, n, argv[4], argv + 5);
		pgsnap_store_close(s);
		return r;
	}
	if (argc < 6 || parse_long(argv[5], 1, 100000, &n) < 0 ||
	    !((argc == 6 && !strcmp(argv[1], "clone")) ||
	      (argc == 7 && !strcmp(argv[1], "first")))) {
		fprintf(stderr, "usage: clone_bench clone|first HOME SNAPSHOT "
			"overlay|reflink|copy|cp-a|cp-a-never N [SQL]\n"
			"       clone_bench cli HOME N SQL PGSNAP ARGS...\n");
		return 2;
	}
	sql = argc == 7 ? argv[6] : NULL;
	if (open_home(argv[2], &s) < 0)
		return 1;
	if (pgsnap_snapshot_ensure(s, argv[3], &err) < 0) {
		fprintf(stderr, "clone_bench: %s\n", err.msg);
		return 1;
	}
	snapshot_dir(s, argv[3], snapdir, sizeof(snapdir));
	snprintf(golden, sizeof(golden), "%s/data", snapdir);
	if (strncmp(argv[4], "cp-a", 4)) {
		if (pgsnap_method_parse(argv[4], &m) < 0 ||
		    clone_choose_for(s, m, snapdir, &eng, &err) < 0) {
			fprintf(stderr, "clone_bench: %s\n", err.msg[0] ?
				err.msg : "unknown method");
			return 1;
		}
	}
	/* Outside RUN/clones: gc would take unregistered clone directories
	 * there for orphans and remove them under our feet. */
	snprintf(dir, sizeof(dir), "%s/bench-clones", s->run);
	/* Like RUN/clones: the server user's, so it can make clones in it. */
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) ||
	    (s->as_root && chown(dir, s->uid, s->gid) < 0)) {
		fprintf(stderr, "clone_bench: mkdir %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		clone_job job = { 0 };
		int64_t t0, t1, t2;
		double c0, c1;
		bool rmrf = i % 2;

		snprintf(dir, sizeof(dir), "%s/bench-clones/%d-%ld", s->run,
			 (int)getpid(), i);
		snprintf(trash, sizeof(trash), "%s/trash/bench-%d-%ld",
			 s->run, (int)getpid(), i);
		if ((r = mkdir_server(s, dir)) < 0) {
			fprintf(stderr, "clone_bench: mkdir %s: %s\n", dir,
				strerror(-r));
			return 1;
		}
		job.store = s;
		job.golden = golden;
		job.snapdir = snapdir;
		job.dir = dir;
		quiesce(s);
		c0 = cpu_ms();
		t0 = mono_us();
		if (eng) {
			r = eng->clone(&job, &err);
		} else {
			char dst[760];
			char *cp[] = { "/bin/cp", "-a", golden, dst, NULL,
					NULL };
			if (!strcmp(argv[4], "cp-a-never")) {
				cp[2] = "--reflink=never";
				cp[3] = golden;
				cp[4] = dst;
			}
			snprintf(dst, sizeof(dst), "%s/data", dir);
			r = run_argv(s, cp) == 0 ? 0 : -EIO;
			snprintf(err.msg, sizeof(err.msg), "cp -a failed");
		}
		t1 = mono_us();
		c1 = cpu_ms();
		if (r == 0 && sql) {
			double start = 0, query = 0;
			r = start_and_query(s, &job, dir, sql, &start, &query,
					    &err);
			if (r == 0)
				printf("%.3f %.3f %.3f %.3f\n",
				       ms(t0, t1) + start + query, ms(t0, t1),
				       start, query);
		}
		if (r < 0) {
			fprintf(stderr, "clone_bench: %s\n", err.msg);
			return 1;
		}
		if (eng)
			eng->release(s, dir);
		if (rmrf) {
			char *rm[] = { "/bin/rm", "-rf", dir, NULL };
			run_argv(s, rm);
		} else if (rename(dir, trash) < 0) {
			perror("rename");
			return 1;
		}
		t2 = mono_us();
		/* Empty the trash now, untimed, so that no deleter competes
		 * with the next clone for the CPUs. */
		trash_empty(s);
		if (!sql)
			printf("%.3f %.3f %s %.3f\n", ms(t0, t1), ms(t1, t2),
			       rmrf ? "rm-rf" : "trash", c1 - c0);
	}
	pgsnap_store_close(s);
	return 0;
}
