/* logs.c - pgsnap logs: a clone's server log, also of a kept clone whose
 * server is gone; -f follows it until the clone goes. */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#define FOLLOW_POLL_MS 200

static void help(void)
{
	printf("Usage: pgsnap logs [OPTIONS] ID|URL\n\n"
	       "Print the clone's server log (for a database of a shared\n"
	       "server, that server's).\n\n"
	       "  -f, --follow  then print what is added, until the clone goes\n"
	       "  -p, --path    print the log's path only\n"
	       "  -h, --help    show this help\n");
}

/* Copy what fd has from its current offset to stdout; -1 on a write error. */
static int drain(int fd)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return -1;
	return fflush(stdout) == 0 ? 0 : -1;
}

int cmd_logs(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "path", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	pgsnap_clone c;
	char path[1024];
	int ch, follow = 0, only_path = 0, fd, rc = EXIT_OK;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":fph", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f': follow = 1; break;
		case 'p': only_path = 1; break;
		case 'h': help(); return EXIT_OK;
		default: return bad_option("logs", argv, ch);
		}
	}
	if (optind != argc - 1)
		return usage_error("logs", "name one clone (id or URL)");
	if (open_store(&s, NULL, &err) < 0)
		return runtime_error(&err);
	if (pgsnap_find(s, argv[optind], &c, &err) < 0) {
		pgsnap_store_close(s);
		return runtime_error(&err);
	}
	snprintf(path, sizeof(path), "%s/log", c.dir);
	if (only_path) {
		printf("%s\n", path);
		pgsnap_store_close(s);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err.msg, sizeof(err.msg), "cannot open the log of "
			 "clone %s (%s): %s", c.id, path, strerror(errno));
		pgsnap_store_close(s);
		return runtime_error(&err);
	}
	if (drain(fd) < 0)
		rc = EXIT_FAIL;
	/* Until the clone is gone: its record, not the file, says so. */
	while (follow && rc == EXIT_OK &&
	       pgsnap_find(s, c.id, &c, NULL) == 0) {
		poll(NULL, 0, FOLLOW_POLL_MS);
		if (drain(fd) < 0)
			rc = EXIT_FAIL;
	}
	if (follow && rc == EXIT_OK && drain(fd) < 0)
		rc = EXIT_FAIL;
	close(fd);
	pgsnap_store_close(s);
	return rc;
}
