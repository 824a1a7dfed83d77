/* recipe.h - what shapes a snapshot, parsed from a recipe file. */
#ifndef PGSNAP_RECIPE_H
#define PGSNAP_RECIPE_H

#include "internal.h"

typedef struct recipe {
	char name[64];
	char **initdb;       /* extra initdb options */
	size_t n_initdb;
	char **settings;     /* "name = value" lines */
	size_t n_settings;
	char *text;          /* the recipe's own text (for the key) */
} recipe;

/* The recipe shipped in snapshots/NAME.recipe, or NULL. */
const char *recipe_shipped(const char *name);
int recipe_parse(const char *name, const char *text, recipe *r,
		 pgsnap_error *err);
void recipe_free(recipe *r);

#endif
