/* pool.c - pgsnap __pool: the keeper of one pool variant (not for people:
 * `new` starts it, see pgsnap_pool_kick).
 *
 *   pgsnap __pool LOCK-FD SIG SIZE -- NEW-OPTIONS...
 *
 * NEW-OPTIONS are those of the `new` call that started it: parsed the same
 * way, they make the same variant. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

int cmd_pool_keeper(int argc, char **argv)
{
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	new_args a;
	long fd, size;
	int r;

	if (argc < 5 || strcmp(argv[4], "--"))
		return usage_error("__pool", "expected LOCK-FD SIG SIZE -- "
				   "OPTIONS (started by 'pgsnap new')");
	if (opt_long("__pool", "LOCK-FD", argv[1], 3, 1 << 20, &fd) ||
	    opt_long("__pool", "SIZE", argv[3], 1, 64, &size))
		return EXIT_USAGE;
	/* argv[4] ("--") stands in for the program name of getopt. */
	optind = 1;
	r = new_parse("new", argc - 4, argv + 4, &a);
	if (r != NEW_PARSE_OK)
		return r >= 0 ? r : EXIT_USAGE;
	a.o.pool = (int)size;
	a.o.no_pool = 0;
	if (open_store(&s, a.user, &err) < 0)
		return runtime_error(&err);
	r = pgsnap_pool_keep(s, &a.o, argv[2], (int)fd, &err);
	pgsnap_store_close(s);
	return r < 0 ? runtime_error(&err) : EXIT_OK;
}
