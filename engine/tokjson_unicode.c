/* engine/tokjson_unicode.c — character classes and normalization forms of the
 * tokenizer.json pipeline, as the `tokenizers` crate sees them.
 *
 * Owns: the base rules derived from utf8proc (categories, decompositions) and
 * their correction by the generated table engine/tokjson_unicode_exc.h
 * (tests/reference/gen_tokjson_unicode.py enumerates every code point through
 * the reference); the canonical composition table.
 * Must not: keep mutable global state (the composition table belongs to the
 * tokenizer that asked for it).
 */
#include "engine/tokjson.h"
#include "engine/tokenizer_unicode.h"
#include "util/mem.h"

#include <stdlib.h>
#include <utf8proc.h>

struct tj_exc_range { int32_t first, last; int value; };
struct tj_exc_decomp { int32_t cp; int compat; int off, n; };

#include "engine/tokjson_unicode_exc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int range_find(const struct tj_exc_range *t, size_t n, int32_t cp)
{
    size_t lo = 0, hi = n - 1; /* the last entry is a sentinel */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid].last < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n - 1 && t[lo].first <= cp && cp <= t[lo].last) return t[lo].value;
    return -1;
}

static int is_white_space(int32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

static inline int with_exc(int base, const struct tj_exc_range *t, size_t n, int32_t cp)
{
    int e = range_find(t, n, cp);
    return e >= 0 ? e : base;
}

uint16_t tju_flags(int32_t cp)
{
    int cat = utf8proc_category(cp);
    int L = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
    int M = cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME;
    int N = cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
    int pc = cat == UTF8PROC_CATEGORY_PC;
    uint16_t f = 0;
    if (with_exc(L, TJ_EXC_L, NELEM(TJ_EXC_L), cp)) f |= TJU_L;
    if (with_exc(N, TJ_EXC_N, NELEM(TJ_EXC_N), cp)) f |= TJU_N;
    if (is_white_space(cp)) f |= TJU_WS;
    if (with_exc(L || M || N || pc, TJ_EXC_WORD_OG, NELEM(TJ_EXC_WORD_OG), cp)) f |= TJU_WORD_OG;
    int wrx = L || M || cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || pc || cp == 0x200C || cp == 0x200D;
    if (with_exc(wrx, TJ_EXC_WORD_RX, NELEM(TJ_EXC_WORD_RX), cp)) f |= TJU_WORD_RX;
    if (with_exc(N, TJ_EXC_NUMERIC, NELEM(TJ_EXC_NUMERIC), cp)) f |= TJU_NUMERIC;
    if (with_exc(M, TJ_EXC_MARK, NELEM(TJ_EXC_MARK), cp)) f |= TJU_MARK;
    if (toku_flags(cp) & TOKU_PUNCT) f |= TJU_PUNCT;
    return f;
}

int tju_grapheme_break(int32_t a, int32_t b, int32_t *state)
{
    int brk = utf8proc_grapheme_break_stateful(a, b, state);
    if (b < 0x800) return brk;
    int e = range_find(TJ_EXC_EXTEND, NELEM(TJ_EXC_EXTEND), b);
    int cat = utf8proc_category(a);
    if (e < 0 || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP) return brk;
    return !e;
}

int tju_decompose(int32_t cp, int compat, int32_t *out, int cap)
{
    size_t lo = 0, hi = NELEM(TJ_EXC_DECOMP) - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct tj_exc_decomp *e = &TJ_EXC_DECOMP[mid];
        if (e->cp < cp || (e->cp == cp && e->compat < compat)) lo = mid + 1;
        else hi = mid;
    }
    const struct tj_exc_decomp *e = &TJ_EXC_DECOMP[lo];
    if (lo < NELEM(TJ_EXC_DECOMP) - 1 && e->cp == cp && e->compat == compat) {
        int n = e->n < cap ? e->n : cap;
        for (int i = 0; i < n; i++) out[i] = TJ_EXC_DECOMP_CPS[e->off + i];
        return n;
    }
    utf8proc_int32_t buf[32];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, buf, 32, UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0),
                                                 &last);
    if (n < 1 || n > 32 || n > cap) { out[0] = cp; return 1; }
    for (int i = 0; i < n; i++) out[i] = buf[i];
    return (int)n;
}

/* ---------------------------------------------------------------- composition */

struct tj_compose { tj_map pairs; };

#define HANGUL_S 0xAC00
#define HANGUL_L 0x1100
#define HANGUL_V 0x1161
#define HANGUL_T 0x11A7
#define HANGUL_NV 21
#define HANGUL_NT 28
#define HANGUL_N (HANGUL_NV * HANGUL_NT)
#define HANGUL_COUNT (19 * HANGUL_N)

static int no_compose(int32_t cp)
{
    for (size_t i = 0; i + 1 < NELEM(TJ_EXC_NOCOMPOSE); i++)
        if (TJ_EXC_NOCOMPOSE[i] == cp) return 1;
    return 0;
}

/* Primary composites: canonical decompositions that are not excluded, as
 * (first, second) pairs; the first of a longer full decomposition is the
 * composite of its prefix (built shortest first). */
tj_compose *tju_compose_new(void)
{
    tj_compose *c = bt_xcalloc(1, sizeof *c);
    for (int len = 2; len <= 4; len++) {
        for (int32_t cp = 0xA0; cp < 0x110000; cp++) {
            if (cp >= 0xD800 && cp < 0xE000) continue;
            if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_COUNT) continue;
            const utf8proc_property_t *p = utf8proc_get_property(cp);
            if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0 || p->comp_exclusion) continue;
            if (no_compose(cp)) continue;
            int32_t d[8];
            int n = tju_decompose(cp, 0, d, 8);
            if (n != len) continue;
            int32_t first = d[0];
            for (int i = 1; i + 1 < n && first >= 0; i++) first = tju_compose(c, first, d[i]);
            if (first < 0) continue;
            uint64_t key = ((uint64_t)(uint32_t)first << 21) | (uint32_t)d[n - 1];
            uint64_t old;
            if (!tj_map_get(&c->pairs, key, &old)) tj_map_put(&c->pairs, key, (uint64_t)cp);
        }
    }
    return c;
}

void tju_compose_free(tj_compose *c)
{
    if (!c) return;
    tj_map_free(&c->pairs);
    free(c);
}

int32_t tju_compose(const tj_compose *c, int32_t a, int32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + 19 && b >= HANGUL_V && b < HANGUL_V + HANGUL_NV)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_NV + (b - HANGUL_V)) * HANGUL_NT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_COUNT && (a - HANGUL_S) % HANGUL_NT == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_NT)
        return a + (b - HANGUL_T);
    uint64_t v;
    if (tj_map_get(&c->pairs, ((uint64_t)(uint32_t)a << 21) | (uint32_t)b, &v)) return (int32_t)v;
    return -1;
}
