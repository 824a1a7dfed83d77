/*
 * proc.c - what /proc says about a clone's postgres: which process is the
 * server of a data directory, its client backends, whether it is paused,
 * and when a client last left.  Read-only, except for signalling backends
 * and removing a dead server's shared memory segment.
 */
#include "internal.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>

/* ---- who is the server of a data directory? -------------------------- */

/* postgres chdirs into its data directory: that is how a pid read from a
 * stale postmaster.pid is told from a process that reused the number. */
static bool cwd_is(pid_t pid, const char *dir)
{
	char link[64], cwd[PATH_MAX], real[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
	n = readlink(link, cwd, sizeof(cwd) - 1);
	if (n <= 0)
		return false;
	cwd[n] = '\0';
	if (!realpath(dir, real))
		snprintf(real, sizeof(real), "%s", dir);
	return !strcmp(cwd, real);
}

/* Line n (1-based) of datadir/postmaster.pid into buf. */
int pidfile_line(const char *datadir, int n, char *buf, size_t len)
{
	char path[PATH_MAX];
	cleanup_free char *text = NULL;
	const char *p;
	size_t l;

	if (path_join(path, sizeof(path), datadir, "postmaster.pid") < 0 ||
	    read_file(path, 8192, &text, NULL) < 0)
		return -ENOENT;
	for (p = text; n > 1 && p; n--) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		return -ENOENT;
	l = strcspn(p, "\n");
	if (l >= len)
		l = len - 1;
	memcpy(buf, p, l);
	buf[l] = '\0';
	return 0;
}

pid_t pidfile_pid(const char *datadir)
{
	char line[64];
	long v;

	if (pidfile_line(datadir, 1, line, sizeof(line)) < 0 ||
	    parse_long(line, 1, INT_MAX, &v) < 0)
		return 0;
	return (pid_t)v;
}

/* The live postmaster of this clone, if any. */
pid_t find_server(const pgsnap_clone *c, unsigned long long *start)
{
	pid_t pid;

	if (c->pid > 0 && c->pid_start && proc_alive(c->pid, c->pid_start)) {
		*start = c->pid_start;
		return c->pid;
	}
	pid = pidfile_pid(c->datadir);
	if (pid > 0 && pid != getpid() && cwd_is(pid, c->datadir)) {
		*start = proc_start_time(pid);
		if (*start)
			return pid;
	}
	return 0;
}

/* A server killed with SIGKILL leaves its System V segment behind (the
 * next start in the same directory would reclaim it, but the directory is
 * about to go): remove it if no one is attached and it is that server's. */
void drop_stale_shm(const char *datadir)
{
	char line[128];
	unsigned long key, id;
	struct shmid_ds ds;
	pid_t pid = pidfile_pid(datadir);

	if (pid <= 0 || pidfile_line(datadir, 7, line, sizeof(line)) < 0 ||
	    sscanf(line, "%lu %lu", &key, &id) != 2 || id > INT_MAX)
		return;
	if (shmctl((int)id, IPC_STAT, &ds) == 0 && ds.shm_nattch == 0 &&
	    ds.shm_cpid == pid && (unsigned long)ds.shm_perm.__key == key)
		shmctl((int)id, IPC_RMID, NULL);
}

/* ---- clients of a server ---------------------------------------------- */

/* Process titles of the postmaster's own helpers ("postgres: NAME"); any
 * other child is a client backend (or about to become one: a child not yet
 * retitled counts too, so a connecting client is never cut off). */
static const char *const helper_titles[] = {
	"checkpointer", "background writer", "walwriter", "autovacuum ",
	"logical replication ", "archiver", "startup", "stats collector",
	"parallel worker", "walreceiver", "wal summarizer", "slotsync",
	"io worker", "syslogger",
};

/* Is child pid a client backend (of database db, when not NULL)?  Titles
 * read "postgres: USER DB HOST STATE"; a child not yet retitled counts for
 * every database but is never signalled. */
static bool is_client(pid_t pid, const char *db, bool *titled)
{
	char path[64], title[256];
	const char *p;
	size_t i, len;

	*titled = false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (read_file_buf(path, title, sizeof(title)) <= 0)
		return false; /* exiting */
	if (strncmp(title, "postgres: ", 10))
		return true;
	for (i = 0; i < ARRAY_SIZE(helper_titles); i++)
		if (!strncmp(title + 10, helper_titles[i],
			     strlen(helper_titles[i])))
			return false;
	if (!db)
		return *titled = true;
	p = strchr(title + 10, ' ');
	if (!p)
		return true;
	p++;
	len = strlen(db);
	*titled = true;
	return !strncmp(p, db, len) && (p[len] == ' ' || p[len] == '\0');
}

static int client_seen(pid_t pid, const char *db, int sig)
{
	bool titled;

	if (!is_client(pid, db, &titled))
		return 0;
	if (sig && titled)
		kill(pid, sig);
	return 1;
}

int server_clients(pid_t postmaster, const char *db, int sig)
{
	char path[64], *p, *end;
	cleanup_free char *kids = NULL;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
		 (int)postmaster, (int)postmaster);
	if (read_file(path, 1 << 20, &kids, NULL) == 0) {
		for (p = kids; *p; p = end) {
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 0)
				n += client_seen((pid_t)pid, db, sig);
		}
		return n;
	}
	/* Kernels without CONFIG_PROC_CHILDREN: walk /proc for the ppid. */
	DIR *d = opendir("/proc");
	struct dirent *e;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char stat[512];
		long pid, ppid;
		char *q;
		if (parse_long(e->d_name, 1, INT_MAX, &pid) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if (read_file_buf(path, stat, sizeof(stat)) <= 0)
			continue;
		q = strrchr(stat, ')');
		if (q && sscanf(q, ") %*c %ld", &ppid) == 1 &&
		    ppid == postmaster)
			n += client_seen((pid_t)pid, db, sig);
	}
	closedir(d);
	return n;
}

bool proc_stopped(pid_t pid)
{
	char st = proc_state(pid);
	return st == 'T' || st == 't';
}

int64_t clone_idle_since_ms(const pgsnap_clone *c)
{
	char path[700];
	struct stat st;

	/* The server logs every disconnection (server.c starts it with
	 * log_disconnections): its log changes when a client leaves. */
	if (snprintf(path, sizeof(path), "%s/log", c->dir) >= (int)sizeof(path) ||
	    stat(path, &st) < 0)
		return 0;
	return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}
