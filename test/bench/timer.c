/*
 * timer.c - the benchmark driver of `make bench`: times, from outside,
 * "get a fresh PostgreSQL" up to its first answered query.
 *
 *   timer lat   [-n N] [-w WARMUP] [-u USER] [-b SHELL-CMD] [-c URL]
 *               -- CMD... [--- CLEANUP... {}]
 *       run CMD N times; each run: start CMD, read the conninfo/URL it
 *       prints last on stdout, wait for its exit, connect with libpq and
 *       answer `select 1`.  CLEANUP (untimed) runs after each, with {}
 *       replaced by the URL.  -u runs CMD and CLEANUP as USER (initdb
 *       refuses root).  -b runs before each run, untimed (e.g. wait
 *       until the pool is full again).  -c URL: CMD prints nothing (a
 *       reset in place): URL is the one to query once it has exited.
 *   timer tpl   [-n N] [-w W] -d ADMIN-CONNINFO -T TEMPLATE -S STRATEGY
 *       CREATE DATABASE ... TEMPLATE ... STRATEGY on a running server
 *       (admin connection kept open, as pgtestdb/IntegreSQL do), then
 *       connect to the new database and `select 1`; DROP it untimed.
 *   timer conn  [-n N] [-w W] -d CONNINFO
 *       connect to an existing database and answer `select 1`: what any
 *       route to a fresh database pays at least (a floor).
 *   timer burst [-n N] [-j J] -- CMD...
 *       N runs of CMD by J concurrent callers, each to its first query.
 *   timer suite [-n N] [-j J] (-- NEW-CMD... --- RM-CMD... {} |
 *                              -d ADMIN -T TEMPLATE -S STRATEGY | -U FILE)
 *       a test suite: N tests on J workers, each gets a fresh database,
 *       runs 5 small queries and throws the database away.  -U: the
 *       databases were made beforehand (untimed), one URL a line in
 *       FILE: the tests' own work alone, a floor for every route.
 *   timer stats [-l LABEL] < samples
 *       summary of one number (ms) per line.
 *
 * Output, one line, tab-separated (scripts/bench.sh parses it):
 *   lat/tpl/stats: n median_ms p90_ms min_ms max_ms mean_ms
 *   burst:         n wall_ms per_s median_ms p90_ms failures
 *   suite:         n wall_ms per_s failures
 * -s FILE appends every sample (ms, one per line) to FILE.
 */
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "suite_sql.h"

static int opt_n = 20, opt_warm = 1, opt_j = 1;
static const char *opt_user, *opt_samples, *opt_admin, *opt_tpl,
	*opt_strategy = "WAL_LOG";
static char **cmd, **cleanup, *before[] = { "sh", "-c", NULL, NULL };
static char **urls;             /* -U */
static const char *opt_connect; /* -c */
static int nurls;
static uid_t run_uid;
static gid_t run_gid;
static bool drop_uid;

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "timer: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/* Run argv ({} replaced by url), capture its stdout's last non-empty line
 * into out (when given).  Returns the exit status, -1 on spawn failure. */
static int run(char **argv, const char *url, char *out, size_t outlen)
{
	char *av[128];
	int pfd[2], status, i;
	pid_t pid;

	for (i = 0; argv[i] && i < 127; i++)
		av[i] = url && !strcmp(argv[i], "{}") ? (char *)url : argv[i];
	av[i] = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_RDONLY);
		dup2(dn, 0);
		dup2(pfd[1], 1);
		if (drop_uid && (setgroups(0, NULL) < 0 ||
				 setgid(run_gid) < 0 || setuid(run_uid) < 0))
			_exit(126);
		execvp(av[0], av);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	{
		char buf[8192];
		size_t got = 0;
		ssize_t n;
		while ((n = read(pfd[0], buf + got,
				 sizeof(buf) - 1 - got)) > 0) {
			got += (size_t)n;
			if (got == sizeof(buf) - 1)
				got = 0; /* only the tail matters */
		}
		buf[got] = '\0';
		while (got && buf[got - 1] == '\n')
			buf[--got] = '\0';
		if (out) {
			char *nl = strrchr(buf, '\n');
			snprintf(out, outlen, "%s", nl ? nl + 1 : buf);
		}
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Connect (to database db instead of conninfo's when given) and run each
 * query; 0 when all answered. */
static int queries_db(const char *conninfo, const char *db,
		      const char *const *sql, int n)
{
	const char *keys[] = { "dbname", db ? "dbname" : NULL, NULL };
	const char *vals[] = { conninfo, db, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	int i, r = 0;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "timer: connect '%s': %s", conninfo,
			PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	for (i = 0; i < n && !r; i++) {
		PGresult *res = PQexec(c, sql[i]);
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			fprintf(stderr, "timer: %s: %s", sql[i],
				PQerrorMessage(c));
			r = -1;
		}
		PQclear(res);
	}
	PQfinish(c);
	return r;
}

static const char *const select1[] = { "select 1" };

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
	/* nearest rank on sorted v */
	int k = (int)((p * n) + 0.999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static double median(const double *v, int n)
{
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void save_samples(const double *v, int n)
{
	FILE *f;
	int i;

	if (!opt_samples)
		return;
	f = fopen(opt_samples, "a");
	if (!f)
		die("cannot open %s", opt_samples);
	for (i = 0; i < n; i++)
		fprintf(f, "%.3f\n", v[i]);
	fclose(f);
}

static void summary(double *v, int n)
{
	double sum = 0;
	int i;

	if (n == 0)
		die("no samples%s", "");
	save_samples(v, n);
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	for (i = 0; i < n; i++)
		sum += v[i];
	printf("%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n", n, median(v, n),
	       pct(v, n, 0.9), v[0], v[n - 1], sum / n);
}

/* One fresh database from the template route, named by i: its name
 * into dbname. */
static int tpl_create(PGconn *admin, int i, char *dbname, size_t len)
{
	char sql[512];
	PGresult *res;
	int ok;

	snprintf(sql, sizeof(sql),
		 "CREATE DATABASE bench_%d_%d TEMPLATE %s STRATEGY %s",
		 (int)getpid(), i, opt_tpl, opt_strategy);
	res = PQexec(admin, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "timer: %s: %s", sql, PQerrorMessage(admin));
	PQclear(res);
	snprintf(dbname, len, "bench_%d_%d", (int)getpid(), i);
	return ok ? 0 : -1;
}

static void tpl_drop(PGconn *admin, int i)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "DROP DATABASE bench_%d_%d", (int)getpid(),
		 i);
	PQclear(PQexec(admin, sql));
}

static PGconn *admin_connect(void)
{
	PGconn *a = PQconnectdb(opt_admin);
	if (PQstatus(a) != CONNECTION_OK)
		die("admin connection: %s", PQerrorMessage(a));
	return a;
}

/* One fresh database, timed up to its first query.  <0 on failure. */
static bool conn_only;           /* timer conn */

static double one_lat(int i, PGconn *admin, char *url, size_t len)
{
	double t0 = now_ms();

	if (conn_only) {
		if (queries_db(opt_admin, NULL, select1, 1) < 0)
			return -1;
		return now_ms() - t0;
	}
	if (admin) {
		if (tpl_create(admin, i, url, len) < 0)
			return -1;
	} else {
		int st = run(cmd, NULL, url, len);
		if (st != 0) {
			fprintf(stderr, "timer: %s exited %d\n", cmd[0], st);
			return -1;
		}
		if (opt_connect)
			snprintf(url, len, "%s", opt_connect);
	}
	if (queries_db(admin ? opt_admin : url, admin ? url : NULL, select1,
		       1) < 0)
		return -1;
	return now_ms() - t0;
}

static int mode_lat(bool tpl)
{
	double *v = calloc((size_t)opt_n, sizeof(double));
	PGconn *admin = tpl ? admin_connect() : NULL;
	char url[4096];
	int i, got = 0;

	for (i = -opt_warm; i < opt_n; i++) {
		double ms = one_lat(i + opt_warm, admin, url, sizeof(url));
		if (ms < 0)
			die("a run failed%s", "");
		if (admin)
			tpl_drop(admin, i + opt_warm);
		else if (cleanup)
			run(cleanup, url, NULL, 0);
		if (i >= 0)
			v[got++] = ms;
		if (before[2] && i + 1 < opt_n && run(before, NULL, NULL, 0) != 0)
			die("the -b command failed%s", "");
	}
	if (admin)
		PQfinish(admin);
	summary(v, got);
	free(v);
	return 0;
}

/* ---- burst and suite: J workers over N jobs ---------------------------- */

static atomic_int next_job, failures;
static double *lat_v;


static void *worker(void *arg)
{
	bool suite = arg != NULL;
	PGconn *admin = suite && opt_admin ? admin_connect() : NULL;
	char url[4096];
	int i;

	while ((i = atomic_fetch_add(&next_job, 1)) < opt_n) {
		double t0 = now_ms();
		if (urls) {
			if (i >= nurls) {
				atomic_fetch_add(&failures, 1);
				continue;
			}
			snprintf(url, sizeof(url), "%s", urls[i]);
		} else if (admin) {
			if (tpl_create(admin, i, url, sizeof(url)) < 0) {
				atomic_fetch_add(&failures, 1);
				continue;
			}
		} else if (run(cmd, NULL, url, sizeof(url)) != 0) {
			atomic_fetch_add(&failures, 1);
			continue;
		}
		if (queries_db(admin ? opt_admin : url, admin ? url : NULL,
			       suite ? suite_sql : select1,
			       suite ? (int)(sizeof(suite_sql) /
					     sizeof(*suite_sql)) : 1))
			atomic_fetch_add(&failures, 1);
		lat_v[i] = now_ms() - t0;
		if (!suite)
			continue;
		if (admin)
			tpl_drop(admin, i);
		else if (cleanup && !urls)
			run(cleanup, url, NULL, 0);
	}
	if (admin)
		PQfinish(admin);
	return NULL;
}

static int mode_pool(bool suite)
{
	pthread_t *t = calloc((size_t)opt_j, sizeof(*t));
	double t0, wall, *v;
	int i, n = 0;

	lat_v = calloc((size_t)opt_n, sizeof(double));
	t0 = now_ms();
	for (i = 0; i < opt_j; i++)
		pthread_create(&t[i], NULL, worker, suite ? "suite" : NULL);
	for (i = 0; i < opt_j; i++)
		pthread_join(t[i], NULL);
	wall = now_ms() - t0;
	v = lat_v;
	for (i = 0; i < opt_n; i++)
		if (v[i] > 0)
			v[n++] = v[i];
	save_samples(v, n);
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	if (suite)
		printf("%d\t%.3f\t%.3f\t%d\n", opt_n, wall,
		       opt_n / (wall / 1e3), (int)failures);
	else
		printf("%d\t%.3f\t%.3f\t%.3f\t%.3f\t%d\n", opt_n, wall,
		       opt_n / (wall / 1e3), n ? median(v, n) : 0,
		       n ? pct(v, n, 0.9) : 0, (int)failures);
	free(t);
	free(lat_v);
	return failures ? 1 : 0;
}

static int mode_stats(void)
{
	double *v = NULL, x;
	int n = 0, cap = 0;

	while (scanf("%lf", &x) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(v, (size_t)cap * sizeof(*v));
		}
		v[n++] = x;
	}
	summary(v, n);
	free(v);
	return 0;
}

static void load_urls(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int cap = 0;

	if (!f)
		die("cannot read %s", path);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!*line)
			continue;
		if (nurls == cap) {
			cap = cap ? cap * 2 : 256;
			urls = realloc(urls, (size_t)cap * sizeof(*urls));
		}
		urls[nurls++] = strdup(line);
	}
	fclose(f);
}

static int num(const char *s, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		die("bad number '%s'", s);
	return (int)v;
}

int main(int argc, char **argv)
{
	const char *mode;
	int ch, i;

	if (argc < 2)
		die("usage: timer lat|tpl|conn|burst|suite|stats [OPTIONS] [-- CMD]%s",
		    "");
	mode = argv[1];
	argv++;
	argc--;
	while ((ch = getopt(argc, argv, "+n:w:j:u:s:d:T:S:l:b:U:c:")) != -1) {
		switch (ch) {
		case 'n': opt_n = num(optarg, 1, 1000000); break;
		case 'w': opt_warm = num(optarg, 0, 1000); break;
		case 'j': opt_j = num(optarg, 1, 1024); break;
		case 'u': opt_user = optarg; break;
		case 's': opt_samples = optarg; break;
		case 'd': opt_admin = optarg; break;
		case 'T': opt_tpl = optarg; break;
		case 'S': opt_strategy = optarg; break;
		case 'l': break; /* a label, for the reader of ps */
		case 'b': before[2] = optarg; break;
		case 'c': opt_connect = optarg; break;
		case 'U': load_urls(optarg); break;
		default: die("bad option%s", "");
		}
	}
	if (optind < argc) {
		cmd = argv + optind;
		for (i = optind; i < argc; i++) {
			if (!strcmp(argv[i], "---")) {
				argv[i] = NULL;
				cleanup = argv + i + 1;
				break;
			}
		}
	}
	if (opt_user) {
		struct passwd *pw = getpwnam(opt_user);
		if (!pw)
			die("no user %s", opt_user);
		run_uid = pw->pw_uid;
		run_gid = pw->pw_gid;
		drop_uid = geteuid() == 0;
	}
	if (!strcmp(mode, "stats"))
		return mode_stats();
	if (!strcmp(mode, "conn")) {
		if (!opt_admin)
			die("conn needs -d%s", "");
		conn_only = true;
		return mode_lat(false);
	}
	if (!strcmp(mode, "tpl")) {
		if (!opt_admin || !opt_tpl)
			die("tpl needs -d and -T%s", "");
		return mode_lat(true);
	}
	if (!opt_admin && !cmd && !urls)
		die("%s needs a command after --", mode);
	if (!strcmp(mode, "lat"))
		return mode_lat(false);
	if (!strcmp(mode, "burst"))
		return mode_pool(false);
	if (!strcmp(mode, "suite"))
		return mode_pool(true);
	die("unknown mode '%s'", mode);
	return 2;
}
