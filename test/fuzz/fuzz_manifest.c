/*
 * fuzz_manifest.c - the snapshot manifest reader (manifest_load) on
 * arbitrary bytes.  The engines create files at the paths it returns and
 * copy image bytes at the offsets it returns: every accepted entry must be
 * relative, free of "..", and inside the image.
 */
#include "internal.h"
#include "manifest.h"
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static char dir[64];

static void remove_dir(void)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/" MANIFEST_NAME, dir);
	unlink(path);
	rmdir(dir);
}

static bool has_dotdot(const char *p)
{
	const char *c = p;

	while (*c) {
		size_t n = strcspn(c, "/");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return true;
		c += n;
		if (*c)
			c++;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pgsnap_error err = { 0 };
	char path[128];
	manifest m;
	size_t i;
	int fd;

	/* manifest_load reads SNAPDIR/manifest: a private directory in
	 * $TMPDIR (600-fuzz.t points it at its own), else in RAM. */
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		if (!t || t[0] != '/' || strlen(t) > 40 || access(t, W_OK))
			t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(dir, sizeof(dir), "%s/pgsnap-fuzz-XXXXXX", t);
		if (!mkdtemp(dir))
			abort();
		atexit(remove_dir);
	}
	snprintf(path, sizeof(path), "%s/" MANIFEST_NAME, dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (manifest_load(dir, &m, &err) < 0) {
		if (!err.msg[0] || m.e || m.text)
			abort();
		return 0;
	}
	for (i = 0; i < m.n; i++) {
		const manifest_entry *e = &m.e[i];
		if (!e->path || !e->path[0] || e->path[0] == '/' ||
		    has_dotdot(e->path))
			abort();
		if (e->type == 'f' && (e->len > e->size ||
		    e->len > m.image_bytes || e->off > m.image_bytes - e->len))
			abort();
		if (e->type == 'l' && !e->target)
			abort();
	}
	manifest_free(&m);
	return 0;
}
