/* sha256.h - SHA-256 (FIPS 180-4), for content keys; not for secrets. */
#ifndef PGSNAP_SHA256_H
#define PGSNAP_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
	uint32_t h[8];
	uint64_t len;          /* bytes hashed so far */
	unsigned char buf[64];
	size_t used;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, unsigned char out[32]);
/* 64 lowercase hex digits and a NUL. */
void sha256_hex(const unsigned char digest[32], char out[65]);
/* Hash a whole file; -errno when it cannot be read. */
int sha256_file(const char *path, unsigned char out[32]);

#endif
