/* store.c - pgsnap store: where the store lives, and the XFS image store
 * pgsnap makes and removes (lib/xfsstore.c). */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

static void help(void)
{
	printf(
"Usage: pgsnap store\n"
"       pgsnap store xfs [--size SIZE]\n"
"       pgsnap store rm\n"
"\n"
"Without a command: where the store's snapshots and clones live and, when\n"
"it has one, its XFS image (mounted first if a reboot unmounted it).\n"
"\n"
"  xfs   as root: move the store onto a sparse XFS image with reflink\n"
"        (HOME/xfs.img, mounted on HOME/xfs through a loop device), so that\n"
"        clones of big snapshots share the golden's extents (overlay\n"
"        copy-up and copies reflink).  The store's clones are stopped; its\n"
"        snapshots are copied onto the image.  Already there: nothing done.\n"
"  rm    as root: stop the clones on the image, unmount it, free its loop\n"
"        device and delete it; the store is back where it was.\n"
"\n"
"  -s, --size SIZE   the image's size: bytes or with K, M, G, T (default\n"
"                    20G; sparse: it takes on disk what is written)\n"
"  -h, --help        show this help\n");
}

static void print_info(const pgsnap_store *s)
{
	pgsnap_store_info i;

	pgsnap_store_info_get(s, &i);
	printf("snapshots: %s\n", i.snapshots);
	printf("clones: %s\n", i.clones);
	if (!i.xfs_exists) {
		printf("xfs image: none ('pgsnap store xfs' makes one)\n");
		return;
	}
	printf("xfs image: %s, %llu MB (%llu MB on disk)\n", i.xfs_image,
	       i.xfs_size >> 20, i.xfs_disk >> 20);
	if (i.xfs_mounted)
		printf("mounted: %s through %s, %llu MB used\n", i.xfs_mnt,
		       i.xfs_dev, i.xfs_used >> 20);
	else
		printf("mounted: no\n");
}

int cmd_store(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *size = NULL, *what;
	unsigned long long bytes = 20ull << 30;
	pgsnap_store_opts so = { 0 };
	pgsnap_store *s;
	pgsnap_error err = { 0 };
	int ch, r = 0;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': size = optarg; break;
		case 'h': help(); return EXIT_OK;
		default: return bad_option("store", argv, ch);
		}
	}
	what = optind < argc ? argv[optind++] : NULL;
	if (optind < argc)
		return usage_error("store", "unexpected argument '%s'",
				   argv[optind]);
	if (what && strcmp(what, "xfs") && strcmp(what, "rm"))
		return usage_error("store", "unknown command '%s' (xfs or rm)",
				   what);
	if (size && (!what || strcmp(what, "xfs")))
		return usage_error("store", "--size goes with 'store xfs'");
	if (size && pgsnap_parse_size(size, &bytes) < 0)
		return usage_error("store", "--size '%s': expected bytes or a "
				   "number with K, M, G or T", size);
	/* xfs and rm work on the store as it is, image or not. */
	so.as_is = what != NULL;
	if (pgsnap_store_open(&s, &so, &err) < 0)
		return runtime_error(&err);
	if (what && !strcmp(what, "xfs"))
		r = pgsnap_store_xfs(s, bytes, &err);
	else if (what)
		r = pgsnap_store_xfs_rm(s, &err);
	if (r < 0) {
		pgsnap_store_close(s);
		return runtime_error(&err);
	}
	if (what && !strcmp(what, "rm"))
		printf(r == 1 ? "no XFS store here: nothing to remove\n" :
		       "XFS store removed\n");
	else
		print_info(s);
	pgsnap_store_close(s);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
