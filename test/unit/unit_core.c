/* unit_core.c - the parsers and formatters that user input reaches. */
#include "internal.h"
#include "tap.h"

#include <limits.h>

static void test_parse_long(void)
{
	long v = -7;
	is_int(parse_long("42", 0, 100, &v), 0, "parse_long accepts 42");
	is_int(v, 42, "parse_long value");
	ok(parse_long("10x", 0, 100, &v) < 0, "parse_long refuses 10x");
	ok(parse_long("", 0, 100, &v) < 0, "parse_long refuses empty");
	ok(parse_long(" 5", 0, 100, &v) < 0, "parse_long refuses a blank");
	ok(parse_long("101", 0, 100, &v) == -ERANGE, "parse_long range");
	ok(parse_long("99999999999999999999999", 0, LONG_MAX, &v) == -ERANGE,
	   "parse_long overflow");
}

static void test_split_words(void)
{
	char **argv;
	int argc;

	ok(split_words("-c a=1  -c 'b = two' \"x\\\"y\" z\\ w", &argv, &argc) == 0,
	   "split_words parses quotes");
	is_int(argc, 6, "six words");
	is_str(argv[3], "b = two", "single quotes keep spaces");
	is_str(argv[4], "x\"y", "double quotes with an escaped quote");
	is_str(argv[5], "z w", "backslash escapes a space");
	ok(argv[6] == NULL, "argv is NULL-terminated");
	free(argv);
	ok(split_words("'open", &argv, &argc) == -EINVAL,
	   "unbalanced quote is an error");
	ok(split_words("", &argv, &argc) == 0 && argc == 0, "empty string");
	free(argv);
}

static void test_names(void)
{
	ok(name_valid("default", 63), "plain name");
	ok(name_valid("my-app_v1.2", 63), "name with - _ .");
	ok(!name_valid("../x", 63), "no ..");
	ok(!name_valid("a/b", 63), "no slash");
	ok(!name_valid(".hidden", 63), "no leading dot");
	ok(!name_valid("-x", 63), "no leading dash");
	ok(!name_valid("", 63), "not empty");
	ok(!name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		       63), "bounded length");
}

static void test_registry_roundtrip(void)
{
	pgsnap_clone in[2], *out = NULL;
	pgsnap_error err = { 0 };
	size_t len, n = 0;
	char *text;

	memset(in, 0, sizeof(in));
	snprintf(in[0].id, sizeof(in[0].id), "abcd1234");
	snprintf(in[0].dir, sizeof(in[0].dir), "/tmp/with\ttab and %% and\nnl");
	in[0].port = 5432;
	in[0].pid = 1234;
	in[0].pid_start = 987654321ULL;
	in[0].created_ms = 1700000000123LL;
	in[0].timeout_s = 60;
	snprintf(in[1].id, sizeof(in[1].id), "ffff0000");
	snprintf(in[1].host, sizeof(in[1].host), "127.0.0.1");

	text = records_format(in, 2, &len);
	ok(text != NULL, "registry_format");
	is_int(records_parse(text, len, &out, &n, &err), 0, "registry_parse");
	is_int(n, 2, "two records back");
	ok(n == 2 && !memcmp(&in[0], &out[0], sizeof(in[0])),
	   "record 1 round-trips (escapes, numbers)");
	ok(n == 2 && !memcmp(&in[1], &out[1], sizeof(in[1])),
	   "record 2 round-trips");
	free(out);
	ok(records_parse("garbage\n", 8, &out, &n, &err) < 0,
	   "a foreign file is refused");
	ok(strstr(err.msg, "header") != NULL, "saying why: %s", err.msg);
	text[len - 1] = 'x'; /* last line no longer terminated */
	ok(records_parse(text, len, &out, &n, &err) < 0,
	   "a torn last line is refused");
	free(text);
	ok(records_parse("pgsnap-registry 1\nid=abc\tport=12x\n", 34, &out,
			  &n, &err) < 0, "a bad number is refused");
	ok(records_parse("pgsnap-registry 1\nid=../x\n", 26, &out, &n, &err) < 0,
	   "a bad id is refused");
}

static void test_url(void)
{
	pgsnap_clone c;
	char buf[1024];

	memset(&c, 0, sizeof(c));
	snprintf(c.user, sizeof(c.user), "postgres");
	snprintf(c.dbname, sizeof(c.dbname), "postgres");
	snprintf(c.sockdir, sizeof(c.sockdir), "/tmp/a b/sock");
	c.port = 5432;
	pgsnap_clone_url(&c, buf, sizeof(buf));
	is_str(buf, "postgresql://postgres@%2Ftmp%2Fa%20b%2Fsock:5432/postgres",
	       "socket URL is %%-encoded");
	pgsnap_clone_jdbc_url(&c, buf, sizeof(buf));
	is_str(buf, "", "no JDBC URL without TCP");
	snprintf(c.host, sizeof(c.host), "127.0.0.1");
	snprintf(c.password, sizeof(c.password), "s3cr:t");
	c.port = 40000;
	pgsnap_clone_url(&c, buf, sizeof(buf));
	is_str(buf, "postgresql://postgres:s3cr%3At@127.0.0.1:40000/postgres",
	       "TCP URL with an encoded password");
	pgsnap_clone_jdbc_url(&c, buf, sizeof(buf));
	is_str(buf, "jdbc:postgresql://127.0.0.1:40000/postgres?user=postgres&password=s3cr%3At",
	       "JDBC URL");
}

int main(void)
{
	test_parse_long();
	test_split_words();
	test_names();
	test_registry_roundtrip();
	test_url();
	return done_testing();
}
