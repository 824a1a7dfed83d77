/* service.c - pgsnap service: the store's service, by hand.  Nothing
 * needs it (new and the packages start it when they need it); scripts and
 * people use it to find the socket (docs/protocol.md) or stop it. */
#include "cmd.h"

#include <string.h>

static void help(void)
{
	printf("Usage: pgsnap service start|stop|status\n\n"
	       "The store's service hands out clones over a Unix socket, ends\n"
	       "them when their time is up or their owner died, and keeps the\n"
	       "warm pool (protocol: docs/protocol.md).  pgsnap starts it when\n"
	       "it is needed; it leaves when nothing is left to do.\n\n"
	       "  start    start it unless it runs; print its socket's path\n"
	       "  stop     ask it to leave (the clones stay; any later call\n"
	       "           starts it again)\n"
	       "  status   print 'running' and the socket, or 'not running'\n"
	       "           (exit 3)\n"
	       "  -h, --help  show this help\n");
}

int cmd_service(int argc, char **argv)
{
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	char sock[1024];
	int r = EXIT_OK;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		help();
		return EXIT_OK;
	}
	if (argc != 2)
		return usage_error("service", "expected start, stop or status");
	if (strcmp(argv[1], "start") && strcmp(argv[1], "stop") &&
	    strcmp(argv[1], "status"))
		return usage_error("service", "unknown action '%s' (start, stop "
				   "or status)", argv[1]);
	if (open_store(&s, NULL, &err) < 0)
		return runtime_error(&err);
	if (!strcmp(argv[1], "start")) {
		if (pgsnap_service_start(s, sock, sizeof(sock), &err) < 0)
			r = runtime_error(&err);
		else
			printf("%s\n", sock);
	} else if (!strcmp(argv[1], "stop")) {
		if (pgsnap_service_stop(s, &err) < 0)
			r = runtime_error(&err);
	} else {
		int run = pgsnap_service_status(s, sock, sizeof(sock));
		printf(run ? "running %s\n" : "not running\n", sock);
		r = run ? EXIT_OK : 3;
	}
	pgsnap_store_close(s);
	return fflush(stdout) == 0 ? r : EXIT_FAIL;
}
