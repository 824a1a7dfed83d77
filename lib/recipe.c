/* recipe.c - parse the recipe format (see snapshots/default.recipe). */
#include "recipe.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

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

static int push(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strndup(s, len);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int recipe_parse(const char *name, const char *text, recipe *r,
		 pgsnap_error *err)
{
	const char *p = text;
	int lineno = 0;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->text = strdup(text);
	if (!r->text)
		return pgsnap_err(err, ENOMEM, "out of memory");
	while (*p) {
		const char *eol = strchrnul(p, '\n'), *w, *arg;
		size_t wlen, alen;
		int rc = 0;

		lineno++;
		while (p < eol && isspace((unsigned char)*p))
			p++;
		if (p == eol || *p == '#') {
			p = *eol ? eol + 1 : eol;
			continue;
		}
		w = p;
		while (p < eol && !isspace((unsigned char)*p))
			p++;
		wlen = (size_t)(p - w);
		while (p < eol && isspace((unsigned char)*p))
			p++;
		arg = p;
		alen = (size_t)(eol - arg);
		while (alen && isspace((unsigned char)arg[alen - 1]))
			alen--;
		if (wlen == 6 && !memcmp(w, "initdb", 6) && alen)
			rc = push(&r->initdb, &r->n_initdb, arg, alen);
		else if (wlen == 7 && !memcmp(w, "setting", 7) && alen &&
			 memchr(arg, '=', alen))
			rc = push(&r->settings, &r->n_settings, arg, alen);
		else
			rc = -EINVAL;
		if (rc == -ENOMEM)
			return pgsnap_err(err, rc, "out of memory");
		if (rc < 0)
			return pgsnap_err(err, EINVAL,
				"recipe %s, line %d: cannot read '%.*s'", name,
				lineno, (int)(eol - w), w);
		p = *eol ? eol + 1 : eol;
	}
	return 0;
}

void recipe_free(recipe *r)
{
	size_t i;
	for (i = 0; i < r->n_initdb; i++)
		free(r->initdb[i]);
	for (i = 0; i < r->n_settings; i++)
		free(r->settings[i]);
	free(r->initdb);
	free(r->settings);
	free(r->text);
	memset(r, 0, sizeof(*r));
}
