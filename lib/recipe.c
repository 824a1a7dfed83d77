/*
 * recipe.c - the recipe language (documented in snapshots/README.md).
 *
 * A recipe is a list of directives, one per line.  The same directives
 * come from a recipe file, from the flags of `pgsnap snapshot build` (each
 * flag is turned into one line) and from the copy stored in a snapshot, so
 * one parser serves all three.  Relative paths are relative to the file
 * that names them (or to the working directory for flags); the stored copy
 * holds absolute paths so that `new --build-if-stale` can rebuild from
 * anywhere.  Paths never enter the key: a checkout at another place must
 * give the same key.
 */
#include "recipe.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define MAX_INCLUDE_DEPTH 8
#define MAX_RECIPE_BYTES (1 << 20)
#define MAX_DATABASES 1000

extern const struct pgsnap_recipe_text {
	const char *name, *text;
} pgsnap_recipes[];

const char *recipe_shipped(const char *name)
{
	const struct pgsnap_recipe_text *t;
	for (t = pgsnap_recipes; t->name; t++)
		if (!strcmp(t->name, name))
			return t->text;
	return NULL;
}

static int push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int source_append(recipe *r, const char *word, const char *arg)
{
	size_t add = strlen(word) + 1 + strlen(arg) + 1;
	char *ns = realloc(r->source, r->source_len + add + 1);

	if (!ns)
		return -ENOMEM;
	r->source = ns;
	r->source_len += (size_t)sprintf(ns + r->source_len, "%s %s\n", word,
					 arg);
	return 0;
}

static int absolute(const recipe *r, const char *p, char *out, size_t len)
{
	int n = p[0] == '/' ? snprintf(out, len, "%s", p)
			    : snprintf(out, len, "%s/%s", r->cwd, p);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int recipe_init(recipe *r, const char *name, const char *cwd,
		pgsnap_error *err)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (cwd) {
		snprintf(r->cwd, sizeof(r->cwd), "%s", cwd);
	} else if (!getcwd(r->cwd, sizeof(r->cwd))) {
		return pgsnap_errno(err, errno, "cannot get the current "
				    "directory");
	}
	r->source = strdup("");
	return r->source ? 0 : pgsnap_err(err, ENOMEM, "out of memory");
}

/* The stored source records top-level directives only: an included file
 * is read again (it may have changed) when the snapshot is rebuilt. */
static int depth_of(const recipe *r)
{
	return r->depth;
}

static int add_step(recipe *r, step_kind k, const char *arg,
		    const char *shown)
{
	recipe_step *ns = realloc(r->steps, (r->n_steps + 1) * sizeof(*ns));
	recipe_step *st;

	if (!ns)
		return -ENOMEM;
	r->steps = ns;
	st = &ns[r->n_steps];
	st->kind = k;
	st->arg = strdup(arg);
	st->shown = strdup(shown);
	st->cwd = strdup(r->cwd);
	if (!st->arg || !st->shown || !st->cwd) {
		free(st->arg);
		free(st->shown);
		free(st->cwd);
		return -ENOMEM;
	}
	r->n_steps++;
	return 0;
}

static int include_file(recipe *r, const char *path, pgsnap_error *err)
{
	cleanup_free char *text = NULL;
	char saved[sizeof(r->cwd)], *slash;
	int depth = depth_of(r), rc;

	if (depth >= MAX_INCLUDE_DEPTH)
		return pgsnap_err(err, ELOOP, "recipe %s: includes nest deeper "
				  "than %d", path, MAX_INCLUDE_DEPTH);
	rc = read_file(path, MAX_RECIPE_BYTES, &text, NULL);
	if (rc < 0)
		return pgsnap_errno(err, rc, "cannot read recipe %s", path);
	memcpy(saved, r->cwd, sizeof(saved));
	snprintf(r->cwd, sizeof(r->cwd), "%s", path);
	slash = strrchr(r->cwd, '/');
	if (slash == r->cwd)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	r->depth = depth + 1;
	rc = recipe_add_text(r, text, path, err);
	r->depth = depth;
	memcpy(r->cwd, saved, sizeof(saved));
	return rc;
}

int recipe_add_line(recipe *r, const char *line, const char *origin,
		    int lineno, pgsnap_error *err)
{
	char word[16], abs[PATH_MAX];
	const char *p = line, *w, *arg;
	size_t wlen, alen;
	cleanup_free char *a = NULL;
	bool top = depth_of(r) == 0, path_arg = false;
	int rc = 0;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p || *p == '#')
		return 0;
	w = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	wlen = (size_t)(p - w);
	while (isspace((unsigned char)*p))
		p++;
	arg = p;
	alen = strlen(arg);
	while (alen && isspace((unsigned char)arg[alen - 1]))
		alen--;
	if (wlen >= sizeof(word) || !alen)
		goto bad;
	memcpy(word, w, wlen);
	word[wlen] = '\0';
	a = strndup(arg, alen);
	if (!a)
		return pgsnap_err(err, ENOMEM, "out of memory");

	if (!strcmp(word, "initdb")) {
		rc = push(&r->initdb, &r->n_initdb, a);
	} else if (!strcmp(word, "setting")) {
		if (!strchr(a, '='))
			goto bad;
		rc = push(&r->settings, &r->n_settings, a);
	} else if (!strcmp(word, "sql") || !strcmp(word, "input") ||
		   !strcmp(word, "include") || !strcmp(word, "cd")) {
		if (absolute(r, a, abs, sizeof(abs)) < 0)
			return pgsnap_err(err, ENAMETOOLONG, "%s, line %d: path "
					  "too long", origin, lineno);
		path_arg = true;
		if (!strcmp(word, "sql"))
			rc = add_step(r, STEP_SQL, abs, a);
		else if (!strcmp(word, "input"))
			rc = push(&r->inputs, &r->n_inputs, abs);
		else if (!strcmp(word, "cd"))
			snprintf(r->cwd, sizeof(r->cwd), "%s", abs);
		else {
			/* Record the include before reading it: a rebuild
			 * reads the file again, whatever it holds then. */
			if (top && (rc = source_append(r, word, abs)) < 0)
				return pgsnap_err(err, rc, "out of memory");
			return include_file(r, abs, err);
		}
	} else if (!strcmp(word, "exec")) {
		rc = add_step(r, STEP_EXEC, a, a);
	} else if (!strcmp(word, "extension")) {
		rc = add_step(r, STEP_EXTENSION, a, a);
	} else if (!strcmp(word, "from")) {
		if (!name_valid(a, 63))
			return pgsnap_err(err, EINVAL, "%s, line %d: 'from %s': "
				"not a snapshot name", origin, lineno, a);
		snprintf(r->from, sizeof(r->from), "%s", a);
		r->from_given = true;
	} else if (!strcmp(word, "now")) {
		free(r->now);
		r->now = strdup(a);
		if (!r->now)
			rc = -ENOMEM;
	} else if (!strcmp(word, "databases")) {
		char *end;
		long n;

		if (r->databases)
			return pgsnap_err(err, EINVAL, "%s, line %d: a second "
				"'databases' (the recipe already asks for %d)",
				origin, lineno, r->databases);
		errno = 0;
		n = a[0] >= '0' && a[0] <= '9' ? strtol(a, &end, 10) : -1;
		if (n < 1 || n > MAX_DATABASES || errno || *end)
			return pgsnap_err(err, EINVAL, "%s, line %d: 'databases "
				"%s': expected a number from 1 to %d", origin,
				lineno, a, MAX_DATABASES);
		r->databases = (int)n;
	} else {
		goto bad;
	}
	if (rc < 0)
		return pgsnap_err(err, rc, "out of memory");
	if (top && (rc = source_append(r, word, path_arg ? abs : a)) < 0)
		return pgsnap_err(err, rc, "out of memory");
	return 0;
bad:
	return pgsnap_err(err, EINVAL, "%s, line %d: cannot read '%s' "
		"(directives: initdb, setting, sql, exec, extension, input, "
		"from, now, databases, include, cd)", origin, lineno, line);
}

int recipe_add_text(recipe *r, const char *text, const char *origin,
		    pgsnap_error *err)
{
	const char *p = text;
	int lineno = 0, rc;

	while (*p) {
		const char *eol = strchrnul(p, '\n');
		cleanup_free char *line = strndup(p, (size_t)(eol - p));

		lineno++;
		if (!line)
			return pgsnap_err(err, ENOMEM, "out of memory");
		if ((rc = recipe_add_line(r, line, origin, lineno, err)) < 0)
			return rc;
		p = *eol ? eol + 1 : eol;
	}
	return 0;
}

int recipe_parse(const char *name, const char *text, recipe *r,
		 pgsnap_error *err)
{
	char origin[96];
	int rc = recipe_init(r, name, "/", err);

	if (rc < 0)
		return rc;
	r->shipped = true;
	snprintf(origin, sizeof(origin), "recipe %s", name);
	return recipe_add_text(r, text, origin, err);
}

int recipe_finish(recipe *r, pgsnap_error *err)
{
	const char *def;
	recipe d;
	size_t i;
	int rc;

	if (r->from_given) {
		if (r->n_initdb)
			return pgsnap_err(err, EINVAL, "recipe %s: 'initdb' "
				"options need a fresh cluster and cannot go with "
				"'from %s'", r->name, r->from);
		if (!strcmp(r->from, r->name))
			return pgsnap_err(err, ELOOP, "recipe %s: a snapshot "
					  "cannot start from itself", r->name);
		return 0;
	}
	if (r->shipped || !(def = recipe_shipped("default")))
		return 0;
	if (!r->n_initdb) {
		/* Copying the default golden is much cheaper than initdb. */
		snprintf(r->from, sizeof(r->from), "default");
		return 0;
	}
	/* A fresh cluster still gets the test settings of the default
	 * recipe, ahead of the recipe's own (the last one wins). */
	if ((rc = recipe_parse("default", def, &d, err)) < 0) {
		recipe_free(&d);
		return rc;
	}
	for (i = 0; i < r->n_initdb && rc == 0; i++)
		rc = push(&d.initdb, &d.n_initdb, r->initdb[i]);
	for (i = 0; i < r->n_settings && rc == 0; i++)
		rc = push(&d.settings, &d.n_settings, r->settings[i]);
	if (rc < 0) {
		recipe_free(&d);
		return pgsnap_err(err, rc, "out of memory");
	}
	for (i = 0; i < r->n_initdb; i++)
		free(r->initdb[i]);
	for (i = 0; i < r->n_settings; i++)
		free(r->settings[i]);
	free(r->initdb);
	free(r->settings);
	r->initdb = steal_ptr(&d.initdb);
	r->n_initdb = d.n_initdb;
	r->settings = steal_ptr(&d.settings);
	r->n_settings = d.n_settings;
	d.n_initdb = d.n_settings = 0;
	recipe_free(&d);
	return 0;
}

void recipe_free(recipe *r)
{
	size_t i;
	for (i = 0; i < r->n_initdb; i++)
		free(r->initdb[i]);
	for (i = 0; i < r->n_settings; i++)
		free(r->settings[i]);
	for (i = 0; i < r->n_inputs; i++)
		free(r->inputs[i]);
	for (i = 0; i < r->n_steps; i++) {
		free(r->steps[i].arg);
		free(r->steps[i].shown);
		free(r->steps[i].cwd);
	}
	free(r->initdb);
	free(r->settings);
	free(r->inputs);
	free(r->steps);
	free(r->now);
	free(r->source);
	memset(r, 0, sizeof(*r));
}
