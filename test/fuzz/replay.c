/*
 * replay.c - run a fuzz target over files without libFuzzer: the corpus
 * check of `make check` when clang's libFuzzer is not there, and a way to
 * replay a crash file under gdb.  Arguments: files or directories.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f) {
		perror(path);
		return 1;
	}
	do {
		if (n == cap) {
			unsigned char *nb = realloc(buf, cap = cap ? cap * 2 : 4096);
			if (!nb) {
				fclose(f);
				free(buf);
				return 1;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	/* An exact-size copy, so ASan sees any read past the input. */
	{
		unsigned char *exact = malloc(n ? n : 1);
		if (!exact) {
			free(buf);
			return 1;
		}
		memcpy(exact, buf, n);
		free(buf);
		LLVMFuzzerTestOneInput(exact, n);
		free(exact);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int i, bad = 0, runs = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			bad++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			struct dirent **list;
			int k, m = scandir(argv[i], &list, NULL, alphasort);
			for (k = 0; k < m; k++) {
				char p[4096];
				if (list[k]->d_name[0] != '.') {
					snprintf(p, sizeof(p), "%s/%s", argv[i],
						 list[k]->d_name);
					bad += run_file(p);
					runs++;
				}
				free(list[k]);
			}
			if (m >= 0)
				free(list);
		} else {
			bad += run_file(argv[i]);
			runs++;
		}
	}
	printf("replayed %d inputs\n", runs);
	return bad ? 1 : 0;
}
