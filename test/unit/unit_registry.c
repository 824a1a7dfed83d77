/* unit_registry.c - the registry parser on damaged input, and the rules
 * of a clone's life that gc applies. */
#include "internal.h"
#include "tap.h"

static char *sample(size_t *len)
{
	pgsnap_clone in[3];
	size_t i;

	memset(in, 0, sizeof(in));
	for (i = 0; i < 3; i++) {
		snprintf(in[i].id, sizeof(in[i].id), "0000000%zu", i);
		snprintf(in[i].state, sizeof(in[i].state), "ready");
		in[i].port = 5432;
		in[i].timeout_s = 60;
	}
	return records_format(in, 3, len);
}

static void test_torn(void)
{
	size_t len, cut, bad = 0, fewer = 0;
	char *text = sample(&len);

	/* A file cut at any byte is refused or yields whole records: never a
	 * half record taken for a whole one. */
	for (cut = 0; cut < len; cut++) {
		pgsnap_clone *out = NULL;
		size_t n = 0;
		int r = records_parse(text, cut, &out, &n, NULL);
		if (r == 0 && n < 3)
			fewer++;
		else if (r == 0)
			bad++;
		free(out);
	}
	is_int(bad, 0, "no cut of the registry parses as all 3 records");
	ok(fewer <= 3, "a cut parses only at line ends (%zu times)", fewer);
	free(text);
}

static void test_duplicates(void)
{
	pgsnap_clone *out = NULL;
	pgsnap_error err = { 0 };
	size_t n;
	const char *t = "pgsnap-registry 1\nid=aaaa\nid=aaaa\n";

	ok(records_parse(t, strlen(t), &out, &n, &err) < 0,
	   "two records with one id are refused");
	ok(strstr(err.msg, "duplicate") != NULL, "as a duplicate: %s", err.msg);
	t = "pgsnap-registry 7\nid=aaaa\n";
	ok(records_parse(t, strlen(t), &out, &n, &err) == -EPROTO,
	   "a newer format is refused with EPROTO");
	ok(strstr(err.msg, "newer pgsnap") != NULL, "naming a newer pgsnap");
	t = "pgsnap-registry 1\nid=aaaa\tfuture_field=1\n";
	ok(records_parse(t, strlen(t), &out, &n, &err) == 0 && n == 1,
	   "an unknown field is ignored (added by a later version)");
	free(out);
}

static void test_limits(void)
{
	pgsnap_clone c;

	memset(&c, 0, sizeof(c));
	c.timeout_s = -1;
	is_int(effective_timeout(&c), PGSNAP_DEFAULT_TIMEOUT_S,
	       "-w not given: the default");
	c.timeout_s = 0;
	is_int(effective_timeout(&c), 0, "-w 0: no limit");
	snprintf(c.state, sizeof(c.state), "ready");
	ok(!record_watched(&c), "a -w 0 clone without owner is not watched");
	c.owner = 1;
	ok(record_watched(&c), "with an owner it is");
	c.owner = 0;
	c.timeout_s = 5;
	ok(record_watched(&c), "with a time limit it is");
	snprintf(c.state, sizeof(c.state), "kept");
	ok(!record_watched(&c), "a kept clone is not");
	c.timeout_s = 0;
	snprintf(c.state, sizeof(c.state), "starting");
	ok(record_watched(&c), "a clone being made is watched (its creator "
	   "may die)");
	ok(server_clients(getpid(), NULL, 0) == 0, "a process with no child has no "
	   "client");
}

/* The fields of --shared survive a write and a read; a lease and a shared
 * server are told apart, and a shared server is always watched. */
static void test_shared_fields(void)
{
	pgsnap_clone in[2], *out = NULL;
	size_t len, n = 0;
	char *text;

	memset(in, 0, sizeof(in));
	snprintf(in[0].id, sizeof(in[0].id), "aaaaaaaa");
	snprintf(in[0].state, sizeof(in[0].state), "shared");
	in[0].dbs = 16;
	in[0].dbs_used = 7;
	in[0].used_ms = 1764000000123LL;
	snprintf(in[1].id, sizeof(in[1].id), "bbbbbbbb");
	snprintf(in[1].state, sizeof(in[1].state), "ready");
	snprintf(in[1].parent, sizeof(in[1].parent), "aaaaaaaa");
	snprintf(in[1].dbname, sizeof(in[1].dbname), "pgsnap_7");
	text = records_format(in, 2, &len);
	ok(text && records_parse(text, len, &out, &n, NULL) == 0 && n == 2,
	   "a shared server and its lease parse back");
	if (n == 2) {
		is_int(out[0].dbs, 16, "databases");
		is_int(out[0].dbs_used, 7, "databases handed out");
		ok(out[0].used_ms == 1764000000123LL, "time of the last handout");
		is_str(out[1].parent, "aaaaaaaa", "the lease names its server");
		ok(clone_is_shared(&out[0]) && !clone_is_lease(&out[0]),
		   "the server is shared, not a lease");
		ok(clone_is_lease(&out[1]) && !clone_is_shared(&out[1]),
		   "the lease is a lease");
		is_int((int)shared_leases(out, n, "aaaaaaaa"), 1,
		       "the server has one lease");
		in[0].timeout_s = 0;
		ok(record_watched(&in[0]), "a shared server is watched, even "
		   "with -w 0 (its idle time)");
	}
	free(text);
	free(out);
}

int main(void)
{
	test_torn();
	test_duplicates();
	test_limits();
	test_shared_fields();
	return done_testing();
}
