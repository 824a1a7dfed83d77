# pgsnap - fresh, real PostgreSQL servers in milliseconds.
#
#   make            build build/pgsnap, build/libpgsnap.a and build/libpgsnap.so.0
#                   (needs the build dependencies: `make deps` installs them)
#   make quickstart install what is missing, build, start a server, print its URL
#   make check      install what is missing, build, run the whole test suite
#                   (plus ASan+UBSan)
#   make bench      benchmarks that print figures
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man

CC ?= cc
B ?= build
CFLAGS ?= -O2 -g
SAN_CFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

PKGS = libpq liburing
PG_BINDIR = $(shell pg_config --bindir 2>/dev/null)
WARN = -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	-Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation -Wpointer-arith -Wvla -Wundef
ALL_CPPFLAGS = -D_GNU_SOURCE -DPGSNAP_DEFAULT_BINDIR='"$(PG_BINDIR)"' \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CPPFLAGS)
ALL_CFLAGS = -std=gnu11 -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) \
	$(EXTRA_CFLAGS)
# libpq is not linked: lib/pq.c loads it on first use (see lib/pq.h), so
# that a pgsnap process does not pay for its 25 libraries at every exec.
LIBS = $(shell pkg-config --libs liburing 2>/dev/null) -ldl -pthread $(EXTRA_LDFLAGS)
PQ_LIBS = $(shell pkg-config --libs libpq 2>/dev/null)

LIB_SRCS = $(sort $(wildcard lib/*.c))
CMD_SRCS = $(sort $(wildcard cmd/*.c))
RECIPES = $(sort $(wildcard snapshots/*.recipe))
LIB_OBJS = $(LIB_SRCS:%.c=$(B)/%.o) $(B)/gen/recipes.o
CMD_OBJS = $(CMD_SRCS:%.c=$(B)/%.o)
UNIT_SRCS = $(sort $(wildcard test/unit/*.c))
UNIT_BINS = $(UNIT_SRCS:test/unit/%.c=$(B)/test/%)
FUZZ_TARGETS = $(sort $(patsubst test/fuzz/fuzz_%.c,%,$(wildcard test/fuzz/fuzz_*.c)))
FUZZ_REPLAYS = $(FUZZ_TARGETS:%=$(B)/fuzz/replay_%)
DEPS_STAMP = build/.deps-build

.PHONY: all deps node-deps check quickstart bench install uninstall clean \
	build-deps-present
all: $(B)/pgsnap $(B)/libpgsnap.a $(B)/libpgsnap.so.0 $(B)/pgsnap.pc $(UNIT_BINS)

# `make` only builds: it never runs apt-get (nor needs root).  What is
# missing is named, with the command that installs it.
build-deps-present:
	@pkg-config --exists $(PKGS) 2>/dev/null && [ -n "$(PG_BINDIR)" ] || { \
		echo "make: the build needs pkg-config, libpq-dev, liburing-dev and the" \
		     "PostgreSQL server: run 'make deps' (apt-get, as root or with sudo)" >&2; \
		exit 1; }

# A fresh machine needs nothing done by hand: `make quickstart` and `make
# check` install what is missing.
$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh build
	@touch $@
deps: $(DEPS_STAMP)

$(B)/%.o: %.c $(wildcard lib/*.h cmd/*.h) | build-deps-present
	@mkdir -p $(@D)
	@echo '  CC      $<'
	@$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(B)/gen/recipes.c: $(RECIPES) scripts/embed-recipes.sh
	@mkdir -p $(@D)
	sh scripts/embed-recipes.sh $(RECIPES) > $@.tmp && mv $@.tmp $@

$(B)/gen/recipes.o: $(B)/gen/recipes.c
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# Two archives.  The internal one, every symbol, is for the unit tests,
# fuzzers and benchmarks.  The installed one exports pgsnap_* only: its
# objects are linked into one and every hidden symbol made local, so that
# a program linking it statically cannot collide with our internal names.
$(B)/libpgsnap-internal.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libpgsnap.a: $(LIB_OBJS)
	@rm -f $@ $(B)/libpgsnap-all.o
	ld -r -o $(B)/libpgsnap-all.o $^
	objcopy --localize-hidden $(B)/libpgsnap-all.o
	ar rcs $@ $(B)/libpgsnap-all.o

# The shared library exports the API of pgsnap.h and nothing else: hidden
# visibility by default, and a version script that names each symbol.
VERSION = $(shell sed -n 's/^\#define PGSNAP_VERSION "\(.*\)"/\1/p' lib/pgsnap.h)
$(B)/libpgsnap.so.0: $(LIB_OBJS) lib/libpgsnap.map
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libpgsnap.so.0 \
		-Wl,--version-script=lib/libpgsnap.map -Wl,--no-undefined \
		-o $@ $(LIB_OBJS) $(LIBS)
	ln -sf libpgsnap.so.0 $(B)/libpgsnap.so

$(B)/pgsnap.pc: pgsnap.pc.in lib/pgsnap.h Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# The CLI uses the public API only: it links the installed archive.
$(B)/pgsnap: $(CMD_OBJS) $(B)/libpgsnap.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CMD_OBJS) $(B)/libpgsnap.a $(LIBS)

$(B)/test/%: test/unit/%.c $(B)/libpgsnap-internal.a test/unit/tap.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Ilib -o $@ $< $(B)/libpgsnap-internal.a $(LIBS)

# unit_output tests cmd/output.c, which it includes.
$(B)/test/unit_output: cmd/output.c cmd/cmd.h

# The same code built with AddressSanitizer and UBSan, for the test suite.
.PHONY: asan
asan:
	$(MAKE) B=build/asan CFLAGS='$(SAN_CFLAGS)' \
		EXTRA_LDFLAGS='-fsanitize=address,undefined' \
		build/asan/pgsnap $(UNIT_BINS:build/%=build/asan/%) \
		$(FUZZ_REPLAYS:build/%=build/asan/%)

# Fuzzing (test/fuzz/, docs/security.md).  The targets also build without
# libFuzzer, as replay_* drivers that run them over files: `make check`
# replays the committed corpus with them under ASan, and test/600-fuzz.t
# fuzzes each target for a few seconds when clang's libFuzzer is there.
FUZZ_CC = clang
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_TIME ?= 60
all: $(FUZZ_REPLAYS)
$(B)/fuzz/replay_%: test/fuzz/fuzz_%.c test/fuzz/replay.c test/fuzz/fuzz.h $(B)/libpgsnap-internal.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Ilib -Itest/fuzz -o $@ $< \
		test/fuzz/replay.c $(B)/libpgsnap-internal.a $(LIBS)

# libFuzzer binaries: the library rebuilt by clang with coverage.
build/libfuzzer/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz.h build/libfuzzer/libpgsnap-internal.a
	$(FUZZ_CC) $(ALL_CPPFLAGS) -std=gnu11 -g -O1 -Ilib -Itest/fuzz \
		-fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< build/libfuzzer/libpgsnap-internal.a $(LIBS)
ifneq ($(B),build/libfuzzer)
build/libfuzzer/libpgsnap-internal.a: $(LIB_SRCS) $(wildcard lib/*.h) $(RECIPES)
	$(MAKE) B=build/libfuzzer CC=$(FUZZ_CC) \
		CFLAGS='-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN)' \
		EXTRA_CFLAGS=-Wno-unknown-warning-option build/libfuzzer/libpgsnap-internal.a
endif
.PHONY: fuzz fuzz-bins
fuzz-bins: $(FUZZ_TARGETS:%=build/libfuzzer/fuzz_%)
# Fuzz each target for FUZZ_TIME seconds; new inputs go to build/libfuzzer/new-*,
# crashes to build/libfuzzer/crash-* (copy the useful ones into the corpus).
fuzz: fuzz-bins
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/libfuzzer/new-$$t; echo "  FUZZ    $$t ($(FUZZ_TIME)s)"; \
		build/libfuzzer/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=5 \
			-artifact_prefix=build/libfuzzer/crash-$$t- -print_final_stats=1 \
			build/libfuzzer/new-$$t test/fuzz/corpus/$$t; done

TEST_DEPS_STAMP = build/.deps-test
$(TEST_DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh test
	@touch $@

# TAP tests, run by prove: unit tests (C) and system tests (real servers),
# first on the normal build, then the sanitizer build.
# node-postgres for the Node client test and recipe, from npm, into
# test/node/node_modules (never committed).  Without npm or the registry
# the Node tests skip, saying so.
NODE_PG = test/node/node_modules/.package-lock.json
$(NODE_PG): test/node/package.json | $(TEST_DEPS_STAMP)
	@command -v npm >/dev/null && npm install --prefix test/node --no-audit \
		--no-fund --loglevel=error >&2 || \
		echo "warning: npm install --prefix test/node failed: the Node tests will skip" >&2
node-deps: $(NODE_PG)

check: $(DEPS_STAMP) $(TEST_DEPS_STAMP)
	$(MAKE) all asan node-deps
	@# libFuzzer builds here, not in 600-fuzz.t's time (it says why if not)
	-@$(MAKE) -s fuzz-bins >/dev/null 2>&1
	PGSNAP_BUILD=$(CURDIR)/build prove -f -j2 test/*.t
	PGSNAP_BUILD=$(CURDIR)/build/asan PGSNAP_SANITIZED=1 prove -f -j2 test/*.t

quickstart: $(DEPS_STAMP)
	$(MAKE) all
	sh scripts/quickstart.sh

# The benchmark driver: times "fresh server to first query" from outside.
$(B)/bench/timer: test/bench/timer.c test/bench/suite_sql.h | build-deps-present
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -pthread -o $@ $< $(LIBS) $(PQ_LIBS)

# How soon pgsnap knows a server is ready (internal API: the archive).
$(B)/bench/ready: test/bench/ready.c $(B)/libpgsnap-internal.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Ilib -o $@ $< $(B)/libpgsnap-internal.a $(LIBS) $(PQ_LIBS)

# The suite run by a harness that uses libpgsnap in its own process.
$(B)/bench/libsuite: test/bench/libsuite.c test/bench/suite_sql.h $(B)/libpgsnap.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Ilib -pthread -o $@ $< $(B)/libpgsnap.a $(LIBS) $(PQ_LIBS)

# The service timed by a client of its protocol (the C harness over the
# socket).
$(B)/bench/svcbench: test/bench/svcbench.c test/bench/suite_sql.h | build-deps-present
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -pthread -o $@ $< $(LIBS) $(PQ_LIBS)

bench: $(DEPS_STAMP) $(TEST_DEPS_STAMP)
	sh scripts/deps.sh bench
	$(MAKE) all $(B)/bench/timer $(B)/bench/ready $(B)/bench/libsuite \
		$(B)/bench/svcbench
	sh scripts/bench.sh

# The binary, the header, both libraries, pkg-config's file and the man
# page.  PREFIX is written into pgsnap.pc: it is rebuilt for each PREFIX.
install: all
	@rm -f $(B)/pgsnap.pc && $(MAKE) -s $(B)/pgsnap.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCDIR) \
		$(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(B)/pgsnap $(DESTDIR)$(BINDIR)/pgsnap
	install -m 644 lib/pgsnap.h $(DESTDIR)$(INCDIR)/pgsnap.h
	install -m 644 $(B)/libpgsnap.a $(DESTDIR)$(LIBDIR)/libpgsnap.a
	install -m 755 $(B)/libpgsnap.so.0 $(DESTDIR)$(LIBDIR)/libpgsnap.so.$(VERSION)
	ln -sf libpgsnap.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpgsnap.so.0
	ln -sf libpgsnap.so.0 $(DESTDIR)$(LIBDIR)/libpgsnap.so
	install -m 644 $(B)/pgsnap.pc $(DESTDIR)$(LIBDIR)/pkgconfig/pgsnap.pc
	install -m 644 docs/pgsnap.1 $(DESTDIR)$(MANDIR)/man1/pgsnap.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pgsnap $(DESTDIR)$(INCDIR)/pgsnap.h \
		$(DESTDIR)$(LIBDIR)/libpgsnap.a $(DESTDIR)$(LIBDIR)/libpgsnap.so* \
		$(DESTDIR)$(LIBDIR)/pkgconfig/pgsnap.pc \
		$(DESTDIR)$(MANDIR)/man1/pgsnap.1

clean:
	rm -rf build
