/* unit_snapshot.c - SHA-256 and the recipe parser. */
#include "internal.h"
#include "recipe.h"
#include "sha256.h"
#include "tap.h"

#include <string.h>

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

int main(void)
{
	test_sha256();
	test_recipe();
	return done_testing();
}
