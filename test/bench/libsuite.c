/*
 * libsuite.c - the test suite of `make bench` run by a harness that uses
 * libpgsnap in its own process (as a C harness, or a binding, would),
 * instead of running `pgsnap new` and `pgsnap rm` per test.
 *
 *   libsuite [-n N] [-j J] [-S DATABASES] [-p POOL]
 *
 * N tests on J threads (a store handle each); each test: pgsnap_new with
 * --shared=DATABASES (0: a server of its own), connect, the same 5 queries
 * as `timer suite`, pgsnap_rm.  Prints, tab-separated: n wall_ms per_s
 * failures.  (pgsnap_new talks to the store's service when it runs.)
 */
#include <libpq-fe.h>
#include <pgsnap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "suite_sql.h"

static int opt_n = 500, opt_j = 4, opt_shared = 16, opt_pool = 2;
static atomic_int next_job, failures;


static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int queries(const char *url)
{
	PGconn *c = PQconnectdb(url);
	size_t i;
	int r = 0;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "libsuite: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	for (i = 0; i < sizeof(suite_sql) / sizeof(*suite_sql) && !r; i++) {
		PGresult *res = PQexec(c, suite_sql[i]);
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			fprintf(stderr, "libsuite: %s", PQerrorMessage(c));
			r = -1;
		}
		PQclear(res);
	}
	PQfinish(c);
	return r;
}

static void *worker(void *arg)
{
	pgsnap_new_opts o = { .timeout_s = -1 };
	pgsnap_store *s;
	pgsnap_error e;
	char url[2048];
	int i;

	(void)arg;
	o.shared = opt_shared ? opt_shared : -1;
	o.pool = opt_pool;
	o.no_pool = opt_pool == 0;
	if (pgsnap_store_open(&s, NULL, &e) < 0) {
		fprintf(stderr, "libsuite: %s\n", e.msg);
		atomic_fetch_add(&failures, opt_n);
		return NULL;
	}
	while ((i = atomic_fetch_add(&next_job, 1)) < opt_n) {
		pgsnap_clone c;
		if (pgsnap_new(s, &o, &c, &e) < 0) {
			fprintf(stderr, "libsuite: %s\n", e.msg);
			atomic_fetch_add(&failures, 1);
			continue;
		}
		pgsnap_clone_url(&c, url, sizeof(url));
		if (queries(url) < 0)
			atomic_fetch_add(&failures, 1);
		if (pgsnap_rm(s, c.id, &e) < 0) {
			fprintf(stderr, "libsuite: %s\n", e.msg);
			atomic_fetch_add(&failures, 1);
		}
	}
	pgsnap_store_close(s);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[256];
	double t0, wall;
	int ch, i;

	while ((ch = getopt(argc, argv, "n:j:S:p:")) != -1) {
		switch (ch) {
		case 'n': opt_n = atoi(optarg); break;
		case 'j': opt_j = atoi(optarg); break;
		case 'S': opt_shared = atoi(optarg); break;
		case 'p': opt_pool = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: libsuite [-n N] [-j J] [-S DBS] "
				"[-p POOL]\n");
			return 2;
		}
	}
	if (opt_n < 1 || opt_j < 1 || opt_j > 256 || opt_shared < 0 ||
	    opt_pool < 0) {
		fprintf(stderr, "libsuite: bad numbers\n");
		return 2;
	}
	t0 = now_ms();
	for (i = 0; i < opt_j; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (i = 0; i < opt_j; i++)
		pthread_join(th[i], NULL);
	wall = now_ms() - t0;
	printf("%d\t%.3f\t%.3f\t%d\n", opt_n, wall, opt_n / (wall / 1e3),
	       (int)failures);
	return failures ? 1 : 0;
}
