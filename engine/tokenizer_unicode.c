/* engine/tokenizer_unicode.c — per-code-point classes for the BERT tokenizer.
 *
 * Owns: how utf8proc's properties become the classes BertNormalizer and
 * BertPreTokenizer use, corrected by the generated exception table.
 * Must not: allocate or keep mutable global state.
 *
 * The crate's rules (tokenizers 0.20, normalizers/bert.rs, pre_tokenizers/bert.rs):
 *   clean_text removes c when c == 0, c == U+FFFD or `is_other(c)` (Cc, Cf, Co,
 *   Cs of the `unicode_categories` crate, whose table does NOT include Cn: an
 *   unassigned code point is kept), except \t \n \r; then maps whitespace
 *   (Rust char::is_whitespace = White_Space, plus \t \n \r) to ' '.
 *   strip_accents = NFD, then drop `is_mark_nonspacing` (Mn).
 *   lowercase = Rust char::to_lowercase per char (U+0130 -> "i\u0307").
 *   pre-tokenizer: split on char::is_whitespace (removed), isolate
 *   is_ascii_punctuation || is_punctuation (Pc Pd Ps Pe Pi Pf Po).
 * Where utf8proc's newer tables disagree with the crate's old ones,
 * engine/tokenizer_unicode_exc.h (from tests/reference/gen_unicode_exceptions.py,
 * which enumerates every code point through the reference) says what the crate does.
 */
#include "engine/tokenizer_unicode.h"

#include <stddef.h>
#include <utf8proc.h>

struct tok_exc_range { int32_t first, last; int value; };
struct tok_exc_map { int32_t cp; int32_t to[4]; };

#include "engine/tokenizer_unicode_exc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* value of the range holding cp, or -1 (tables end with a 0x110000 sentinel) */
static int range_find(const struct tok_exc_range *t, size_t n, int32_t cp)
{
    size_t lo = 0, hi = n - 1; /* exclude the sentinel */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid].last < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n - 1 && t[lo].first <= cp && cp <= t[lo].last) return t[lo].value;
    return -1;
}

static const struct tok_exc_map *map_find(const struct tok_exc_map *t, size_t n, int32_t cp)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return (lo < n - 1 && t[lo].cp == cp) ? &t[lo] : NULL;
}

static int is_white_space(int32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

static int is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int utf8proc_nfd(int32_t cp, int32_t out[4])
{
    utf8proc_int32_t buf[8];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, buf, 8, UTF8PROC_DECOMPOSE, &last);
    if (n < 1 || n > 4) { out[0] = cp; return 1; } /* no canonical NFD is longer than 4 */
    for (int i = 0; i < n; i++) out[i] = buf[i];
    return (int)n;
}

int toku_decompose(int32_t cp, int32_t out[4])
{
    const struct tok_exc_map *m = map_find(TOK_EXC_NFD, NELEM(TOK_EXC_NFD), cp);
    if (m) {
        int n = 0;
        while (n < 4 && m->to[n]) { out[n] = m->to[n]; n++; }
        return n;
    }
    return utf8proc_nfd(cp, out);
}

int toku_ccc(int32_t cp)
{
    int c = utf8proc_get_property(cp)->combining_class;
    if (c && range_find(TOK_EXC_CCC0, NELEM(TOK_EXC_CCC0), cp) == 1) return 0;
    return c;
}

int toku_lower(int32_t cp, int32_t out[2])
{
    if (cp == 0x130) { out[0] = 'i'; out[1] = 0x307; return 2; }
    const struct tok_exc_map *m = map_find(TOK_EXC_LOWER, NELEM(TOK_EXC_LOWER), cp);
    out[0] = m ? m->to[0] : utf8proc_tolower(cp);
    return 1;
}

uint16_t toku_flags(int32_t cp)
{
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    int cat = p->category;
    uint16_t f = 0;
    int clean;
    if (cp == 9 || cp == 10 || cp == 13) clean = 2;
    else if (cp == 0 || cp == 0xFFFD || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
             cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO) clean = 1;
    else clean = is_white_space(cp) ? 2 : 0;
    int e = range_find(TOK_EXC_CLEAN, NELEM(TOK_EXC_CLEAN), cp);
    if (e >= 0) clean = e;
    if (clean == 1) f |= TOKU_REMOVE;
    else if (clean == 2) f |= TOKU_SPACE;
    if (is_cjk(cp)) f |= TOKU_CJK;
    int32_t d[4];
    int nd = toku_decompose(cp, d);
    if (nd != 1 || d[0] != cp) f |= TOKU_DECOMP;
    int mn = cat == UTF8PROC_CATEGORY_MN;
    e = range_find(TOK_EXC_MN, NELEM(TOK_EXC_MN), cp);
    if (e >= 0) mn = e;
    if (mn) f |= TOKU_MN;
    if (toku_ccc(cp)) f |= TOKU_CCC;
    int32_t lo[2];
    if (toku_lower(cp, lo) != 1 || lo[0] != cp) f |= TOKU_LOWER;
    int punct = (cp < 128 && ((cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
                              (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E))) ||
                (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO);
    e = range_find(TOK_EXC_PUNCT, NELEM(TOK_EXC_PUNCT), cp);
    if (e >= 0) punct = e;
    if (punct) f |= TOKU_PUNCT;
    if (is_white_space(cp)) f |= TOKU_WS;
    return f;
}

const char *toku_unicode_version(void) { return utf8proc_unicode_version(); }
