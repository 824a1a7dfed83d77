/*
 * snapshot_ext.c - what makes an extension, for the snapshot key.
 *
 * `extension NAME` runs CREATE EXTENSION, which reads NAME.control and
 * the install script from SHAREDIR/extension and loads libraries from
 * PKGLIBDIR; shared_preload_libraries loads libraries at every start.  An
 * upgraded package changes those files and not the recipe, so the key
 * takes their bytes: the control file (default_version, requires), the
 * install script for default_version when there is one, the library
 * named by module_pathname and every NAME.so or NAME-*.so (versioned
 * names such as postgis-3.so; libraries named only inside the scripts),
 * and the same for each extension it requires, since CASCADE creates them
 * too.  Their hashes are
 * kept in the key cache like any input: a key check only stats them.
 *
 * A missing file is an error here, before anything is built, in one line
 * that names the package to install.
 *
 * SHAREDIR and PKGLIBDIR are where this bindir's postgres looks, which
 * PostgreSQL derives from where its binary is: its pg_config answers.
 */
#include "snapshot_ext.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_REQUIRES_DEPTH 16
#define MAX_CONTROL_BYTES (64 << 10)
#define PG_CONFIG_TIMEOUT_MS 10000

typedef struct pg_dirs {
	char share[PATH_MAX];
	char lib[PATH_MAX];
} pg_dirs;

typedef struct ext_walk {
	const pgsnap_store *s;
	pg_dirs d;
	ext_parts *out;
	bool check;          /* only what may be missing: no listing */
	pgsnap_error *err;
} ext_walk;

/* "SHAREDIR\nPKGLIBDIR\n", both absolute, into d. */
static int two_dirs(const char *p, pg_dirs *d)
{
	size_t a = strcspn(p, "\n"), b;

	if (p[0] != '/' || p[a] != '\n' || a >= sizeof(d->share))
		return -EINVAL;
	p += a + 1;
	b = strcspn(p, "\n");
	if (p[0] != '/' || b >= sizeof(d->lib))
		return -EINVAL;
	memcpy(d->share, p - a - 1, a);
	d->share[a] = '\0';
	memcpy(d->lib, p, b);
	d->lib[b] = '\0';
	return 0;
}

/* A process costs more than the rest of a key check: the answer is kept
 * beside the snapshots, for this bindir and this pg_config binary. */
static int pg_dirs_get(const pgsnap_store *s, pg_dirs *d, pgsnap_error *err)
{
	char prog[600], cache[700], stamp[700], out[2 * PATH_MAX + 2];
	/* Its own path as argv[0]: given a bare name, pg_config finds
	 * itself on PATH, which may hold another installation. */
	char *argv[] = { prog, "--sharedir", "--pkglibdir", NULL };
	char line[sizeof(stamp) + sizeof(out) + 2];
	cleanup_free char *text = NULL;
	spawn_opts o = { 0 };
	struct stat st;
	size_t sl;
	ssize_t n;

	snprintf(prog, sizeof(prog), "%s/pg_config", s->bindir);
	if (stat(prog, &st) < 0)
		return pgsnap_errno(err, errno, "cannot tell where extensions "
				    "are installed: %s", prog);
	snprintf(stamp, sizeof(stamp), "%s %llu:%llu:%lld:%lld.%09ld",
		 s->bindir, (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, (long long)st.st_size,
		 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	sl = strlen(stamp);
	snprintf(cache, sizeof(cache), "%s/snapshots/.pg-dirs", s->home);
	if (read_file(cache, sizeof(line), &text, NULL) == 0 &&
	    !strncmp(text, stamp, sl) && text[sl] == '\n' &&
	    two_dirs(text + sl + 1, d) == 0)
		return 0;
	n = spawn_capture(prog, argv, &o, PG_CONFIG_TIMEOUT_MS, out,
			  sizeof(out));
	if (n < 0 || two_dirs(out, d) < 0) {
		for (char *c = out; n >= 0 && *c; c++)
			if (*c == '\n')
				*c = ' ';
		return pgsnap_err(err, EIO, "cannot tell where extensions are "
			"installed ('%s --sharedir --pkglibdir' said: %.100s)",
			prog, n < 0 ? strerror((int)-n) : out);
	}
	/* Best effort: without it the next key check asks again. */
	n = snprintf(line, sizeof(line), "%s\n%s\n%s\n", stamp, d->share,
		     d->lib);
	if (n > 0 && (size_t)n < sizeof(line))
		write_file_atomic(cache, line, (size_t)n, 0644);
	return 0;
}

/* The value of key on a line "key = value" (PostgreSQL's configuration
 * syntax, as in control files and postgresql.conf: '=' optional, a value
 * quoted with '' for a quote, or a bare word); false when the line is not
 * about key. */
static bool conf_value(const char *line, const char *eol, const char *key,
		       char *out, size_t len)
{
	size_t kl = strlen(key), o = 0;
	const char *v = line;

	while (v < eol && isspace((unsigned char)*v))
		v++;
	if ((size_t)(eol - v) <= kl || strncasecmp(v, key, kl) ||
	    (!isspace((unsigned char)v[kl]) && v[kl] != '='))
		return false;
	for (v += kl; v < eol && isspace((unsigned char)*v); v++)
		;
	if (v < eol && *v == '=')
		v++;
	while (v < eol && isspace((unsigned char)*v))
		v++;
	if (v < eol && *v == '\'') {
		for (v++; v < eol && o + 1 < len; v++) {
			if (*v == '\'' && (v + 1 >= eol || *++v != '\''))
				break;
			out[o++] = *v;
		}
	} else {
		while (v < eol && !isspace((unsigned char)*v) && *v != '#' &&
		       o + 1 < len)
			out[o++] = *v++;
	}
	out[o] = '\0';
	return true;
}

/* The last value of key in a control file; "" when it has none. */
static void control_value(const char *text, const char *key, char *out,
			  size_t len)
{
	const char *p = text;

	out[0] = '\0';
	while (*p) {
		const char *eol = strchrnul(p, '\n');
		conf_value(p, eol, key, out, len);
		p = *eol ? eol + 1 : eol;
	}
}

/* Next item of a comma-separated list (spaces and double quotes around
 * an item dropped) into out; false at the end. */
static bool list_next(const char **p, char *out, size_t len)
{
	const char *s = *p, *e;
	size_t n;

	while (*s == ',' || isspace((unsigned char)*s))
		s++;
	if (!*s)
		return false;
	e = s + strcspn(s, ",");
	*p = e;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	if (e - s >= 2 && *s == '"' && e[-1] == '"') {
		s++;
		e--;
	}
	n = (size_t)(e - s) < len ? (size_t)(e - s) : len - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* Where PostgreSQL finds a library named as in module_pathname or
 * shared_preload_libraries: "$libdir/x" and "x" in PKGLIBDIR, else a path;
 * as named, then with ".so".  On -ENOENT, out holds the path with ".so". */
static int lib_find(const pg_dirs *d, const char *name, char *out, size_t len)
{
	char base[PATH_MAX];
	struct stat st;
	int n;

	if (!strncmp(name, "$libdir/", 8))
		n = snprintf(base, sizeof(base), "%s/%s", d->lib, name + 8);
	else if (strchr(name, '/'))
		n = snprintf(base, sizeof(base), "%s", name);
	else
		n = snprintf(base, sizeof(base), "%s/%s", d->lib, name);
	if (n < 0 || (size_t)n >= sizeof(base) || (size_t)n + 4 >= len)
		return -ENAMETOOLONG;
	snprintf(out, len, "%s", base);
	if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode))
		return 0;
	snprintf(out, len, "%s.so", base);
	if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode))
		return 0;
	return -ENOENT;
}

/* "; on Debian: apt-get install PKG" for PostgreSQL laid out as Debian
 * does (SHAREDIR /usr/share/postgresql/MAJOR).  Packages are named
 * postgresql-MAJOR-NAME with '-' for '_', but for those listed. */
static void install_hint(const ext_walk *w, const char *name, char *buf,
			 size_t len)
{
	static const struct {
		const char *name, *pkg;
		bool prefix;         /* also names that start with name */
	} known[] = {
		{ "postgis", "postgresql-%d-postgis-3", true },
		{ "address_standardizer", "postgresql-%d-postgis-3", true },
		{ "vector", "postgresql-%d-pgvector", false },
		{ "pg_cron", "postgresql-%d-cron", false },
		{ "pg_partman", "postgresql-%d-partman", true },
		{ "pg_repack", "postgresql-%d-repack", false },
		{ "pldbgapi", "postgresql-%d-pldebugger", false },
		{ "plpython3u", "postgresql-plpython3-%d", false },
		{ "plperl", "postgresql-plperl-%d", true },
		{ "pltcl", "postgresql-pltcl-%d", true },
	};
	char pkg[128], base[128];
	const char *slash = strrchr(name, '/');
	size_t i, o, bl;
	int major = 0, end = 0;

	/* A library may be named by its path or file name. */
	snprintf(base, sizeof(base), "%s", slash ? slash + 1 : name);
	bl = strlen(base);
	if (bl > 3 && !strcmp(base + bl - 3, ".so"))
		base[bl - 3] = '\0';
	name = base;

	if (sscanf(w->d.share, "/usr/share/postgresql/%d%n", &major, &end) != 1 ||
	    w->d.share[end] || major <= 0) {
		snprintf(buf, len, "; install it for the PostgreSQL in %s",
			 w->s->bindir);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(known); i++) {
		size_t kl = strlen(known[i].name);
		if (known[i].prefix ? !strncmp(name, known[i].name, kl)
				    : !strcmp(name, known[i].name)) {
			snprintf(pkg, sizeof(pkg), known[i].pkg, major);
			snprintf(buf, len, "; on Debian: apt-get install %s", pkg);
			return;
		}
	}
	o = (size_t)snprintf(pkg, sizeof(pkg), "postgresql-%d-", major);
	for (i = 0; name[i] && o + 1 < sizeof(pkg); i++)
		pkg[o++] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
	pkg[o] = '\0';
	snprintf(buf, len, "; on Debian, likely: apt-get install %s", pkg);
}

static int part_add(ext_walk *w, const char *tag, const char *text, bool file)
{
	ext_parts *p = w->out;
	ext_part *nv;
	size_t i;

	for (i = 0; file && i < p->n; i++)
		if (p->v[i].file && !strcmp(p->v[i].text, text))
			return 0;
	nv = realloc(p->v, (p->n + 1) * sizeof(*nv));
	if (!nv)
		return pgsnap_err(w->err, ENOMEM, "out of memory");
	p->v = nv;
	nv[p->n].tag = tag;
	nv[p->n].file = file;
	if (!(nv[p->n].text = strdup(text)))
		return pgsnap_err(w->err, ENOMEM, "out of memory");
	p->n++;
	return 0;
}

static int cmp_parts(const void *a, const void *b)
{
	return strcmp(((const ext_part *)a)->text, ((const ext_part *)b)->text);
}

/* Files of dir named NAME + suffix or NAME + sep + ... + suffix, in name
 * order.  Only the matches are kept and sorted. */
static int add_files(ext_walk *w, const char *dir, const char *name,
		     const char *sep, const char *suffix, const char *tag)
{
	size_t nl = strlen(name), sl = strlen(suffix), pl = strlen(sep);
	size_t first = w->out->n;
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);
	int r = 0;

	if (!d)
		return pgsnap_errno(w->err, errno, "cannot read %s", dir);
	while (r == 0 && (e = readdir(d))) {
		const char *rest = e->d_name + nl;
		size_t rl;

		if (strncmp(e->d_name, name, nl))
			continue;
		rl = strlen(rest);
		if (rl < sl || strcmp(rest + rl - sl, suffix) ||
		    (rl > sl && strncmp(rest, sep, pl)))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) <
		    (int)sizeof(path))
			r = part_add(w, tag, path, true);
	}
	closedir(d);
	/* One directory, so the order of the paths is that of the names. */
	qsort(w->out->v + first, w->out->n - first, sizeof(ext_part),
	      cmp_parts);
	return r;
}

/* "extension NAME" or "extension NAME (required by BY)" into buf. */
static void ext_label(const char *name, const char *by, char *buf, size_t len)
{
	if (by)
		snprintf(buf, len, "extension %s (required by %s)", name, by);
	else
		snprintf(buf, len, "extension %s", name);
}

static int ext_walk_one(ext_walk *w, const char *name, const char *by,
			int depth)
{
	char dir[PATH_MAX + 16], ctl[PATH_MAX * 2], path[PATH_MAX * 3];
	char label[300], hint[300], version[256], module[PATH_MAX];
	char sdir[PATH_MAX * 2], requires[1024], req[256];
	cleanup_free char *text = NULL;
	const char *p;
	size_t i;
	int r;

	for (i = 0; i < w->out->n; i++)
		if (!strcmp(w->out->v[i].tag, "ext") &&
		    !strcmp(w->out->v[i].text, name))
			return 0;
	ext_label(name, by, label, sizeof(label));
	/* PostgreSQL's own rules: a name (at most NAMEDATALEN - 1 bytes)
	 * that is not a path. */
	if (!name[0] || strlen(name) > 63 || strchr(name, '/'))
		return pgsnap_err(w->err, EINVAL, "%s: not an extension name",
				  label);
	if (depth > MAX_REQUIRES_DEPTH)
		return pgsnap_err(w->err, ELOOP, "%s: requirements nest deeper "
				  "than %d", label, MAX_REQUIRES_DEPTH);
	snprintf(dir, sizeof(dir), "%s/extension", w->d.share);
	snprintf(ctl, sizeof(ctl), "%s/%s.control", dir, name);
	r = read_file(ctl, MAX_CONTROL_BYTES, &text, NULL);
	if (r == -ENOENT) {
		install_hint(w, name, hint, sizeof(hint));
		return pgsnap_err(w->err, ENOENT, "%s: not installed (no "
				  "%s.control in %s%s)", label, name, dir, hint);
	}
	if (r < 0)
		return pgsnap_errno(w->err, r, "%s: cannot read %s", label, ctl);
	if ((r = part_add(w, "ext", name, false)) < 0 ||
	    (r = part_add(w, "ext-control", ctl, true)) < 0)
		return r;

	control_value(text, "requires", requires, sizeof(requires));
	for (p = requires; list_next(&p, req, sizeof(req));)
		if ((r = ext_walk_one(w, req, name, depth + 1)) < 0)
			return r;

	/* The scripts: in `directory` when the control file names one. */
	control_value(text, "directory", sdir, sizeof(sdir));
	if (!sdir[0])
		snprintf(sdir, sizeof(sdir), "%s", dir);
	else if (sdir[0] != '/') {
		snprintf(path, sizeof(path), "%s/%s", w->d.share, sdir);
		snprintf(sdir, sizeof(sdir), "%s", path);
	}
	control_value(text, "default_version", version, sizeof(version));
	snprintf(path, sizeof(path), "%s/%s--%s.sql", sdir, name, version);
	/* One reached through update scripts (pg_stat_statements) is left
	 * to its control file and library, which its package changes too:
	 * finding the chain means listing a directory of a thousand files
	 * (with PostGIS), which costs more than the rest of a key check. */
	if (version[0] && access(path, F_OK) == 0 &&
	    (r = part_add(w, "ext-script", path, true)) < 0)
		return r;

	control_value(text, "module_pathname", module, sizeof(module));
	if (module[0]) {
		r = lib_find(&w->d, module, path, sizeof(path));
		if (r == -ENOENT) {
			install_hint(w, name, hint, sizeof(hint));
			return pgsnap_err(w->err, ENOENT, "%s: not installed "
				"completely (no %s%s)", label, path, hint);
		}
		if (r < 0)
			return pgsnap_errno(w->err, r, "%s: library %s", label,
					    module);
		if ((r = part_add(w, "ext-lib", path, true)) < 0)
			return r;
	}
	return w->check ? 0 : add_files(w, w->d.lib, name, "-", ".so",
					"ext-lib");
}

/* The last shared_preload_libraries setting of the recipe, if any. */
static bool preload_setting(const recipe *r, char *out, size_t len)
{
	char v[4096];
	bool found = false;
	size_t i;

	for (i = 0; i < r->n_settings; i++) {
		const char *line = r->settings[i];
		if (conf_value(line, line + strlen(line),
			       "shared_preload_libraries", v, sizeof(v))) {
			snprintf(out, len, "%s", v);
			found = true;
		}
	}
	return found;
}

static int preload_walk(ext_walk *w, const char *value)
{
	char name[PATH_MAX], path[PATH_MAX + 8], hint[300];
	const char *p = value;
	int r;

	while (list_next(&p, name, sizeof(name))) {
		r = lib_find(&w->d, name, path, sizeof(path));
		if (r == -ENOENT) {
			install_hint(w, name, hint, sizeof(hint));
			return pgsnap_err(w->err, ENOENT, "shared_preload_libraries:"
				" '%s' is not installed (no %s%s)", name, path,
				hint);
		}
		if (r < 0)
			return pgsnap_errno(w->err, r, "shared_preload_libraries:"
					    " '%s'", name);
		if ((r = part_add(w, "preload", name, false)) < 0 ||
		    (r = part_add(w, "preload-lib", path, true)) < 0)
			return r;
	}
	return 0;
}

static int walk(pgsnap_store *s, const recipe *r, ext_parts *out,
		bool check, pgsnap_error *err)
{
	ext_walk w = { .s = s, .out = out, .check = check, .err = err };
	char preload[4096];
	bool any = preload_setting(r, preload, sizeof(preload)) && preload[0];
	bool libs = any;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < r->n_steps; i++)
		any = any || r->steps[i].kind == STEP_EXTENSION;
	/* Recipes without extensions never run pg_config. */
	if (!any)
		return 0;
	if ((rc = pg_dirs_get(s, &w.d, err)) < 0)
		return rc;
	for (i = 0; i < r->n_steps && rc == 0; i++)
		if (r->steps[i].kind == STEP_EXTENSION)
			rc = ext_walk_one(&w, r->steps[i].arg, NULL, 0);
	if (rc == 0 && libs)
		rc = preload_walk(&w, preload);
	if (rc < 0)
		ext_parts_free(out);
	return rc;
}

int ext_parts_of(pgsnap_store *s, const recipe *r, ext_parts *out,
		 pgsnap_error *err)
{
	return walk(s, r, out, false, err);
}

void ext_parts_free(ext_parts *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->v[i].text);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

int ext_check(pgsnap_store *s, const recipe *r, pgsnap_error *err)
{
	ext_parts p;
	int rc = walk(s, r, &p, true, err);

	ext_parts_free(&p);
	return rc;
}
