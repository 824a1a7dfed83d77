/* snapshot_move.c - snapshots in and out: save a clone, export, import. */
#include "snapshot.h"

int pgsnap_snapshot_save(pgsnap_store *s, const char *clone, const char *name,
			 int force, pgsnap_error *err)
{
	(void)s; (void)clone; (void)name; (void)force;
	return pgsnap_err(err, ENOTSUP, "snapshot save: not yet");
}

int pgsnap_snapshot_export(pgsnap_store *s, const char *name, const char *file,
			   pgsnap_error *err)
{
	(void)s; (void)name; (void)file;
	return pgsnap_err(err, ENOTSUP, "snapshot export: not yet");
}

int pgsnap_snapshot_import(pgsnap_store *s, const char *file, const char *name,
			   int force, char out_name[64], int *installed,
			   pgsnap_error *err)
{
	(void)s; (void)file; (void)name; (void)force; (void)out_name;
	(void)installed;
	return pgsnap_err(err, ENOTSUP, "snapshot import: not yet");
}
