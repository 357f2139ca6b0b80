/* engine/data_cache.c — the token-id cache file (see data.h, docs/jobs.md).
 *
 * Layout (all integers little-endian):
 *   0   8 bytes  magic "BTIDS\0\0\1"
 *   8   u32      version (1)
 *   12  u32      reserved (0)
 *   16  32 bytes key (bt_id_cache_key)
 *   48  u64      n_rows
 *   56  u64      n_ids
 *   64  u64      off[n_rows + 1]   (off[0] = 0, non-decreasing, off[n_rows] = n_ids)
 *   ..  i32      ids[n_ids]
 *   ..  32 bytes SHA-256 of every byte before it
 * Must not: know what the ids mean (tokenizer, task): it stores rows of int32.
 */
#include "engine/data.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "engine/data_cache.c assumes a little-endian host (x86-64, aarch64)"
#endif

#define HDR 64u

void bt_id_cache_key(const uint8_t data_sha256[32], const uint8_t vocab_sha256[32], const char *settings,
                     uint8_t key[32])
{
    bt_sha256_ctx *h = bt_sha256_new();
    static const char tag[] = "baton-id-cache/1\n";
    bt_sha256_update(h, tag, sizeof tag - 1);
    bt_sha256_update(h, data_sha256, 32);
    bt_sha256_update(h, vocab_sha256, 32);
    if (settings) bt_sha256_update(h, settings, strlen(settings));
    bt_sha256_final(h, key);
}

void bt_id_table_free(bt_id_table *t)
{
    free(t->off);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

int bt_id_cache_write(const char *path, const uint8_t key[32], const bt_id_table *t)
{
    uint64_t n_ids = t->n_rows ? t->off[t->n_rows] : 0;
    if (t->n_rows && t->off[0] != 0) return bt_fail(BT_EINTERNAL, "%s: id table offsets do not start at 0", path);
    for (uint64_t r = 0; r < t->n_rows; r++)
        if (t->off[r + 1] < t->off[r]) return bt_fail(BT_EINTERNAL, "%s: id table offsets decrease at row %llu", path,
                                                       (unsigned long long)r);
    size_t total = HDR + (size_t)(t->n_rows + 1) * 8 + (size_t)n_ids * 4 + 32;
    uint8_t *b = bt_xmalloc(total);
    memset(b, 0, HDR);
    memcpy(b, BT_ID_CACHE_MAGIC, 8);
    uint32_t v = BT_ID_CACHE_VERSION;
    memcpy(b + 8, &v, 4);
    memcpy(b + 16, key, 32);
    memcpy(b + 48, &t->n_rows, 8);
    memcpy(b + 56, &n_ids, 8);
    size_t p = HDR;
    if (t->n_rows) memcpy(b + p, t->off, (size_t)(t->n_rows + 1) * 8);
    else memset(b + p, 0, 8);
    p += (size_t)(t->n_rows + 1) * 8;
    if (n_ids) memcpy(b + p, t->ids, (size_t)n_ids * 4);
    p += (size_t)n_ids * 4;
    bt_sha256(b, p, b + p);
    int rc = bt_write_file_atomic(path, b, total);
    free(b);
    if (rc) return bt_fail_context(rc, "token cache");
    return BT_OK;
}

int bt_id_cache_read(const char *path, const uint8_t key[32], bt_id_table *t)
{
    memset(t, 0, sizeof *t);
    bt_mapping m;
    int rc = bt_map_file(path, &m);
    if (rc) return rc;
    const uint8_t *b = m.data;
    rc = BT_EDATA;
    if (m.len < HDR + 8 + 32) { bt_fail(rc, "%s: token cache is %zu bytes, too short; it will be rebuilt", path, m.len); goto out; }
    if (memcmp(b, BT_ID_CACHE_MAGIC, 8)) { bt_fail(rc, "%s: not a baton token cache (bad magic)", path); goto out; }
    uint32_t ver;
    memcpy(&ver, b + 8, 4);
    if (ver != BT_ID_CACHE_VERSION) {
        bt_fail(rc, "%s: token cache version %u, this baton reads %u; it will be rebuilt", path, ver, BT_ID_CACHE_VERSION);
        goto out;
    }
    uint8_t d[32];
    bt_sha256(b, m.len - 32, d);
    if (memcmp(d, b + m.len - 32, 32)) { bt_fail(rc, "%s: token cache checksum mismatch (damaged); it will be rebuilt", path); goto out; }
    if (memcmp(b + 16, key, 32)) {
        bt_fail(rc, "%s: token cache is for other data, vocabulary or settings (stale); it will be rebuilt", path);
        goto out;
    }
    uint64_t n_rows, n_ids;
    memcpy(&n_rows, b + 48, 8);
    memcpy(&n_ids, b + 56, 8);
    /* sizes must add up exactly (and not overflow) */
    if (n_rows > (m.len / 8) || n_ids > (m.len / 4) ||
        HDR + (n_rows + 1) * 8 + n_ids * 4 + 32 != (uint64_t)m.len) {
        bt_fail(rc, "%s: token cache sizes do not match the file length; it will be rebuilt", path);
        goto out;
    }
    t->n_rows = n_rows;
    t->off = bt_xmalloc((size_t)(n_rows + 1) * 8);
    memcpy(t->off, b + HDR, (size_t)(n_rows + 1) * 8);
    if (t->off[0] != 0 || t->off[n_rows] != n_ids) {
        bt_fail(rc, "%s: token cache offsets are inconsistent; it will be rebuilt", path);
        goto out;
    }
    for (uint64_t r = 0; r < n_rows; r++)
        if (t->off[r + 1] < t->off[r]) {
            bt_fail(rc, "%s: token cache offsets decrease at row %llu; it will be rebuilt", path, (unsigned long long)r);
            goto out;
        }
    t->ids = bt_xmalloc(n_ids ? (size_t)n_ids * 4 : 4);
    if (n_ids) memcpy(t->ids, b + HDR + (n_rows + 1) * 8, (size_t)n_ids * 4);
    rc = BT_OK;
out:
    bt_unmap_file(&m);
    if (rc) bt_id_table_free(t);
    return rc;
}
