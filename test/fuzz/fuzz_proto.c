/*
 * fuzz_proto.c - the service's request parser (proto_parse) on arbitrary
 * lines.  Beyond "no crash": an accepted request has a verb of [a-z0-9_],
 * at most PROTO_ARGS_MAX distinct keys, values with no NUL, and encoding
 * its values again (proto_put) and parsing that gives the same request.
 */
#include "internal.h"
#include "json.h"
#include "proto.h"
#include "fuzz.h"

#include <stdio.h>
#include <string.h>

static proto_req a, b;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pgsnap_error err = { 0 };
	jbuf line = { 0 };
	int i, j;

	if (proto_parse((const char *)data, size, &a, &err) < 0) {
		if (!err.msg[0])
			abort(); /* a refusal says why */
		return 0;
	}
	if (!a.verb[0] || strspn(a.verb, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
	    strlen(a.verb) || a.n > PROTO_ARGS_MAX)
		abort();
	for (i = 0; i < a.n; i++)
		for (j = 0; j < i; j++)
			if (!strcmp(a.key[i], a.key[j]))
				abort(); /* a key twice was let through */
	jb_raw(&line, a.verb);
	for (i = 0; i < a.n; i++)
		proto_put(&line, a.key[i], a.val[i]);
	if (line.oom)
		abort();
	if (line.len < PROTO_LINE_MAX) {
		if (proto_parse(line.p, line.len, &b, &err) < 0) {
			fprintf(stderr, "round trip refused: %s\n", err.msg);
			abort();
		}
		if (strcmp(a.verb, b.verb) || a.n != b.n)
			abort();
		for (i = 0; i < a.n; i++)
			if (strcmp(a.key[i], b.key[i]) || strcmp(a.val[i], b.val[i]))
				abort();
	}
	free(line.p);
	return 0;
}
