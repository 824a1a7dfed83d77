/*
 * ready.c - how soon after a server accepts connections does pgsnap know?
 *
 *   ready [-n N] [-p] [-o 'SERVER OPTIONS']... DATADIR
 *
 * Starts postgres on DATADIR (a copy of a snapshot's data, owned by the
 * server user) N times with server_start_ready(), pgsnap's own readiness
 * wait (inotify on postmaster.pid + pidfd), then times a first session
 * (connect + select 1) and sums the PSS of the server's processes.
 * Each -o is a variant (none: the data directory's own settings); the
 * variants take turns.  Prints one line per variant, tab-separated: n,
 * medians of start (spawn to ready, ms), first query (ms), PSS (KiB).
 * With -p a second thread asks PQping every 100 us from outside during
 * the start, and four more columns follow: the median, p90, min and max
 * of (ready returned - first PQPING_OK) in ms, negative when pgsnap knew
 * first.  (pg_ctl -w polls every 100 ms.)
 */
#include "internal.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* PQping is the real libpq's: pq.h renames only what lib/ calls. */
static volatile int stop_ping;
static char conninfo[1024];
static int64_t t_ping;

static void *pinger(void *arg)
{
	struct timespec ts = { 0, 100 * 1000 };

	(void)arg;
	while (!stop_ping) {
		if (PQping(conninfo) == PQPING_OK) {
			t_ping = mono_us();
			return NULL;
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* PSS (KiB) of pid and its children: shared pages count once over all
 * the processes that map them. */
static long pss_kib(pid_t pid)
{
	char path[64], *text = NULL, *p;
	long sum = 0, v;
	FILE *f;
	int child;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if (read_file(path, 1 << 16, &text, NULL) == 0) {
		p = strstr(text, "\nPss:");
		if (p && sscanf(p + 5, "%ld", &v) == 1)
			sum += v;
		free(text);
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
		 (int)pid);
	f = fopen(path, "re");
	if (!f)
		return sum;
	while (fscanf(f, "%d", &child) == 1)
		sum += pss_kib(child);
	fclose(f);
	return sum;
}

static double first_query(void)
{
	int64_t t0 = mono_us();
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = PQexec(c, "select 1");
	double ms = (double)(mono_us() - t0) / 1000.0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		ms = -1;
	PQclear(r);
	PQfinish(c);
	return ms;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define MAX_VARIANTS 16

typedef struct variant {
	const char *opts;
	double *d, *st, *fq, *pss;
} variant;

static double med(double *v, long n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	char sock[700], logp[700];
	variant var[MAX_VARIANTS];
	bool ping = false;
	long n = 20;
	int nv = 0, i, k, ch;

	memset(var, 0, sizeof(var));
	while ((ch = getopt(argc, argv, "n:po:")) != -1) {
		switch (ch) {
		case 'n':
			if (parse_long(optarg, 1, 10000, &n) < 0)
				return 2;
			break;
		case 'p': ping = true; break;
		case 'o':
			if (nv == MAX_VARIANTS)
				return 2;
			var[nv++].opts = optarg;
			break;
		default: return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: ready [-n N] [-p] [-o OPTS]... DATADIR\n");
		return 2;
	}
	if (nv == 0)
		var[nv++].opts = "";
	if (pgsnap_store_open(&s, NULL, &err) < 0) {
		fprintf(stderr, "ready: %s\n", err.msg);
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/..", argv[optind]);
	snprintf(logp, sizeof(logp), "%s/../log", argv[optind]);
	snprintf(conninfo, sizeof(conninfo),
		 "host=%s port=5432 dbname=postgres user=postgres "
		 "connect_timeout=5", sock);
	for (k = 0; k < nv; k++) {
		var[k].d = calloc((size_t)n, sizeof(double));
		var[k].st = calloc((size_t)n, sizeof(double));
		var[k].fq = calloc((size_t)n, sizeof(double));
		var[k].pss = calloc((size_t)n, sizeof(double));
	}
	/* Round robin over the variants: a burst of load elsewhere hits
	 * them all alike. */
	/* Round -1 warms the caches and is not counted. */
	for (i = -1; i < n; i++) {
		for (k = 0; k < nv; k++) {
			variant *v = &var[k];
			server_start ss = { 0 };
			pthread_t th;
			pid_t pid;
			int64_t t0, t1;
			double fq, pss;

			ss.datadir = argv[optind];
			ss.sockdir = sock;
			ss.log_path = logp;
			ss.port = 5432;
			ss.timeout_ms = 30000;
			ss.server_opts = v->opts;
			stop_ping = 0;
			t_ping = 0;
			if (ping)
				pthread_create(&th, NULL, pinger, NULL);
			t0 = mono_us();
			if (server_start_ready(s, &ss, &pid, &err) < 0) {
				fprintf(stderr, "ready: %s\n", err.msg);
				return 1;
			}
			t1 = mono_us();
			if (ping)
				pthread_join(th, NULL); /* its first PQPING_OK */
			fq = first_query();
			pss = (double)pss_kib(pid);
			server_stop(pid, 0, 10000);
			if (i < 0)
				continue;
			v->d[i] = (double)(t1 - t_ping) / 1000.0;
			v->st[i] = (double)(t1 - t0) / 1000.0;
			v->fq[i] = fq;
			v->pss[i] = pss;
		}
	}
	for (k = 0; k < nv; k++) {
		variant *v = &var[k];
		printf("%ld\t%.3f\t%.3f\t%.0f", n, med(v->st, n), med(v->fq, n),
		       med(v->pss, n));
		if (ping) {
			med(v->d, n);
			printf("\t%.3f\t%.3f\t%.3f\t%.3f", v->d[n / 2],
			       v->d[(n * 9 + 9) / 10 - 1], v->d[0], v->d[n - 1]);
		}
		printf("\n");
	}
	pgsnap_store_close(s);
	return 0;
}
