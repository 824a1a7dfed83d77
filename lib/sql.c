/* sql.c - talk to a server we started, over its private socket. */
#include "internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

int sql_connect(const char *sockdir, int port, const char *dbname,
		PGconn **out, pgsnap_error *err)
{
	char portstr[16];
	const char *keys[] = { "host", "port", "user", "dbname",
			       "connect_timeout", NULL };
	const char *vals[] = { sockdir, portstr, "postgres", dbname, "10",
			       NULL };
	PGconn *conn;

	snprintf(portstr, sizeof(portstr), "%d", port);
	conn = PQconnectdbParams(keys, vals, 0);
	if (!conn)
		return pgsnap_err(err, ENOMEM, "out of memory");
	if (PQstatus(conn) != CONNECTION_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		msg[strcspn(msg, "\n")] = '\0';
		PQfinish(conn);
		return pgsnap_err(err, ECONNREFUSED, "cannot connect to %s: %s",
				  sockdir, msg);
	}
	*out = conn;
	return 0;
}

int sql_exec(PGconn *conn, const char *sql, pgsnap_error *err)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int r = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		msg[strcspn(msg, "\n")] = '\0';
		r = pgsnap_err(err, EIO, "%s", msg);
	}
	PQclear(res);
	return r;
}

int sql_set_password(PGconn *conn, const char *user, const char *password,
		     pgsnap_error *err)
{
	/* Hash on our side: the clear password never reaches the server's
	 * logs or statistics. */
	char *hash = PQencryptPasswordConn(conn, password, user,
					   "scram-sha-256");
	char *q, *ident;
	int r;

	if (!hash)
		return pgsnap_err(err, EIO, "cannot hash password: %s",
				  PQerrorMessage(conn));
	ident = PQescapeIdentifier(conn, user, strlen(user));
	q = malloc(strlen(hash) + 128 + (ident ? strlen(ident) : 0));
	if (!q || !ident) {
		PQfreemem(hash);
		PQfreemem(ident);
		free(q);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	sprintf(q, "ALTER ROLE %s PASSWORD '%s'", ident, hash);
	r = sql_exec(conn, q, err);
	PQfreemem(hash);
	PQfreemem(ident);
	free(q);
	return r;
}
