/* json.h - writing and reading JSON (json.c). */
#ifndef PGSNAP_JSON_H
#define PGSNAP_JSON_H

#include "internal.h"

/* A growing string; p is malloc'ed (free it), NUL-terminated; oom is set
 * (and the text incomplete) when memory ran out. */
typedef struct jbuf {
	char *p;
	size_t len, cap;
	bool oom;
} jbuf;

void jb_raw(jbuf *b, const char *s);
void jb_printf(jbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* s as a JSON string (invalid UTF-8 as U+FFFD). */
void jb_str(jbuf *b, const char *s);
/* `"key": ` inside an object, with ", " before it unless first. */
void jb_key(jbuf *b, const char *key);
void jb_field(jbuf *b, const char *key, const char *value); /* NULL: null */
void jb_field_int(jbuf *b, const char *key, long long v);
/* A clone as an object: the fields of docs/protocol.md, "A clone"; or
 * only its fields, inside an object the caller opened. */
void jb_clone(jbuf *b, const pgsnap_clone *c);
void jb_clone_fields(jbuf *b, const pgsnap_clone *c);
/* The service's answer to new: one clone's fields, or (list) a list of n;
 * built (may be NULL): the snapshots built on the way, as JSON strings. */
void jb_new_answer(jbuf *b, const char *built, const pgsnap_clone *v,
		   size_t n, bool list);

typedef enum json_type {
	JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type;

/* A node of a parsed document; children and siblings are indexes into
 * json_doc.nodes (-1: none), strings offsets into json_doc.strs. */
typedef struct json_node {
	json_type type;
	double num;                  /* NUMBER; BOOL: 1 or 0 */
	long str;                    /* STRING */
	long key;                    /* member of an object: its name */
	int child, next;             /* ARRAY, OBJECT: first child */
	int count;
} json_node;

typedef struct json_doc {
	json_node *nodes;            /* nodes[0] is the root */
	size_t n;
	char *strs;
} json_doc;

/* Parse text (exactly one value); -EINVAL for malformed input, -E2BIG
 * past 16 levels.  Free with json_free. */
int json_parse(const char *text, size_t len, json_doc *doc);
void json_free(json_doc *doc);
/* Member key of object obj, or NULL. */
const json_node *json_get(const json_doc *d, const json_node *obj,
			  const char *key);
/* The text of a STRING node, or NULL for anything else. */
const char *json_str(const json_doc *d, const json_node *n);
/* A clone object (jb_clone's fields) into *c. */
int json_to_clone(const json_doc *d, const json_node *o, pgsnap_clone *c);

#endif
