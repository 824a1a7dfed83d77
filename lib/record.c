/*
 * record.c - a clone's record: its text form and what it says.
 *
 * A record is one line of tab-separated key=value fields (values
 * %-escaped) after a header line, so that fields can be added without
 * breaking old readers; a record file (registry.c) holds one, the
 * registry of pgsnap 0.1 many.  The predicates below are the rules every
 * judge of a record applies (gc, the service, rm).
 */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define HEADER "pgsnap-registry 1\n"

enum ftype { F_STR, F_INT, F_PID, F_ULL, F_I64, F_LONG };

static const struct field {
	const char *key;
	enum ftype type;
	size_t off, size;
	size_t klen;
} fields[] = {
#define S(k) { #k, F_STR, offsetof(pgsnap_clone, k), sizeof(((pgsnap_clone *)0)->k), sizeof(#k) - 1 }
#define N(k, t) { #k, t, offsetof(pgsnap_clone, k), 0, sizeof(#k) - 1 }
	S(id), S(snapshot), S(method), S(state), S(user), S(dbname),
	S(password), S(os_user), S(dir), S(datadir), S(sockdir), S(host),
	N(port, F_INT), N(pid, F_PID), N(pid_start, F_ULL), N(owner, F_PID),
	N(owner_start, F_ULL), N(creator, F_PID), N(creator_start, F_ULL),
	N(created_ms, F_I64), N(timeout_s, F_LONG),
	N(keep, F_INT), S(boot_id), S(opts_sig),
	S(parent), N(dbs, F_INT), N(dbs_used, F_INT), N(used_ms, F_I64),
	S(worker), S(options), N(ipv6, F_INT),
#undef S
#undef N
};
_Static_assert(ARRAY_SIZE(fields) <= 64, "parse_line tracks fields in a uint64_t");

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

static int unescape(const char *in, size_t len, char *out, size_t outlen)
{
	size_t o = 0, i;

	for (i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			int hi, lo;
			if (len < i + 3)
				return -EINVAL;
			hi = hexval(in[i + 1]);
			lo = hexval(in[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (o + 1 >= outlen)
			return -ENAMETOOLONG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

static int set_field(pgsnap_clone *c, const struct field *f, const char *v,
		     size_t len)
{
	char *dst = (char *)c + f->off;
	char num[32];
	long l;
	int r;

	if (f->type == F_STR)
		return unescape(v, len, dst, f->size);
	if (len == 0 || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, v, len);
	num[len] = '\0';
	switch (f->type) {
	case F_INT:
		r = parse_long(num, -1, 1 << 30, &l);
		if (!r)
			*(int *)dst = (int)l;
		return r;
	case F_PID:
		r = parse_long(num, 0, 1 << 30, &l);
		if (!r)
			*(pid_t *)dst = (pid_t)l;
		return r;
	case F_LONG:
		return parse_long(num, -1, 1L << 40, (long *)dst);
	case F_ULL:
	case F_I64: {
		char *end;
		unsigned long long u;
		if (num[0] < '0' || num[0] > '9')
			return -EINVAL;
		errno = 0;
		u = strtoull(num, &end, 10);
		if (errno || *end || u > (1ULL << 62))
			return -EINVAL;
		if (f->type == F_ULL)
			*(unsigned long long *)dst = u;
		else
			*(int64_t *)dst = (int64_t)u;
		return 0;
	}
	default:
		return -EINVAL;
	}
}

static int parse_line(const char *p, size_t len, pgsnap_clone *c)
{
	const char *end = p + len;
	uint64_t seen = 0;
	size_t hint = 0, k;

	memset(c, 0, sizeof(*c));
	/* We never write a NUL byte: one here is damage, not data. */
	if (memchr(p, '\0', len))
		return -EINVAL;
	while (p < end) {
		const char *tab = memchr(p, '\t', (size_t)(end - p));
		const char *eq;
		size_t flen = (size_t)((tab ? tab : end) - p), i;

		eq = memchr(p, '=', flen);
		if (!eq)
			return -EINVAL;
		/* Lines list the fields in table order: start looking after
		 * the last one found (the lock is held while we parse). */
		for (k = 0; k < ARRAY_SIZE(fields); k++) {
			i = (hint + k) % ARRAY_SIZE(fields);
			if (fields[i].klen == (size_t)(eq - p) &&
			    !memcmp(fields[i].key, p, (size_t)(eq - p))) {
				hint = i + 1;
				int r;
				/* A key twice: which one is true?  Refuse. */
				if (seen & (1ULL << i))
					return -EINVAL;
				seen |= 1ULL << i;
				r = set_field(c, &fields[i], eq + 1,
					      (size_t)(p + flen - eq - 1));
				if (r < 0)
					return r;
				break;
			}
		}
		p += flen + (tab ? 1 : 0);
	}
	return name_valid(c->id, sizeof(c->id) - 1) ? 0 : -EINVAL;
}

/* Version 1 is the only one; a higher number is a newer pgsnap's. */
static int check_header(const char *text, size_t len, pgsnap_error *err)
{
	static const char magic[] = "pgsnap-registry ";

	if (len >= strlen(HEADER) && !memcmp(text, HEADER, strlen(HEADER)))
		return 0;
	if (len > strlen(magic) && !memcmp(text, magic, strlen(magic)) &&
	    text[strlen(magic)] >= '2' && text[strlen(magic)] <= '9')
		return pgsnap_err(err, EPROTO, "written by a newer pgsnap "
				  "(format %c)", text[strlen(magic)]);
	return pgsnap_err(err, EINVAL, "not a pgsnap registry (bad header)");
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp((*(const pgsnap_clone *const *)a)->id,
		      (*(const pgsnap_clone *const *)b)->id);
}

/* The index of a record whose id another one has too, or -1. */
static int find_duplicate(const pgsnap_clone *v, size_t n)
{
	const pgsnap_clone **p;
	size_t i;
	int r = -1;

	if (n < 2)
		return -1;
	p = malloc(n * sizeof(*p));
	if (!p) {
		/* No memory for the fast way: the slow one. */
		for (i = 1; i < n && r < 0; i++) {
			size_t j;
			for (j = 0; j < i; j++)
				if (!strcmp(v[i].id, v[j].id))
					r = (int)i;
		}
		return r;
	}
	for (i = 0; i < n; i++)
		p[i] = &v[i];
	qsort(p, n, sizeof(*p), cmp_id);
	for (i = 1; i < n && r < 0; i++)
		if (!strcmp(p[i]->id, p[i - 1]->id))
			r = (int)(p[i] - v);
	free(p);
	return r;
}

/* Parse; with salvage, skip what does not parse (counted in *dropped)
 * instead of failing: that is how --repair keeps the good records. */
static int parse_text(const char *text, size_t len, bool salvage,
		      pgsnap_clone **recs, size_t *n, size_t *dropped,
		      pgsnap_error *err)
{
	const char *p = text, *end = text + len;
	pgsnap_clone *v = NULL;
	size_t cnt = 0, cap = 0, lineno = 1, bad = 0;
	int r;

	*recs = NULL;
	*n = 0;
	r = check_header(text, len, err);
	if (r < 0 && !salvage)
		return r;
	if (r < 0) {
		/* Foreign or newer: nothing in it can be trusted. */
		if (dropped)
			*dropped = 1;
		return 0;
	}
	p += strlen(HEADER);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t i;
		lineno++;
		if (!nl) {
			if (salvage) {
				bad++;
				break;
			}
			free(v);
			return pgsnap_err(err, EINVAL,
				"line %zu is not terminated", lineno);
		}
		if (nl == p) {
			p++;
			continue;
		}
		if (cnt == cap) {
			pgsnap_clone *nv;
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return pgsnap_err(err, ENOMEM, "out of memory");
			}
			v = nv;
		}
		r = parse_line(p, (size_t)(nl - p), &v[cnt]);
		/* Two records with one id would hand out one clone twice.
		 * (The common case is checked once, below, in n log n.) */
		for (i = 0; salvage && r == 0 && i < cnt; i++)
			if (!strcmp(v[i].id, v[cnt].id))
				r = -EEXIST;
		p = nl + 1;
		if (r < 0) {
			if (salvage) {
				bad++;
				continue;
			}
			free(v);
			return pgsnap_err(err, EINVAL, "line %zu is %s", lineno,
					  r == -EEXIST ? "a duplicate" :
					  "malformed");
		}
		cnt++;
	}
	if (!salvage && (r = find_duplicate(v, cnt)) >= 0) {
		pgsnap_err(err, EINVAL, "record %d is a duplicate (id %s)",
			   r + 1, v[r].id);
		free(v);
		return -EINVAL;
	}
	*recs = v;
	*n = cnt;
	if (dropped)
		*dropped = bad;
	return 0;
}

int records_parse(const char *text, size_t len, pgsnap_clone **recs,
		  size_t *n, pgsnap_error *err)
{
	return parse_text(text, len, false, recs, n, NULL, err);
}

int records_salvage(const char *text, size_t len, pgsnap_clone **recs,
		    size_t *n, size_t *dropped)
{
	return parse_text(text, len, true, recs, n, dropped, NULL);
}

static void put_escaped(char **o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == '%' || c == 0x7f)
			*o += sprintf(*o, "%%%02x", c);
		else
			*(*o)++ = (char)c;
	}
}

/* Decimal without printf: format runs under the lock, once per field. */
static void put_u64(char **o, unsigned long long v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*(*o)++ = tmp[--n];
}

static void put_i64(char **o, long long v)
{
	if (v < 0) {
		*(*o)++ = '-';
		put_u64(o, 0ULL - (unsigned long long)v);
	} else {
		put_u64(o, (unsigned long long)v);
	}
}

char *records_format(const pgsnap_clone *recs, size_t n, size_t *len)
{
	size_t cap = strlen(HEADER) + 1, i, j;
	char *buf, *o;

	for (i = 0; i < n; i++)
		cap += 3 * sizeof(pgsnap_clone) + 64 * ARRAY_SIZE(fields);
	buf = malloc(cap);
	if (!buf)
		return NULL;
	memcpy(buf, HEADER, strlen(HEADER));
	o = buf + strlen(HEADER);
	for (i = 0; i < n; i++) {
		const char *c = (const char *)&recs[i];
		for (j = 0; j < ARRAY_SIZE(fields); j++) {
			const struct field *f = &fields[j];
			const void *v = c + f->off;
			if (j)
				*o++ = '\t';
			memcpy(o, f->key, f->klen);
			o += f->klen;
			*o++ = '=';
			switch (f->type) {
			case F_STR:
				put_escaped(&o, v);
				break;
			case F_INT:
				put_i64(&o, *(const int *)v);
				break;
			case F_PID:
				put_i64(&o, *(const pid_t *)v);
				break;
			case F_LONG:
				put_i64(&o, *(const long *)v);
				break;
			case F_ULL:
				put_u64(&o, *(const unsigned long long *)v);
				break;
			case F_I64:
				put_i64(&o, (long long)*(const int64_t *)v);
				break;
			}
		}
		*o++ = '\n';
	}
	*o = '\0';
	*len = (size_t)(o - buf);
	return buf;
}


/* ---- what a record says ------------------------------------------------- */

long effective_timeout(const pgsnap_clone *c)
{
	return c->timeout_s < 0 ? PGSNAP_DEFAULT_TIMEOUT_S : c->timeout_s;
}

bool clone_is_lease(const pgsnap_clone *c)
{
	return c->parent[0] != '\0';
}

bool clone_is_shared(const pgsnap_clone *c)
{
	return !strcmp(c->state, "shared");
}

bool record_watched(const pgsnap_clone *c)
{
	return strcmp(c->state, "kept") &&
	       (clone_is_shared(c) || effective_timeout(c) > 0 || c->owner > 0 ||
		!strcmp(c->state, "starting") ||
		!strcmp(c->state, "stopping") ||
		!strcmp(c->state, "resetting"));
}

size_t shared_leases(const pgsnap_clone *v, size_t n, const char *id)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += !strcmp(v[i].parent, id);
	return k;
}

/* Does ref name this clone: its id, its URL, its JDBC URL or its dir?
 * (rm and snapshot save take the same names.) */
bool clone_matches(const pgsnap_clone *c, const char *ref)
{
	char url[2048];

	if (!strcmp(ref, c->id) || !strcmp(ref, c->dir) ||
	    !strcmp(ref, c->datadir))
		return true;
	pgsnap_clone_url(c, url, sizeof(url));
	if (!strcmp(ref, url))
		return true;
	pgsnap_clone_jdbc_url(c, url, sizeof(url));
	return url[0] && !strcmp(ref, url);
}
