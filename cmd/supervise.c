/*
 * supervise.c - pgsnap __supervise: the store's supervisor (hidden; `new`
 * starts it).  Detaches at once: its parent (started by `new` with vfork
 * in a new session) exits, so `new` can reap it and nobody waits on us.
 */
#include "cmd.h"
#include "../lib/internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

int cmd_supervise(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "lock-fd", required_argument, NULL, 'l' },
		{ "run", required_argument, NULL, 'r' },
		{ "home", required_argument, NULL, 'H' },
		{ "user", required_argument, NULL, 'u' },
		{ 0 }
	};
	pgsnap_store_opts so = { 0 };
	const char *run = NULL;
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	long lock_fd = -1;
	int ch, r;
	pid_t pid;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (opt_long("__supervise", "--lock-fd", optarg, 3,
				     1 << 20, &lock_fd))
				return EXIT_USAGE;
			break;
		case 'r': run = optarg; break;
		case 'H': so.home = optarg; break;
		case 'u': so.user = optarg; break;
		default: return bad_option("__supervise", argv, ch);
		}
	}
	if (lock_fd < 0 || !run)
		return usage_error("__supervise", "needs --lock-fd and --run");
	/* Nothing of our caller's may stay open here: a pipe held by us
	 * would keep `url=$(pgsnap new)` waiting until we exit. */
	if (lock_fd > 3)
		close_range(3, (unsigned)lock_fd - 1, 0);
	close_range((unsigned)lock_fd + 1, ~0U, 0);
	pid = fork();
	if (pid < 0)
		return EXIT_FAIL;
	if (pid > 0) {
		/* The pid is in the lock file before new returns. */
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
		if (ftruncate((int)lock_fd, 0) < 0 ||
		    pwrite((int)lock_fd, buf, (size_t)n, 0) < 0)
			_exit(EXIT_FAIL);
		_exit(EXIT_OK);
	}
	if (pgsnap_store_open(&s, &so, &err) < 0)
		return EXIT_FAIL;
	if (strcmp(s->run, run)) {
		pgsnap_store_close(s);
		return EXIT_FAIL; /* not the store we were started for */
	}
	r = supervisor_run(s, (int)lock_fd, &err);
	pgsnap_store_close(s);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
