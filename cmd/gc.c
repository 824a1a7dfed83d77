/* gc.c - pgsnap gc: remove what is no longer wanted or was left behind. */
#include "cmd.h"

#include <string.h>

static void help(void)
{
	printf(
"Usage: pgsnap gc [OPTIONS]\n"
"\n"
"Remove clones whose time is up (-w) and no client is connected, whose\n"
"owner (--owner) or server died, clones from before a reboot, half-made\n"
"clone directories, records with no directory, and stale files.  A running\n"
"server whose record was lost is recorded again, not stopped.\n"
"\n"
"  -n, --dry-run   say what would be removed, remove nothing\n"
"      --repair    rebuild a corrupt registry from the records that can be\n"
"                  read and the clones on disk (the damaged file is kept\n"
"                  as registry.bad-*), then collect\n"
"      --keep-snapshots N  also keep only the N most recently used\n"
"                  snapshots (those with live clones stay); leftovers of\n"
"                  failed snapshot builds are removed in any case\n"
"  -q, --quiet     print nothing\n"
"  -h, --help      show this help\n");
}

struct out {
	int dry_run, quiet;
};

static void print_action(void *arg, const char *verb, const char *what,
			 const char *why)
{
	static const char *const past[][2] = {
		{ "remove", "removed" }, { "recover", "recovered" },
		{ "rebuild", "rebuilt" },
	};
	const struct out *o = arg;
	const char *done = verb;
	size_t i;

	if (o->quiet)
		return;
	for (i = 0; i < sizeof(past) / sizeof(past[0]); i++)
		if (!strcmp(verb, past[i][0]))
			done = past[i][1];
	if (o->dry_run)
		printf("would %s %s: %s\n", verb, what, why);
	else
		printf("%s %s: %s\n", done, what, why);
}

int cmd_gc(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "repair", no_argument, NULL, 'R' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "keep-snapshots", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	long keep_snapshots = -1;
	pgsnap_gc_opts o = { 0 };
	struct out out = { 0 };
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	size_t n;
	int ch, r;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":nqh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n': o.dry_run = out.dry_run = 1; break;
		case 'R': o.repair = 1; break;
		case 'q': out.quiet = 1; break;
		case 'K':
			if (opt_long("gc", "--keep-snapshots", optarg, 0,
				     1000000, &keep_snapshots))
				return EXIT_USAGE;
			break;
		case 'h': help(); return EXIT_OK;
		default: return bad_option("gc", argv, ch);
		}
	}
	if (optind < argc)
		return usage_error("gc", "unexpected argument '%s'",
				   argv[optind]);
	if (open_store(&s, NULL, &err) < 0)
		return runtime_error(&err);
	o.report = print_action;
	o.arg = &out;
	r = pgsnap_gc(s, &o, &n, &err);
	/* Snapshots (issue 5): after the clones, which keep theirs alive. */
	if (r == 0 && !o.dry_run) {
		size_t ns = 0;
		r = pgsnap_snapshot_gc(s, keep_snapshots, &ns, &err);
		if (r == 0 && ns && !out.quiet)
			printf("removed %zu snapshot%s or build leftover%s\n", ns,
			       ns == 1 ? "" : "s", ns == 1 ? "" : "s");
	}
	pgsnap_store_close(s);
	fflush(stdout);
	return r < 0 ? runtime_error(&err) : EXIT_OK;
}
