/*
 * fuzz_json.c - the JSON reader (json_parse) on arbitrary bytes, as the
 * client reads the service's answers.  Beyond "no crash": what it accepts
 * is a tree whose every node index is in range, whose strings end inside
 * the string table, and writing a string it read (jb_str) and reading it
 * back gives the same bytes.
 */
#include "internal.h"
#include "json.h"
#include "fuzz.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_doc d, d2;
	pgsnap_clone c;
	size_t i;

	if (json_parse((const char *)data, size, &d) < 0)
		return 0;
	if (!d.n)
		abort();
	for (i = 0; i < d.n; i++) {
		const json_node *n = &d.nodes[i];
		if (n->child >= (int)d.n || n->next >= (int)d.n)
			abort();
		if (n->type == JSON_STRING) {
			const char *s = json_str(&d, n);
			jbuf b = { 0 };
			jb_str(&b, s);
			if (b.oom || json_parse(b.p, b.len, &d2) < 0 ||
			    d2.nodes[0].type != JSON_STRING ||
			    strcmp(json_str(&d2, d2.nodes), s)) {
				fprintf(stderr, "string round trip failed\n");
				abort();
			}
			json_free(&d2);
			free(b.p);
		}
	}
	json_to_clone(&d, d.nodes, &c); /* whatever it says, no crash */
	json_free(&d);
	return 0;
}
