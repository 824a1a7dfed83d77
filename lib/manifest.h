/*
 * manifest.h - what a snapshot's data directory holds, written once when
 * the snapshot is made, so that no engine walks or stats the golden at
 * clone time.  Internal to the clone engines (clone*.c, manifest.c).
 *
 * SNAPDIR/manifest is text, one entry a line, tab-separated, directories
 * before what they hold:
 *   pgsnap-manifest 1
 *   stats<TAB>dirs<TAB>files<TAB>bytes<TAB>image bytes<TAB>largest file
 *   d<TAB>MODE<TAB>PATH
 *   f<TAB>MODE<TAB>SIZE<TAB>DATA<TAB>OFFSET<TAB>PATH
 *   l<TAB>TARGET<TAB>PATH
 * SIZE is the file's size, DATA the bytes before its trailing zeros (the
 * rest is left a hole), OFFSET where those bytes start in SNAPDIR/image,
 * the packed contents of every file.  PATH is relative to data/.  Hard
 * links of data/ (the copies of `databases N`) are packed once: their
 * entries share DATA and OFFSET, and a clone gets a file for each path.
 */
#ifndef PGSNAP_MANIFEST_H
#define PGSNAP_MANIFEST_H

#include "internal.h"

#include <stdint.h>
#include <sys/types.h>

typedef struct manifest_entry {
	char type;              /* 'd', 'f' or 'l' */
	mode_t mode;
	uint64_t size, len, off;
	const char *path;       /* points into manifest.text */
	const char *target;     /* symlinks */
} manifest_entry;

typedef struct manifest {
	char *text;             /* owns every string of the entries */
	manifest_entry *e;
	size_t n;
	uint64_t dirs, files, bytes, image_bytes, largest;
} manifest;

#define MANIFEST_NAME "manifest"
#define MANIFEST_IMAGE "image"
/* An imported snapshot has neither until a clone needs them
 * (clone_manifest_ensure); meanwhile this holds its data's bytes. */
#define MANIFEST_BYTES "bytes"
#define MANIFEST_LOCK "manifest.lock"

/* Walk SNAPDIR/data and write SNAPDIR/manifest and SNAPDIR/image. */
int manifest_write(const pgsnap_store *s, const char *snapdir,
		   pgsnap_error *err);
int manifest_load(const char *snapdir, manifest *m, pgsnap_error *err);
void manifest_free(manifest *m);
/* Remove the WAL a cleanly shut down golden does not need (see .c). */
int golden_trim_wal(const pgsnap_store *s, const char *snapdir);

#endif
