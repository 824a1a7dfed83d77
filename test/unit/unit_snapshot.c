/* unit_snapshot.c - SHA-256, the recipe parser, the manifest. */
#include "internal.h"
#include "manifest.h"
#include "recipe.h"
#include "sha256.h"
#include "tap.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void hex_of(const char *s, size_t n, char out[65])
{
	unsigned char d[32];
	sha256_ctx c;

	sha256_init(&c);
	sha256_update(&c, s, n);
	sha256_final(&c, d);
	sha256_hex(d, out);
}

static void test_sha256(void)
{
	char h[65], big[1000];
	unsigned char d[32];
	sha256_ctx c;
	size_t i;

	hex_of("", 0, h);
	is_str(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "sha256 of nothing");
	hex_of("abc", 3, h);
	is_str(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "sha256 of abc");
	hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
	is_str(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	       "sha256 of the 448-bit vector (padding across blocks)");
	/* A million 'a', fed in uneven pieces. */
	memset(big, 'a', sizeof(big));
	sha256_init(&c);
	for (i = 0; i < 1000000;) {
		size_t n = 1 + (i * 7) % 999;
		if (n > 1000000 - i)
			n = 1000000 - i;
		sha256_update(&c, big, n);
		i += n;
	}
	sha256_final(&c, d);
	sha256_hex(d, h);
	is_str(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	       "sha256 of a million 'a' in uneven pieces");
}

static void test_recipe(void)
{
	pgsnap_error err = { 0 };
	recipe r;

	ok(recipe_init(&r, "app", "/src/app", &err) == 0, "recipe_init");
	ok(recipe_add_text(&r, "# comment\n\n  sql db/schema.sql  \n"
			   "exec make migrate\nextension citext\n"
			   "setting work_mem = 8MB\nnow clock\nsql /abs.sql\n",
			   "test", &err) == 0, "a recipe text parses");
	is_int((int)r.n_steps, 4, "four steps (sql, exec, extension, sql)");
	is_str(r.steps[0].arg, "/src/app/db/schema.sql",
	       "relative paths are relative to the recipe's directory");
	is_str(r.steps[0].shown, "db/schema.sql", "and shown as written");
	is_str(r.steps[1].arg, "make migrate", "exec keeps its command line");
	is_str(r.steps[3].arg, "/abs.sql", "absolute paths stay");
	is_str(r.settings[0], "work_mem = 8MB", "setting");
	is_str(r.now, "clock", "now");
	ok(strstr(r.source, "sql /src/app/db/schema.sql\n") != NULL,
	   "the stored source has absolute paths");
	ok(recipe_finish(&r, &err) == 0 && !strcmp(r.from, "default"),
	   "without from or initdb, a recipe starts from default");
	recipe_free(&r);

	recipe_init(&r, "bad", "/", &err);
	ok(recipe_add_text(&r, "sql a.sql\nfrobnicate x\n", "bad.recipe",
			   &err) == -EINVAL, "an unknown directive is refused");
	ok(strstr(err.msg, "bad.recipe, line 2") != NULL,
	   "naming the file and line");
	ok(recipe_add_line(&r, "setting novalue", "x", 1, &err) == -EINVAL,
	   "a setting without '=' is refused");
	ok(recipe_add_line(&r, "from ../etc", "x", 1, &err) == -EINVAL,
	   "from must name a snapshot");
	recipe_free(&r);

	recipe_init(&r, "self", "/", &err);
	recipe_add_line(&r, "from self", "x", 1, &err);
	ok(recipe_finish(&r, &err) == -ELOOP, "a snapshot cannot start from itself");
	recipe_free(&r);
	recipe_init(&r, "mix", "/", &err);
	recipe_add_line(&r, "from default", "x", 1, &err);
	recipe_add_line(&r, "initdb --locale=C", "x", 2, &err);
	ok(recipe_finish(&r, &err) == -EINVAL, "initdb options and from conflict");
	recipe_free(&r);
	recipe_init(&r, "fresh", "/", &err);
	recipe_add_line(&r, "initdb --data-checksums", "x", 1, &err);
	ok(recipe_finish(&r, &err) == 0 && r.n_initdb > 1 && r.n_settings > 0,
	   "a fresh cluster gets the default recipe's options and settings");
	is_str(r.initdb[r.n_initdb - 1], "--data-checksums", "its own last");
	recipe_free(&r);
}

static void test_recipe_databases(void)
{
	static const char *const bad[] = { "0", "1001", "x", "3x", "-1", "+2",
					   "2 3", "99999999999999999999" };
	pgsnap_error err = { 0 };
	recipe r;
	size_t i;

	recipe_init(&r, "dbs", "/", &err);
	ok(recipe_add_text(&r, "databases 16\n", "d.recipe", &err) == 0,
	   "databases 16 parses");
	is_int(r.databases, 16, "N is kept");
	ok(strstr(r.source, "databases 16\n") != NULL, "and stored in the source");
	ok(recipe_add_line(&r, "databases 16", "d.recipe", 7, &err) == -EINVAL &&
	   strstr(err.msg, "d.recipe, line 7: a second 'databases'"),
	   "a second one is refused, naming file and line");
	recipe_free(&r);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		char line[64];
		recipe_init(&r, "dbs", "/", &err);
		snprintf(line, sizeof(line), "databases %s", bad[i]);
		ok(recipe_add_line(&r, line, "d.recipe", 2, &err) == -EINVAL &&
		   strstr(err.msg, "d.recipe, line 2: 'databases ") &&
		   strstr(err.msg, "1 to 1000"), "'%s' is refused", line);
		recipe_free(&r);
	}
	recipe_init(&r, "dbs", "/", &err);
	ok(recipe_add_line(&r, "databases 1000", "d.recipe", 1, &err) == 0 &&
	   r.databases == 1000, "1000 is the most");
	recipe_free(&r);
}

static void put(const char *dir, const char *name, const char *text,
		size_t len)
{
	char p[512];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		printf("# cannot write %s\n", p);
	if (fd >= 0)
		close(fd);
}

/* Hard links of the golden are packed once: their entries share an
 * offset, and manifest_load takes that. */
static void test_manifest_links(void)
{
	char dir[] = "/tmp/pgsnap-unit-XXXXXX", data[128], a[160], b[160];
	pgsnap_store s;
	pgsnap_error err = { 0 };
	manifest m;
	const manifest_entry *ea = NULL, *eb = NULL, *ec = NULL;
	struct stat st;
	size_t i;

	memset(&s, 0, sizeof(s));
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(data, sizeof(data), "%s/data", dir);
	mkdir(data, 0700);
	snprintf(a, sizeof(a), "%s/d1", data);
	mkdir(a, 0700);
	snprintf(a, sizeof(a), "%s/d2", data);
	mkdir(a, 0700);
	put(data, "d1/f", "0123456789", 10);
	put(data, "other", "abcdef", 6);
	snprintf(a, sizeof(a), "%s/d1/f", data);
	snprintf(b, sizeof(b), "%s/d2/f", data);
	ok(link(a, b) == 0, "a hard link in the data directory");
	ok(manifest_write(&s, dir, &err) == 0, "manifest_write");
	ok(manifest_load(dir, &m, &err) == 0, "manifest_load takes a shared "
	   "offset");
	for (i = 0; i < m.n; i++) {
		if (!strcmp(m.e[i].path, "d1/f"))
			ea = &m.e[i];
		if (!strcmp(m.e[i].path, "d2/f"))
			eb = &m.e[i];
		if (!strcmp(m.e[i].path, "other"))
			ec = &m.e[i];
	}
	ok(ea && eb && ec, "every path has an entry");
	if (ea && eb && ec) {
		ok(ea->off == eb->off && ea->len == 10 && eb->len == 10 &&
		   eb->size == 10, "both links name the same bytes of the image");
		ok(ec->off != ea->off, "another file has its own");
	}
	is_int((long long)m.image_bytes, 16, "the image holds the linked "
	       "bytes once");
	is_int((long long)m.bytes, 26, "the data bytes count every path");
	is_int((long long)m.files, 3, "three files");
	snprintf(a, sizeof(a), "%s/" MANIFEST_IMAGE, dir);
	ok(stat(a, &st) == 0 && st.st_size == 16, "the image file is 16 bytes");
	manifest_free(&m);
	rm_rf(dir);
}

int main(void)
{
	test_sha256();
	test_recipe();
	test_recipe_databases();
	test_manifest_links();
	return done_testing();
}
