/* snapshot.c - pgsnap snapshot build|key|ls|rm|save|export|import|gc. */
#include "cmd.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void help(void)
{
	printf(
"Usage: pgsnap snapshot COMMAND [OPTIONS]\n"
"\n"
"Snapshots are golden data directories that `pgsnap new -s NAME` clones.\n"
"\n"
"  build NAME [INPUTS]    build NAME unless a snapshot with the same key\n"
"                         exists (stdout: the key)\n"
"  key NAME [INPUTS]      print the key NAME would have, build nothing\n"
"  ls [-q]                name, key, size, created, last used, clones\n"
"  rm NAME... [--force]   remove (--force: also its live clones)\n"
"  save CLONE NAME [--force]  freeze a live clone (id or URL) into NAME\n"
"  export NAME FILE       portable archive (.tar, .tar.gz, .tar.zst, .tar.xz)\n"
"  import FILE [NAME] [--force]  install an archive\n"
"  gc [--keep N]          keep the N most recently used snapshots and\n"
"                         remove leftovers of failed builds\n"
"\n"
"INPUTS (in order; relative paths are relative to the working directory,\n"
"those in a recipe file to that file):\n"
"  -f, --file FILE.sql        run a SQL file with psql (ON_ERROR_STOP)\n"
"  -x, --exec 'COMMAND'       run a shell command with DATABASE_URL and\n"
"                             PGHOST/PGPORT/PGUSER/PGDATABASE set\n"
"  -e, --extension NAME       CREATE EXTENSION NAME (before the files)\n"
"  -c, --setting NAME=VALUE   a postgresql.conf setting\n"
"  -i, --initdb-option OPT    an initdb option (a fresh cluster)\n"
"  -I, --input PATH           a file or tree the key depends on (what\n"
"                             --exec reads: migrations)\n"
"      --from BASE            start from snapshot BASE (default: default)\n"
"      --now TIME|clock       mock now() (see pgsnap(1), MOCK TIME)\n"
"  -r, --recipe FILE          read directives from a recipe file first\n"
"      --force                rebuild even when the key matches\n"
"  -q, --quiet                no progress on stderr\n"
"  -u, --user NAME            the server's user when running as root\n"
"  -h, --help                 show this help\n");
}

static int quiet;

static void on_progress(void *ctx, int final, const char *msg)
{
	(void)ctx;
	if (final || (!quiet && isatty(2)))
		fprintf(stderr, "pgsnap: %s\n", msg);
}

/* Options of build and key, turned into recipe directives in order. */
typedef struct inputs {
	const char **lines;
	char **owned;
	size_t n;
	pgsnap_build_opts o;
	const char *name;
	const char *user;
} inputs;

static int add(inputs *in, const char *word, const char *arg)
{
	char *l;
	if (asprintf(&l, "%s %s", word, arg) < 0)
		return -1;
	in->owned[in->n] = l;
	in->lines[in->n++] = l;
	return 0;
}

static void inputs_free(inputs *in)
{
	size_t i;
	for (i = 0; i < in->n; i++)
		free(in->owned[i]);
	free(in->owned);
	free(in->lines);
}

static int parse_inputs(const char *cmd, int argc, char **argv, inputs *in,
			int *force)
{
	static const struct option longopts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "exec", required_argument, NULL, 'x' },
		{ "extension", required_argument, NULL, 'e' },
		{ "setting", required_argument, NULL, 'c' },
		{ "initdb-option", required_argument, NULL, 'i' },
		{ "input", required_argument, NULL, 'I' },
		{ "from", required_argument, NULL, 'F' },
		{ "now", required_argument, NULL, 'N' },
		{ "recipe", required_argument, NULL, 'r' },
		{ "force", no_argument, NULL, 'X' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int ch;

	memset(in, 0, sizeof(*in));
	in->lines = calloc((size_t)argc + 1, sizeof(char *));
	in->owned = calloc((size_t)argc + 1, sizeof(char *));
	if (!in->lines || !in->owned) {
		fprintf(stderr, "pgsnap: out of memory\n");
		return EXIT_FAIL;
	}
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":f:x:e:c:i:I:r:qu:h", longopts,
				 NULL)) != -1) {
		const char *word = NULL, *arg = optarg;
		char setting[4200];
		switch (ch) {
		case 'f': word = "sql"; break;
		case 'x': word = "exec"; break;
		case 'e': word = "extension"; break;
		case 'i': word = "initdb"; break;
		case 'I': word = "input"; break;
		case 'F': word = "from"; break;
		case 'N': word = "now"; break;
		case 'c': {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				return usage_error(cmd, "-c '%s': expected "
						   "NAME=VALUE", optarg);
			snprintf(setting, sizeof(setting), "%.*s = %s",
				 (int)(eq - optarg), optarg, eq + 1);
			word = "setting";
			arg = setting;
			break;
		}
		case 'r': in->o.recipe_file = optarg; break;
		case 'X': *force = 1; break;
		case 'q': quiet = 1; break;
		case 'u': in->user = optarg; break;
		case 'h': help(); return -1;
		default: return bad_option(cmd, argv, ch);
		}
		if (word) {
			if (!*arg || strpbrk(arg, "\n\r"))
				return usage_error(cmd, "'%s': expected one "
					"non-empty line", argv[optind - 1]);
			if (add(in, word, arg) < 0)
				return EXIT_FAIL;
		}
	}
	if (optind >= argc)
		return usage_error(cmd, "missing snapshot NAME");
	in->name = argv[optind++];
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	in->o.directives = in->lines;
	in->o.n_directives = in->n;
	in->o.force = *force;
	in->o.progress = on_progress;
	return 0;
}

static int do_build(int argc, char **argv, bool key_only)
{
	const char *cmd = key_only ? "snapshot key" : "snapshot build";
	pgsnap_build_result res;
	pgsnap_error err = { 0 };
	pgsnap_store *s;
	inputs in;
	char key[65];
	int force = 0, r;

	r = parse_inputs(cmd, argc, argv, &in, &force);
	if (r) {
		inputs_free(&in);
		return r < 0 ? EXIT_OK : r;
	}
	if (open_store(&s, in.user, &err) < 0) {
		inputs_free(&in);
		return runtime_error(&err);
	}
	if (key_only)
		r = pgsnap_snapshot_key(s, in.name, &in.o, key, &err);
	else
		r = pgsnap_snapshot_build(s, in.name, &in.o, &res, &err);
	pgsnap_store_close(s);
	inputs_free(&in);
	if (r < 0)
		return runtime_error(&err);
	if (!key_only && !res.built)
		fprintf(stderr, "pgsnap: snapshot '%s' is up to date (key "
			"%.12s)\n", in.name, res.key);
	printf("%s\n", key_only ? key : res.key);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

static void fmt_size(char *buf, size_t len, int64_t b)
{
	if (b >= 10LL << 30)
		snprintf(buf, len, "%lldG", (long long)(b >> 30));
	else if (b >= 10LL << 20)
		snprintf(buf, len, "%lldM", (long long)(b >> 20));
	else
		snprintf(buf, len, "%lldK", (long long)((b + 1023) >> 10));
}

static void fmt_time(char *buf, size_t len, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms) {
		snprintf(buf, len, "-");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

static int simple_opts(const char *cmd, int argc, char **argv, int *force,
		       int *q, const char **user, long *keep)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'X' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "keep", required_argument, NULL, 'k' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":qu:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'X':
			if (!force)
				return bad_option(cmd, argv, '?');
			*force = 1;
			break;
		case 'q':
			if (!q)
				return bad_option(cmd, argv, '?');
			*q = 1;
			break;
		case 'k':
			if (!keep)
				return bad_option(cmd, argv, '?');
			if (opt_long(cmd, "--keep", optarg, 0, 1000000, keep))
				return EXIT_USAGE;
			break;
		case 'u': *user = optarg; break;
		case 'h': help(); return -1;
		default: return bad_option(cmd, argv, ch);
		}
	}
	return 0;
}

static int do_ls(int argc, char **argv)
{
	pgsnap_snapshot_info *v = NULL;
	pgsnap_error err = { 0 };
	const char *user = NULL;
	pgsnap_store *s;
	size_t n, i;
	int q = 0, r;

	if ((r = simple_opts("snapshot ls", argc, argv, NULL, &q, &user, NULL)))
		return r < 0 ? EXIT_OK : r;
	if (optind < argc)
		return usage_error("snapshot ls", "unexpected argument '%s'",
				   argv[optind]);
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_snapshot_list(s, &v, &n, &err);
	pgsnap_store_close(s);
	if (r < 0)
		return runtime_error(&err);
	if (!q && n)
		printf("%-24s %-12s %-6s %-7s %-16s %-16s %s\n", "NAME", "KEY",
		       "PG", "SIZE", "CREATED", "LAST USED", "CLONES");
	for (i = 0; i < n; i++) {
		char size[16], c[32], u[32];
		if (q) {
			printf("%s\n", v[i].name);
			continue;
		}
		fmt_size(size, sizeof(size), v[i].size);
		fmt_time(c, sizeof(c), v[i].created_ms);
		fmt_time(u, sizeof(u), v[i].used_ms);
		printf("%-24s %-12.12s %-6s %-7s %-16s %-16s %d\n", v[i].name,
		       v[i].key, v[i].pg_version, size, c, u, v[i].clones);
	}
	free(v);
	return EXIT_OK;
}

static int do_rm(int argc, char **argv)
{
	pgsnap_error err = { 0 };
	const char *user = NULL;
	pgsnap_store *s;
	int force = 0, r, rc = EXIT_OK;

	if ((r = simple_opts("snapshot rm", argc, argv, &force, NULL, &user,
			     NULL)))
		return r < 0 ? EXIT_OK : r;
	if (optind >= argc)
		return usage_error("snapshot rm", "missing snapshot NAME");
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	for (; optind < argc; optind++)
		if (pgsnap_snapshot_rm(s, argv[optind], force, &err) < 0)
			rc = runtime_error(&err);
	pgsnap_store_close(s);
	return rc;
}

static int do_save(int argc, char **argv)
{
	pgsnap_error err = { 0 };
	const char *user = NULL;
	pgsnap_store *s;
	int force = 0, r;

	if ((r = simple_opts("snapshot save", argc, argv, &force, NULL, &user,
			     NULL)))
		return r < 0 ? EXIT_OK : r;
	if (argc - optind != 2)
		return usage_error("snapshot save", argc - optind < 2 ?
				   "expected CLONE and NAME" :
				   "too many arguments");
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_snapshot_save(s, argv[optind], argv[optind + 1], force,
				 &err);
	pgsnap_store_close(s);
	return r < 0 ? runtime_error(&err) : EXIT_OK;
}

static int do_export(int argc, char **argv)
{
	pgsnap_error err = { 0 };
	const char *user = NULL;
	pgsnap_store *s;
	int r;

	if ((r = simple_opts("snapshot export", argc, argv, NULL, NULL, &user,
			     NULL)))
		return r < 0 ? EXIT_OK : r;
	if (argc - optind != 2)
		return usage_error("snapshot export", argc - optind < 2 ?
				   "expected NAME and FILE" :
				   "too many arguments");
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_snapshot_export(s, argv[optind], argv[optind + 1], &err);
	pgsnap_store_close(s);
	return r < 0 ? runtime_error(&err) : EXIT_OK;
}

static int do_import(int argc, char **argv)
{
	pgsnap_error err = { 0 };
	const char *user = NULL;
	pgsnap_store *s;
	char name[64];
	int force = 0, installed = 0, r;

	if ((r = simple_opts("snapshot import", argc, argv, &force, NULL,
			     &user, NULL)))
		return r < 0 ? EXIT_OK : r;
	if (argc - optind < 1 || argc - optind > 2)
		return usage_error("snapshot import", argc - optind < 1 ?
				   "expected FILE [NAME]" :
				   "too many arguments");
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_snapshot_import(s, argv[optind],
				   argc - optind == 2 ? argv[optind + 1] : NULL,
				   force, name, &installed, &err);
	pgsnap_store_close(s);
	if (r < 0)
		return runtime_error(&err);
	if (!installed)
		fprintf(stderr, "pgsnap: snapshot '%s' is up to date\n", name);
	printf("%s\n", name);
	return EXIT_OK;
}

static int do_gc(int argc, char **argv)
{
	pgsnap_error err = { 0 };
	const char *user = NULL;
	pgsnap_store *s;
	size_t removed = 0;
	long keep = -1;
	int r;

	if ((r = simple_opts("snapshot gc", argc, argv, NULL, NULL, &user,
			     &keep)))
		return r < 0 ? EXIT_OK : r;
	if (optind < argc)
		return usage_error("snapshot gc", "unexpected argument '%s'",
				   argv[optind]);
	if (open_store(&s, user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_snapshot_gc(s, keep, &removed, &err);
	pgsnap_store_close(s);
	if (r < 0)
		return runtime_error(&err);
	fprintf(stderr, "pgsnap: removed %zu\n", removed);
	return EXIT_OK;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int, char **);
	} subs[] = {
		{ "ls", do_ls }, { "rm", do_rm }, { "save", do_save },
		{ "export", do_export }, { "import", do_import }, { "gc", do_gc },
	};
	size_t i;

	if (argc < 2)
		return usage_error("snapshot", "missing command (build, key, "
				   "ls, rm, save, export, import, gc)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		help();
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "build"))
		return do_build(argc - 1, argv + 1, false);
	if (!strcmp(argv[1], "key"))
		return do_build(argc - 1, argv + 1, true);
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].run(argc - 1, argv + 1);
	return usage_error("snapshot", "unknown command '%s'", argv[1]);
}
