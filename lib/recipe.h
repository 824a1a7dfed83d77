/* recipe.h - what shapes a snapshot: the recipe language (snapshots/README). */
#ifndef PGSNAP_RECIPE_H
#define PGSNAP_RECIPE_H

#include "internal.h"

typedef enum step_kind { STEP_SQL, STEP_EXEC, STEP_EXTENSION } step_kind;

/* One input run against the build's temporary server, in order. */
typedef struct recipe_step {
	step_kind kind;
	char *arg;       /* SQL: absolute path; exec: command; extension: name */
	char *shown;     /* as the user wrote it, for messages */
	char *cwd;       /* where it runs (exec, sql) */
} recipe_step;

typedef struct recipe {
	char name[64];
	char **initdb;       /* extra initdb options */
	size_t n_initdb;
	char **settings;     /* "name = value" lines for postgresql.conf */
	size_t n_settings;
	recipe_step *steps;
	size_t n_steps;
	char **inputs;       /* extra files or trees hashed into the key */
	size_t n_inputs;
	char from[64];       /* base snapshot; "" with initdb directives */
	bool from_given;
	char *now;           /* mock now(): timestamp or "clock"; NULL: off */
	int databases;       /* copies pgsnap_1..N of postgres; 0: none */
	char *source;        /* top-level directives, paths made absolute:
			      * stored in the snapshot to rebuild it later */
	size_t source_len;
	char cwd[4096];      /* base of relative paths (the "cd" directive) */
	int depth;           /* include nesting while parsing */
	bool shipped;        /* a recipe of snapshots/ (embedded) */
} recipe;

/* The recipe shipped in snapshots/NAME.recipe, or NULL. */
const char *recipe_shipped(const char *name);
/* Start an empty recipe whose relative paths are relative to cwd. */
int recipe_init(recipe *r, const char *name, const char *cwd,
		pgsnap_error *err);
/* Add directives (a recipe text); origin names it in error messages. */
int recipe_add_text(recipe *r, const char *text, const char *origin,
		    pgsnap_error *err);
/* Add one directive line ("sql schema.sql", "include app.recipe"...). */
int recipe_add_line(recipe *r, const char *line, const char *origin,
		    int lineno, pgsnap_error *err);
/* Old entry point: a shipped recipe's text. */
int recipe_parse(const char *name, const char *text, recipe *r,
		 pgsnap_error *err);
/* Settle defaults once every directive is in: without "from" and
 * without "initdb" a recipe starts from the default snapshot. */
int recipe_finish(recipe *r, pgsnap_error *err);
void recipe_free(recipe *r);

#endif
