/* proto.h - lines of the service protocol (proto.c, docs/protocol.md). */
#ifndef PGSNAP_PROTO_H
#define PGSNAP_PROTO_H

#include "internal.h"
#include "json.h"

#define PROTO_VERSION 1
#define PROTO_HELLO "pgsnap 1"
#define PROTO_LINE_MAX 16384         /* bytes of a line, with its newline */
#define PROTO_ARGS_MAX 24

/* A parsed request: keys and decoded values point into buf. */
typedef struct proto_req {
	char verb[16];
	int n;
	const char *key[PROTO_ARGS_MAX];
	const char *val[PROTO_ARGS_MAX];
	char buf[PROTO_LINE_MAX];
} proto_req;

/* Parse one request line (without its newline); -EINVAL / -E2BIG with
 * the reason in err. */
int proto_parse(const char *line, size_t len, proto_req *r, pgsnap_error *err);
/* Refuse a key not in allowed (NULL-terminated). */
int proto_check(const proto_req *r, const char *const *allowed,
		pgsnap_error *err);
/* The decoded value of key, or NULL. */
const char *proto_get(const proto_req *r, const char *key);
/* key as a whole number in [min, max] into *out: 1 when given, 0 when
 * absent (*out untouched), -EINVAL when not a number in range. */
int proto_long(const proto_req *r, const char *key, long min, long max,
	       long *out, pgsnap_error *err);

/* Append " key=VALUE" with VALUE percent-encoded. */
void proto_put(jbuf *b, const char *key, const char *val);
void proto_put_long(jbuf *b, const char *key, long v);

/* "ENOENT" for -ENOENT, and back (-EIO for an unknown name). */
const char *proto_errno_name(int code);
int proto_errno_code(const char *name);
/* The error answer line (with its newline); status 2: a bad request. */
void proto_error(jbuf *b, const pgsnap_error *e, int status);

#endif
