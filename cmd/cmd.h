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
int cmd_exec(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_service(int argc, char **argv);
int cmd_reset(int argc, char **argv);
int cmd_keep(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_store(int argc, char **argv);

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

/* ---- new.c: the options of `new`, shared by `exec` ------------------- */

typedef enum out_format { OUT_URL = 0, OUT_ENV, OUT_JSON, OUT_JDBC } out_format;

typedef struct new_args {
	pgsnap_new_opts o;
	const char *user;          /* -u */
	out_format out;            /* new: --env, --json, --jdbc */
	int keep_on_failure;       /* exec */
	long count;                /* new -n: how many servers (0: one) */
} new_args;

#define NEW_PARSE_OK (-1)      /* go on; argv[optind] is the first operand */
#define NEW_PARSE_HELP (-2)    /* --help was asked for */
/* Parse the options of cmd ("new" or "exec") into *a.  Returns
 * NEW_PARSE_OK, NEW_PARSE_HELP, or an exit status after a usage error. */
int new_parse(const char *cmd, int argc, char **argv, new_args *a);
/* The option lines of cmd's --help. */
void new_help_options(const char *cmd);

/* ---- output.c: the forms a clone is printed in ----------------------- */

/* The environment a client of the clone needs: DATABASE_URL, PGHOST,
 * PGPORT, PGUSER, PGDATABASE, PGPASSWORD (TCP only), JDBC_DATABASE_URL
 * (TCP only).  Returns how many of v[] it filled. */
#define CLONE_VARS_MAX 8
typedef struct clone_var {
	const char *name;
	char value[2048];
} clone_var;
size_t clone_vars(const pgsnap_clone *c, clone_var v[CLONE_VARS_MAX]);
/* Variables a child must not inherit: those clone_vars may set and those
 * that would send libpq elsewhere (PGHOSTADDR, PGSERVICE).  NULL ends it. */
extern const char *const clone_var_names[];

/* s as one shell word: single quotes, each ' as '\''. */
void shell_quote(FILE *f, const char *s);
/* One clone in the given form, with a newline. */
void print_clone(FILE *f, const pgsnap_clone *c, out_format form);
/* The JSON object of a clone (no newline); ls --json prints an array. */
void print_clone_json(FILE *f, const pgsnap_clone *c);

#endif
