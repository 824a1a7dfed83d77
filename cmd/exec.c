/*
 * exec.c - pgsnap exec: run a command against a fresh server, then remove
 * the server.
 *
 * The command runs in our process group, so a terminal's Ctrl-C reaches it
 * directly; pgsnap blocks the signals it would die of and reads them from
 * a signalfd, so that whatever happens to the command the clone is removed
 * afterwards.  Signals sent to pgsnap alone (kill PID, a CI runner's
 * timeout) are passed on to the command; those a terminal sends to the
 * whole group are not sent a second time.
 */
#include "cmd.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const int passed_on[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
				 SIGUSR2 };

static void help(void)
{
	printf(
"Usage: pgsnap exec [OPTIONS] [--] COMMAND [ARGS...]\n"
"\n"
"Start a fresh server, run COMMAND with DATABASE_URL, PGHOST, PGPORT,\n"
"PGUSER, PGDATABASE (and PGPASSWORD, JDBC_DATABASE_URL with -t) set,\n"
"remove the server when COMMAND exits and exit with its status (128+N\n"
"when signal N killed it).  INT, TERM, HUP, QUIT, USR1 and USR2 sent to\n"
"pgsnap are passed on to COMMAND.\n"
"\n");
	new_help_options("exec");
}

static bool is_clone_var(const char *entry)
{
	size_t i;

	for (i = 0; clone_var_names[i]; i++) {
		size_t l = strlen(clone_var_names[i]);
		if (!strncmp(entry, clone_var_names[i], l) && entry[l] == '=')
			return true;
	}
	return false;
}

/* Our environment without any stale connection variable, plus the
 * clone's; entries point into vars and environ.  free() the array. */
static char **child_env(clone_var *v, size_t nv, char **strs)
{
	size_t n = 0, i;
	char **env;

	for (i = 0; environ[i]; i++)
		n++;
	env = calloc(n + nv + 1, sizeof(*env));
	if (!env)
		return NULL;
	n = 0;
	for (i = 0; environ[i]; i++)
		if (!is_clone_var(environ[i]))
			env[n++] = environ[i];
	for (i = 0; i < nv; i++) {
		size_t l = strlen(v[i].name) + strlen(v[i].value) + 2;
		strs[i] = malloc(l);
		if (!strs[i])
			return env; /* caller frees; fewer vars is caught below */
		snprintf(strs[i], l, "%s=%s", v[i].name, v[i].value);
		env[n++] = strs[i];
	}
	return env;
}

static int spawn_command(char **argv, const pgsnap_clone *c, pid_t *pid)
{
	clone_var v[CLONE_VARS_MAX];
	char *strs[CLONE_VARS_MAX] = { 0 };
	size_t nv = clone_vars(c, v), i;
	char **env = child_env(v, nv, strs);
	posix_spawnattr_t attr;
	sigset_t none;
	int r = ENOMEM;

	for (i = 0; env && i < nv; i++)
		if (!strs[i])
			env = (free(env), NULL);
	if (env) {
		sigemptyset(&none);
		posix_spawnattr_init(&attr);
		posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
		posix_spawnattr_setsigmask(&attr, &none);
		r = posix_spawnp(pid, argv[0], NULL, &attr, argv, env);
		posix_spawnattr_destroy(&attr);
	}
	for (i = 0; i < nv; i++)
		free(strs[i]);
	free(env);
	return r;
}

/* Was a signal that asks us to stop already delivered (while the clone
 * was starting)?  Returns it, or 0. */
static int pending_stop(int sfd)
{
	struct signalfd_siginfo si;
	int sig = 0;

	while (read(sfd, &si, sizeof(si)) == sizeof(si))
		if (si.ssi_signo != SIGCHLD)
			sig = (int)si.ssi_signo;
	return sig;
}

/* Wait for the command, passing signals on; *stopped receives the last
 * signal that asked pgsnap itself to stop.  Returns its wait status. */
static int wait_command(int sfd, pid_t pid, int *stopped)
{
	struct signalfd_siginfo si;
	int status;
	pid_t w;

	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return status;
		if (w < 0 && errno != EINTR)
			return W_EXITCODE(EXIT_FAIL, 0);
		if (read(sfd, &si, sizeof(si)) != sizeof(si)) {
			struct pollfd p = { .fd = sfd, .events = POLLIN };
			poll(&p, 1, -1); /* EINTR or a signal: look again */
			continue;
		}
		if (si.ssi_signo == SIGCHLD)
			continue;
		if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM ||
		    si.ssi_signo == SIGHUP || si.ssi_signo == SIGQUIT)
			*stopped = (int)si.ssi_signo;
		/* The terminal signals the whole foreground group: the
		 * command has it already. */
		if (si.ssi_code != SI_KERNEL)
			kill(pid, (int)si.ssi_signo);
	}
}

static void report_kept(const pgsnap_clone *c, const char *cmd, int code)
{
	char url[2048];

	pgsnap_clone_url(c, url, sizeof(url));
	fprintf(stderr, "pgsnap exec: '%s' failed (exit status %d); its "
		"clone %s is kept:\n  psql '%s'\n  server log: %s/log\n"
		"  pgsnap rm %s\n", cmd, code, c->id, url, c->dir, c->id);
}

int cmd_exec(int argc, char **argv)
{
	new_args a;
	pgsnap_store *s;
	pgsnap_clone c;
	pgsnap_error err = { 0 };
	sigset_t mask;
	pid_t pid;
	int r, sfd, sig, status, stopped = 0, code;
	size_t i;

	r = new_parse("exec", argc, argv, &a);
	if (r == NEW_PARSE_HELP) {
		help();
		return EXIT_OK;
	}
	if (r >= 0)
		return r;
	if (optind >= argc)
		return usage_error("exec", "name the COMMAND to run: pgsnap "
				   "exec [OPTIONS] -- COMMAND [ARGS...]");
	/* The clone is the command's: it dies with pgsnap (unless the user
	 * wants to look at it after a failure) and never times out. */
	if (!a.o.owner && !a.keep_on_failure)
		a.o.owner = getpid();
	if (a.o.timeout_s < 0)
		a.o.timeout_s = 0;

	/* From here on, a stop request is read, not obeyed at once: the
	 * clone must be removed whatever happens. */
	sigemptyset(&mask);
	for (i = 0; i < sizeof(passed_on) / sizeof(passed_on[0]); i++)
		sigaddset(&mask, passed_on[i]);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		fprintf(stderr, "pgsnap: signalfd: %s\n", strerror(errno));
		return EXIT_FAIL;
	}

	if (open_store(&s, a.user, &err) < 0) {
		close(sfd);
		return runtime_error(&err);
	}
	if (pgsnap_new(s, &a.o, &c, &err) < 0) {
		pgsnap_store_close(s);
		close(sfd);
		return runtime_error(&err);
	}
	fflush(NULL);
	/* The command's own packages (pytest, Go, ...) find the service. */
	{
		char sock[1024];
		if (pgsnap_service_status(s, sock, sizeof(sock)) == 1)
			setenv("PGSNAP_SOCKET", sock, 1);
	}

	sig = pending_stop(sfd);
	if (sig) {
		code = 128 + sig;
	} else if ((r = spawn_command(argv + optind, &c, &pid)) != 0) {
		fprintf(stderr, "pgsnap exec: cannot run '%s': %s\n",
			argv[optind], strerror(r));
		code = r == ENOENT ? 127 : 126;
	} else {
		status = wait_command(sfd, pid, &stopped);
		code = WIFSIGNALED(status) ? 128 + WTERMSIG(status)
					   : WEXITSTATUS(status);
	}

	if (code != 0 && a.keep_on_failure && !stopped && !sig) {
		report_kept(&c, argv[optind], code);
	} else if (pgsnap_rm(s, c.id, &err) < 0) {
		runtime_error(&err);
		if (code == 0)
			code = EXIT_FAIL;
	}
	pgsnap_store_close(s);
	close(sfd);
	/* The signals stay blocked until we exit: a Ctrl-C still pending
	 * (the command's exit was seen first) must not turn the command's
	 * status into our death by SIGINT. */
	return code;
}
