/* cmd.h - the pgsnap CLI: one file per command; commands parse and print,
 * the library does the work. */
#ifndef PGSNAP_CMD_H
#define PGSNAP_CMD_H

#include "../lib/pgsnap.h"

#include <getopt.h>
#include <stdio.h>

/* Exit statuses (documented in pgsnap(1)). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} command;

int cmd_new(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

/* "pgsnap CMD: MESSAGE (see pgsnap CMD --help)" on stderr; returns 2. */
int usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "pgsnap: MESSAGE" on stderr; returns 1. */
int runtime_error(const pgsnap_error *err);
/* Name the option getopt stopped at (opterr is off: we print ourselves). */
int bad_option(const char *cmd, char **argv, int c);
/* Strict number for an option: exits 2 with a message when it is not. */
int opt_long(const char *cmd, const char *opt, const char *val, long min,
	     long max, long *out);
/* Open the store with the common options. */
int open_store(pgsnap_store **s, const char *user, pgsnap_error *err);

#endif
