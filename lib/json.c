/*
 * json.c - the JSON pgsnap writes and reads.
 *
 * One writer for a clone, so that `new --json`, `ls --json` and the
 * service's answers (docs/protocol.md) carry the same fields in the same
 * order; and a small reader for what a client gets back from the service.
 * The reader takes any JSON text (RFC 8259) up to a depth of 16 and builds
 * a tree of nodes in one allocation; it is fuzzed (test/fuzz/fuzz_json.c).
 */
#include "internal.h"
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define JSON_MAX_DEPTH 16

/* ---- writing ------------------------------------------------------------ */

static void put(jbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void jb_raw(jbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

void jb_printf(jbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Length of the valid UTF-8 sequence at s (at most avail bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void jb_str(jbuf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	const unsigned char *end = s + strlen(str);

	put(b, "\"", 1);
	while (*s) {
		const unsigned char *run = s;
		size_t n;
		char esc[8];

		/* Most of an answer is plain ASCII: copied a run at a time. */
		while (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\')
			s++;
		if (s > run)
			put(b, (const char *)run, (size_t)(s - run));
		if (!*s)
			break;
		n = utf8_len(s, (size_t)(end - s));
		if (n == 0) {
			/* Bytes that are not UTF-8: U+FFFD, as a reader
			 * would show them anyway. */
			jb_raw(b, "\\ufffd");
			s++;
			continue;
		}
		if (n > 1) {
			put(b, (const char *)s, n);
			s += n;
			continue;
		}
		switch (*s) {
		case '"': jb_raw(b, "\\\""); break;
		case '\\': jb_raw(b, "\\\\"); break;
		case '\n': jb_raw(b, "\\n"); break;
		case '\r': jb_raw(b, "\\r"); break;
		case '\t': jb_raw(b, "\\t"); break;
		case '\b': jb_raw(b, "\\b"); break;
		case '\f': jb_raw(b, "\\f"); break;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", *s);
				jb_raw(b, esc);
			} else {
				put(b, (const char *)s, 1);
			}
		}
		s++;
	}
	put(b, "\"", 1);
}

void jb_key(jbuf *b, const char *key)
{
	if (b->len && b->p[b->len - 1] != '{')
		jb_raw(b, ", ");
	jb_str(b, key);
	jb_raw(b, ": ");
}

void jb_field(jbuf *b, const char *key, const char *value)
{
	jb_key(b, key);
	if (value)
		jb_str(b, value);
	else
		jb_raw(b, "null");
}

void jb_field_int(jbuf *b, const char *key, long long v)
{
	jb_key(b, key);
	jb_printf(b, "%lld", v);
}

/* A libpq key=value value: single-quoted, ' and \ escaped. */
static void conninfo_value(jbuf *b, const char *v)
{
	put(b, "'", 1);
	for (; *v; v++) {
		if (*v == '\'' || *v == '\\')
			put(b, "\\", 1);
		put(b, v, 1);
	}
	put(b, "'", 1);
}

int pgsnap_clone_conninfo(const pgsnap_clone *c, char *buf, size_t len)
{
	jbuf b = { 0 };
	int n;

	jb_raw(&b, "host=");
	conninfo_value(&b, c->host[0] ? c->host : c->sockdir);
	jb_printf(&b, " port=%d user=", c->port);
	conninfo_value(&b, c->user);
	jb_raw(&b, " dbname=");
	conninfo_value(&b, c->dbname);
	if (c->password[0]) {
		jb_raw(&b, " password=");
		conninfo_value(&b, c->password);
	}
	n = b.oom ? 0 : snprintf(buf, len, "%s", b.p);
	free(b.p);
	return n;
}

void jb_clone_fields(jbuf *b, const pgsnap_clone *c)
{
	char url[2048], jdbc[2048], ci[2048], log[700];

	pgsnap_clone_url(c, url, sizeof(url));
	pgsnap_clone_jdbc_url(c, jdbc, sizeof(jdbc));
	pgsnap_clone_conninfo(c, ci, sizeof(ci));
	snprintf(log, sizeof(log), "%s/log", c->dir);
	jb_field(b, "url", url);
	jb_field(b, "conninfo", ci);
	jb_field(b, "host", c->host[0] ? c->host : c->sockdir);
	jb_field_int(b, "port", c->port);
	jb_field(b, "socket_dir", c->sockdir);
	jb_field(b, "user", c->user);
	if (c->password[0])
		jb_field(b, "password", c->password);
	jb_field(b, "database", c->dbname);
	jb_field(b, "data_dir", c->datadir);
	jb_field(b, "id", c->id);
	jb_field_int(b, "pid", c->pid);
	jb_field(b, "jdbc_url", jdbc[0] ? jdbc : NULL);
	jb_field(b, "snapshot", c->snapshot);
	jb_field(b, "method", c->method);
	jb_field(b, "state", c->state);
	/* --shared: the server a database lease lives in. */
	if (c->parent[0])
		jb_field(b, "server", c->parent);
	if (c->dbs) {
		jb_field_int(b, "databases", c->dbs);
		jb_field_int(b, "databases_used", c->dbs_used);
	}
	jb_field(b, "log", log);
	if (c->worker[0])
		jb_field(b, "worker", c->worker);
	if (c->owner > 0)
		jb_field_int(b, "owner", c->owner);
	jb_field_int(b, "timeout", c->timeout_s);
	jb_field_int(b, "created_ms", c->created_ms);
}

void jb_clone(jbuf *b, const pgsnap_clone *c)
{
	jb_raw(b, "{");
	jb_clone_fields(b, c);
	jb_raw(b, "}");
}

int pgsnap_clone_json(const pgsnap_clone *c, char *buf, size_t len)
{
	jbuf b = { 0 };
	int n;

	jb_clone(&b, c);
	n = b.oom ? 0 : snprintf(buf, len, "%s", b.p);
	free(b.p);
	return n;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct reader {
	const char *p, *end;
	json_doc *doc;
	size_t cap;
	char *strs;        /* decoded strings, NUL-terminated, back to back */
	size_t slen, scap;
} reader;

static void ws(reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
				 *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int new_node(reader *r, json_type t)
{
	json_node *v;

	if (r->doc->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		v = realloc(r->doc->nodes, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->doc->nodes = v;
		r->cap = cap;
	}
	v = &r->doc->nodes[r->doc->n];
	memset(v, 0, sizeof(*v));
	v->type = t;
	v->next = -1;
	v->child = -1;
	v->key = -1;
	return (int)r->doc->n++;
}

static int str_put(reader *r, const char *s, size_t n)
{
	if (r->slen + n + 1 > r->scap) {
		size_t cap = r->scap ? r->scap : 256;
		char *p;
		while (cap < r->slen + n + 1)
			cap *= 2;
		p = realloc(r->strs, cap);
		if (!p)
			return -ENOMEM;
		r->strs = p;
		r->scap = cap;
	}
	memcpy(r->strs + r->slen, s, n);
	r->slen += n;
	return 0;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static int put_cp(reader *r, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80)
		u[0] = (char)cp, n = 1;
	else if (cp < 0x800)
		u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	else if (cp < 0x10000)
		u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
		u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	else
		u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	return str_put(r, u, n);
}

/* A string at r->p (the opening quote); *off receives where it starts. */
static int read_string(reader *r, size_t *off)
{
	int rc = 0;

	r->p++;
	*off = r->slen;
	while (rc == 0) {
		unsigned cp, lo;
		size_t n;

		if (r->p >= r->end)
			return -EINVAL;
		if (*r->p == '"')
			break;
		if ((unsigned char)*r->p < 0x20)
			return -EINVAL;
		if (*r->p != '\\') {
			n = utf8_len((const unsigned char *)r->p,
				     (size_t)(r->end - r->p));
			if (!n)
				return -EINVAL;
			rc = str_put(r, r->p, n);
			r->p += n;
			continue;
		}
		if (r->end - r->p < 2)
			return -EINVAL;
		switch (r->p[1]) {
		case '"': case '\\': case '/': rc = str_put(r, r->p + 1, 1); break;
		case 'b': rc = str_put(r, "\b", 1); break;
		case 'f': rc = str_put(r, "\f", 1); break;
		case 'n': rc = str_put(r, "\n", 1); break;
		case 'r': rc = str_put(r, "\r", 1); break;
		case 't': rc = str_put(r, "\t", 1); break;
		case 'u':
			if (r->end - r->p < 6 || hex4(r->p + 2, &cp) < 0)
				return -EINVAL;
			if (cp >= 0xd800 && cp < 0xdc00 && r->end - r->p >= 12 &&
			    r->p[6] == '\\' && r->p[7] == 'u' &&
			    hex4(r->p + 8, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				r->p += 6;
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd; /* a lone surrogate */
			}
			if (cp == 0)
				return -EINVAL; /* no NUL inside our strings */
			rc = put_cp(r, cp);
			r->p += 4;
			break;
		default:
			return -EINVAL;
		}
		r->p += 2;
	}
	r->p++;
	return rc < 0 ? rc : str_put(r, "", 1);
}

static int read_value(reader *r, int depth);

static int read_container(reader *r, int depth, bool object)
{
	int self = new_node(r, object ? JSON_OBJECT : JSON_ARRAY), last = -1;

	if (self < 0)
		return self;
	r->p++;
	ws(r);
	if (r->p < r->end && *r->p == (object ? '}' : ']')) {
		r->p++;
		return self;
	}
	for (;;) {
		size_t koff = 0;
		int v, rc;

		ws(r);
		if (object) {
			if (r->p >= r->end || *r->p != '"')
				return -EINVAL;
			if ((rc = read_string(r, &koff)) < 0)
				return rc;
			ws(r);
			if (r->p >= r->end || *r->p != ':')
				return -EINVAL;
			r->p++;
		}
		if ((v = read_value(r, depth + 1)) < 0)
			return v;
		r->doc->nodes[v].key = object ? (long)koff : -1;
		if (last < 0)
			r->doc->nodes[self].child = v;
		else
			r->doc->nodes[last].next = v;
		last = v;
		r->doc->nodes[self].count++;
		ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == (object ? '}' : ']')) {
			r->p++;
			return self;
		}
		return -EINVAL;
	}
}

static int read_value(reader *r, int depth)
{
	int v, rc;
	size_t off;

	if (depth > JSON_MAX_DEPTH)
		return -E2BIG;
	ws(r);
	if (r->p >= r->end)
		return -EINVAL;
	switch (*r->p) {
	case '{': return read_container(r, depth, true);
	case '[': return read_container(r, depth, false);
	case '"':
		if ((rc = read_string(r, &off)) < 0)
			return rc;
		if ((v = new_node(r, JSON_STRING)) >= 0)
			r->doc->nodes[v].str = (long)off;
		return v;
	}
	if (r->end - r->p >= 4 && !memcmp(r->p, "true", 4)) {
		r->p += 4;
		if ((v = new_node(r, JSON_BOOL)) >= 0)
			r->doc->nodes[v].num = 1;
		return v;
	}
	if (r->end - r->p >= 5 && !memcmp(r->p, "false", 5)) {
		r->p += 5;
		return new_node(r, JSON_BOOL);
	}
	if (r->end - r->p >= 4 && !memcmp(r->p, "null", 4)) {
		r->p += 4;
		return new_node(r, JSON_NULL);
	}
	{
		/* A number: the JSON grammar, checked before strtod sees it. */
		const char *s = r->p;
		char num[64];
		size_t n;

		if (s < r->end && *s == '-')
			s++;
		if (s >= r->end || *s < '0' || *s > '9')
			return -EINVAL;
		while (s < r->end && ((*s >= '0' && *s <= '9') || *s == '.' ||
				      *s == 'e' || *s == 'E' || *s == '+' ||
				      *s == '-'))
			s++;
		n = (size_t)(s - r->p);
		if (n >= sizeof(num))
			return -EINVAL;
		memcpy(num, r->p, n);
		num[n] = '\0';
		if ((v = new_node(r, JSON_NUMBER)) < 0)
			return v;
		{
			char *end;
			double d = strtod(num, &end);
			if (*end || !isfinite(d))
				return -EINVAL;
			r->doc->nodes[v].num = d;
		}
		r->p = s;
		return v;
	}
}

int json_parse(const char *text, size_t len, json_doc *doc)
{
	reader r = { text, text + len, doc, 0, NULL, 0, 0 };
	int rc;

	memset(doc, 0, sizeof(*doc));
	rc = read_value(&r, 0);
	if (rc >= 0) {
		ws(&r);
		if (r.p != r.end)
			rc = -EINVAL;
	}
	doc->strs = r.strs;
	if (rc < 0) {
		json_free(doc);
		return rc;
	}
	return 0;
}

void json_free(json_doc *doc)
{
	free(doc->nodes);
	free(doc->strs);
	memset(doc, 0, sizeof(*doc));
}

const json_node *json_get(const json_doc *d, const json_node *obj,
			  const char *key)
{
	int i;

	if (!obj || obj->type != JSON_OBJECT)
		return NULL;
	for (i = obj->child; i >= 0; i = d->nodes[i].next)
		if (!strcmp(d->strs + d->nodes[i].key, key))
			return &d->nodes[i];
	return NULL;
}

const char *json_str(const json_doc *d, const json_node *n)
{
	return n && n->type == JSON_STRING ? d->strs + n->str : NULL;
}

/* Fill c from a clone object of jb_clone (what is not there stays 0). */
int json_to_clone(const json_doc *d, const json_node *o, pgsnap_clone *c)
{
	static const struct { const char *key; size_t off, size; } strs[] = {
#define F(k, f) { k, offsetof(pgsnap_clone, f), sizeof(((pgsnap_clone *)0)->f) }
		F("id", id), F("snapshot", snapshot), F("method", method),
		F("state", state), F("user", user), F("database", dbname),
		F("password", password), F("data_dir", datadir),
		F("socket_dir", sockdir), F("server", parent),
		F("worker", worker),
#undef F
	};
	const json_node *n;
	const char *v;
	size_t i;

	if (!o || o->type != JSON_OBJECT)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	for (i = 0; i < ARRAY_SIZE(strs); i++)
		if ((v = json_str(d, json_get(d, o, strs[i].key))))
			snprintf((char *)c + strs[i].off, strs[i].size, "%s", v);
	/* host is the socket directory unless TCP. */
	v = json_str(d, json_get(d, o, "host"));
	if (v && strcmp(v, c->sockdir))
		snprintf(c->host, sizeof(c->host), "%s", v);
	if ((v = json_str(d, json_get(d, o, "log"))) && strlen(v) > 4)
		snprintf(c->dir, sizeof(c->dir), "%.*s", (int)strlen(v) - 4, v);
	/* A number out of a field's range is not converted (undefined in
	 * C), it is left 0. */
#define NUM(k, f, t, lo, hi) if ((n = json_get(d, o, k)) && \
	n->type == JSON_NUMBER && n->num >= (lo) && n->num <= (hi)) c->f = (t)n->num
	NUM("port", port, int, 0, 65535);
	NUM("pid", pid, pid_t, 0, 1 << 30);
	NUM("databases", dbs, int, 0, 1 << 30);
	NUM("databases_used", dbs_used, int, 0, 1 << 30);
	NUM("owner", owner, pid_t, 0, 1 << 30);
	NUM("timeout", timeout_s, long, -1, 1e12);
	NUM("created_ms", created_ms, int64_t, 0, 1e15);
#undef NUM
	return c->id[0] ? 0 : -EINVAL;
}

void jb_new_answer(jbuf *b, const char *built, const pgsnap_clone *v,
		   size_t n, bool list)
{
	size_t i;

	jb_raw(b, "{\"ok\": true");
	if (built) {
		jb_key(b, "built");
		jb_raw(b, "[");
		jb_raw(b, built);
		jb_raw(b, "]");
	}
	if (!list) {
		jb_clone_fields(b, &v[0]);
	} else {
		jb_raw(b, ", \"clones\": [");
		for (i = 0; i < n; i++) {
			jb_raw(b, i ? ", " : "");
			jb_clone(b, &v[i]);
		}
		jb_raw(b, "]");
	}
	jb_raw(b, "}\n");
}
