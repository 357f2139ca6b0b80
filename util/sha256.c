/* util/sha256.c — SHA-256 via OpenSSL EVP (see sha256.h). */
#include "util/sha256.h"
#include "util/err.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

struct bt_sha256_ctx { EVP_MD_CTX *ctx; };

bt_sha256_ctx *bt_sha256_new(void)
{
    bt_sha256_ctx *h = malloc(sizeof *h);
    if (!h || !(h->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "baton: OpenSSL could not initialise SHA-256\n");
        exit(BT_EINTERNAL);
    }
    return h;
}

void bt_sha256_update(bt_sha256_ctx *h, const void *data, size_t len)
{
    if (len) EVP_DigestUpdate(h->ctx, data, len);
}

void bt_sha256_final(bt_sha256_ctx *h, uint8_t digest[32])
{
    unsigned int n = 32;
    EVP_DigestFinal_ex(h->ctx, digest, &n);
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void bt_sha256(const void *data, size_t len, uint8_t digest[32])
{
    bt_sha256_ctx *h = bt_sha256_new();
    bt_sha256_update(h, data, len);
    bt_sha256_final(h, digest);
}

void bt_sha256_hex(const uint8_t digest[32], char hex[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = d[digest[i] >> 4];
        hex[2 * i + 1] = d[digest[i] & 15];
    }
    hex[64] = '\0';
}
