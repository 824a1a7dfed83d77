/*
 * clone.c - one entry point for the clone engines (a strategy table), the
 * per-store memory of what works here, and the automatic choice.
 *
 * Each engine makes a clone's data directory from a snapshot; the caller
 * owns the clone directory and removes it on failure, so an engine only
 * undoes what it did outside that directory (a mount, say).
 */
#include "clone_impl.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

/* In order of preference for small snapshots. */
static const clone_engine *const engines[] = {
	&clone_engine_overlay,
	&clone_engine_reflink,
	&clone_engine_copy,
};

const clone_engine *clone_engine_for(pgsnap_method m)
{
	size_t i;
	for (i = 0; i < ARRAY_SIZE(engines); i++)
		if (engines[i]->method == m)
			return engines[i];
	return NULL;
}

static const char *const method_names[] = {
	[PGSNAP_METHOD_AUTO] = "auto",
	[PGSNAP_METHOD_OVERLAY] = "overlay",
	[PGSNAP_METHOD_REFLINK] = "reflink",
	[PGSNAP_METHOD_COPY] = "copy",
};

const char *pgsnap_method_name(pgsnap_method m)
{
	return (unsigned)m < ARRAY_SIZE(method_names) ? method_names[m] : "?";
}

int pgsnap_method_parse(const char *name, pgsnap_method *out)
{
	size_t i;
	for (i = 0; i < ARRAY_SIZE(method_names); i++) {
		if (!strcmp(name, method_names[i])) {
			*out = (pgsnap_method)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- what works here, probed once per store ------------------------- */

typedef struct probe_cache {
	int rc[ARRAY_SIZE(engines)];
	char why[ARRAY_SIZE(engines)][400];
} probe_cache;

#define PROBE_FILE "clone-methods"

static int cache_load(const pgsnap_store *s, probe_cache *pc)
{
	char path[600], boot[64];
	cleanup_free char *text = NULL;
	char *line, *nl;
	size_t seen = 0;

	snprintf(path, sizeof(path), "%s/" PROBE_FILE, s->run);
	if (read_file(path, 1 << 16, &text, NULL) < 0)
		return -ENOENT;
	/* A reboot may bring other mounts, another kernel: probe again. */
	snprintf(boot, sizeof(boot), "boot\t%s\n", s->boot_id);
	if (strncmp(text, boot, strlen(boot)))
		return -ESTALE;
	for (line = text + strlen(boot); *line; line = nl + 1) {
		char *t1, *t2;
		size_t i;
		long rc;

		nl = strchr(line, '\n');
		if (!nl)
			return -EINVAL;
		*nl = '\0';
		t1 = strchr(line, '\t');
		t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (!t2)
			return -EINVAL;
		*t1 = *t2 = '\0';
		if (parse_long(t1 + 1, -4095, 0, &rc) < 0)
			return -EINVAL;
		for (i = 0; i < ARRAY_SIZE(engines); i++) {
			if (strcmp(line, engines[i]->name))
				continue;
			pc->rc[i] = (int)rc;
			snprintf(pc->why[i], sizeof(pc->why[i]), "%s", t2 + 1);
			seen |= 1u << i;
		}
	}
	return seen == (1u << ARRAY_SIZE(engines)) - 1 ? 0 : -EINVAL;
}

static void cache_save(const pgsnap_store *s, const probe_cache *pc)
{
	char path[600], buf[4096];
	size_t i, n;

	n = (size_t)snprintf(buf, sizeof(buf), "boot\t%s\n", s->boot_id);
	for (i = 0; i < ARRAY_SIZE(engines) && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\t%d\t%s\n",
				      engines[i]->name, pc->rc[i], pc->why[i]);
	if (n >= sizeof(buf))
		return;
	snprintf(path, sizeof(path), "%s/" PROBE_FILE, s->run);
	/* Only a cache: when it cannot be written, we probe next time. */
	write_file_atomic(path, buf, n, 0644);
}

static void probe_all(const pgsnap_store *s, probe_cache *pc, bool fresh)
{
	size_t i;

	if (!fresh && cache_load(s, pc) == 0)
		return;
	for (i = 0; i < ARRAY_SIZE(engines); i++) {
		pgsnap_error e = { 0 };
		pc->rc[i] = engines[i]->probe(s, &e);
		if (pc->rc[i] < 0)
			snprintf(pc->why[i], sizeof(pc->why[i]), "%s", e.msg);
		else
			snprintf(pc->why[i], sizeof(pc->why[i]), "%s",
				 e.msg[0] ? e.msg : "works");
		/* Keep it one line in one field. */
		for (char *p = pc->why[i]; *p; p++)
			if (*p == '\n' || *p == '\t')
				*p = ' ';
	}
	cache_save(s, pc);
}

static size_t engine_index(const clone_engine *e)
{
	size_t i;
	for (i = 0; i < ARRAY_SIZE(engines); i++)
		if (engines[i] == e)
			break;
	return i;
}

static const char *dirname_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	snprintf(buf, len, "%.*s", slash ? (int)(slash - path) : 1,
		 slash ? path : ".");
	return buf;
}

/*
 * The automatic choice and why, in one sentence.  Measured (bench-clone.sh):
 * overlay clones in well under a millisecond whatever the size; its cost
 * comes later, when postgres opens a relation file read-write and the
 * whole file is copied up: about 1 s for a 1 GB table with the upper layer
 * on tmpfs, but a reflink (faster than a reflink clone of the whole tree)
 * when the upper layer shares a filesystem that reflinks with the golden,
 * which is exactly when the reflink method works.  So overlay first; and
 * for a large snapshot, where copy-up cannot reflink, overlay still beats
 * a full copy (the copy-up touches only what is opened), and the reason
 * says so.
 */
static const clone_engine *auto_choice(const pgsnap_store *s,
				       const probe_cache *pc,
				       const char *snapdir, char *why,
				       size_t len)
{
	size_t ov = engine_index(&clone_engine_overlay);
	size_t rl = engine_index(&clone_engine_reflink);
	size_t cp = engine_index(&clone_engine_copy);
	uint64_t bytes = clone_snapshot_bytes(snapdir);
	bool large = clone_is_large(bytes);
	char upper[600], dir[600];

	if (pc->rc[ov] == 0) {
		if (!large)
			snprintf(why, len, "overlayfs mounts in constant time");
		else if (pc->rc[rl] == 0)
			snprintf(why, len, "overlayfs mounts in constant time "
				 "and, the upper layer sharing a filesystem "
				 "that reflinks with the snapshot, copies a "
				 "large file up by reflink (the snapshot is "
				 "large: %llu MB)",
				 (unsigned long long)(bytes >> 20));
		else if (overlay_upper_base(s, upper, sizeof(upper)) == 0)
			snprintf(why, len, "overlayfs mounts in constant time; "
				 "the snapshot is large (%llu MB): the upper "
				 "layers go to %s (%s), where copy-up reflinks",
				 (unsigned long long)(bytes >> 20), upper,
				 fs_type_name(dirname_of(upper, dir,
							 sizeof(dir))));
		else
			snprintf(why, len, "overlayfs mounts in constant time; "
				 "the snapshot is large (%llu MB) and the "
				 "clones' filesystem cannot reflink from the "
				 "snapshots': a relation file is copied up "
				 "whole on its first use (put PGSNAP_HOME on "
				 "XFS or btrfs to avoid it)",
				 (unsigned long long)(bytes >> 20));
		return &clone_engine_overlay;
	}
	if (pc->rc[rl] == 0) {
		snprintf(why, len, "no overlay (%s); the store's filesystem "
			 "shares extents", pc->why[ov]);
		return &clone_engine_reflink;
	}
	if (pc->rc[cp] == 0) {
		snprintf(why, len, "no overlay (%s), no reflink (%s)",
			 pc->why[ov], pc->why[rl]);
		return &clone_engine_copy;
	}
	snprintf(why, len, "no clone method works here: %s", pc->why[cp]);
	return NULL;
}

int clone_choose_for(const pgsnap_store *s, pgsnap_method want,
		     const char *snapdir, const clone_engine **out,
		     pgsnap_error *err)
{
	const clone_engine *e;
	probe_cache pc;
	char why[600];
	size_t i;

	probe_all(s, &pc, false);
	if (want != PGSNAP_METHOD_AUTO) {
		e = clone_engine_for(want);
		if (!e)
			return pgsnap_err(err, ENOTSUP,
				"clone method '%s' is not available in this "
				"build", pgsnap_method_name(want));
		i = engine_index(e);
		if (pc.rc[i] < 0)
			return pgsnap_err(err, pc.rc[i], "clone method '%s' "
					  "cannot work here: %s", e->name,
					  pc.why[i]);
		*out = e;
		return 0;
	}
	e = auto_choice(s, &pc, snapdir, why, sizeof(why));
	if (!e)
		return pgsnap_err(err, ENOTSUP, "%s", why);
	*out = e;
	return 0;
}

int clone_choose(const pgsnap_store *s, pgsnap_method want,
		 const clone_engine **out, pgsnap_error *err)
{
	return clone_choose_for(s, want, NULL, out, err);
}

int clone_describe(const pgsnap_store *s, const char *snapdir, bool fresh,
		   char *buf, size_t len)
{
	const clone_engine *e;
	probe_cache pc;
	char why[600];
	size_t i, n = 0;

	probe_all(s, &pc, fresh);
	for (i = 0; i < ARRAY_SIZE(engines) && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "method %-8s %s%s\n",
				      engines[i]->name,
				      pc.rc[i] == 0 ? "" : "unavailable: ",
				      pc.why[i]);
	e = auto_choice(s, &pc, snapdir, why, sizeof(why));
	if (n < len)
		snprintf(buf + n, len - n, "new uses %s: %s\n",
			 e ? e->name : "nothing", why);
	return 0;
}

int clone_prepare_snapshot(const pgsnap_store *s, const char *snapdir,
			   pgsnap_error *err)
{
	/* Best effort: a golden with spare WAL is only bigger. */
	golden_trim_wal(s, snapdir);
	return manifest_write(s, snapdir, err);
}


