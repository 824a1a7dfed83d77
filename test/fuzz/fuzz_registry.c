/*
 * fuzz_registry.c - the registry reader on arbitrary bytes.
 *
 * Beyond "no crash": whatever registry_parse accepts must survive a
 * format/parse round trip unchanged, or a save would silently rewrite
 * someone's records.
 */
#include "internal.h"
#include "fuzz.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pgsnap_clone *recs = NULL, *again = NULL;
	pgsnap_error err = { 0 };
	size_t n = 0, n2 = 0, len, i;
	char *text;

	if (records_parse((const char *)data, size, &recs, &n, &err) < 0) {
		if (recs || n || !err.msg[0])
			abort(); /* a refusal says why and returns nothing */
		return 0;
	}
	text = records_format(recs, n, &len);
	if (!text)
		abort();
	if (records_parse(text, len, &again, &n2, &err) < 0 || n2 != n) {
		fprintf(stderr, "round trip refused: %s\n", err.msg);
		abort();
	}
	for (i = 0; i < n; i++) {
		if (memcmp(&recs[i], &again[i], sizeof(recs[i]))) {
			fprintf(stderr, "record %zu changed in a round trip\n", i);
			abort();
		}
	}
	free(text);
	free(recs);
	free(again);
	return 0;
}
