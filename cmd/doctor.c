/* doctor.c - pgsnap doctor: what pgsnap finds here and what it will do. */
#include "cmd.h"

#include <stdlib.h>

static void help(void)
{
	printf(
"Usage: pgsnap doctor [OPTIONS]\n"
"\n"
"Report the PostgreSQL binaries and version, the store's paths and their\n"
"filesystems, whether io_uring is allowed, which clone methods work here\n"
"(probed afresh) and which one 'pgsnap new' will use, and why.\n"
"\n"
"  -u, --user NAME   the server's user when running as root\n"
"  -h, --help        show this help\n");
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *user = NULL;
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	char *text = NULL;
	int ch, r;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":u:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u': user = optarg; break;
		case 'h': help(); return EXIT_OK;
		default: return bad_option("doctor", argv, ch);
		}
	}
	if (optind < argc)
		return usage_error("doctor", "unexpected argument '%s'",
				   argv[optind]);
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_doctor(s, &text, &err);
	pgsnap_store_close(s);
	if (r < 0)
		return runtime_error(&err);
	fputs(text, stdout);
	free(text);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
