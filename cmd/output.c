/* output.c - the forms a clone is printed in: URL, shell, JSON, JDBC.
 * The same names everywhere: `new --env` and `exec` set the same
 * variables, `new --json` and `ls --json` print the same fields. */
#include "cmd.h"

#include <string.h>

const char *const clone_var_names[] = {
	"DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE",
	"PGPASSWORD", "JDBC_DATABASE_URL", "PGHOSTADDR", "PGSERVICE", NULL
};

static void set_var(clone_var *v, const char *name, const char *value)
{
	v->name = name;
	snprintf(v->value, sizeof(v->value), "%s", value);
}

size_t clone_vars(const pgsnap_clone *c, clone_var v[CLONE_VARS_MAX])
{
	size_t n = 0;
	char port[16];

	v[n].name = "DATABASE_URL";
	pgsnap_clone_url(c, v[n].value, sizeof(v[n].value));
	n++;
	/* libpq takes a socket directory as the host. */
	set_var(&v[n++], "PGHOST", c->host[0] ? c->host : c->sockdir);
	snprintf(port, sizeof(port), "%d", c->port);
	set_var(&v[n++], "PGPORT", port);
	set_var(&v[n++], "PGUSER", c->user);
	set_var(&v[n++], "PGDATABASE", c->dbname);
	if (c->password[0])
		set_var(&v[n++], "PGPASSWORD", c->password);
	if (c->host[0]) {
		v[n].name = "JDBC_DATABASE_URL";
		pgsnap_clone_jdbc_url(c, v[n].value, sizeof(v[n].value));
		n++;
	}
	return n;
}

void shell_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	}
	fputc('\'', f);
}

/* Length of the valid UTF-8 sequence at s, 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

void json_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	while (*s) {
		size_t n = utf8_len(s);
		if (n == 0) {
			/* A path is bytes; JSON is UTF-8: say what we lost. */
			fputs("\\ufffd", f);
			s++;
			continue;
		}
		if (n > 1) {
			fwrite(s, 1, n, f);
			s += n;
			continue;
		}
		switch (*s) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		default:
			if (*s < 0x20 || *s == 0x7f)
				fprintf(f, "\\u%04x", *s);
			else
				fputc(*s, f);
		}
		s++;
	}
	fputc('"', f);
}

static void json_field(FILE *f, const char *name, const char *value,
		       int first)
{
	fprintf(f, "%s\"%s\": ", first ? "" : ", ", name);
	if (value)
		json_string(f, value);
	else
		fputs("null", f);
}

/* A libpq key=value value: single-quoted, ' and \ escaped. */
static void conninfo_value(char *out, size_t len, const char *v)
{
	size_t o = 0;

	if (len < 3)
		return;
	out[o++] = '\'';
	for (; *v && o + 3 < len; v++) {
		if (*v == '\'' || *v == '\\')
			out[o++] = '\\';
		out[o++] = *v;
	}
	out[o++] = '\'';
	out[o] = '\0';
}

/* The key=value form, for drivers whose URL parser refuses a %-encoded
 * socket path in the host part (Go's net/url: lib/pq, pgx). */
static void conninfo(const pgsnap_clone *c, char *buf, size_t len)
{
	char host[1100], user[200], db[200], pw[200] = "";

	conninfo_value(host, sizeof(host), c->host[0] ? c->host : c->sockdir);
	conninfo_value(user, sizeof(user), c->user);
	conninfo_value(db, sizeof(db), c->dbname);
	if (c->password[0])
		conninfo_value(pw, sizeof(pw), c->password);
	snprintf(buf, len, "host=%s port=%d user=%s dbname=%s%s%s", host,
		 c->port, user, db, pw[0] ? " password=" : "", pw);
}

void print_clone_json(FILE *f, const pgsnap_clone *c)
{
	char ci[2048];

	char url[2048], jdbc[2048];

	pgsnap_clone_url(c, url, sizeof(url));
	pgsnap_clone_jdbc_url(c, jdbc, sizeof(jdbc));
	fputc('{', f);
	conninfo(c, ci, sizeof(ci));
	json_field(f, "url", url, 1);
	json_field(f, "conninfo", ci, 0);
	json_field(f, "host", c->host[0] ? c->host : c->sockdir, 0);
	fprintf(f, ", \"port\": %d", c->port);
	json_field(f, "socket_dir", c->sockdir, 0);
	json_field(f, "user", c->user, 0);
	if (c->password[0])
		json_field(f, "password", c->password, 0);
	json_field(f, "database", c->dbname, 0);
	json_field(f, "data_dir", c->datadir, 0);
	json_field(f, "id", c->id, 0);
	fprintf(f, ", \"pid\": %d", (int)c->pid);
	json_field(f, "jdbc_url", jdbc[0] ? jdbc : NULL, 0);
	json_field(f, "snapshot", c->snapshot, 0);
	json_field(f, "method", c->method, 0);
	json_field(f, "state", c->state, 0);
	/* --shared: the server a database lease lives in. */
	if (c->parent[0])
		json_field(f, "server", c->parent, 0);
	if (c->dbs)
		fprintf(f, ", \"databases\": %d, \"databases_used\": %d",
			c->dbs, c->dbs_used);
	fputc('}', f);
}

void print_clone(FILE *f, const pgsnap_clone *c, out_format form)
{
	clone_var v[CLONE_VARS_MAX];
	char buf[2048];
	size_t n, i;

	switch (form) {
	case OUT_URL:
		pgsnap_clone_url(c, buf, sizeof(buf));
		fprintf(f, "%s\n", buf);
		break;
	case OUT_JDBC:
		pgsnap_clone_jdbc_url(c, buf, sizeof(buf));
		fprintf(f, "%s\n", buf);
		break;
	case OUT_ENV:
		/* "export N='v';" per line: eval'ed quoted or not, by sh or
		 * bash, it sets exactly these values. */
		n = clone_vars(c, v);
		for (i = 0; i < n; i++) {
			fprintf(f, "export %s=", v[i].name);
			shell_quote(f, v[i].value);
			fputs(";\n", f);
		}
		break;
	case OUT_JSON:
		print_clone_json(f, c);
		fputc('\n', f);
		break;
	}
}
