/*
 * snapshot_move.c - snapshots in and out: save a live clone, export to a
 * portable archive, import one.
 *
 * Save: a live clone is made consistent without stopping it.  After a
 * CHECKPOINT, the server's whole process group is paused (SIGSTOP) while
 * its data directory is copied, then resumed: the copy is exactly what a
 * crash at that instant would leave (every write the server made is in the
 * page cache the copy reads), which PostgreSQL recovers from by design.
 * The copy is then started once on a private socket (crash recovery) and
 * shut down fast, so the new golden is clean like any other.  The clone
 * keeps its process, its port and its open connections; it only pauses
 * for the copy.  (pg_backup_start would need wal_level=replica, which the
 * default snapshot does not have; stopping and restarting the clone would
 * drop its connections.)
 *
 * Export and import: snapshot_xfer.c.
 */
#include "snapshot.h"
#include "sha256.h"

#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define FREEZE_TIMEOUT_MS 10000
#define SETTLE_TIMEOUT_MS 120000

/* ---- save ------------------------------------------------------------------ */

static int find_clone(const pgsnap_store *s, const char *ref, pgsnap_clone *out,
		      pgsnap_error *err)
{
	int r = registry_find(s, ref, out, err);

	if (r < 0)
		return r;
	if (clone_is_lease(out))
		return pgsnap_err(err, EINVAL, "clone %s is one database of a "
				  "shared server (new --shared): only a server "
				  "of its own can be saved", out->id);
	if (strcmp(out->state, "ready") || !proc_alive(out->pid, out->pid_start))
		return pgsnap_err(err, ESRCH, "clone %s is not running (state "
				  "%s)", out->id, out->state);
	return 0;
}

/* The processes of group pgid; are they all stopped? */
static int group_state(pid_t pgid, bool *all_stopped)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	*all_stopped = true;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[64], buf[512], *p, st;
		long pgrp;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (read_file_buf(path, buf, sizeof(buf)) <= 0)
			continue;
		/* "pid (comm) S ppid pgrp ...": comm may hold anything. */
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1, " %c %*d %ld", &st, &pgrp) != 2)
			continue;
		if (pgrp != pgid)
			continue;
		n++;
		if (st != 'T' && st != 't' && st != 'Z' && st != 'X')
			*all_stopped = false;
	}
	closedir(d);
	return n;
}

/* Pause the server and all its backends; 0 once every one is stopped. */
static int freeze(pid_t pgid, pgsnap_error *err)
{
	int64_t deadline = mono_us() + FREEZE_TIMEOUT_MS * 1000LL;
	bool stopped;

	do {
		/* Again each round: a backend forked meanwhile is caught. */
		if (kill(-pgid, SIGSTOP) < 0)
			return pgsnap_errno(err, errno, "cannot pause server "
					    "group %d", (int)pgid);
		if (group_state(pgid, &stopped) > 0 && stopped)
			return 0;
		usleep(1000);
	} while (mono_us() < deadline);
	return pgsnap_err(err, ETIMEDOUT, "server group %d did not pause",
			  (int)pgid);
}

/* Recover a copied data directory and shut it down cleanly. */
static int settle(const pgsnap_store *s, const char *dir, pgsnap_error *err)
{
	char data[700], sock[700], logp[700], p[760], tail[700];
	server_start st = { 0 };
	pid_t pid = 0;
	int r;

	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(p, sizeof(p), "%s/postmaster.pid", data);
	unlink(p);
	snprintf(p, sizeof(p), "%s/postmaster.opts", data);
	unlink(p);
	if ((r = snap_sock_dir(s, dir, sock, sizeof(sock), err)) < 0)
		return r;
	snprintf(logp, sizeof(logp), "%s/server.log", dir);
	st.datadir = data;
	st.sockdir = sock;
	st.log_path = logp;
	st.port = 5432;
	st.server_opts = "-c fsync=off -c autovacuum=off";
	st.timeout_ms = SETTLE_TIMEOUT_MS;
	r = server_start_ready(s, &st, &pid, err);
	if (r == 0) {
		kill(pid, SIGINT);
		if (wait_pid_exit(pid, SETTLE_TIMEOUT_MS) < 0) {
			server_stop(pid, 0, 1000);
			r = pgsnap_err(err, ETIMEDOUT, "the copy did not shut "
				       "down");
		} else if (!datadir_clean(data)) {
			log_tail(logp, 3, tail, sizeof(tail));
			r = pgsnap_err(err, EIO, "the copy did not shut down "
				       "cleanly: %s", tail);
		}
	}
	rm_rf(sock);
	unlink(logp);
	snprintf(p, sizeof(p), "%s/postmaster.opts", data);
	unlink(p);
	return r;
}

int install_checked(pgsnap_store *s, const char *build, const char *name,
		    int force, const char *key, int flags, int *installed,
		    pgsnap_error *err)
{
	cleanup_close int lfd = -1;
	char dir[600];
	snap_meta m;
	int r;

	if ((r = snap_lock(s, name, LOCK_EX, &lfd, err)) < 0)
		return r;
	snapshot_dir(s, name, dir, sizeof(dir));
	/* One that did not reach the disk before a restart is replaced. */
	if (meta_read(dir, &m) == 0 && !meta_lost(s, &m)) {
		if (key && !strcmp(m.key, key)) {
			if (installed)
				*installed = 0;
			rm_rf(build);
			return 0;
		}
		if (!force)
			return pgsnap_err(err, EEXIST, "snapshot '%s' exists "
					  "(use --force to replace it)", name);
	}
	if ((r = snap_install(s, build, name, flags, err)) < 0)
		return r;
	if (installed)
		*installed = 1;
	return 0;
}

static void fill_meta(pgsnap_store *s, snap_meta *m, const char *name,
		      const char *origin)
{
	pg_ident id;

	if (pg_identity(s, &id, NULL) == 0) {
		snprintf(m->pg_version, sizeof(m->pg_version), "%s", id.version);
		m->pg_major = id.major;
		snprintf(m->arch, sizeof(m->arch), "%s", id.arch);
	}
	m->format = SNAP_META_FORMAT;
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->origin, sizeof(m->origin), "%s", origin);
	m->created_ms = now_ms();
}

int pgsnap_snapshot_save(pgsnap_store *s, const char *ref, const char *name,
			 int force, pgsnap_error *err)
{
	char build[700], dir[600], rnd[33];
	unsigned char d[32];
	sha256_ctx hc;
	pgsnap_clone c;
	snap_meta m = { 0 };
	sigset_t block, saved;
	PGconn *conn;
	int r, r2;

	if (!name_valid(name, 63))
		return pgsnap_err(err, EINVAL, "snapshot name '%s' is invalid",
				  name);
	if ((r = find_clone(s, ref, &c, err)) < 0)
		return r;
	snapshot_dir(s, name, dir, sizeof(dir));
	if (!force && access(dir, F_OK) == 0)
		return pgsnap_err(err, EEXIST, "snapshot '%s' exists (use "
				  "--force to replace it)", name);
	if ((r = sql_connect(c.sockdir, c.port, c.dbname, &conn, err)) < 0)
		return pgsnap_err_wrap(err, r, "clone %s", c.id);
	r = sql_exec(conn, "CHECKPOINT", err);
	PQfinish(conn);
	if (r < 0)
		return pgsnap_err_wrap(err, r, "clone %s: CHECKPOINT", c.id);
	if ((r = snap_build_dir(s, name, build, sizeof(build), err)) < 0)
		return r;
	/* The postmaster leads its own session (setsid at start): its group
	 * is the server, and only the server. */
	if (getpgid(c.pid) != c.pid) {
		r = pgsnap_err(err, EPERM, "clone %s: server %d does not lead "
			       "its process group; not pausing it", c.id,
			       (int)c.pid);
		goto fail;
	}
	/* Until the group runs again, a ^C or a CI timeout must not leave the
	 * clone paused forever: those signals wait for SIGCONT. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &saved);
	r = freeze(c.pid, err);
	if (r == 0)
		r = copy_datadir(s, c.datadir, build, err);
	r2 = kill(-c.pid, SIGCONT) < 0 ? -errno : 0;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	if (r == 0 && r2 < 0)
		r = pgsnap_errno(err, r2, "cannot resume clone %s", c.id);
	if (r < 0)
		goto fail;
	if ((r = settle(s, build, err)) < 0)
		goto fail;
	fill_meta(s, &m, name, "save");
	snprintf(m.from, sizeof(m.from), "%s", c.snapshot);
	/* Not reproducible: a key of its own, never equal to a built one. */
	random_hex(rnd, 32);
	sha256_init(&hc);
	sha256_update(&hc, "saved:", 6);
	sha256_update(&hc, c.id, strlen(c.id));
	sha256_update(&hc, rnd, strlen(rnd));
	sha256_final(&hc, d);
	sha256_hex(d, m.key);
	if ((r = meta_write(s, build, &m, err)) < 0 ||
	    (r = install_checked(s, build, name, force, NULL, 0, NULL,
				     err)) < 0)
		goto fail;
	return 0;
fail:
	rm_rf(build);
	return pgsnap_err_wrap(err, r, "snapshot save %s %s", c.id, name);
}
