# pgsnap - fresh, real PostgreSQL servers in milliseconds.
#
#   make            build build/pgsnap and build/libpgsnap.a
#   make check      build, then run the whole test suite (plus ASan+UBSan)
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
LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(EXTRA_LDFLAGS)

LIB_SRCS = $(sort $(wildcard lib/*.c))
CMD_SRCS = $(sort $(wildcard cmd/*.c))
RECIPES = $(sort $(wildcard snapshots/*.recipe))
LIB_OBJS = $(LIB_SRCS:%.c=$(B)/%.o) $(B)/gen/recipes.o
CMD_OBJS = $(CMD_SRCS:%.c=$(B)/%.o)
UNIT_SRCS = $(sort $(wildcard test/unit/*.c))
UNIT_BINS = $(UNIT_SRCS:test/unit/%.c=$(B)/test/%)
DEPS_STAMP = build/.deps-build

.PHONY: all deps check quickstart bench install clean
all: $(B)/pgsnap $(B)/libpgsnap.a $(UNIT_BINS)

# A fresh machine needs nothing done by hand: install what is missing.
$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh build
	@touch $@
deps: $(DEPS_STAMP)

$(B)/%.o: %.c $(wildcard lib/*.h cmd/*.h) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo '  CC      $<'
	@$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(B)/gen/recipes.c: $(RECIPES) scripts/embed-recipes.sh
	@mkdir -p $(@D)
	sh scripts/embed-recipes.sh $(RECIPES) > $@.tmp && mv $@.tmp $@

$(B)/gen/recipes.o: $(B)/gen/recipes.c
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libpgsnap.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/pgsnap: $(CMD_OBJS) $(B)/libpgsnap.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CMD_OBJS) $(B)/libpgsnap.a $(LIBS)

$(B)/test/%: test/unit/%.c $(B)/libpgsnap.a test/unit/tap.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Ilib -o $@ $< $(B)/libpgsnap.a $(LIBS)

# The same code built with AddressSanitizer and UBSan, for the test suite.
.PHONY: asan
asan:
	$(MAKE) B=build/asan CFLAGS='$(SAN_CFLAGS)' \
		EXTRA_LDFLAGS='-fsanitize=address,undefined' \
		build/asan/pgsnap $(UNIT_BINS:build/%=build/asan/%)

TEST_DEPS_STAMP = build/.deps-test
$(TEST_DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh test
	@touch $@

# TAP tests, run by prove: unit tests (C) and system tests (real servers),
# first on the normal build, then the sanitizer build.
check: all asan $(TEST_DEPS_STAMP)
	PGSNAP_BUILD=$(CURDIR)/build prove -f -j2 test/*.t
	PGSNAP_BUILD=$(CURDIR)/build/asan PGSNAP_SANITIZED=1 prove -f -j2 test/*.t

quickstart: all
	sh scripts/quickstart.sh

# The benchmark driver: times "fresh server to first query" from outside.
$(B)/bench/timer: test/bench/timer.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -pthread -o $@ $< $(LIBS)

bench: all $(B)/bench/timer
	sh scripts/deps.sh bench
	sh scripts/bench.sh

clean:
	rm -rf build
