/* unit_output.c - the escapers behind new --json/--env and exec: what a
 * path with any bytes in it becomes. */
#include "../../cmd/output.c"
#include "json.h"
#include "tap.h"

#include <stdbool.h>
#include <stdlib.h>

/* What f(s) prints, as a malloc'ed string. */
static char *printed(void (*f)(FILE *, const char *), const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	f(m, s);
	fclose(m);
	return buf;
}

static void json_is(const char *in, const char *want, const char *what)
{
	jbuf b = { 0 };

	jb_str(&b, in);
	is_str(b.p, want, "json: %s", what);
	free(b.p);
}

static void test_json(void)
{
	json_is("plain /tmp/a b", "\"plain /tmp/a b\"", "plain text and spaces");
	json_is("q\"b\\s", "\"q\\\"b\\\\s\"", "quote and backslash escaped");
	json_is("\n\t\r\b\f", "\"\\n\\t\\r\\b\\f\"", "short escapes");
	json_is("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"", "other controls as \\u00XX");
	json_is("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x98", "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x98\"",
		"2-, 3- and 4-byte UTF-8 pass through");
	json_is("a\xff" "b", "\"a\\ufffdb\"", "an invalid byte becomes U+FFFD");
	json_is("\xc0\x80", "\"\\ufffd\\ufffd\"", "an overlong NUL is not UTF-8");
	json_is("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"", "a surrogate is not UTF-8");
	json_is("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"", "beyond U+10FFFF is not UTF-8");
	json_is("x\xe2\x82", "\"x\\ufffd\\ufffd\"", "a sequence cut by the end of the string");
	json_is("", "\"\"", "empty");
}

static void test_shell(void)
{
	char *got = printed(shell_quote, "/tmp/it's a \"dir\" $HOME `x` \\");
	is_str(got, "'/tmp/it'\\''s a \"dir\" $HOME `x` \\'", "shell: one word, only ' needs care");
	free(got);
	got = printed(shell_quote, "");
	is_str(got, "''", "shell: empty is ''");
	free(got);
}

static const char *var(clone_var *v, size_t n, const char *name)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].value;
	return NULL;
}

static void test_vars(void)
{
	pgsnap_clone c = { 0 };
	clone_var v[CLONE_VARS_MAX];
	size_t n, i;

	strcpy(c.user, "postgres");
	strcpy(c.dbname, "postgres");
	strcpy(c.sockdir, "/run/a b/sock");
	c.port = 5432;
	n = clone_vars(&c, v);
	is_int(n, 5, "socket clone: 5 variables");
	is_str(var(v, n, "PGHOST"), "/run/a b/sock", "PGHOST is the socket directory");
	is_str(var(v, n, "PGPORT"), "5432", "PGPORT");
	ok(!var(v, n, "PGPASSWORD"), "no PGPASSWORD without TCP");
	is_str(var(v, n, "DATABASE_URL"),
	       "postgresql://postgres@%2Frun%2Fa%20b%2Fsock:5432/postgres",
	       "DATABASE_URL is the socket URL");

	strcpy(c.host, "127.0.0.1");
	strcpy(c.password, "s3cret");
	c.port = 40001;
	n = clone_vars(&c, v);
	is_int(n, 7, "TCP clone: 7 variables");
	is_str(var(v, n, "PGHOST"), "127.0.0.1", "PGHOST is 127.0.0.1");
	is_str(var(v, n, "PGPASSWORD"), "s3cret", "PGPASSWORD");
	is_str(var(v, n, "JDBC_DATABASE_URL"),
	       "jdbc:postgresql://127.0.0.1:40001/postgres?user=postgres&password=s3cret",
	       "JDBC_DATABASE_URL");
	for (i = 0; i < n; i++) {
		size_t k;
		bool listed = false;
		for (k = 0; clone_var_names[k]; k++)
			listed |= !strcmp(clone_var_names[k], v[i].name);
		ok(listed, "%s is in clone_var_names (exec clears it first)", v[i].name);
	}
}

int main(void)
{
	test_json();
	test_shell();
	test_vars();
	return done_testing();
}
