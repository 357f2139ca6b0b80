/* engine/tokjson_charsmap.c — sentencepiece's precompiled character map (the
 * `precompiled_charsmap` of a Precompiled normalizer, base64 in tokenizer.json).
 *
 * Owns: the blob's layout — a little-endian u32 byte size of the trie, the
 * trie as that many bytes of u32 units (a darts-clone double array), then the
 * replacement strings, NUL-separated, UTF-8 — and its lookup: the crate's
 * common-prefix search whose FIRST (shortest) hit gives the replacement of
 * the whole chunk.
 * Must not: read outside the blob whatever the units say (an index out of
 * range is "no mapping"; the crate would panic), or decide what a chunk is
 * (engine/tokjson_norm.c does).
 */
#include "engine/tokjson.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

struct tj_charsmap {
    uint32_t *units;
    size_t n_units;
    char *norm;
    size_t norm_n;
};

int tj_charsmap_parse(const uint8_t *blob, size_t n, tj_charsmap **out, const char *where)
{
    *out = NULL;
    if (n < 4)
        return bt_fail(BT_ECONFIG, "%s: the char map is %zu bytes, shorter than its 4-byte header: the file is "
                       "damaged; re-save the tokenizer", where, n);
    uint32_t trie_bytes = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
    size_t units = trie_bytes / 4;
    if (units > (n - 4) / 4)
        return bt_fail(BT_ECONFIG, "%s: the char map says its trie has %u bytes but only %zu follow the header: the "
                       "file is damaged; re-save the tokenizer", where, trie_bytes, n - 4);
    const uint8_t *norm = blob + 4 + units * 4, *end = blob + n;
    for (const uint8_t *p = norm; p < end;) {
        int32_t cp;
        int k = bt_utf8_decode(p, end, &cp);
        if (!k)
            return bt_fail(BT_ECONFIG, "%s: the char map's replacement strings are not UTF-8 (byte %zu of the blob): "
                           "the file is damaged; re-save the tokenizer", where, (size_t)(p - blob));
        p += k;
    }
    tj_charsmap *cm = bt_xcalloc(1, sizeof *cm);
    cm->n_units = units;
    cm->units = bt_xmalloc((units ? units : 1) * sizeof *cm->units);
    for (size_t i = 0; i < units; i++) {
        const uint8_t *q = blob + 4 + 4 * i;
        cm->units[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    }
    cm->norm_n = (size_t)(end - norm);
    cm->norm = bt_xmalloc(cm->norm_n + 1);
    memcpy(cm->norm, norm, cm->norm_n);
    cm->norm[cm->norm_n] = '\0';
    *out = cm;
    return 0;
}

void tj_charsmap_free(tj_charsmap *cm)
{
    if (!cm) return;
    free(cm->units);
    free(cm->norm);
    free(cm);
}

static inline uint32_t u_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t u_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static inline int u_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t u_value(uint32_t u) { return u & ((1u << 31) - 1); }

static int is_boundary(const char *s, size_t n, size_t i)
{
    return i >= n || ((uint8_t)s[i] & 0xC0) != 0x80;
}

const char *tj_charsmap_lookup(const tj_charsmap *cm, const uint8_t *key, size_t n, size_t *out_n)
{
    if (!cm->n_units) return NULL;
    size_t pos = u_offset(cm->units[0]);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = key[i];
        if (!c) break;
        pos ^= c;
        if (pos >= cm->n_units) return NULL;
        uint32_t u = cm->units[pos];
        if (u_label(u) != c) return NULL;
        pos ^= u_offset(u);
        if (u_has_leaf(u)) {
            if (pos >= cm->n_units) return NULL;
            size_t a = u_value(cm->units[pos]);
            if (a > cm->norm_n || !is_boundary(cm->norm, cm->norm_n, a)) return NULL;
            size_t b = a;
            while (b < cm->norm_n && cm->norm[b]) b++;
            *out_n = b - a;
            return cm->norm + a;
        }
    }
    return NULL;
}
