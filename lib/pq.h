/*
 * pq.h - libpq, loaded on first use instead of at exec.
 *
 * libpq.so.5 pulls in some 25 shared libraries (Kerberos, LDAP, GnuTLS,
 * ...): linking it costs every `pgsnap` process several milliseconds
 * before main(), more than a whole handout from the warm pool.  Most
 * commands never talk SQL, so lib/ calls libpq through pq.c, which
 * dlopen()s it the first time one of these is called.  internal.h
 * includes this header, so the modules keep writing PQexec() and
 * <libpq-fe.h> declares the renamed functions.  A libpq function used
 * in lib/ must be listed here (the link fails otherwise: libpq is not
 * linked).
 */
#ifndef PGSNAP_PQ_H
#define PGSNAP_PQ_H

#define PGSNAP_PQ_FUNCS(X) \
	X(PQclear) X(PQconnectdbParams) X(PQencryptPasswordConn) \
	X(PQerrorMessage) X(PQescapeIdentifier) X(PQescapeLiteral) X(PQexec) \
	X(PQfinish) X(PQfreemem) X(PQgetvalue) X(PQntuples) \
	X(PQresultStatus) X(PQstatus)

#define PQclear pgsnap_PQclear
#define PQconnectdbParams pgsnap_PQconnectdbParams
#define PQencryptPasswordConn pgsnap_PQencryptPasswordConn
#define PQerrorMessage pgsnap_PQerrorMessage
#define PQescapeIdentifier pgsnap_PQescapeIdentifier
#define PQescapeLiteral pgsnap_PQescapeLiteral
#define PQexec pgsnap_PQexec
#define PQfinish pgsnap_PQfinish
#define PQfreemem pgsnap_PQfreemem
#define PQgetvalue pgsnap_PQgetvalue
#define PQntuples pgsnap_PQntuples
#define PQresultStatus pgsnap_PQresultStatus
#define PQstatus pgsnap_PQstatus

#include <libpq-fe.h>

#endif
