/* util.c - small helpers every module needs: paths, files, processes. */
#include "internal.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int random_hex(char *buf, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];
	size_t i;

	if (n / 2 + 1 > sizeof(raw))
		return -EINVAL;
	if (getrandom(raw, n / 2 + 1, 0) < 0)
		return -errno;
	for (i = 0; i < n; i++)
		buf[i] = hex[(raw[i / 2] >> ((i & 1) * 4)) & 15];
	buf[n] = '\0';
	return 0;
}

int path_join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s", a, b);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);
	char *p;

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int rm_rf_at(int dirfd, const char *name)
{
	struct stat st;
	int fd, ret = 0;
	DIR *d;
	struct dirent *e;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((e = readdir(d))) {
		int r;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		r = rm_rf_at(fd, e->d_name);
		if (r < 0 && !ret)
			ret = r;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

int rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path);
}

ssize_t read_file_buf(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

int read_file(const char *path, size_t max, char **out, size_t *len)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return read_fd(fd, max, out, len);
}

int read_fd(int fd, size_t max, char **out, size_t *len)
{
	cleanup_free char *buf = NULL;
	size_t n = 0, cap = 4096;

	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *nb;
			if (cap >= max)
				return -EFBIG;
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max)
		return -EFBIG;
	buf[n] = '\0';
	*out = steal_ptr(&buf);
	if (len)
		*len = n;
	return 0;
}

int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len,
		      mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	cleanup_close int dfd = -1;
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  mode);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	/* The rename is durable only once the directory is synced. */
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	return 0;
}

int split_words(const char *s, char ***argv_out, int *argc_out)
{
	size_t slen = s ? strlen(s) : 0;
	size_t maxw = slen / 2 + 2;
	/* One block: the pointer array, then the words' bytes. */
	char **argv = malloc(maxw * sizeof(char *) + slen + maxw + 1);
	char *o;
	int argc = 0;
	const char *p = s;

	if (!argv)
		return -ENOMEM;
	o = (char *)(argv + maxw);
	while (p && *p) {
		char q = 0;
		bool inword = false;
		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		argv[argc++] = o;
		for (; *p; p++) {
			if (q) {
				if (*p == q) {
					q = 0;
				} else if (q == '"' && *p == '\\' &&
					   (p[1] == '"' || p[1] == '\\')) {
					*o++ = *++p;
				} else {
					*o++ = *p;
				}
			} else if (*p == '\'' || *p == '"') {
				q = *p;
			} else if (*p == '\\' && p[1]) {
				*o++ = *++p;
			} else if (isspace((unsigned char)*p)) {
				break;
			} else {
				*o++ = *p;
			}
			inword = true;
		}
		(void)inword;
		if (q) {
			free(argv);
			return -EINVAL;
		}
		*o++ = '\0';
	}
	argv[argc] = NULL;
	*argv_out = argv;
	*argc_out = argc;
	return 0;
}

/* Start time (field 22 of /proc/PID/stat) and state (field 3). */
static unsigned long long proc_stat(pid_t pid, char *state)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	int i;

	*state = '?';
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file_buf(path, buf, sizeof(buf)) <= 0)
		return 0;
	/* The command name may hold spaces and parentheses: skip past the
	 * last ')'; field 3 follows. */
	p = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return 0;
	*state = p[2];
	p++;
	for (i = 3; i < 22 && p; i++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p, " %llu", &start) != 1)
		start = 0;
	return start;
}

unsigned long long proc_start_time(pid_t pid)
{
	char state;
	return proc_stat(pid, &state);
}

unsigned long long proc_self_start_time(void)
{
	static pid_t pid;
	static unsigned long long start;
	pid_t me = getpid();

	/* Ours never changes (a forked child asks again): every record a
	 * service writes names it as creator. */
	if (__atomic_load_n(&pid, __ATOMIC_ACQUIRE) != me) {
		__atomic_store_n(&start, proc_start_time(me), __ATOMIC_RELAXED);
		__atomic_store_n(&pid, me, __ATOMIC_RELEASE);
	}
	return __atomic_load_n(&start, __ATOMIC_RELAXED);
}

char proc_state(pid_t pid)
{
	char state;
	proc_stat(pid, &state);
	return state;
}

bool proc_alive(pid_t pid, unsigned long long start)
{
	unsigned long long now;
	char state;

	if (pid <= 0)
		return false;
	now = proc_stat(pid, &state);
	/* A zombie has ended; it only waits for its parent to notice. */
	if (!now || state == 'Z' || state == 'X')
		return false;
	return start == 0 || now == start;
}

int read_boot_id(char *buf, size_t len)
{
	char *text = NULL;
	size_t n;
	int r = read_file("/proc/sys/kernel/random/boot_id", 256, &text, &n);

	if (r < 0) {
		snprintf(buf, len, "unknown");
		return r;
	}
	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	snprintf(buf, len, "%s", text);
	free(text);
	return 0;
}

bool name_valid(const char *s, size_t maxlen)
{
	size_t n = 0;

	if (!s || !*s || s[0] == '.' || s[0] == '-')
		return false;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= maxlen)
			return false;
		if (!(isalnum(c) || c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

int64_t tree_bytes(int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	struct stat top;
	int64_t sum = 0;

	if (!d) {
		close(dfd);
		return 0;
	}
	if (fstat(dirfd(d), &top) < 0) {
		closedir(d);
		return 0;
	}
	while ((e = readdir(d))) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* Another filesystem (an overlay clone's mount) holds the
		 * snapshot's files, counted there. */
		if (st.st_dev != top.st_dev)
			continue;
		/* Hard links (the copies of `databases N`) all live in
		 * the snapshot: each counts its share of the blocks. */
		sum += (int64_t)st.st_blocks * 512 /
		       (S_ISDIR(st.st_mode) || st.st_nlink < 1 ? 1
							     : st.st_nlink);
		if (S_ISDIR(st.st_mode)) {
			int fd = openat(dirfd(d), e->d_name, O_RDONLY |
					O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0)
				sum += tree_bytes(fd);
		}
	}
	closedir(d);
	return sum;
}

int pgsnap_parse_size(const char *text, unsigned long long *bytes)
{
	char num[32];
	size_t len = text ? strlen(text) : 0;
	int shift = 0;
	long l;

	switch (len && len < sizeof(num) ? text[len - 1] : 0) {
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	case 'T': case 't': shift = 40; break;
	}
	if (!len || len >= sizeof(num))
		return -EINVAL;
	snprintf(num, sizeof(num), "%.*s", (int)(shift ? len - 1 : len), text);
	if (parse_long(num, 0, (1L << 50) >> shift, &l) < 0)
		return -EINVAL;
	*bytes = (unsigned long long)l << shift;
	return 0;
}
