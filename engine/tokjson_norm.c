/* engine/tokjson_norm.c — the normalizers of tokenizer.json.
 *
 * Owns: BertNormalizer, NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents,
 * Replace, Prepend and Precompiled (sentencepiece char maps), each as the
 * `tokenizers` crate applies it, including how it moves the alignment of the
 * first character (see engine/tokjson.h).
 * Must not: parse JSON (engine/tokjson_load.c does) or split text.
 */
#include "engine/tokjson.h"
#include "engine/tokenizer_unicode.h"
#include "util/mem.h"

#include <string.h>
#include <utf8proc.h>

static void swap_text(tj_text *a, tj_text *b)
{
    tj_text x = *a;
    *a = *b;
    *b = x;
}

/* ---------------------------------------------------------------- BERT */

static void bert_clean(tj_text *s)
{
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        int32_t c = s->cp[i];
        uint16_t f = toku_flags(c);
        if (f & TOKU_REMOVE) continue;
        s->cp[o] = (f & TOKU_SPACE) ? ' ' : c;
        s->orig[o++] = s->orig[i];
    }
    s->n = o;
}

static void bert_cjk(tj_text *s, tj_text *tmp)
{
    tmp->n = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (toku_flags(s->cp[i]) & TOKU_CJK) {
            tj_text_push(tmp, ' ', s->orig[i]);
            tj_text_push(tmp, s->cp[i], s->orig[i]);
            tj_text_push(tmp, ' ', s->orig[i]);
        } else {
            tj_text_push(tmp, s->cp[i], s->orig[i]);
        }
    }
    swap_text(s, tmp);
}

static void lowercase(tj_text *s, tj_text *tmp)
{
    tmp->n = 0;
    tj_text_reserve(tmp, s->n);
    for (size_t i = 0; i < s->n; i++) {
        int32_t c = s->cp[i];
        if (c < 0x80) {
            tj_text_push(tmp, (c >= 'A' && c <= 'Z') ? c + 32 : c, s->orig[i]);
            continue;
        }
        int32_t lo[2];
        int n = toku_lower(c, lo);
        for (int k = 0; k < n; k++) tj_text_push(tmp, lo[k], s->orig[i]);
    }
    swap_text(s, tmp);
}

static void filter_marks(const tj *t, tj_text *s, int bert_mn)
{
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        int32_t c = s->cp[i];
        int drop = c >= 0x80 && (bert_mn ? (toku_flags(c) & TOKU_MN) != 0 : (TJ_FLAGS(t, c) & TJU_MARK) != 0);
        if (drop) continue;
        s->cp[o] = c;
        s->orig[o++] = s->orig[i];
    }
    s->n = o;
}

/* ---------------------------------------------------------------- NF* */

/* Decomposition with canonical reordering (stable by combining class) into
 * w->trs: the first char of a decomposition replaces its source (0), the
 * others are inserted (1); reordering moves the entries with their change. */
static void decompose_trs(const tj_text *s, int compat, tj_trs *l)
{
    l->n = 0;
    size_t run = 0; /* start of the current run of non-starters in l */
    for (size_t i = 0; i < s->n; i++) {
        int32_t c = s->cp[i], d[32];
        int n = c < 0xA0 ? (d[0] = c, 1) : tju_decompose(c, compat, d, 32);
        for (int k = 0; k < n; k++) {
            int cc = d[k] < 0x300 ? 0 : toku_ccc(d[k]);
            if (!cc) {
                run = l->n + 1;
                tj_trs_push(l, d[k], k ? 1 : 0);
                continue;
            }
            tj_trs_push(l, d[k], k ? 1 : 0);
            size_t j = l->n - 1;
            while (j > run && toku_ccc(l->v[j - 1].cp) > cc) {
                tj_tr x = l->v[j];
                l->v[j] = l->v[j - 1];
                l->v[j - 1] = x;
                j--;
            }
        }
    }
}

/* Canonical composition over the decomposed entries (UAX #15): a char
 * combines with the last starter unless blocked; the composite keeps the
 * starter's slot and one more old char is consumed per absorbed char. */
static void compose_trs(const tj_compose *cmp, tj_trs *l)
{
    size_t o = 0;
    long starter = -1;
    int last_cc = -1; /* -1: nothing since the starter */
    for (size_t i = 0; i < l->n; i++) {
        tj_tr e = l->v[i];
        int cc = e.cp < 0x300 ? 0 : toku_ccc(e.cp);
        if (starter >= 0 && e.cp >= 0x300 && (last_cc == -1 || last_cc < cc)) {
            int32_t comp = tju_compose(cmp, l->v[starter].cp, e.cp);
            if (comp >= 0) {
                l->v[starter].cp = comp;
                l->v[starter].chg -= e.chg > 0 ? 0 : 1 + (e.chg < 0 ? -e.chg : 0);
                continue;
            }
        }
        if (cc == 0) {
            starter = (long)o;
            last_cc = -1;
        } else {
            last_cc = cc;
        }
        l->v[o++] = e;
    }
    l->n = o;
}

static void nf(const tj *t, tj_text *s, tj_scratch *w, int compat, int compose, int32_t base)
{
    int ascii = 1;
    for (size_t i = 0; i < s->n && ascii; i++) ascii = s->cp[i] < 0x80;
    if (ascii) return;
    decompose_trs(s, compat, &w->trs);
    if (compose) compose_trs(t->compose, &w->trs);
    tj_transform(&w->tmp, s, &w->trs, 0, base);
    swap_text(s, &w->tmp);
}

/* ---------------------------------------------------------------- Strip, Replace, Prepend */

static void strip(const tj *t, tj_text *s, int left, int right)
{
    size_t a = 0, b = s->n;
    if (left) while (a < b && (TJ_FLAGS(t, s->cp[a]) & TJU_WS)) a++;
    if (right) while (b > a && (TJ_FLAGS(t, s->cp[b - 1]) & TJU_WS)) b--;
    if (a) {
        memmove(s->cp, s->cp + a, (b - a) * sizeof *s->cp);
        memmove(s->orig, s->orig + a, (b - a) * sizeof *s->orig);
    }
    s->n = b - a;
}

/* NormalizedString::replace: every content char is inserted after the
 * removed match, so it takes the alignment of the match's last char. */
static void replace(const tj *t, const tj_norm *nm, tj_text *s, tj_scratch *w)
{
    size_t nm_ = tj_find_matches(t, s->cp, s->n, nm->regex, nm->pat, nm->pat_n, w);
    if (!nm_) return;
    tj_text *o = &w->tmp;
    o->n = 0;
    size_t prev = 0;
    for (size_t k = 0; k < nm_; k++) {
        size_t a = w->m[k].s, b = w->m[k].e;
        for (size_t i = prev; i < a; i++) tj_text_push(o, s->cp[i], s->orig[i]);
        for (size_t i = 0; i < nm->content_n; i++) tj_text_push(o, nm->content[i], s->orig[b - 1]);
        prev = b;
    }
    for (size_t i = prev; i < s->n; i++) tj_text_push(o, s->cp[i], s->orig[i]);
    swap_text(s, o);
}

static void prepend(const tj_norm *nm, tj_text *s, tj_text *tmp)
{
    if (!s->n) return;
    tmp->n = 0;
    for (size_t i = 0; i < nm->content_n; i++) tj_text_push(tmp, nm->content[i], s->orig[0]);
    for (size_t i = 0; i < s->n; i++) tj_text_push(tmp, s->cp[i], s->orig[i]);
    swap_text(s, tmp);
}

/* ---------------------------------------------------------------- Precompiled */

/* Pushes the transformation of one chunk (chars [a, b) of s) when the char
 * map has it, as the crate's `replace` helper: every new char replaces (0);
 * when the chunk grows by d, its last d chars are inserted (1); when it
 * shrinks, the last change so far (possibly an earlier chunk's) absorbs the
 * removal. */
static int charsmap_chunk(const tj_charsmap *cm, const tj_text *s, size_t a, size_t b, tj_trs *l)
{
    uint8_t key[64];
    size_t kn = 0;
    for (size_t i = a; i < b; i++) kn += (size_t)bt_utf8_encode(s->cp[i], key + kn);
    size_t nn;
    const char *norm = tj_charsmap_lookup(cm, key, kn, &nn);
    if (!norm) return 0;
    const uint8_t *p = (const uint8_t *)norm, *end = p + nn;
    long count = 0;
    while (p < end) {
        int32_t c;
        int k = bt_utf8_decode(p, end, &c);
        if (!k) { c = 0xFFFD; k = 1; } /* the loader checked the blob is UTF-8 */
        tj_trs_push(l, c, 0);
        p += k;
        count++;
    }
    long diff = count - (long)(b - a);
    if (diff > 0)
        for (long i = 0; i < diff; i++) l->v[l->n - 1 - (size_t)i].chg = 1;
    else if (diff < 0 && l->n)
        l->v[l->n - 1].chg += (int32_t)diff;
    return 1;
}

static void precompiled(const tj_norm *nm, tj_text *s, tj_scratch *w, int32_t base)
{
    tj_trs *l = &w->trs;
    l->n = 0;
    int modified = 0;
    size_t i = 0;
    int32_t state = 0; /* one state across the string, as the segmenter's */
    while (i < s->n) {
        /* one extended grapheme cluster [i, j) */
        uint8_t tmp[4];
        size_t j = i + 1, bytes = (size_t)bt_utf8_encode(s->cp[i], tmp);
        while (j < s->n && !tju_grapheme_break(s->cp[j - 1], s->cp[j], &state)) {
            bytes += (size_t)bt_utf8_encode(s->cp[j], tmp);
            j++;
        }
        if (bytes < 6 && charsmap_chunk(nm->cm, s, i, j, l)) {
            modified = 1;
        } else {
            for (size_t k = i; k < j; k++) {
                if (charsmap_chunk(nm->cm, s, k, k + 1, l)) modified = 1;
                else tj_trs_push(l, s->cp[k], 0);
            }
        }
        i = j;
    }
    if (!modified) return;
    tj_transform(&w->tmp, s, l, 0, base);
    swap_text(s, &w->tmp);
}

/* ---------------------------------------------------------------- driver */

void tj_normalize(const tj *t, tj_text *s, tj_scratch *w, int32_t base)
{
    for (size_t k = 0; k < t->n_norms; k++) {
        const tj_norm *nm = &t->norms[k];
        switch (nm->kind) {
        case TJN_BERT:
            if (nm->clean) bert_clean(s);
            if (nm->cjk) bert_cjk(s, &w->tmp);
            if (nm->strip_accents) {
                nf(t, s, w, 0, 0, base);
                filter_marks(t, s, 1);
            }
            if (nm->lower) lowercase(s, &w->tmp);
            break;
        case TJN_NFD: nf(t, s, w, 0, 0, base); break;
        case TJN_NFKD: nf(t, s, w, 1, 0, base); break;
        case TJN_NFC: nf(t, s, w, 0, 1, base); break;
        case TJN_NFKC: nf(t, s, w, 1, 1, base); break;
        case TJN_LOWERCASE: lowercase(s, &w->tmp); break;
        case TJN_STRIP: strip(t, s, nm->left, nm->right); break;
        case TJN_STRIP_ACCENTS: filter_marks(t, s, 0); break;
        case TJN_REPLACE: replace(t, nm, s, w); break;
        case TJN_PREPEND: prepend(nm, s, &w->tmp); break;
        case TJN_PRECOMPILED: precompiled(nm, s, w, base); break;
        }
    }
}
