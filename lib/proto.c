/*
 * proto.c - the lines of the service protocol (docs/protocol.md): a
 * request is a verb and key=value words with percent-encoded values; an
 * answer is one JSON object.  Parsing is strict (a typo is an error, never
 * ignored) and bounded; it is fuzzed (test/fuzz/fuzz_proto.c).
 */
#include "internal.h"
#include "json.h"
#include "proto.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Verbs and keys: lower-case letters, digits and '_'. */
static bool word_char(char c)
{
	return (c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9');
}

int proto_parse(const char *line, size_t len, proto_req *r, pgsnap_error *err)
{
	const char *p = line, *end = line + len;
	char *o = r->buf;
	size_t n;

	memset(r, 0, offsetof(proto_req, buf));
	if (len >= PROTO_LINE_MAX)
		return pgsnap_err(err, E2BIG, "request longer than %d bytes",
				  PROTO_LINE_MAX - 1);
	for (n = 0; p + n < end && word_char(p[n]); n++)
		;
	if (n == 0 || n >= sizeof(r->verb))
		return pgsnap_err(err, EINVAL, "a request starts with a verb "
				  "(see docs/protocol.md)");
	memcpy(r->verb, p, n);
	p += n;
	while (p < end) {
		const char *k;
		size_t kl;
		int i;

		if (*p != ' ' || p + 1 >= end)
			return pgsnap_err(err, EINVAL, "words are separated by "
					  "one space, at column %zu",
					  (size_t)(p - line) + 1);
		k = ++p;
		while (p < end && word_char(*p))
			p++;
		kl = (size_t)(p - k);
		if (kl == 0 || kl > 31 || p >= end || *p != '=')
			return pgsnap_err(err, EINVAL, "expected key=value at "
					  "column %zu", (size_t)(k - line) + 1);
		if (r->n == PROTO_ARGS_MAX)
			return pgsnap_err(err, E2BIG, "more than %d keys",
					  PROTO_ARGS_MAX);
		for (i = 0; i < r->n; i++)
			if (strlen(r->key[i]) == kl && !memcmp(r->key[i], k, kl))
				return pgsnap_err(err, EINVAL, "key '%.*s' given "
						  "twice", (int)kl, k);
		/* Keys and values are copied into buf, each NUL-ended: the
		 * decoded line is never longer than the line. */
		memcpy(o, k, kl);
		o[kl] = '\0';
		r->key[r->n] = o;
		o += kl + 1;
		r->val[r->n] = o;
		for (p++; p < end && *p != ' '; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '%') {
				int hi = end - p > 2 ? hexval(p[1]) : -1;
				int lo = end - p > 2 ? hexval(p[2]) : -1;
				if (hi < 0 || lo < 0 || (hi | lo) == 0)
					return pgsnap_err(err, EINVAL, "bad "
						"%%-escape in the value of '%s'",
						r->key[r->n]);
				c = (unsigned char)(hi << 4 | lo);
				p += 2;
			} else if (c == '+') {
				c = ' ';
			} else if (c < 0x21 || c == 0x7f) {
				return pgsnap_err(err, EINVAL, "a control "
					"character in the value of '%s' (encode "
					"it)", r->key[r->n]);
			}
			*o++ = (char)c;
		}
		*o++ = '\0';
		r->n++;
	}
	return 0;
}

int proto_check(const proto_req *r, const char *const *allowed,
		pgsnap_error *err)
{
	int i;
	size_t k;

	for (i = 0; i < r->n; i++) {
		for (k = 0; allowed[k]; k++)
			if (!strcmp(allowed[k], r->key[i]))
				break;
		if (!allowed[k])
			return pgsnap_err(err, EINVAL, "%s: unknown key '%s'",
					  r->verb, r->key[i]);
	}
	return 0;
}

const char *proto_get(const proto_req *r, const char *key)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (!strcmp(r->key[i], key))
			return r->val[i];
	return NULL;
}

int proto_long(const proto_req *r, const char *key, long min, long max,
	       long *out, pgsnap_error *err)
{
	const char *v = proto_get(r, key);

	if (!v)
		return 0;
	if (parse_long(v, min, max, out) < 0)
		return pgsnap_err(err, EINVAL, "%s '%s': expected a whole number "
				  "from %ld to %ld", key, v, min, max);
	return 1;
}

/* ---- the client's side: encoding ---------------------------------------- */

void proto_put(jbuf *b, const char *key, const char *val)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)val;
	char e[4] = "%";

	jb_printf(b, " %s=", key);
	for (; *s; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("-._~/:,@", *s)) {
			char c[2] = { (char)*s, 0 };
			jb_raw(b, c);
		} else {
			e[1] = hex[*s >> 4];
			e[2] = hex[*s & 15];
			e[3] = '\0';
			jb_raw(b, e);
		}
	}
}

void proto_put_long(jbuf *b, const char *key, long v)
{
	char num[32];

	snprintf(num, sizeof(num), "%ld", v);
	proto_put(b, key, num);
}

/* ---- answers ---------------------------------------------------------------- */

const char *proto_errno_name(int code)
{
	const char *n = strerrorname_np(code < 0 ? -code : code);
	return n ? n : "EIO";
}

int proto_errno_code(const char *name)
{
	int i;

	for (i = 1; i < 200; i++) {
		const char *n = strerrorname_np(i);
		if (n && !strcmp(n, name))
			return -i;
	}
	return -EIO;
}

void proto_error(jbuf *b, const pgsnap_error *e, int status)
{
	/* One line for people: whatever bytes a message holds. */
	jb_raw(b, "{\"ok\": false");
	jb_field(b, "error", e->msg[0] ? e->msg : strerror(-e->code));
	jb_field(b, "errno", proto_errno_name(e->code ? e->code : -EIO));
	jb_field_int(b, "status", status);
	jb_raw(b, "}\n");
}
