/*
 * snapmeta.c - what a snapshot is: the PostgreSQL that runs here (its
 * version, cached), and a snapshot's meta file (key, version, machine,
 * origin, and whether its files are known to be on disk yet).
 */
#include "snapshot.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
/* ---- PostgreSQL identity ---------------------------------------------- */

/* `postgres -V` costs a process; its answer is cached beside the
 * snapshots, keyed by the binary's inode, size and mtime. */
static int ask_version(const pgsnap_store *s, const char *prog, char *buf,
		       size_t len)
{
	char *argv[] = { "postgres", "-V", NULL };
	spawn_opts o = { .store = s };
	ssize_t r = spawn_capture(prog, argv, &o, 10000, buf, len);

	return r < 0 ? (int)r : 0;
}

int pg_identity(pgsnap_store *s, pg_ident *id, pgsnap_error *err)
{
	char prog[600], cache[700], stamp[128], out[256];
	cleanup_free char *text = NULL;
	struct utsname u;
	struct stat st;
	const char *v;
	int r;

	memset(id, 0, sizeof(*id));
	snprintf(prog, sizeof(prog), "%s/postgres", s->bindir);
	if (stat(prog, &st) < 0)
		return pgsnap_errno(err, errno, "cannot stat %s", prog);
	snprintf(id->bin, sizeof(id->bin), "%lld:%lld", (long long)st.st_size,
		 (long long)st.st_mtime);
	uname(&u);
	snprintf(id->arch, sizeof(id->arch), "%s", u.machine);
	snprintf(stamp, sizeof(stamp), "%llu:%llu:%lld:%lld.%ld",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
		 (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	snprintf(cache, sizeof(cache), "%s/snapshots/.pg-identity", s->home);
	if (read_file(cache, 4096, &text, NULL) == 0) {
		size_t sl = strlen(stamp);
		if (!strncmp(text, stamp, sl) && text[sl] == ' ') {
			snprintf(id->version, sizeof(id->version), "%.*s",
				 (int)strcspn(text + sl + 1, "\n"),
				 text + sl + 1);
		}
	}
	if (!id->version[0]) {
		char line[256];
		r = ask_version(s, prog, out, sizeof(out));
		v = r == 0 ? strstr(out, "(PostgreSQL) ") : NULL;
		if (!v)
			return pgsnap_err(err, EIO, "cannot tell the version "
				"of %s ('%s -V' said: %.100s)", prog, prog,
				r == 0 ? out : strerror(-r));
		v += strlen("(PostgreSQL) ");
		snprintf(id->version, sizeof(id->version), "%.*s",
			 (int)strcspn(v, " \n"), v);
		r = snprintf(line, sizeof(line), "%s %s\n", stamp, id->version);
		write_file_atomic(cache, line, (size_t)r, 0644);
	}
	id->major = (int)strtol(id->version, NULL, 10);
	if (id->major <= 0)
		return pgsnap_err(err, EIO, "cannot read the PostgreSQL version "
				  "'%s'", id->version);
	snprintf(s->pg_version, sizeof(s->pg_version), "%s", id->version);
	s->pg_major = id->major;
	return 0;
}

/* ---- meta ---------------------------------------------------------------- */

static void meta_field(const char *text, const char *key, char *out,
		       size_t len)
{
	size_t kl = strlen(key);
	const char *p = text;

	out[0] = '\0';
	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			p += kl + 1;
			snprintf(out, len, "%.*s", (int)strcspn(p, "\n"), p);
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

int meta_read(const char *snapdir, snap_meta *m)
{
	char path[700], num[32];
	cleanup_free char *text = NULL;
	int r;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "%s/meta", snapdir);
	if ((r = read_file(path, 65536, &text, NULL)) < 0)
		return r;
	meta_field(text, "format", num, sizeof(num));
	m->format = (int)strtol(num, NULL, 10);
	meta_field(text, "name", m->name, sizeof(m->name));
	meta_field(text, "key", m->key, sizeof(m->key));
	meta_field(text, "pg_version", m->pg_version, sizeof(m->pg_version));
	meta_field(text, "pg_major", num, sizeof(num));
	m->pg_major = (int)strtol(num, NULL, 10);
	meta_field(text, "arch", m->arch, sizeof(m->arch));
	meta_field(text, "from", m->from, sizeof(m->from));
	meta_field(text, "origin", m->origin, sizeof(m->origin));
	meta_field(text, "now", m->now, sizeof(m->now));
	meta_field(text, "created_ms", num, sizeof(num));
	m->created_ms = strtoll(num, NULL, 10);
	meta_field(text, "unsynced", m->unsynced, sizeof(m->unsynced));
	return 0;
}

int meta_format(const snap_meta *m, char *buf, size_t len)
{
	int n = snprintf(buf, len,
		"format=%d\nname=%s\nkey=%s\npg_version=%s\npg_major=%d\n"
		"arch=%s\nfrom=%s\norigin=%s\nnow=%s\ncreated_ms=%lld\n%s%s%s",
		SNAP_META_FORMAT, m->name, m->key, m->pg_version, m->pg_major,
		m->arch, m->from, m->origin, m->now, (long long)m->created_ms,
		m->unsynced[0] ? "unsynced=" : "", m->unsynced,
		m->unsynced[0] ? "\n" : "");

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

bool meta_lost(const pgsnap_store *s, const snap_meta *m)
{
	return m->unsynced[0] && strcmp(m->unsynced, s->boot_id);
}

int snapshot_lost(const char *name, bool known, pgsnap_error *err)
{
	return pgsnap_err(err, ESTALE, "snapshot '%s' was not yet on disk when "
			  "the machine restarted (its files may be torn): %s",
			  name, known ? "rebuild it ('pgsnap snapshot build' "
			  "or 'pgsnap new --build-if-stale')"
				      : "import it again (or remove it)");
}

int meta_write(const pgsnap_store *s, const char *snapdir, const snap_meta *m,
	       pgsnap_error *err)
{
	char path[700], buf[2048];
	fs_ids ids;
	int n, r;

	if (strchr(m->now, '\n'))
		return pgsnap_err(err, EINVAL, "--now: no newline, please");
	if ((n = meta_format(m, buf, sizeof(buf))) < 0)
		return pgsnap_err(err, -n, "meta too long");
	snprintf(path, sizeof(path), "%s/meta", snapdir);
	ids = fs_become(s);
	r = write_file_atomic(path, buf, (size_t)n, 0644);
	fs_restore(ids);
	return r < 0 ? pgsnap_errno(err, r, "cannot write %s", path) : 0;
}
