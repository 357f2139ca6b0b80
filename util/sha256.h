/* util/sha256.h — SHA-256 through OpenSSL EVP, one-shot and streaming.
 *
 * Owns: the hashing used by archives (manifest, sidecar) and data caches.
 */
#ifndef BATON_UTIL_SHA256_H
#define BATON_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct bt_sha256_ctx bt_sha256_ctx;          /* opaque streaming context */
bt_sha256_ctx *bt_sha256_new(void);               /* never NULL (exits 70 on OOM) */
void bt_sha256_update(bt_sha256_ctx *h, const void *data, size_t len);
void bt_sha256_final(bt_sha256_ctx *h, uint8_t digest[32]); /* also frees h */

void bt_sha256(const void *data, size_t len, uint8_t digest[32]);
/* 64 lowercase hex digits + NUL */
void bt_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
