/* state/archive_read_hash.h — private to state/archive.c: SHA-256 for the
 * archive reader, with a two-lane form that hashes the same bytes into two
 * independent digests (the whole file for the sidecar and the current member
 * for the manifest) in one pass.
 *
 * With the x86 SHA extensions (checked at run time, plus a self-test against
 * OpenSSL) the two lanes share the message schedule and interleave their
 * rounds, which are latency-bound, so two digests cost little more than one.
 * Elsewhere every call goes through OpenSSL (util/sha256.h) and the two-lane
 * form reports that it cannot help (returns 0).
 */
#ifndef BATON_STATE_ARCHIVE_READ_HASH_H
#define BATON_STATE_ARCHIVE_READ_HASH_H

#include "util/sha256.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fast;              /* 1: the SHA-extension state below; 0: ossl */
    bt_sha256_ctx *ossl;
    uint32_t st[8];
    uint64_t total;        /* bytes hashed */
    uint8_t buf[64];
    unsigned nbuf;
} bt_ahash;

/* 1 when the two-lane form is fast here (SHA extensions present and the
 * self-test passed; BATON_ARCHIVE_NO_SHANI=1 in the environment forces 0). */
int bt_ahash_fast(void);
void bt_ahash_init(bt_ahash *h);
void bt_ahash_update(bt_ahash *h, const void *p, size_t n);
void bt_ahash_final(bt_ahash *h, uint8_t digest[32]);
/* Hashes a prefix of p[0..n) into both a and b (as bt_ahash_update on each
 * would) when both are fast and at a 64-byte block boundary; returns the
 * number of bytes consumed (a multiple of 64, possibly 0). The caller passes
 * the rest to bt_ahash_update. */
size_t bt_ahash_update2(bt_ahash *a, bt_ahash *b, const void *p, size_t n);

#endif
