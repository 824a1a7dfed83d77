/* main.c - pgsnap: dispatch to a command. */
#include "cmd.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const command commands[] = {
	{ "new", cmd_new, "start a fresh server and print its URL" },
	{ "ls", cmd_ls, "list live clones" },
	{ "rm", cmd_rm, "stop clones and remove their files" },
	{ "doctor", cmd_doctor, "report what works here and the clone method new uses" },
	{ "exec", cmd_exec, "run a command against a fresh server, then remove it" },
	{ "snapshot", cmd_snapshot, "build, list, save, export snapshots" },
	{ "gc", cmd_gc, "remove expired, dead and half-made clones" },
	{ "reset", cmd_reset, "put a clone back to its snapshot, in place" },
	{ "keep", cmd_keep, "keep a clone running past its owner and time limit" },
	{ "logs", cmd_logs, "print a clone's server log" },
	{ "service", cmd_service, "start, stop or find the store's service" },
	{ "store", cmd_store, "where the store lives; a reflink XFS image store (root)" },
};

/* An error is one line, whatever bytes the user's input put in it: control
 * characters are shown escaped. */
static void put_one_line(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\n')
			fputs("\\n", stderr);
		else if (c == '\t')
			fputs("\\t", stderr);
		else if (c < 0x20 || c == 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	fprintf(stderr, "pgsnap%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	put_one_line(msg);
	fprintf(stderr, " (see 'pgsnap%s%s --help')\n", cmd ? " " : "",
		cmd ? cmd : "");
	return EXIT_USAGE;
}

int runtime_error(const pgsnap_error *err)
{
	fputs("pgsnap: ", stderr);
	put_one_line(err->msg[0] ? err->msg : "failed");
	fputc('\n', stderr);
	return EXIT_FAIL;
}

int bad_option(const char *cmd, char **argv, int c)
{
	const char *arg = argv[optind - 1];
	if (c == ':')
		return usage_error(cmd, "option '%s' needs a value", arg);
	if (optopt && optopt != '?' && strncmp(arg, "--", 2))
		return usage_error(cmd, "unknown option '-%c'", optopt);
	return usage_error(cmd, "unknown option '%s'", arg);
}

int opt_long(const char *cmd, const char *opt, const char *val, long min,
	     long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(val, &end, 10);
	/* Strict: digits only, no blanks, no trailing text, in range. */
	if (!*val || isspace((unsigned char)*val) || *end || errno || v < min || v > max) {
		usage_error(cmd, "%s '%s': expected a whole number from %ld "
			    "to %ld", opt, val, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int open_store(pgsnap_store **s, const char *user, pgsnap_error *err)
{
	pgsnap_store_opts o = { 0 };
	o.user = user;
	return pgsnap_store_open(s, &o, err);
}

static void usage(FILE *f)
{
	size_t i;
	fprintf(f, "Usage: pgsnap COMMAND [OPTIONS]\n\n"
		   "Fresh, real PostgreSQL servers in milliseconds, cloned "
		   "from snapshots.\n\nCommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\n'pgsnap COMMAND --help' describes a command; "
		   "'man pgsnap' describes all.\n"
		   "Environment: PGSNAP_HOME (the store), PGSNAP_PG_BINDIR "
		   "(PostgreSQL binaries), PGSNAP_USER.\n");
}

int main(int argc, char **argv)
{
	size_t i;
	const char *name;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h") ||
	    !strcmp(name, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
		printf("pgsnap %s\n", PGSNAP_VERSION);
		return EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	return usage_error(NULL, "unknown command '%s'", name);
}
