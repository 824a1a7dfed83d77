/* userns.c - pgsnap __userns-overlay (not for people: pgsnap runs it):
 *
 *   pgsnap __userns-overlay LOWER UPPER WORK TARGET [PROGRAM ARGV0 ARGS...]
 *
 * In a new user and mount namespace of its own, mount the overlay on
 * TARGET, then exec PROGRAM (the server keeps this process's pid); with
 * no PROGRAM exit 0 once mounted (the probe).
 */
#include "cmd.h"
#include "../lib/internal.h"

int cmd_userns_overlay(int argc, char **argv)
{
	pgsnap_error err = { 0 };

	if (argc < 5 || argc == 6)
		return usage_error("__userns-overlay", "expected LOWER UPPER "
				   "WORK TARGET [PROGRAM ARGV0 ARGS...]");
	overlay_userns_exec(argv[1], argv[2], argv[3], argv[4],
			    argc > 5 ? argv[5] : NULL, argv + 6, &err);
	if (argc == 5 && !err.msg[0])
		return EXIT_OK;
	/* Our stdout is the server's log (or the probe's pipe). */
	return runtime_error(&err);
}
