/* engine/tokjson_text.c — the containers of the tokenizer.json pipeline.
 *
 * Owns: normalized-string buffers and NormalizedString::transform's alignment
 * rule, the vocabulary hash (bytes -> id), the 64-bit map (merges, trie
 * edges), strict UTF-8 decoding and Python's "replace" error rule.
 * Must not: know any tokenizer component; allocate except through bt_x*.
 */
#include "engine/tokjson.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

void tj_text_reserve(tj_text *t, size_t n)
{
    if (n <= t->cap) return;
    size_t cap = t->cap ? t->cap : 64;
    while (cap < n) cap *= 2;
    t->cp = bt_xrealloc(t->cp, cap * sizeof *t->cp);
    t->orig = bt_xrealloc(t->orig, cap * sizeof *t->orig);
    t->cap = cap;
}

void tj_text_push(tj_text *t, int32_t cp, int32_t orig)
{
    if (t->n == t->cap) tj_text_reserve(t, t->n + 1);
    t->cp[t->n] = cp;
    t->orig[t->n++] = orig;
}

void tj_text_free(tj_text *t)
{
    free(t->cp);
    free(t->orig);
    memset(t, 0, sizeof *t);
}

void tj_trs_push(tj_trs *l, int32_t cp, int32_t chg)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = bt_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].cp = cp;
    l->v[l->n++].chg = chg;
}

/* NormalizedString::transform_range over the whole string, one entry per char:
 * an inserted char (chg > 0) takes the alignment of the old char before the
 * read position ((0, 0) at the very start); any other takes the alignment of
 * the old char at the read position, then consumes it and -chg more. */
void tj_transform(tj_text *dst, const tj_text *src, const tj_trs *l, size_t initial, int32_t base)
{
    dst->n = 0;
    tj_text_reserve(dst, l->n);
    size_t off = initial;
    for (size_t i = 0; i < l->n; i++) {
        int32_t chg = l->v[i].chg, al;
        if (chg > 0) al = off < 1 ? base : src->orig[off - 1 < src->n ? off - 1 : src->n - 1];
        else al = off < src->n ? src->orig[off] : (src->n ? src->orig[src->n - 1] : base);
        dst->cp[dst->n] = l->v[i].cp;
        dst->orig[dst->n++] = al;
        if (chg <= 0) off += 1 + (size_t)(-(int64_t)chg);
    }
}

/* ---------------------------------------------------------------- hashing */

static inline uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    return h;
}

static void vocab_grow(tj_vocab *v)
{
    size_t cap = v->table ? (v->mask + 1) * 2 : 64;
    struct tj_slot *t = bt_xcalloc(cap, sizeof *t);
    for (size_t i = 0; v->table && i <= v->mask; i++) {
        if (!v->table[i].hash) continue;
        int32_t k = v->table[i].idx;
        size_t j = (size_t)hash_bytes((const uint8_t *)v->arena + v->off[k], v->len[k]) & (cap - 1);
        while (t[j].hash) j = (j + 1) & (cap - 1);
        t[j] = v->table[i];
    }
    free(v->table);
    v->table = t;
    v->mask = cap - 1;
}

int32_t tj_vocab_get(const tj_vocab *v, const char *key, size_t n)
{
    if (!v->table) return -1;
    uint64_t h64 = hash_bytes((const uint8_t *)key, n);
    uint32_t h = (uint32_t)(h64 >> 32) | 1u;
    size_t i = (size_t)h64 & v->mask;
    for (;;) {
        const struct tj_slot *s = &v->table[i];
        if (!s->hash) return -1;
        if (s->hash == h && v->len[s->idx] == n && !memcmp(v->arena + v->off[s->idx], key, n)) return v->ids[s->idx];
        i = (i + 1) & v->mask;
    }
}

void tj_vocab_put(tj_vocab *v, const char *key, size_t n, int32_t id)
{
    if (!v->table || (v->n + 1) * 2 > v->mask + 1) vocab_grow(v);
    uint64_t h64 = hash_bytes((const uint8_t *)key, n);
    uint32_t h = (uint32_t)(h64 >> 32) | 1u;
    size_t i = (size_t)h64 & v->mask;
    for (;;) {
        struct tj_slot *s = &v->table[i];
        if (!s->hash) break;
        if (s->hash == h && v->len[s->idx] == n && !memcmp(v->arena + v->off[s->idx], key, n)) {
            v->ids[s->idx] = id;
            return;
        }
        i = (i + 1) & v->mask;
    }
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->off = bt_xrealloc(v->off, v->cap * sizeof *v->off);
        v->len = bt_xrealloc(v->len, v->cap * sizeof *v->len);
        v->ids = bt_xrealloc(v->ids, v->cap * sizeof *v->ids);
    }
    if (v->arena_n + n + 1 > v->arena_cap) {
        size_t cap = v->arena_cap ? v->arena_cap : 4096;
        while (cap < v->arena_n + n + 1) cap *= 2;
        v->arena = bt_xrealloc(v->arena, cap);
        v->arena_cap = cap;
    }
    memcpy(v->arena + v->arena_n, key, n);
    v->arena[v->arena_n + n] = '\0';
    v->off[v->n] = (uint32_t)v->arena_n;
    v->len[v->n] = (uint32_t)n;
    v->ids[v->n] = id;
    v->arena_n += n + 1;
    if (n > v->max_len) v->max_len = n;
    v->table[i].hash = h;
    v->table[i].idx = (int32_t)v->n++;
}

void tj_vocab_free(tj_vocab *v)
{
    free(v->arena);
    free(v->off);
    free(v->len);
    free(v->ids);
    free(v->table);
    memset(v, 0, sizeof *v);
}

static inline size_t map_slot(uint64_t key, size_t mask)
{
    key ^= key >> 33; /* murmur3's fmix64 */
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ull;
    key ^= key >> 33;
    return (size_t)key & mask;
}

static void map_grow(tj_map *m)
{
    size_t cap = m->keys ? (m->mask + 1) * 2 : 256;
    uint64_t *k = bt_xcalloc(cap, sizeof *k), *v = bt_xmalloc(cap * sizeof *v);
    for (size_t i = 0; m->keys && i <= m->mask; i++) {
        if (!m->keys[i]) continue;
        size_t j = map_slot(m->keys[i], cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->mask = cap - 1;
}

void tj_map_put(tj_map *m, uint64_t key, uint64_t val)
{
    if (!m->keys || (m->n + 1) * 2 > m->mask + 1) map_grow(m);
    key++;
    size_t i = map_slot(key, m->mask);
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & m->mask;
    if (!m->keys[i]) m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
}

int tj_map_get(const tj_map *m, uint64_t key, uint64_t *val)
{
    if (!m->keys) return 0;
    key++;
    size_t i = map_slot(key, m->mask);
    for (;;) {
        if (!m->keys[i]) return 0;
        if (m->keys[i] == key) { *val = m->vals[i]; return 1; }
        i = (i + 1) & m->mask;
    }
}

void tj_map_free(tj_map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- UTF-8 */

/* Unicode's "maximal subpart" rule (what Python's decode(errors="replace")
 * does): the bytes that start a well-formed sequence but stop short count as
 * one replacement; a byte that cannot start one is one replacement. */
int tj_utf8_invalid_len(const uint8_t *p, const uint8_t *end)
{
    uint8_t b = p[0];
    size_t avail = (size_t)(end - p);
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b < 0xE0) need = 2;
    else if (b >= 0xE0 && b < 0xF0) {
        need = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b < 0xF5) {
        need = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else return 1;
    int k = 1;
    if (avail < 2 || p[1] < lo || p[1] > hi) return 1;
    k = 2;
    while (k < need && (size_t)k < avail && (p[k] & 0xC0) == 0x80) k++;
    return k < need ? k : 1; /* k == need would be valid: not called then */
}
