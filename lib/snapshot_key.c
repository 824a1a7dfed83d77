/*
 * snapshot_key.c - the content key of a recipe.
 *
 * SHA-256 over tagged, length-prefixed fields: the PostgreSQL version and
 * the identity of its binary, the machine, initdb options, settings, the
 * bytes of every SQL file and extra input, exec command lines, extensions,
 * the base snapshot's key and the mock time.  Paths are left out on
 * purpose: the same recipe in a checkout elsewhere (another CI shard) must
 * give the same key, so that an exported archive can be found by it.
 */
#include "snapshot.h"
#include "snapshot_ext.h"
#include "sha256.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_VERSION "pgsnap-snapshot-key-1"

static void field(sha256_ctx *c, const char *tag, const void *data,
		  size_t len)
{
	unsigned char n[8];
	size_t tl = strlen(tag);
	int i;

	sha256_update(c, tag, tl + 1);
	for (i = 0; i < 8; i++)
		n[i] = (unsigned char)((uint64_t)len >> (8 * i));
	sha256_update(c, n, sizeof(n));
	sha256_update(c, data, len);
}

static void field_str(sha256_ctx *c, const char *tag, const char *s)
{
	field(c, tag, s, strlen(s));
}

void key_cache_load(key_cache *c, const char *snapdir)
{
	char path[700];

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "%s/inputs", snapdir);
	if (read_file(path, 16 << 20, &c->old, NULL) < 0)
		c->old = NULL;
}

void key_cache_free(key_cache *c)
{
	free(c->old);
	free(c->cur);
	memset(c, 0, sizeof(*c));
}

void key_cache_save(const pgsnap_store *s, const key_cache *c,
		    const char *dir, bool always)
{
	char path[700];
	fs_ids ids;

	if (!c || !c->cur || (!always && c->old && !strcmp(c->old, c->cur)))
		return;
	snprintf(path, sizeof(path), "%s/inputs", dir);
	ids = fs_become(s);
	write_file_atomic(path, c->cur, c->cur_len, 0644);
	fs_restore(ids);
}

static void ident_of(const struct stat *st, char *buf, size_t len)
{
	/* ctime too: a tool may reset mtime, nobody resets ctime. */
	snprintf(buf, len, "%llu %llu %lld %lld.%09ld %lld.%09ld",
		 (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		 (long long)st->st_size, (long long)st->st_mtim.tv_sec,
		 st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
		 st->st_ctim.tv_nsec);
}

/* The hash the cache holds for path with this identity. */
static bool cache_find(const key_cache *c, const char *ident, const char *path,
		       unsigned char d[32])
{
	size_t il = strlen(ident), pl = strlen(path);
	const char *p = c ? c->old : NULL;

	while (p && *p) {
		const char *eol = strchrnul(p, '\n');
		/* "IDENT HEX PATH" */
		if ((size_t)(eol - p) == il + 1 + 64 + 1 + pl &&
		    !memcmp(p, ident, il) && p[il] == ' ' &&
		    !memcmp(p + il + 66, path, pl)) {
			int i;
			for (i = 0; i < 32; i++) {
				unsigned v;
				if (sscanf(p + il + 1 + 2 * i, "%2x", &v) != 1)
					return false;
				d[i] = (unsigned char)v;
			}
			return true;
		}
		p = *eol ? eol + 1 : eol;
	}
	return false;
}

static void cache_add(key_cache *c, const char *ident, const char *path,
		      const unsigned char d[32])
{
	char hex[65], *n;
	size_t add;

	if (!c || strchr(path, '\n'))
		return;
	sha256_hex(d, hex);
	add = strlen(ident) + 66 + strlen(path) + 2;
	n = realloc(c->cur, c->cur_len + add);
	if (!n)
		return;
	c->cur = n;
	c->cur_len += (size_t)sprintf(n + c->cur_len, "%s %s %s\n", ident, hex,
				      path);
}

static int field_file_c(sha256_ctx *c, const char *tag, const char *path,
			const char *shown, key_cache *kc, pgsnap_error *err)
{
	unsigned char d[32];
	char ident[160];
	struct stat st;
	int r;

	if (stat(path, &st) < 0)
		return pgsnap_errno(err, errno, "cannot read %s", shown);
	ident_of(&st, ident, sizeof(ident));
	if (!cache_find(kc, ident, path, d)) {
		if ((r = sha256_file(path, d)) < 0)
			return pgsnap_errno(err, r, "cannot read %s", shown);
	}
	cache_add(kc, ident, path, d);
	field(c, tag, d, sizeof(d));
	return 0;
}

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* A tree: every file's path relative to the root and its bytes, in name
 * order; dot files (.git, editor swap files) are left out. */
static int field_tree(sha256_ctx *c, const char *root, const char *rel,
		      int depth, key_cache *kc, pgsnap_error *err)
{
	char path[4200], sub[4200];
	struct dirent **ents = NULL;
	int n, i, r = 0;

	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	if (depth > 32)
		return pgsnap_err(err, ELOOP, "input %s: too deep", path);
	n = scandir(path, &ents, NULL, cmp_names);
	if (n < 0)
		return pgsnap_errno(err, errno, "cannot read input %s", path);
	for (i = 0; i < n; i++) {
		struct stat st;
		const char *nm = ents[i]->d_name;

		if (r < 0 || nm[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", nm);
		snprintf(path, sizeof(path), "%s/%s", root, sub);
		if (stat(path, &st) < 0) {
			r = pgsnap_errno(err, errno, "cannot stat input %s",
					 path);
		} else if (S_ISDIR(st.st_mode)) {
			field_str(c, "dir", sub);
			r = field_tree(c, root, sub, depth + 1, kc, err);
		} else if (S_ISREG(st.st_mode)) {
			field_str(c, "file", sub);
			r = field_file_c(c, "bytes", path, path, kc, err);
		}
	}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return r;
}

/* What makes the recipe's extensions and preloaded libraries: only when
 * it has some, so that the keys of other recipes stay as they were. */
static int field_extensions(sha256_ctx *c, pgsnap_store *s, const recipe *r,
			    key_cache *kc, pgsnap_error *err)
{
	ext_parts p;
	size_t i;
	int rc = ext_parts_of(s, r, &p, err);

	for (i = 0; i < p.n && rc == 0; i++) {
		const ext_part *e = &p.v[i];
		const char *base = strrchr(e->text, '/');

		field_str(c, e->tag, e->file && base ? base + 1 : e->text);
		if (e->file)
			rc = field_file_c(c, e->tag, e->text, e->text, kc, err);
	}
	ext_parts_free(&p);
	return rc;
}

int recipe_key(pgsnap_store *s, const recipe *r, const char *base_key,
	       key_cache *kc, char out[65], pgsnap_error *err)
{
	unsigned char d[32];
	sha256_ctx c;
	pg_ident id;
	size_t i;
	int rc;

	if ((rc = pg_identity(s, &id, err)) < 0)
		return rc;
	sha256_init(&c);
	field_str(&c, "v", KEY_VERSION);
	field_str(&c, "pg", id.version);
	field_str(&c, "bin", id.bin);
	field_str(&c, "arch", id.arch);
	for (i = 0; i < r->n_initdb; i++)
		field_str(&c, "initdb", r->initdb[i]);
	for (i = 0; i < r->n_settings; i++)
		field_str(&c, "setting", r->settings[i]);
	if (r->from[0])
		field_str(&c, "from", base_key);
	for (i = 0; i < r->n_steps; i++) {
		const recipe_step *st = &r->steps[i];
		switch (st->kind) {
		case STEP_SQL:
			rc = field_file_c(&c, "sql", st->arg, st->shown, kc,
					  err);
			if (rc < 0)
				return rc;
			break;
		case STEP_EXEC:
			field_str(&c, "exec", st->arg);
			break;
		case STEP_EXTENSION:
			field_str(&c, "extension", st->arg);
			break;
		}
	}
	for (i = 0; i < r->n_inputs; i++) {
		struct stat st;
		if (stat(r->inputs[i], &st) < 0)
			return pgsnap_errno(err, errno, "input %s",
					    r->inputs[i]);
		if (S_ISDIR(st.st_mode)) {
			field_str(&c, "input-tree", "");
			rc = field_tree(&c, r->inputs[i], "", 0, kc, err);
		} else {
			rc = field_file_c(&c, "input", r->inputs[i],
					  r->inputs[i], kc, err);
		}
		if (rc < 0)
			return rc;
	}
	if ((rc = field_extensions(&c, s, r, kc, err)) < 0)
		return rc;
	if (r->now)
		field_str(&c, "now", r->now);
	/* Only when asked: the keys of existing recipes stay as they were. */
	if (r->databases) {
		char n[16];
		snprintf(n, sizeof(n), "%d", r->databases);
		field_str(&c, "databases", n);
	}
	sha256_final(&c, d);
	sha256_hex(d, out);
	return 0;
}
