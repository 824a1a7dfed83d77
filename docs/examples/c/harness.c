/*
 * harness.c - a test harness in C on libpgsnap: a fresh server per test.
 *
 *   cc harness.c $(pkg-config --cflags --libs pgsnap libpq) -o harness
 *   ./harness
 */
#include <libpq-fe.h>
#include <pgsnap.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* One test: gets its own server, may do anything to it. */
static int test_create_table(const char *url)
{
	PGconn *conn = PQconnectdb(url);
	PGresult *res;
	int ok;

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return 0;
	}
	PQclear(PQexec(conn, "create table t (x int); insert into t values (42)"));
	res = PQexec(conn, "select x from t");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK &&
	     atoi(PQgetvalue(res, 0, 0)) == 42;
	PQclear(res);
	PQfinish(conn);
	return ok;
}

int main(void)
{
	pgsnap_error err = { 0 };
	pgsnap_store *store;
	pgsnap_new_opts opts = { 0 };
	pgsnap_clone clone;
	char url[1024];
	int i, failed = 0;

	/* NULL options: PGSNAP_HOME, PGSNAP_PG_BINDIR and defaults. */
	if (pgsnap_store_open(&store, NULL, &err) < 0) {
		fprintf(stderr, "pgsnap: %s\n", err.msg);
		return 1;
	}
	opts.timeout_s = -1;          /* the default idle timeout */
	opts.owner = getpid();        /* our servers die with us */
	for (i = 0; i < 2; i++) {
		if (pgsnap_new(store, &opts, &clone, &err) < 0) {
			fprintf(stderr, "pgsnap: %s\n", err.msg);
			failed++;
			break;
		}
		if (pgsnap_clone_url(&clone, url, sizeof(url)) >= (int)sizeof(url))
			failed++;
		else if (!test_create_table(url))   /* same table, twice: */
			failed++;                   /* each server is fresh */
		printf("%s test %d on clone %s (pid %d)\n",
		       failed ? "not ok" : "ok", i + 1, clone.id,
		       (int)clone.pid);
		if (pgsnap_rm(store, clone.id, &err) < 0) {
			fprintf(stderr, "pgsnap: %s\n", err.msg);
			failed++;
		}
	}
	pgsnap_store_close(store);
	return failed ? 1 : 0;
}
