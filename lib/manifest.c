/*
 * manifest.c - the list of a snapshot's files and the packed image of
 * their contents (see manifest.h for the format).
 */
#include "manifest.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MANIFEST_MAX (64u << 20)

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL,
			      b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 65536;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* Files with more than one link, by inode: their bytes are packed once
 * and every path names the same place in the image. */
typedef struct packed {
	dev_t dev;
	ino_t ino;
	uint64_t len, off;
} packed;

typedef struct walk {
	sbuf body;
	packed *links;          /* open addressing, ino hashed; ino 0: free */
	size_t links_n, links_cap;
	int image_fd;
	uint64_t dirs, files, bytes, image_bytes, largest;
	char *buf;              /* one file's contents at a time */
	size_t buf_cap;
	pgsnap_error *err;
} walk;

static packed *link_slot(walk *w, const struct stat *st)
{
	size_t i = (size_t)(st->st_ino * 0x9e3779b97f4a7c15ull) &
		   (w->links_cap - 1);

	while (w->links[i].ino &&
	       (w->links[i].ino != st->st_ino || w->links[i].dev != st->st_dev))
		i = (i + 1) & (w->links_cap - 1);
	return &w->links[i];
}

static const packed *link_find(walk *w, const struct stat *st)
{
	packed *p;

	if (!w->links_cap)
		return NULL;
	p = link_slot(w, st);
	return p->ino ? p : NULL;
}

/* Best effort: without memory, a linked file is only packed again. */
static void link_add(walk *w, const struct stat *st, uint64_t len,
		     uint64_t off)
{
	packed *p;

	if (w->links_n * 2 >= w->links_cap) {
		size_t cap = w->links_cap ? w->links_cap * 2 : 256, i;
		packed *old = w->links, *nv = calloc(cap, sizeof(*nv));
		size_t old_cap = w->links_cap;

		if (!nv)
			return;
		w->links = nv;
		w->links_cap = cap;
		for (i = 0; i < old_cap; i++)
			if (old[i].ino) {
				struct stat k = { .st_dev = old[i].dev,
						  .st_ino = old[i].ino };
				*link_slot(w, &k) = old[i];
			}
		free(old);
	}
	p = link_slot(w, st);
	p->dev = st->st_dev;
	p->ino = st->st_ino;
	p->len = len;
	p->off = off;
	w->links_n++;
}

static bool name_ok(const char *n)
{
	return !strpbrk(n, "\t\n");
}

/* Append a file's bytes before its trailing zeros to the image, reading
 * it in chunks; zeros inside the file become holes in the image. */
static int add_file(walk *w, int dfd, const char *name, const char *rel,
		    const struct stat *st)
{
	cleanup_close int fd = -1;
	uint64_t size = (uint64_t)st->st_size, got = 0, pending = 0;
	const packed *same = st->st_nlink > 1 && st->st_ino ? link_find(w, st)
							     : NULL;
	int r;

	if (same) {
		/* Each path is still its own file in a clone. */
		sb_printf(&w->body, "f\t%04o\t%" PRIu64 "\t%" PRIu64 "\t%"
			  PRIu64 "\t%s\n", (unsigned)(st->st_mode & 07777),
			  size, same->len, same->off, rel);
		w->bytes += size;
		w->files++;
		if (size > w->largest)
			w->largest = size;
		return 0;
	}
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return pgsnap_errno(w->err, errno, "cannot read %s", rel);
	while (got < size) {
		size_t want = size - got < w->buf_cap ? (size_t)(size - got)
						      : w->buf_cap;
		ssize_t n = read(fd, w->buf, want);
		size_t k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pgsnap_errno(w->err, errno, "cannot read %s", rel);
		if (n == 0)
			return pgsnap_err(w->err, EIO, "%s changed while the "
					  "snapshot was being made", rel);
		got += (uint64_t)n;
		for (k = (size_t)n; k && !w->buf[k - 1]; k--)
			;
		if (!k) {
			pending += (uint64_t)n;
			continue;
		}
		if (pending && lseek(w->image_fd, (off_t)pending, SEEK_CUR) < 0)
			return pgsnap_errno(w->err, errno, "cannot seek the "
					    "snapshot image");
		if ((r = write_all(w->image_fd, w->buf, k)) < 0)
			return pgsnap_errno(w->err, r, "cannot write the "
					    "snapshot image");
		pending = (uint64_t)n - k;
	}
	sb_printf(&w->body, "f\t%04o\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
		  "\t%s\n", (unsigned)(st->st_mode & 07777), size,
		  size - pending, w->image_bytes, rel);
	if (st->st_nlink > 1 && st->st_ino)
		link_add(w, st, size - pending, w->image_bytes);
	w->image_bytes += size - pending;
	w->bytes += size;
	w->files++;
	if (size > w->largest)
		w->largest = size;
	return 0;
}

static int walk_dir(walk *w, int dfd, const char *prefix)
{
	DIR *d = fdopendir(dup(dfd));
	struct dirent *e;
	int r = 0;

	if (!d)
		return pgsnap_errno(w->err, errno, "cannot read %s",
				    *prefix ? prefix : "data");
	while (r == 0 && (e = readdir(d))) {
		char rel[4096];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(rel, sizeof(rel), "%s%s%s", prefix, *prefix ? "/" : "",
			 e->d_name);
		if (!name_ok(e->d_name)) {
			r = pgsnap_err(w->err, EINVAL, "file name with a tab or "
				       "newline in the snapshot: %s", rel);
			break;
		}
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = pgsnap_errno(w->err, errno, "cannot stat %s", rel);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY |
					 O_CLOEXEC | O_NOFOLLOW);
			sb_printf(&w->body, "d\t%04o\t%s\n",
				  (unsigned)(st.st_mode & 07777), rel);
			w->dirs++;
			if (sub < 0)
				r = pgsnap_errno(w->err, errno, "cannot open %s",
						 rel);
			else
				r = walk_dir(w, sub, rel);
			if (sub >= 0)
				close(sub);
		} else if (S_ISREG(st.st_mode)) {
			r = add_file(w, dfd, e->d_name, rel, &st);
		} else if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t n = readlinkat(dfd, e->d_name, t, sizeof(t) - 1);
			if (n < 0)
				r = pgsnap_errno(w->err, errno, "readlink %s",
						 rel);
			else {
				t[n] = '\0';
				if (!name_ok(t))
					r = pgsnap_err(w->err, EINVAL, "symlink "
						"%s: odd target", rel);
				else
					sb_printf(&w->body, "l\t%s\t%s\n", t,
						  rel);
			}
		}
		/* Sockets, fifos: postgres leaves none in a stopped
		 * data directory; a clone does not need them. */
	}
	closedir(d);
	return r;
}

int manifest_write(const pgsnap_store *s, const char *snapdir,
		   pgsnap_error *err)
{
	char data[700], img[700], tmp[720], man[700];
	cleanup_close int dfd = -1;
	walk w = { .image_fd = -1, .err = err };
	sbuf head = { 0 };
	fs_ids ids;
	int r;

	snprintf(data, sizeof(data), "%s/data", snapdir);
	snprintf(img, sizeof(img), "%s/" MANIFEST_IMAGE, snapdir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", img);
	snprintf(man, sizeof(man), "%s/" MANIFEST_NAME, snapdir);
	dfd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return pgsnap_errno(err, errno, "cannot open %s", data);
	/* The server user owns everything of a snapshot. */
	ids = fs_become(s);
	w.image_fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fs_restore(ids);
	if (w.image_fd < 0)
		return pgsnap_errno(err, errno, "cannot create %s", tmp);
	w.buf_cap = 1u << 20;
	w.buf = malloc(w.buf_cap);
	if (!w.buf) {
		close(w.image_fd);
		unlink(tmp);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	r = walk_dir(&w, dfd, "");
	if (r == 0) {
		sb_printf(&head, "pgsnap-manifest 1\nstats\t%" PRIu64 "\t%"
			  PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\n",
			  w.dirs, w.files, w.bytes, w.image_bytes, w.largest);
		sb_printf(&head, "%.*s", (int)w.body.len,
			  w.body.p ? w.body.p : "");
		if (w.body.oom || head.oom)
			r = pgsnap_err(err, ENOMEM, "out of memory writing "
				       "the manifest");
	}
	if (r == 0 && fsync(w.image_fd) < 0)
		r = pgsnap_errno(err, errno, "cannot write %s", tmp);
	if (close(w.image_fd) < 0 && r == 0)
		r = pgsnap_errno(err, errno, "cannot write %s", tmp);
	if (r == 0 && rename(tmp, img) < 0)
		r = pgsnap_errno(err, errno, "cannot rename %s", tmp);
	if (r == 0) {
		ids = fs_become(s);
		r = write_file_atomic(man, head.p, head.len, 0600);
		fs_restore(ids);
		if (r < 0)
			pgsnap_errno(err, r, "cannot write %s", man);
	}
	if (r < 0)
		unlink(tmp);
	free(w.buf);
	free(w.links);
	free(w.body.p);
	free(head.p);
	return r;
}

static int parse_u64(char **p, uint64_t *out)
{
	char *end;
	errno = 0;
	*out = strtoull(*p, &end, 10);
	if (errno || end == *p || *end != '\t')
		return -EINVAL;
	*p = end + 1;
	return 0;
}

static int parse_mode(char **p, mode_t *out)
{
	char *end;
	unsigned long v = strtoul(*p, &end, 8);
	if (end == *p || *end != '\t' || v > 07777)
		return -EINVAL;
	*out = (mode_t)v;
	*p = end + 1;
	return 0;
}

static int parse_line(char *line, manifest_entry *e)
{
	char *p = line + 2;
	char *tab;

	if (!line[0] || line[1] != '\t')
		return -EINVAL;
	e->type = line[0];
	switch (e->type) {
	case 'd':
		if (parse_mode(&p, &e->mode) < 0)
			return -EINVAL;
		break;
	case 'f':
		if (parse_mode(&p, &e->mode) < 0 || parse_u64(&p, &e->size) < 0 ||
		    parse_u64(&p, &e->len) < 0 || parse_u64(&p, &e->off) < 0 ||
		    e->len > e->size)
			return -EINVAL;
		break;
	case 'l':
		tab = strchr(p, '\t');
		if (!tab)
			return -EINVAL;
		*tab = '\0';
		e->target = p;
		p = tab + 1;
		break;
	default:
		return -EINVAL;
	}
	/* Relative, no "..": a damaged manifest must not write elsewhere. */
	if (!*p || *p == '/' || !strcmp(p, "..") || strstr(p, "/../") ||
	    !strncmp(p, "../", 3) ||
	    (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")))
		return -EINVAL;
	e->path = p;
	return 0;
}

int manifest_load(const char *snapdir, manifest *m, pgsnap_error *err)
{
	char path[700];
	size_t len, n = 0, i = 0;
	char *line, *nl;
	uint64_t st[5];
	int r;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "%s/" MANIFEST_NAME, snapdir);
	r = read_file(path, MANIFEST_MAX, &m->text, &len);
	if (r < 0)
		return pgsnap_errno(err, r, "cannot read the snapshot's manifest "
				    "%s", path);
	for (line = m->text; *line; line++)
		n += *line == '\n';
	m->e = calloc(n ? n : 1, sizeof(*m->e));
	if (!m->e) {
		manifest_free(m);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	line = m->text;
	nl = strchr(line, '\n');
	if (!nl || strncmp(line, "pgsnap-manifest 1\n", 18))
		goto bad;
	line = nl + 1;
	nl = strchr(line, '\n');
	if (!nl || strncmp(line, "stats\t", 6))
		goto bad;
	*nl = '\0';
	{
		char *p = line + 6;
		size_t k;
		for (k = 0; k < 5; k++) {
			char *end;
			errno = 0;
			st[k] = strtoull(p, &end, 10);
			if (errno || end == p || (*end != '\t' && *end))
				goto bad;
			p = *end ? end + 1 : end;
		}
	}
	m->dirs = st[0];
	m->files = st[1];
	m->bytes = st[2];
	m->image_bytes = st[3];
	m->largest = st[4];
	for (line = nl + 1; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			goto bad;
		*nl = '\0';
		if (parse_line(line, &m->e[i]) < 0)
			goto bad;
		/* Written so that a huge offset cannot wrap past the check. */
		if (m->e[i].type == 'f' &&
		    (m->e[i].len > m->image_bytes ||
		     m->e[i].off > m->image_bytes - m->e[i].len))
			goto bad;
		i++;
	}
	m->n = i;
	return 0;
bad:
	manifest_free(m);
	return pgsnap_err(err, EINVAL, "the snapshot's manifest %s is damaged "
			  "(rebuild the snapshot)", path);
}

void manifest_free(manifest *m)
{
	free(m->text);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* ---- a small golden: no spare WAL ------------------------------------ */

/* The value after "key:" in pg_controldata's output. */
static const char *ctl_field(const char *text, const char *key, char *buf,
			     size_t len)
{
	const char *p = strstr(text, key);
	size_t n;

	if (!p)
		return NULL;
	p += strlen(key);
	p += strspn(p, " \t");
	n = strcspn(p, "\n");
	snprintf(buf, len, "%.*s", (int)n, p);
	return buf;
}

static int controldata(const pgsnap_store *s, const char *datadir,
		       char *out, size_t len)
{
	char prog[600];
	char *argv[] = { "pg_controldata", "-D", (char *)datadir, NULL };
	spawn_opts so = { 0 };
	int pfd[2];
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/pg_controldata", s->bindir);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	so.out_fd = pfd[1];
	so.store = s;
	pid = spawn_process(prog, argv, &so);
	close(pfd[1]);
	while (pid > 0 && got + 1 < len &&
	       (n = read(pfd[0], out + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(pfd[0]);
	if (pid < 0)
		return pid;
	wait_pid_exit(pid, 10000);
	out[got] = '\0';
	return 0;
}

/*
 * A cleanly shut down cluster needs only the WAL segment holding its last
 * checkpoint: the recycled segments after it and the old ones before it
 * would be copied (or copied up) into every clone for nothing, and so would
 * the recycled bytes after the checkpoint record (old WAL that postgres
 * overwrites; zeros end the WAL as well as they do).
 */
int golden_trim_wal(const pgsnap_store *s, const char *snapdir)
{
	char data[700], wal[760], text[8192], v[128], keep[32], ckfile[32];
	unsigned hi, lo, tli;
	unsigned long long lsn, seg_size, segno, per_id;
	cleanup_close int wfd = -1, fd = -1;
	DIR *d;
	struct dirent *e;

	snprintf(data, sizeof(data), "%s/data", snapdir);
	snprintf(wal, sizeof(wal), "%s/pg_wal", data);
	if (controldata(s, data, text, sizeof(text)) < 0)
		return -EIO;
	if (!ctl_field(text, "Database cluster state:", v, sizeof(v)) ||
	    strcmp(v, "shut down"))
		return -EINVAL;
	if (!ctl_field(text, "Latest checkpoint's REDO WAL file:", keep,
		       sizeof(keep)) || strlen(keep) != 24)
		return -EINVAL;
	if (!ctl_field(text, "Latest checkpoint location:", v, sizeof(v)) ||
	    sscanf(v, "%X/%X", &hi, &lo) != 2)
		return -EINVAL;
	lsn = (unsigned long long)hi << 32 | lo;
	if (!ctl_field(text, "Bytes per WAL segment:", v, sizeof(v)) ||
	    sscanf(v, "%llu", &seg_size) != 1 || seg_size < 65536 ||
	    (seg_size & (seg_size - 1)))
		return -EINVAL;
	if (!ctl_field(text, "Latest checkpoint's TimeLineID:", v, sizeof(v)) ||
	    sscanf(v, "%u", &tli) != 1)
		return -EINVAL;
	segno = lsn / seg_size;
	per_id = 0x100000000ull / seg_size;
	snprintf(ckfile, sizeof(ckfile), "%08X%08X%08X", tli,
		 (unsigned)(segno / per_id), (unsigned)(segno % per_id));
	/* A shutdown checkpoint's redo point is the record itself. */
	if (strcmp(ckfile, keep))
		return 0;
	wfd = open(wal, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (wfd < 0)
		return -errno;
	d = fdopendir(dup(wfd));
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (strlen(e->d_name) == 24 &&
		    strspn(e->d_name, "0123456789ABCDEF") == 24 &&
		    strcmp(e->d_name, keep))
			unlinkat(wfd, e->d_name, 0);
	}
	closedir(d);
	fd = openat(wfd, keep, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		/* Keep the checkpoint's page and the next (a record may
		 * cross into it); the rest becomes a hole. */
		off_t from = (off_t)((lsn % seg_size) / 8192 + 2) * 8192;
		if ((unsigned long long)from < seg_size)
			fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  from, (off_t)seg_size - from);
	}
	return 0;
}
