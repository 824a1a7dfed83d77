/*
 * guard.c - checks of the process environment before pgsnap starts work,
 * so that a hostile or odd setting gives one clear line up front instead
 * of a half-made clone and a puzzling error from deep inside.
 */
#include "internal.h"

#include <string.h>
#include <sys/resource.h>

/* postgres refuses to start with fewer than 58 usable descriptors ("we
 * need at least 58"); a few more go to pgsnap itself and the ones the
 * server inherits. */
#define NEED_FDS 64

int guard_fd_limit(pgsnap_error *err)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0; /* cannot tell: let the work find out */
	if (rl.rlim_cur >= NEED_FDS)
		return 0;
	/* A low soft limit under a higher hard one costs nothing to lift,
	 * and the server inherits it. */
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= NEED_FDS) {
		struct rlimit up = rl;
		up.rlim_cur = NEED_FDS;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return 0;
	}
	return pgsnap_err(err, EMFILE,
		"the open file limit is %llu (ulimit -n): PostgreSQL needs at "
		"least %d; raise it", (unsigned long long)rl.rlim_cur, NEED_FDS);
}
