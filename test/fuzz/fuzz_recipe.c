/*
 * fuzz_recipe.c - the recipe parser on arbitrary text.
 *
 * Recipes are text files a user writes; the parser must refuse what it
 * cannot read with a message and never hand on a half-parsed directive.
 */
#include "internal.h"
#include "recipe.h"
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	pgsnap_error err = { 0 };
	recipe r;
	size_t i;
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	rc = recipe_parse("fuzz", text, &r, &err);
	if (rc < 0 && !err.msg[0])
		abort();
	if (rc == 0) {
		for (i = 0; i < r.n_settings; i++)
			if (!strchr(r.settings[i], '=') ||
			    strchr(r.settings[i], '\n'))
				abort();
		for (i = 0; i < r.n_initdb; i++)
			if (!r.initdb[i][0] || strchr(r.initdb[i], '\n'))
				abort();
	}
	recipe_free(&r);
	free(text);
	return 0;
}
