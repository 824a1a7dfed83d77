/* error.c - the one error convention: negative errno + a one-line message. */
#include "internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

static int norm(int code)
{
	if (code > 0)
		return -code;
	return code ? code : -EIO;
}

int pgsnap_err(pgsnap_error *err, int code, const char *fmt, ...)
{
	code = norm(code);
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int pgsnap_errno(pgsnap_error *err, int code, const char *fmt, ...)
{
	code = norm(code);
	if (err) {
		va_list ap;
		size_t n;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
			 strerror(-code));
		err->code = code;
	}
	return code;
}

int pgsnap_err_wrap(pgsnap_error *err, int code, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err->msg)];
	va_list ap;

	code = norm(code);
	if (!err)
		return code;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	err->code = code;
	return code;
}

void pgsnap_freep(void *p)
{
	free(*(void **)p);
}

void pgsnap_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

void pgsnap_closedirp(void *p)
{
	DIR *d = *(DIR **)p;

	if (d)
		closedir(d);
}
