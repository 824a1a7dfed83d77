/* new.c - pgsnap new: a fresh server, its URL on stdout.  Its options are
 * shared with `pgsnap exec` (new_parse), so both stay the same. */
#include "cmd.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	OPT_OWNER = 0x100,
	OPT_ENV,
	OPT_JSON,
	OPT_JDBC,
	OPT_KEEP_ON_FAILURE,
	OPT_BUILD_IF_STALE,
	OPT_NOW,
	OPT_POOL,
	OPT_SHARED,
};

#define SHARED_DEFAULT 16

#define FOR_NEW 1u
#define FOR_EXEC 2u
#define FOR_BOTH (FOR_NEW | FOR_EXEC)

/* One row per option: getopt's table, the short options and the help are
 * all made from it.  A new option of `new` goes here (and in the switch of
 * new_parse) and is offered by `exec` too unless marked FOR_NEW. */
static const struct new_option {
	const char *name;
	int has_arg;
	int val;               /* a letter: also a short option */
	unsigned cmds;
	const char *help;      /* "ARG\tdescription" when it takes a value */
} new_options[] = {
	{ "snapshot", required_argument, 's', FOR_BOTH,
	  "NAME\tsnapshot to clone (default: default)" },
	{ "build-if-stale", no_argument, OPT_BUILD_IF_STALE, FOR_BOTH,
	  "rebuild the snapshot first if its inputs changed" },
	{ "now", required_argument, OPT_NOW, FOR_BOTH,
	  "TIME\tmock now(): '2021-06-06 12:00:00+00' or clock" },
	{ "tcp", no_argument, 't', FOR_BOTH,
	  "also listen on 127.0.0.1, on a free port" },
	{ "ipv6", no_argument, '6', FOR_BOTH,
	  "like -t, and listen on ::1 too (same port)" },
	{ "options", required_argument, 'o', FOR_BOTH,
	  "'OPTIONS'\textra postgres options, e.g. '-c work_mem=64MB'" },
	{ "clone-method", required_argument, 'm', FOR_BOTH,
	  "M\toverlay, reflink or copy (default: best here)" },
	{ "timeout", required_argument, 'w', FOR_BOTH,
	  "SECONDS\tthen stop when no client is on (default 60; 0: never)" },
	{ "keep", no_argument, 'k', FOR_BOTH,
	  "keep the data directory after the server stops" },
	{ "owner", required_argument, OPT_OWNER, FOR_BOTH,
	  "PID\tthe clone dies with process PID" },
	{ "user", required_argument, 'u', FOR_BOTH,
	  "NAME\tthe server's OS user when root (default: postgres)" },
	{ "env", no_argument, OPT_ENV, FOR_NEW,
	  "print shell export lines (for eval), not the URL" },
	{ "json", no_argument, OPT_JSON, FOR_NEW,
	  "print a JSON object with every field of the clone" },
	{ "jdbc", no_argument, OPT_JDBC, FOR_NEW,
	  "print a JDBC URL (implies --tcp)" },
	{ "keep-on-failure", no_argument, OPT_KEEP_ON_FAILURE, FOR_EXEC,
	  "keep the clone when COMMAND fails; say how to reach it" },
	{ "count", required_argument, 'n', FOR_NEW,
	  "N\tN servers, one line each (the pool first, the rest in parallel)" },
	{ "pool", required_argument, OPT_POOL, FOR_BOTH,
	  "N\tkeep N servers like this one warm (default 2, PGSNAP_POOL; 0: off)" },
	{ "shared", optional_argument, OPT_SHARED, FOR_BOTH,
	  "[=N]\ta fresh database in a shared server of N (default 16)" },
	{ "help", no_argument, 'h', FOR_BOTH, "show this help" },
};

void new_help_options(const char *cmd)
{
	unsigned which = strcmp(cmd, "exec") ? FOR_NEW : FOR_EXEC;
	size_t i;

	for (i = 0; i < sizeof(new_options) / sizeof(new_options[0]); i++) {
		const struct new_option *n = &new_options[i];
		const char *tab = strchr(n->help, '\t');
		char left[64];
		if (!(n->cmds & which))
			continue;
		if (n->val < 0x100)
			snprintf(left, sizeof(left), "-%c, --%s%s%.*s", n->val,
				 n->name, tab ? " " : "",
				 tab ? (int)(tab - n->help) : 0, n->help);
		else
			snprintf(left, sizeof(left), "    --%s%s%.*s", n->name,
				 tab && n->has_arg == required_argument ? " " :
				 "", tab ? (int)(tab - n->help) : 0, n->help);
		printf("  %-26s %s\n", left, tab ? tab + 1 : n->help);
	}
}

/* With --build-if-stale, a snapshot built on the way is reported (the
 * caller asked for it; a slow `new` explains itself).  The first build of
 * the shipped default stays silent: `new` prints only its URL. */
static void on_build(void *ctx, int final, const char *msg)
{
	(void)ctx;
	if (final)
		fprintf(stderr, "pgsnap: %s\n", msg);
}

int new_parse(const char *cmd, int argc, char **argv, new_args *a)
{
	unsigned which = strcmp(cmd, "exec") ? FOR_NEW : FOR_EXEC;
	struct option longopts[sizeof(new_options) / sizeof(new_options[0]) + 1];
	/* '+': exec stops at its COMMAND, whose options are not ours. */
	char shortopts[2 * sizeof(new_options) / sizeof(new_options[0]) + 4] = "+:";
	size_t i, n = 0, k = 2;
	int ch;
	long v;

	memset(a, 0, sizeof(*a));
	a->o.timeout_s = -1;
	for (i = 0; i < sizeof(new_options) / sizeof(new_options[0]); i++) {
		const struct new_option *no = &new_options[i];
		if (!(no->cmds & which))
			continue;
		longopts[n++] = (struct option){ no->name, no->has_arg, NULL,
						 no->val };
		if (no->val < 0x100) {
			shortopts[k++] = (char)no->val;
			if (no->has_arg)
				shortopts[k++] = ':';
		}
	}
	longopts[n] = (struct option){ 0 };
	shortopts[k] = '\0';

	opterr = 0;
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (ch) {
		case 's': a->o.snapshot = optarg; break;
		case 't': a->o.tcp = 1; break;
		case '6': a->o.tcp = a->o.ipv6 = 1; break;
		case 'o': a->o.server_opts = optarg; break;
		case 'm':
			if (pgsnap_method_parse(optarg, &a->o.method) < 0)
				return usage_error(cmd, "clone method '%s': "
					"expected overlay, reflink, copy or "
					"auto", optarg);
			break;
		case 'w':
			if (opt_long(cmd, "-w", optarg, 0, 365L * 86400, &v))
				return EXIT_USAGE;
			a->o.timeout_s = v;
			break;
		case 'k': a->o.keep = 1; break;
		case OPT_OWNER:
			if (opt_long(cmd, "--owner", optarg, 1, 1 << 22, &v))
				return EXIT_USAGE;
			a->o.owner = (pid_t)v;
			break;
		case 'u': a->user = optarg; break;
		case OPT_ENV: a->out = OUT_ENV; break;
		case OPT_JSON: a->out = OUT_JSON; break;
		case OPT_JDBC: a->out = OUT_JDBC; a->o.tcp = 1; break;
		case OPT_KEEP_ON_FAILURE: a->keep_on_failure = 1; break;
		case OPT_BUILD_IF_STALE: a->o.build_if_stale = 1; break;
		case OPT_NOW: a->o.now = optarg; break;
		case 'n':
			if (opt_long(cmd, "-n", optarg, 1, 1000, &v))
				return EXIT_USAGE;
			a->count = v;
			break;
		case OPT_POOL:
			if (opt_long(cmd, "--pool", optarg, 0, 64, &v))
				return EXIT_USAGE;
			a->o.pool = (int)v;
			a->o.no_pool = v == 0;
			break;
		case OPT_SHARED:
			v = SHARED_DEFAULT;
			if (optarg && opt_long(cmd, "--shared", optarg, 1,
					       PGSNAP_SHARED_MAX, &v))
				return EXIT_USAGE;
			a->o.shared = (int)v;
			break;
		case 'h': return NEW_PARSE_HELP;
		default: return bad_option(cmd, argv, ch);
		}
	}
	/* PGSNAP_SHARED=N (the library reads it) makes every `new` of a
	 * test suite --shared=N without touching its code. */
	if (a->o.shared > 0 && a->o.keep)
		return usage_error(cmd, "-k and --shared: a shared server's "
				   "files are not one test's to keep");
	if (a->o.build_if_stale)
		a->o.progress = on_build;
	return NEW_PARSE_OK;
}

static void help(void)
{
	printf(
"Usage: pgsnap new [OPTIONS]\n"
"\n"
"Clone a snapshot, start postgres on it and print one libpq URL on stdout\n"
"once the server accepts connections.\n"
"\n");
	new_help_options("new");
}

int cmd_new(int argc, char **argv)
{
	new_args a;
	pgsnap_store *s;
	pgsnap_clone *c;
	pgsnap_error err = { 0 };
	size_t n, i;
	int r;

	r = new_parse("new", argc, argv, &a);
	if (r == NEW_PARSE_HELP) {
		help();
		return EXIT_OK;
	}
	if (r >= 0)
		return r;
	if (optind < argc)
		return usage_error("new", "unexpected argument '%s'",
				   argv[optind]);
	if (a.out == OUT_ENV && a.count > 1)
		return usage_error("new", "--env sets the variables of one "
				   "clone: it cannot go with -n %ld", a.count);
	n = a.count > 0 ? (size_t)a.count : 1;
	c = calloc(n, sizeof(*c));
	if (!c) {
		snprintf(err.msg, sizeof(err.msg), "out of memory");
		return runtime_error(&err);
	}
	if (open_store(&s, a.user, &err) < 0) {
		free(c);
		return runtime_error(&err);
	}
	r = pgsnap_new_n(s, &a.o, n, c, &err);
	if (r < 0) {
		pgsnap_store_close(s);
		free(c);
		return runtime_error(&err);
	}
	for (i = 0; i < n; i++)
		print_clone(stdout, &c[i], a.out);
	r = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	pgsnap_store_close(s);
	/* Tests kill us here (see PGSNAP_TEST_PAUSE in lib/gc.c). */
	if (getenv("PGSNAP_TEST_PAUSE") &&
	    !strcmp(getenv("PGSNAP_TEST_PAUSE"), "printed"))
		raise(SIGSTOP);
	free(c);
	return r;
}
