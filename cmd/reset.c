/* reset.c - pgsnap reset: a clone back to its snapshot, in place. */
#include "cmd.h"

static void help(void)
{
	printf("Usage: pgsnap reset [OPTIONS] ID|URL\n\n"
	       "Put the clone back to its snapshot in place: the same URL,\n"
	       "port, socket and password, the data as the snapshot has it.\n"
	       "Its open sessions are ended.  A database of a shared server\n"
	       "(new --shared) is replaced by a fresh copy under its name.\n\n"
	       "  -h, --help    show this help\n");
}

int cmd_reset(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	int ch, rc = EXIT_OK;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h': help(); return EXIT_OK;
		default: return bad_option("reset", argv, ch);
		}
	}
	if (optind != argc - 1)
		return usage_error("reset", "name one clone (id or URL)");
	if (open_store(&s, NULL, &err) < 0)
		return runtime_error(&err);
	if (pgsnap_reset(s, argv[optind], NULL, &err) < 0)
		rc = runtime_error(&err);
	pgsnap_store_close(s);
	return rc;
}
