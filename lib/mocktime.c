/*
 * mocktime.c - a now() that tests control (the seed post's unit_tests
 * schema).
 *
 * unit_tests.now() shadows pg_catalog.now() because the role's search_path
 * names unit_tests before pg_catalog: PostgreSQL searches pg_catalog first
 * only when the path does not name it.  It returns timestamptz like the
 * built-in.  What it cannot reach: CURRENT_TIMESTAMP, LOCALTIMESTAMP,
 * transaction_timestamp() and statement_timestamp() (grammar keywords or
 * other names), column defaults and views whose now() was bound to
 * pg_catalog when they were created before the shadow existed, functions
 * with their own SET search_path, and schema-qualified pg_catalog.now().
 */
#include "snapshot.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

int mocktime_check(const char *now, pgsnap_error *err)
{
	if (!now || !*now || strlen(now) > 100 || strpbrk(now, "\n\r$\\"))
		return pgsnap_err(err, EINVAL, "--now '%s': expected a "
			"timestamp such as '2021-06-06 12:00:00+00' or 'clock'",
			now ? now : "");
	return 0;
}

int mocktime_install(PGconn *conn, const char *now, pgsnap_error *err)
{
	char *lit = NULL, *sql = NULL;
	bool clock = !strcmp(now, "clock");
	int r;

	if ((r = mocktime_check(now, err)) < 0)
		return r;
	if (!clock && !(lit = PQescapeLiteral(conn, now, strlen(now))))
		return pgsnap_err(err, ENOMEM, "out of memory");
	r = asprintf(&sql,
		"CREATE SCHEMA IF NOT EXISTS unit_tests;\n"
		"CREATE OR REPLACE FUNCTION unit_tests.now() "
		"RETURNS timestamptz LANGUAGE sql %s PARALLEL SAFE "
		"AS $pgsnap$ SELECT %s%s $pgsnap$;\n"
		"ALTER ROLE postgres SET search_path = "
		"unit_tests, \"$user\", public, pg_catalog;\n"
		"SELECT unit_tests.now();\n",
		clock ? "VOLATILE" : "STABLE",
		clock ? "pg_catalog.clock_timestamp()" : lit,
		clock ? "" : "::timestamptz");
	PQfreemem(lit);
	if (r < 0)
		return pgsnap_err(err, ENOMEM, "out of memory");
	r = sql_exec(conn, sql, err);
	free(sql);
	if (r < 0)
		return pgsnap_err_wrap(err, r, "--now '%s'", now);
	return 0;
}
