/*
 * svcbench.c - the service timed by a client speaking its protocol
 * (docs/protocol.md) over the Unix socket, the way the packages do.
 *
 *   svcbench suite   -s SOCK [-n N] [-j J] [-S DBS] [-p POOL]
 *   svcbench handout -s SOCK [-n N] [-c CLIENTS] [-S DBS] [-p POOL] [-o SAMPLES]
 *
 * POOL: the shared servers the service keeps warm (pool=, default 2).
 *
 * suite: N tests on J threads, a connection to the service each; each test
 * asks `new shared=DBS`, connects, runs the suite's 5 queries, asks `rm`.
 * Prints "n wall_ms per_s failures".
 * handout: N rounds; in each, CLIENTS threads (a connection each) send
 * `new` at the same instant: the time from sending it to its answer (the
 * URL); once every one is answered, the `rm`s (untimed), then a pause
 * while the service refills its pool.  Prints "n median p90 min max mean" in ms and writes every
 * sample to SAMPLES.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "suite_sql.h"

static const char *opt_sock;
static int opt_n = 500, opt_j = 4, opt_shared = 16, opt_clients = 1, opt_pool = 2;
static atomic_int next_job, failures;
static double *samples;
static atomic_int nsamples;
static pthread_barrier_t round_start, round_end;

typedef struct cl {
	int fd;
	size_t len;
	char buf[65536];
} cl;

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Send line, read one answer line into out (NUL-terminated). */
static int call(cl *c, const char *line, char *out, size_t len)
{
	size_t n = strlen(line);

	if (send(c->fd, line, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		ssize_t r;
		if (nl) {
			size_t l = (size_t)(nl - c->buf);
			snprintf(out, len, "%.*s", (int)l, c->buf);
			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return strstr(out, "\"ok\": true") ? 0 : -1;
		}
		r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

static int open_cl(cl *c)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char ans[512];

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", opt_sock);
	c->len = 0;
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	return call(c, "pgsnap 1\n", ans, sizeof(ans));
}

/* A JSON string field of a flat answer (no escapes in ours: ids, URLs). */
static int field(const char *ans, const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	if (!(p = strstr(ans, pat)))
		return -1;
	p += strlen(pat);
	if (!(e = strchr(p, '"')))
		return -1;
	snprintf(out, len, "%.*s", (int)(e - p), p);
	return 0;
}

static int queries(const char *url)
{
	PGconn *c = PQconnectdb(url);
	size_t i;
	int r = 0;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "svcbench: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	for (i = 0; i < sizeof(suite_sql) / sizeof(*suite_sql) && !r; i++) {
		PGresult *res = PQexec(c, suite_sql[i]);
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			fprintf(stderr, "svcbench: %s", PQerrorMessage(c));
			r = -1;
		}
		PQclear(res);
	}
	PQfinish(c);
	return r;
}

static void *suite_worker(void *arg)
{
	char req[128], ans[8192], url[2048], id[64], rm[128];
	cl *c = calloc(1, sizeof(*c));

	(void)arg;
	if (!c || open_cl(c) < 0) {
		fprintf(stderr, "svcbench: cannot reach the service\n");
		atomic_fetch_add(&failures, opt_n);
		free(c);
		return NULL;
	}
	snprintf(req, sizeof(req), "new shared=%d owner=%d pool=%d\n",
		 opt_shared, (int)getpid(), opt_pool);
	while (atomic_fetch_add(&next_job, 1) < opt_n) {
		if (call(c, req, ans, sizeof(ans)) < 0 ||
		    field(ans, "url", url, sizeof(url)) < 0 ||
		    field(ans, "id", id, sizeof(id)) < 0) {
			fprintf(stderr, "svcbench: new: %s\n", ans);
			atomic_fetch_add(&failures, 1);
			continue;
		}
		if (queries(url) < 0)
			atomic_fetch_add(&failures, 1);
		snprintf(rm, sizeof(rm), "rm id=%s\n", id);
		if (call(c, rm, ans, sizeof(ans)) < 0) {
			fprintf(stderr, "svcbench: rm: %s\n", ans);
			atomic_fetch_add(&failures, 1);
		}
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void *handout_worker(void *arg)
{
	char req[128], ans[8192], id[64], rm[128];
	cl *c = calloc(1, sizeof(*c));
	int i;

	(void)arg;
	if (!c || open_cl(c) < 0) {
		atomic_fetch_add(&failures, opt_n);
		free(c);
		return NULL;
	}
	snprintf(req, sizeof(req), "new shared=%d owner=%d pool=%d\n",
		 opt_shared, (int)getpid(), opt_pool);
	for (i = 0; i < opt_n; i++) {
		double t0, t1;
		int r;

		pthread_barrier_wait(&round_start);
		t0 = now_ms();
		r = call(c, req, ans, sizeof(ans));
		t1 = now_ms();
		if (r < 0 || field(ans, "id", id, sizeof(id)) < 0) {
			fprintf(stderr, "svcbench: new: %s\n", ans);
			atomic_fetch_add(&failures, 1);
			id[0] = '\0';
		} else {
			samples[atomic_fetch_add(&nsamples, 1)] = t1 - t0;
		}
		/* Every handout of the round first: their rm are other work. */
		pthread_barrier_wait(&round_end);
		snprintf(rm, sizeof(rm), "rm id=%s\n", id);
		if (id[0] && call(c, rm, ans, sizeof(ans)) < 0)
			atomic_fetch_add(&failures, 1);
		/* The pool refills between two rounds (its keeper starts
		 * servers in the background, as while a suite's tests run). */
		if (pthread_barrier_wait(&round_end) == PTHREAD_BARRIER_SERIAL_THREAD)
			usleep(opt_clients > 1 ? 1500000 : 30000);
		pthread_barrier_wait(&round_end);
	}
	close(c->fd);
	free(c);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "", *out = NULL;
	pthread_t th[256];
	double t0, wall, sum = 0;
	int ch, i, nth, n;

	optind = 2;
	while ((ch = getopt(argc, argv, "s:n:j:S:c:o:p:")) != -1) {
		switch (ch) {
		case 's': opt_sock = optarg; break;
		case 'n': opt_n = atoi(optarg); break;
		case 'j': opt_j = atoi(optarg); break;
		case 'S': opt_shared = atoi(optarg); break;
		case 'c': opt_clients = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'p': opt_pool = atoi(optarg); break;
		default: return 2;
		}
	}
	nth = !strcmp(mode, "suite") ? opt_j : opt_clients;
	if (!opt_sock || opt_n < 1 || nth < 1 || nth > 256 ||
	    (strcmp(mode, "suite") && strcmp(mode, "handout"))) {
		fprintf(stderr, "usage: svcbench suite|handout -s SOCK [-n N] "
			"[-j J] [-c CLIENTS] [-S DBS] [-o SAMPLES]\n");
		return 2;
	}
	samples = calloc((size_t)opt_n * (size_t)nth, sizeof(*samples));
	pthread_barrier_init(&round_start, NULL, (unsigned)nth);
	pthread_barrier_init(&round_end, NULL, (unsigned)nth);
	t0 = now_ms();
	for (i = 0; i < nth; i++)
		pthread_create(&th[i], NULL, !strcmp(mode, "suite") ?
			       suite_worker : handout_worker, NULL);
	for (i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	wall = now_ms() - t0;
	if (!strcmp(mode, "suite")) {
		printf("%d\t%.3f\t%.3f\t%d\n", opt_n, wall, opt_n / (wall / 1e3),
		       (int)failures);
		return failures ? 1 : 0;
	}
	n = nsamples;
	if (n == 0)
		return 1;
	qsort(samples, (size_t)n, sizeof(*samples), cmp);
	for (i = 0; i < n; i++)
		sum += samples[i];
	if (out) {
		FILE *f = fopen(out, "w");
		for (i = 0; f && i < n; i++)
			fprintf(f, "%.4f\n", samples[i]);
		if (f)
			fclose(f);
	}
	printf("%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n", n, samples[n / 2],
	       samples[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1], samples[0],
	       samples[n - 1], sum / n);
	return failures ? 1 : 0;
}
