/* ls.c - pgsnap ls: the live clones of the store. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void help(void)
{
	printf("Usage: pgsnap ls [OPTIONS]\n\n"
	       "List the clones of the store: id, snapshot, state, server "
	       "pid, age and URL.\n\n"
	       "  -a, --all     also the warm pool's servers (state pooled) and\n"
	       "                the shared servers of new's databases (shared),\n"
	       "                which new hands out and nobody owns yet, and\n"
	       "                clones still starting (no server yet)\n"
	       "      --worker W  only the clones of worker W\n"
	       "  -q, --quiet   print ids only\n"
	       "      --json    print a JSON array, one object per clone\n"
	       "                (the fields of 'pgsnap new --json')\n"
	       "  -h, --help    show this help\n");
}

static void age(char *buf, size_t len, int64_t created_ms)
{
	long s = (long)((time(NULL) * 1000LL - created_ms) / 1000);
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, len, "%lds", s);
	else if (s < 7200)
		snprintf(buf, len, "%ldm", s / 60);
	else
		snprintf(buf, len, "%ldh", s / 3600);
}

/* An array even when empty: a program parses it without a special case. */
static void print_json_array(const pgsnap_clone *v, size_t n)
{
	size_t i;

	fputc('[', stdout);
	for (i = 0; i < n; i++) {
		fputs(i ? ",\n " : "", stdout);
		print_clone_json(stdout, &v[i]);
	}
	fputs("]\n", stdout);
}

int cmd_ls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'J' },
		{ "worker", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	pgsnap_clone *v;
	size_t n, i, k;
	const char *worker = NULL;
	int ch, quiet = 0, json = 0, all = 0, workers = 0;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":aqh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a': all = 1; break;
		case 'q': quiet = 1; break;
		case 'J': json = 1; break;
		case 'W': worker = optarg; break;
		case 'h': help(); return EXIT_OK;
		default: return bad_option("ls", argv, ch);
		}
	}
	if (optind < argc)
		return usage_error("ls", "unexpected argument '%s'",
				   argv[optind]);
	if (open_store(&s, NULL, &err) < 0)
		return runtime_error(&err);
	if (pgsnap_list(s, &v, &n, &err) < 0) {
		pgsnap_store_close(s);
		return runtime_error(&err);
	}
	/* Pooled servers are not yet anyone's clone, and a clone still
	 * starting has no server (nor port) yet: the pool's keeper makes
	 * those all the time.  A shared server is no one's either: its
	 * databases are (leases, listed with their own ids).  One stopping
	 * is on its way out. */
	for (i = 0, k = 0; i < n; i++) {
		if (worker && strcmp(v[i].worker, worker))
			continue;
		if (all || (strcmp(v[i].state, "pooled") &&
			    strcmp(v[i].state, "starting") &&
			    strcmp(v[i].state, "shared") &&
			    strcmp(v[i].state, "stopping"))) {
			workers |= v[i].worker[0] != '\0';
			v[k++] = v[i];
		}
	}
	n = k;
	if (json)
		print_json_array(v, n);
	if (!quiet && !json && n)
		printf("%-10s %-12s %-9s %-8s %-5s %s%s\n", "ID", "SNAPSHOT",
		       "STATE", "PID", "AGE", workers ? "WORKER     " : "", "URL");
	for (i = 0; !json && i < n; i++) {
		char url[4096], a[16];
		if (quiet) {
			printf("%s\n", v[i].id);
			continue;
		}
		pgsnap_clone_url(&v[i], url, sizeof(url));
		age(a, sizeof(a), v[i].created_ms);
		printf("%-10s %-12s %-9s %-8d %-5s ", v[i].id, v[i].snapshot,
		       v[i].state, (int)v[i].pid, a);
		/* A worker column when any clone has one: runners of
		 * parallel tests, where it tells whose a clone is. */
		if (workers)
			printf("%-10s ", v[i].worker[0] ? v[i].worker : "-");
		printf("%s\n", url);
	}
	free(v);
	pgsnap_store_close(s);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
