/* url.c - the connection strings we hand out. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

size_t url_encode(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || strchr("-._~", c);
		if (plain) {
			if (o + 1 < len)
				out[o] = (char)c;
			o++;
		} else {
			if (o + 3 < len) {
				out[o] = '%';
				out[o + 1] = hex[c >> 4];
				out[o + 2] = hex[c & 15];
			}
			o += 3;
		}
	}
	if (len)
		out[o < len ? o : len - 1] = '\0';
	return o;
}

int pgsnap_clone_url(const pgsnap_clone *c, char *buf, size_t len)
{
	char user[200], host[1600], pw[200], db[200];

	url_encode(c->user, user, sizeof(user));
	url_encode(c->dbname, db, sizeof(db));
	if (c->host[0]) {
		url_encode(c->password, pw, sizeof(pw));
		return snprintf(buf, len, "postgresql://%s%s%s@%s:%d/%s", user,
				pw[0] ? ":" : "", pw, c->host, c->port, db);
	}
	/* A socket directory goes in the host part, %-encoded: libpq and
	 * the drivers built on it read "%2F..." as a socket path. */
	url_encode(c->sockdir, host, sizeof(host));
	return snprintf(buf, len, "postgresql://%s@%s:%d/%s", user, host,
			c->port, db);
}

int pgsnap_clone_jdbc_url(const pgsnap_clone *c, char *buf, size_t len)
{
	char user[200], pw[200], db[200];

	if (!c->host[0]) {
		if (len)
			buf[0] = '\0';
		return 0; /* JDBC cannot use a Unix socket: needs -t */
	}
	url_encode(c->user, user, sizeof(user));
	url_encode(c->dbname, db, sizeof(db));
	url_encode(c->password, pw, sizeof(pw));
	return snprintf(buf, len, "jdbc:postgresql://%s:%d/%s?user=%s%s%s",
			c->host, c->port, db, user, pw[0] ? "&password=" : "",
			pw);
}
