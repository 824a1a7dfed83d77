/* new.c - pgsnap new: a fresh server, its URL on stdout. */
#include "cmd.h"

#include <string.h>

static void help(void)
{
	printf(
"Usage: pgsnap new [OPTIONS]\n"
"\n"
"Clone a snapshot, start postgres on it and print one libpq URL on stdout\n"
"once the server accepts connections.\n"
"\n"
"  -s, --snapshot NAME      snapshot to clone (default: default)\n"
"  -t, --tcp                also listen on 127.0.0.1, on a free port\n"
"  -o, --options 'OPTIONS'  extra postgres options, e.g. '-c work_mem=64MB'\n"
"  -m, --clone-method M     overlay, reflink or copy (default: best here)\n"
"  -w, --timeout SECONDS    stop once idle after this long (0: never)\n"
"  -k, --keep               keep the data directory after the server stops\n"
"      --owner PID          the clone dies with process PID\n"
"  -u, --user NAME          the server's user when running as root\n"
"                           (default: postgres)\n"
"  -h, --help               show this help\n");
}

int cmd_new(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ "tcp", no_argument, NULL, 't' },
		{ "options", required_argument, NULL, 'o' },
		{ "clone-method", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 'w' },
		{ "keep", no_argument, NULL, 'k' },
		{ "owner", required_argument, NULL, 'O' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	pgsnap_new_opts o = { 0 };
	const char *user = NULL;
	pgsnap_store *s;
	pgsnap_clone c;
	pgsnap_error err = { 0 };
	char url[4096];
	long v;
	int ch, r;

	o.timeout_s = -1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":s:to:m:w:ku:h", longopts,
				 NULL)) != -1) {
		switch (ch) {
		case 's': o.snapshot = optarg; break;
		case 't': o.tcp = 1; break;
		case 'o': o.server_opts = optarg; break;
		case 'm':
			if (pgsnap_method_parse(optarg, &o.method) < 0)
				return usage_error("new", "clone method '%s': "
					"expected overlay, reflink, copy or "
					"auto", optarg);
			break;
		case 'w':
			if (opt_long("new", "-w", optarg, 0, 365L * 86400, &v))
				return EXIT_USAGE;
			o.timeout_s = v;
			break;
		case 'k': o.keep = 1; break;
		case 'O':
			if (opt_long("new", "--owner", optarg, 1, 1 << 22, &v))
				return EXIT_USAGE;
			o.owner = (pid_t)v;
			break;
		case 'u': user = optarg; break;
		case 'h': help(); return EXIT_OK;
		default: return bad_option("new", argv, ch);
		}
	}
	if (optind < argc)
		return usage_error("new", "unexpected argument '%s'",
				   argv[optind]);
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_new(s, &o, &c, &err);
	pgsnap_store_close(s);
	if (r < 0)
		return runtime_error(&err);
	pgsnap_clone_url(&c, url, sizeof(url));
	printf("%s\n", url);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
