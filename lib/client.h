/* client.h - talking to the store's service (client.c). */
#ifndef PGSNAP_CLIENT_H
#define PGSNAP_CLIENT_H

#include "internal.h"
#include "json.h"

typedef struct svc_client svc_client;

/* Connect to the store's service and say hello.  With start, start it
 * when none runs; without, -ENOTCONN (no message) when none runs. */
int client_open(const pgsnap_store *s, bool start, svc_client **out,
		pgsnap_error *err);
/* Send a request line (with its newline) and read the answer into *doc
 * (json_free it).  A refusal is the service's error, its errno, in err
 * (doc then freed). */
int client_call(svc_client *c, const char *line, json_doc *doc,
		pgsnap_error *err);
void client_close(svc_client *c);
/* Does the service run with our binaries and settings? */
bool client_same_config(const svc_client *c, const pgsnap_store *s);

#endif
