/*
 * snapshot_psql.c - a recipe's SQL files run by psql: which psql, and its
 * error output turned into the file and line that failed.
 */
#include "snapshot_psql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void find_psql(const pgsnap_store *s, char *buf, size_t len)
{
	const char *path = getenv("PATH");

	snprintf(buf, len, "%s/psql", s->bindir);
	if (access(buf, X_OK) == 0)
		return;
	for (path = path ? path : "/usr/bin:/bin"; *path;) {
		const char *c = strchrnul(path, ':');
		snprintf(buf, len, "%.*s/psql", (int)(c - path), path);
		if (access(buf, X_OK) == 0)
			return;
		path = *c ? c + 1 : c;
	}
	snprintf(buf, len, "/usr/bin/psql");
}

/* The line of file (at or before end) that holds text; 0 if none. */
static int find_line(const char *file, int end, const char *text)
{
	cleanup_free char *body = NULL;
	char want[512];
	const char *p;
	int line = 1, found = 0;
	size_t wl;

	snprintf(want, sizeof(want), "%s", text);
	/* psql elides long lines with "..." at either end. */
	if (!strncmp(want, "...", 3))
		memmove(want, want + 3, strlen(want + 3) + 1);
	wl = strlen(want);
	if (wl >= 3 && !strcmp(want + wl - 3, "..."))
		want[wl -= 3] = '\0';
	while (wl && want[wl - 1] == ' ')
		want[--wl] = '\0';
	if (!wl || read_file(file, 256 << 20, &body, NULL) < 0)
		return 0;
	for (p = body; *p && line <= end; line++) {
		const char *eol = strchrnul(p, '\n');
		if ((size_t)(eol - p) >= wl && memmem(p, (size_t)(eol - p), want,
						      wl))
			found = line;
		p = *eol ? eol + 1 : eol;
	}
	return found;
}

/* Turn psql's "psql:FILE:LINE: ERROR:  msg" (and "LINE n: text") into
 * "FILE, line N: ERROR: msg". */
int sql_error(const recipe_step *st, const char *logp, int status,
	      pgsnap_error *err)
{
	cleanup_free char *log = NULL;
	char file[4200], msg[600], tail[700];
	const char *p, *e, *colon;
	int line = 0, inner = 0;

	/* The first error line; notices before it carry "psql:FILE:LINE:"
	 * too. */
	p = NULL;
	if (read_file(logp, 4 << 20, &log, NULL) == 0 &&
	    (e = strstr(log, ": ERROR:"))) {
		for (p = e; p > log && p[-1] != '\n'; p--)
			;
		if (strncmp(p, "psql:", 5))
			p = NULL;
	}
	if (!p) {
		log_tail(logp, 4, tail, sizeof(tail));
		return pgsnap_err(err, EIO, "sql %s: psql failed (exit %d): %s",
				  st->shown, status, tail[0] ? tail : "no output");
	}
	/* FILE may hold ':'; LINE is the digits before ": ERROR:". */
	for (colon = e - 1; colon > p && *colon >= '0' && *colon <= '9'; colon--)
		;
	snprintf(file, sizeof(file), "%.*s", (int)(colon - p - 5), p + 5);
	line = (int)strtol(colon + 1, NULL, 10);
	e += strlen(": ERROR:");
	while (*e == ' ')
		e++;
	snprintf(msg, sizeof(msg), "%.*s", (int)strcspn(e, "\n"), e);
	p = strstr(e, "\nLINE ");
	if (p && (inner = (int)strtol(p + 6, (char **)&colon, 10)) > 0 &&
	    colon[0] == ':' && colon[1] == ' ') {
		char text[512];
		int at;
		snprintf(text, sizeof(text), "%.*s", (int)strcspn(colon + 2, "\n"),
			 colon + 2);
		at = find_line(file, line, text);
		if (at > 0 && at <= line)
			line = at;
	}
	return pgsnap_err(err, EIO, "%s, line %d: ERROR: %s",
			  !strcmp(file, st->arg) ? st->shown : file, line, msg);
}
