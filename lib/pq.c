/* pq.c - forward the libpq calls of lib/ to libpq.so.5, loaded on first
 * use (see pq.h for why).  When it cannot be loaded, every call fails the
 * way libpq fails without a connection, and PQerrorMessage says why. */
#include "internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define PQ_SONAME "libpq.so.5"

static struct {
#define X(f) __typeof__(f) *f;
	PGSNAP_PQ_FUNCS(X)
#undef X
} pq;
static char pq_error[512];
static pthread_once_t pq_once = PTHREAD_ONCE_INIT;

static void pq_load(void)
{
	void *h = dlopen(PQ_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *e;

	if (!h) {
		e = dlerror();
		snprintf(pq_error, sizeof(pq_error), "cannot load %s: %s\n",
			 PQ_SONAME, e ? e : "unknown error");
		return;
	}
#define X(f) pq.f = dlsym(h, #f);
	PGSNAP_PQ_FUNCS(X)
#undef X
}

static bool pq_ready(void)
{
	pthread_once(&pq_once, pq_load);
	return pq.PQconnectdbParams != NULL;
}

void PQclear(PGresult *res)
{
	if (pq_ready() && pq.PQclear)
		pq.PQclear(res);
}

PGconn *PQconnectdbParams(const char *const *keywords,
			  const char *const *values, int expand_dbname)
{
	return pq_ready() ? pq.PQconnectdbParams(keywords, values,
						 expand_dbname) : NULL;
}

char *PQencryptPasswordConn(PGconn *conn, const char *passwd,
			    const char *user, const char *algorithm)
{
	return pq_ready() && pq.PQencryptPasswordConn ?
		pq.PQencryptPasswordConn(conn, passwd, user, algorithm) : NULL;
}

char *PQerrorMessage(const PGconn *conn)
{
	return pq_ready() && pq.PQerrorMessage ? pq.PQerrorMessage(conn) :
		pq_error;
}

char *PQescapeIdentifier(PGconn *conn, const char *str, size_t len)
{
	return pq_ready() && pq.PQescapeIdentifier ?
		pq.PQescapeIdentifier(conn, str, len) : NULL;
}

char *PQescapeLiteral(PGconn *conn, const char *str, size_t len)
{
	return pq_ready() && pq.PQescapeLiteral ?
		pq.PQescapeLiteral(conn, str, len) : NULL;
}

PGresult *PQexec(PGconn *conn, const char *query)
{
	return pq_ready() && pq.PQexec ? pq.PQexec(conn, query) : NULL;
}

void PQfinish(PGconn *conn)
{
	if (pq_ready() && pq.PQfinish)
		pq.PQfinish(conn);
}

void PQfreemem(void *ptr)
{
	if (pq_ready() && pq.PQfreemem)
		pq.PQfreemem(ptr);
}

char *PQgetvalue(const PGresult *res, int tup_num, int field_num)
{
	static char empty[1];
	return pq_ready() && pq.PQgetvalue ?
		pq.PQgetvalue(res, tup_num, field_num) : empty;
}

int PQntuples(const PGresult *res)
{
	return pq_ready() && pq.PQntuples ? pq.PQntuples(res) : 0;
}

ExecStatusType PQresultStatus(const PGresult *res)
{
	return pq_ready() && pq.PQresultStatus ? pq.PQresultStatus(res) :
		PGRES_FATAL_ERROR;
}

ConnStatusType PQstatus(const PGconn *conn)
{
	return pq_ready() && pq.PQstatus ? pq.PQstatus(conn) : CONNECTION_BAD;
}

void pgsnap_pqfinishp(void *p)
{
	PGconn *c = *(PGconn **)p;

	if (c)
		PQfinish(c);
}
