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

void print_clone_json(FILE *f, const pgsnap_clone *c)
{
	char buf[16384];

	/* The library's writer: the service answers with the same object. */
	pgsnap_clone_json(c, buf, sizeof(buf));
	fputs(buf, f);
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
