/* rm.c - pgsnap rm: stop clones and remove every file of theirs. */
#include "cmd.h"

static void help(void)
{
	printf("Usage: pgsnap rm [OPTIONS] ID|URL...\n"
	       "       pgsnap rm --all | --worker W\n\n"
	       "Stop each named clone and remove its files.\n\n"
	       "  -a, --all         remove every clone of the store (and its\n"
	       "                    warm pool)\n"
	       "      --worker W    remove the clones of worker W (see ls)\n"
	       "  -h, --help        show this help\n");
}

int cmd_rm(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "worker", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	const char *worker = NULL;
	int ch, all = 0, rc = EXIT_OK, i;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":ah", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a': all = 1; break;
		case 'W': worker = optarg; break;
		case 'h': help(); return EXIT_OK;
		default: return bad_option("rm", argv, ch);
		}
	}
	if (all && worker)
		return usage_error("rm", "--all and --worker: choose one");
	if ((all || worker) && optind < argc)
		return usage_error("rm", "--%s takes no clone names",
				   all ? "all" : "worker");
	if (!all && !worker && optind == argc)
		return usage_error("rm", "name a clone (id or URL) or use --all");
	if (open_store(&s, NULL, &err) < 0)
		return runtime_error(&err);
	if (all || worker) {
		size_t n;
		if (pgsnap_rm_worker(s, worker, &n, &err) < 0)
			rc = runtime_error(&err);
	}
	for (i = optind; i < argc; i++) {
		if (pgsnap_rm(s, argv[i], &err) < 0)
			rc = runtime_error(&err);
	}
	pgsnap_store_close(s);
	return rc;
}
