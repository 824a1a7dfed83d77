/*
 * client.c - talking to the store's service (docs/protocol.md): what the
 * public API does when the service runs, so that `pgsnap new` is a request
 * to a process that has everything at hand.
 *
 * A store handle keeps a few connections open for reuse (the hello costs
 * a round trip); a connection that failed is dropped, not reused.
 */
#include "internal.h"
#include "client.h"
#include "json.h"
#include "proto.h"
#include "service.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define CONNECT_WAIT_MS 3000

struct svc_client {
	int fd;
	char config[20];             /* the service's settings (store_cfg) */
	size_t len;
	char buf[PROTO_LINE_MAX];
};

static int connect_once(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int read_answer(svc_client *c, json_doc *doc, pgsnap_error *err)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		ssize_t n;
		int r;

		if (nl) {
			size_t l = (size_t)(nl - c->buf);
			r = json_parse(c->buf, l, doc);
			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return r < 0 ? pgsnap_err(err, EPROTO, "the service "
						  "answered with malformed JSON") : 0;
		}
		if (c->len == sizeof(c->buf))
			return pgsnap_err(err, EPROTO, "the service's answer is "
					  "too long");
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pgsnap_err(err, ECONNRESET, "the service went away "
					  "before it answered");
		c->len += (size_t)n;
	}
}

int client_call(svc_client *c, const char *line, json_doc *doc,
		pgsnap_error *err)
{
	size_t len = strlen(line), off = 0;
	const json_node *ok;
	int r;

	while (off < len) {
		ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pgsnap_err(err, ECONNRESET, "the service went "
					  "away");
		off += (size_t)n;
	}
	if ((r = read_answer(c, doc, err)) < 0)
		return r;
	ok = json_get(doc, doc->nodes, "ok");
	if (ok && ok->type == JSON_BOOL && ok->num)
		return 0;
	{
		const char *msg = json_str(doc, json_get(doc, doc->nodes, "error"));
		const char *en = json_str(doc, json_get(doc, doc->nodes, "errno"));
		r = pgsnap_err(err, en ? proto_errno_code(en) : EIO, "%s",
			       msg ? msg : "the service refused");
	}
	json_free(doc);
	return r;
}

int client_open(const pgsnap_store *s, bool start, svc_client **out,
		pgsnap_error *err)
{
	char path[700];
	int64_t deadline = mono_us() + CONNECT_WAIT_MS * 1000LL;
	svc_client *c;
	json_doc doc;
	int fd, r;

	*out = NULL;
	if ((r = service_sock_path(s, path, sizeof(path))) < 0)
		return pgsnap_err(err, r, "no path for the service socket");
again:
	for (;;) {
		fd = connect_once(path);
		if (fd >= 0)
			break;
		if (fd != -ENOENT && fd != -ECONNREFUSED)
			return pgsnap_errno(err, fd, "cannot connect to %s", path);
		/* Not there: a service starting (its lock is held, it will
		 * listen in a moment), or none, or one leaving. */
		if (!service_running(s)) {
			if (!start)
				return -ENOTCONN;
			if ((r = service_ensure(s, err)) < 0)
				return r;
			continue;
		}
		if (mono_us() > deadline)
			return pgsnap_err(err, ETIMEDOUT, "the service holds its "
					  "lock but does not listen on %s", path);
		poll(NULL, 0, 2);
	}
	c = malloc(sizeof(*c));
	if (!c) {
		close(fd);
		return pgsnap_err(err, ENOMEM, "out of memory");
	}
	c->fd = fd;
	c->len = 0;
	if ((r = client_call(c, PROTO_HELLO "\n", &doc, err)) < 0) {
		client_close(c);
		/* A service leaving as we came: start another (bounded). */
		if (r == -ECONNRESET && start && mono_us() < deadline)
			goto again;
		return r;
	}
	snprintf(c->config, sizeof(c->config), "%s",
		 json_str(&doc, json_get(&doc, doc.nodes, "config")) ?: "");
	json_free(&doc);
	*out = c;
	return 0;
}

bool client_same_config(const svc_client *c, const pgsnap_store *s)
{
	return !strcmp(c->config, s->cfg.sig);
}

void client_close(svc_client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}
