/* reset.c - pgsnap reset and pgsnap keep: verbs on one clone. */
#include "cmd.h"

static void reset_help(void)
{
	printf("Usage: pgsnap reset [OPTIONS] ID|URL\n\n"
	       "Put the clone back to its snapshot in place: the same URL,\n"
	       "port, socket and password, the data as the snapshot has it.\n"
	       "Its open sessions are ended.  A database of a shared server\n"
	       "(new --shared) is replaced by a fresh copy under its name.\n\n"
	       "  -h, --help    show this help\n");
}

static void keep_help(void)
{
	printf("Usage: pgsnap keep [OPTIONS] ID|URL\n\n"
	       "Keep the clone running to look at it (a failed test's\n"
	       "database): its owner (--owner) and time limit (-w) are\n"
	       "dropped; it stays until 'pgsnap rm'.  Prints its URL.\n\n"
	       "  -h, --help    show this help\n");
}

static int one_clone(int argc, char **argv, const char *name,
		     void (*help)(void),
		     int (*op)(pgsnap_store *, const char *, pgsnap_clone *,
			       pgsnap_error *), int print_url)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	pgsnap_clone c;
	char url[1024];
	int ch, rc = EXIT_OK;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h': help(); return EXIT_OK;
		default: return bad_option(name, argv, ch);
		}
	}
	if (optind != argc - 1)
		return usage_error(name, "name one clone (id or URL)");
	if (open_store(&s, NULL, &err) < 0)
		return runtime_error(&err);
	if (op(s, argv[optind], &c, &err) < 0)
		rc = runtime_error(&err);
	else if (print_url && pgsnap_clone_url(&c, url, sizeof(url)) > 0)
		printf("%s\n", url);
	pgsnap_store_close(s);
	return rc;
}

int cmd_reset(int argc, char **argv)
{
	return one_clone(argc, argv, "reset", reset_help, pgsnap_reset, 0);
}

int cmd_keep(int argc, char **argv)
{
	return one_clone(argc, argv, "keep", keep_help, pgsnap_keep, 1);
}
