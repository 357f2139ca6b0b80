/* engine/tokjson_encode.c — one text through a tokenizer.json pipeline, and
 * the post-processing of one or two texts.
 *
 * Owns: the crate's order of work (AddedVocabulary::extract_and_normalize:
 * added tokens that are not `normalized` found in the raw text, the rest
 * normalized piece by piece, then `normalized` added tokens found in the
 * normalized pieces; pre-tokenizers; model), the added-token options
 * single_word / lstrip / rstrip, truncation (longest_first / only_first /
 * only_second, right or left) and the template (special tokens, type ids).
 * Must not: print, or allocate per token once the scratch is warm.
 */
#include "engine/tokjson.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

void tj_scratch_free(tj_scratch *s)
{
    if (!s) return;
    tj_text_free(&s->raw);
    tj_text_free(&s->norm);
    tj_text_free(&s->seg);
    tj_text_free(&s->tmp);
    tj_text_free(&s->buf[0]);
    tj_text_free(&s->buf[1]);
    free(s->trs.v);
    free(s->p1.v);
    free(s->p2.v);
    free(s->pieces[0].v);
    free(s->pieces[1].v);
    free(s->m);
    free(s->word);
    free(s->key);
    free(s->sym);
    free(s->heap);
    free(s->best);
    free(s->tmp_ids);
    free(s->cache);
    free(s);
}

static void piece_add(tj_pieces *p, uint32_t off, uint32_t len, int32_t id, int32_t shift)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->v = bt_xrealloc(p->v, p->cap * sizeof *p->v);
    }
    p->v[p->n++] = (tj_piece){off, len, id, shift};
}

/* The longest added token of added[lo, hi) at c[i], or -1 (the table is
 * sorted by first code point). */
static long added_at(const tj *t, size_t lo, size_t hi, const int32_t *c, size_t n, size_t i)
{
    size_t a = lo, b = hi;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (t->added[mid].cps[0] < c[i]) a = mid + 1;
        else b = mid;
    }
    long best = -1;
    size_t blen = 0;
    for (size_t k = a; k < hi && t->added[k].cps[0] == c[i]; k++) {
        const tj_added *ad = &t->added[k];
        if (ad->n_cps > blen && ad->n_cps <= n - i && !memcmp(ad->cps, c + i, ad->n_cps * sizeof *c)) {
            best = (long)k;
            blen = ad->n_cps;
        }
    }
    return best;
}

/* AddedVocabulary::find_matches over chars [0, n) of (c, o): appends the
 * splits to out (text splits as chars of `dst`, or, when dst is NULL, as
 * ranges of c itself at offset `base_off`). */
static void split_added(const tj *t, size_t lo, size_t hi, const int32_t *c, const int32_t *o, size_t n,
                        tj_text *dst, uint32_t base_off, tj_pieces *out)
{
#define F(x) TJ_FLAGS(t, (x))
#define TEXT(a, b)                                                                            \
    do {                                                                                      \
        if ((b) > (a)) {                                                                      \
            if (dst) {                                                                        \
                size_t at_ = dst->n;                                                          \
                for (size_t q_ = (a); q_ < (b); q_++) tj_text_push(dst, c[q_], o[q_]);        \
                piece_add(out, (uint32_t)at_, (uint32_t)((b) - (a)), -1, o[a]);              \
            } else {                                                                          \
                piece_add(out, base_off + (uint32_t)(a), (uint32_t)((b) - (a)), -1, o[a]);    \
            }                                                                                 \
        }                                                                                     \
    } while (0)
    size_t start_off = 0, pos = 0;
    while (pos < n && lo < hi) {
        long k = -1;
        size_t i = pos;
        for (; i < n; i++)
            if ((k = added_at(t, lo, hi, c, n, i)) >= 0) break;
        if (k < 0) break;
        const tj_added *ad = &t->added[k];
        size_t start = i, stop = i + ad->n_cps;
        pos = stop; /* the automaton goes on after this match, used or not */
        if (ad->single_word) {
            int sp_l = start == 0 || !(F(c[start - 1]) & TJU_WORD_RX);
            int sp_r = stop == n || !(F(c[stop]) & TJU_WORD_RX);
            if (!sp_l || !sp_r) continue;
        }
        if (ad->lstrip) {
            size_t ns = start;
            while (ns > 0 && (F(c[ns - 1]) & TJU_WS)) ns--;
            start = ns > start_off ? ns : start_off;
        }
        if (ad->rstrip)
            while (stop < n && (F(c[stop]) & TJU_WS)) stop++;
        if (start_off < start) TEXT(start_off, start);
        if (stop > start) piece_add(out, 0, 0, ad->id, o[start < n ? start : n - 1]);
        start_off = stop;
    }
    if (start_off < n) TEXT(start_off, n);
#undef TEXT
#undef F
}

static inline uint64_t word_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h | 1;
}

/* the model on w->word, through the scratch's cache of short words */
static int model_cached(const tj *t, tj_scratch *w, size_t wn, int32_t **ids, size_t *nids, size_t *cap)
{
    if (wn > TJ_CACHE_WORD) return tj_model_tokenize(&t->model, w->word, wn, w, ids, nids, cap);
    if (!w->cache) w->cache = bt_xcalloc(TJ_CACHE, sizeof *w->cache);
    uint64_t h = word_hash(w->word, wn);
    struct tj_cache *e = &w->cache[(h >> 17) & (TJ_CACHE - 1)];
    if (e->hash == h && e->len == wn && !memcmp(e->w, w->word, wn)) {
        if (*nids + e->n > *cap) {
            while (*nids + e->n > *cap) *cap = *cap ? 2 * *cap : 256;
            *ids = bt_xrealloc(*ids, *cap * sizeof **ids);
        }
        memcpy(*ids + *nids, e->ids, e->n * sizeof **ids);
        *nids += e->n;
        return 0;
    }
    size_t before = *nids;
    int rc = tj_model_tokenize(&t->model, w->word, wn, w, ids, nids, cap);
    if (rc || *nids - before > TJ_CACHE_IDS) return rc;
    e->hash = h;
    e->len = (uint8_t)wn;
    e->n = (uint8_t)(*nids - before);
    memcpy(e->w, w->word, wn);
    memcpy(e->ids, *ids + before, e->n * sizeof **ids);
    return 0;
}

int tj_encode_text(const tj *t, const char *text, size_t len, int replace_invalid, tj_scratch *w, int32_t **ids,
                   size_t *nids, size_t *cap, tj_word_fn fn, void *ctx)
{
    /* decode: orig = byte offset */
    tj_text *raw = &w->raw;
    raw->n = 0;
    tj_text_reserve(raw, len + 1);
    const uint8_t *p = (const uint8_t *)text, *end = p + len;
    while (p < end) {
        int32_t cp;
        int k = *p < 0x80 ? (cp = *p, 1) : bt_utf8_decode(p, end, &cp);
        if (!k) {
            if (!replace_invalid)
                return bt_fail(BT_EDATA, "invalid UTF-8 at byte offset %zu (byte 0x%02X): convert the input to "
                               "UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                               (size_t)(p - (const uint8_t *)text), *p);
            k = tj_utf8_invalid_len(p, end);
            cp = 0xFFFD;
        }
        raw->cp[raw->n] = cp;
        raw->orig[raw->n++] = (int32_t)(p - (const uint8_t *)text);
        p += k;
    }
    /* 1. added tokens that are not normalized, on the raw text */
    w->p1.n = 0;
    split_added(t, 0, t->n_added_raw, raw->cp, raw->orig, raw->n, NULL, 0, &w->p1);
    /* 2. normalize each text piece, then the normalized added tokens */
    tj_text *nt = &w->norm;
    nt->n = 0;
    tj_pieces *np = &w->p2;
    np->n = 0;
    for (size_t i = 0; i < w->p1.n; i++) {
        const tj_piece *pc = &w->p1.v[i];
        if (pc->id >= 0) { piece_add(np, 0, 0, pc->id, pc->shift); continue; }
        tj_text *s = &w->seg;
        s->n = 0;
        tj_text_reserve(s, pc->len);
        memcpy(s->cp, raw->cp + pc->off, pc->len * sizeof *s->cp);
        memcpy(s->orig, raw->orig + pc->off, pc->len * sizeof *s->orig);
        s->n = pc->len;
        tj_normalize(t, s, w, pc->shift);
        split_added(t, t->n_added_raw, t->n_added, s->cp, s->orig, s->n, nt, 0, np);
    }
    /* 3. pre-tokenize */
    int which = 0;
    tj_pretokenize(t, nt, np, w, &which);
    /* 4. model */
    const tj_text *ft = &w->buf[which];
    const tj_pieces *fp = &w->pieces[which];
    for (size_t i = 0; i < fp->n; i++) {
        const tj_piece *pc = &fp->v[i];
        if (pc->id >= 0) {
            if (fn) {
                const char *s = t->id_to_token[pc->id];
                fn(s ? s : "", s ? strlen(s) : 0, 1, ctx);
            } else {
                if (*nids == *cap) {
                    *cap = *cap ? 2 * *cap : 256;
                    *ids = bt_xrealloc(*ids, *cap * sizeof **ids);
                }
                (*ids)[(*nids)++] = pc->id;
            }
            continue;
        }
        size_t need = (size_t)pc->len * 4 + 1;
        if (w->word_cap < need) {
            w->word_cap = need + 256;
            w->word = bt_xrealloc(w->word, w->word_cap);
        }
        size_t wn = 0;
        for (uint32_t j = 0; j < pc->len; j++) wn += (size_t)bt_utf8_encode(ft->cp[pc->off + j], w->word + wn);
        if (fn) { fn((const char *)w->word, wn, 0, ctx); continue; }
        int rc = model_cached(t, w, wn, ids, nids, cap);
        if (rc) return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- post-processing */

int tj_post_process(const tj *t, const int32_t *a, size_t na, const int32_t *b, size_t nb, int has_pair,
                    const bt_encode_opts *opts, int32_t pad_id, bt_encoding *enc)
{
    const tj_post *pp = &t->post;
    size_t n_added = has_pair ? pp->added_pair : pp->added_single;
    enc->len = 0;
    enc->n_first = na;
    enc->n_second = has_pair ? nb : 0;
    size_t k1 = na, k2 = has_pair ? nb : 0;
    if (opts->max_length < 0 || (opts->max_length > 0 && (size_t)opts->max_length < n_added))
        return bt_fail(BT_EUSAGE, "max_length %d is smaller than the %zu special tokens of a%s; use at least %zu",
                       opts->max_length, n_added, has_pair ? " pair" : " single text", n_added);
    if (opts->max_length > 0) {
        int rc = bt_truncate_lengths(na, nb, has_pair, (size_t)opts->max_length - n_added, opts->truncation, &k1, &k2);
        if (rc) return rc;
    }
    const int32_t *sa = t->trunc_left && a ? a + (na - k1) : a, *sb = t->trunc_left && has_pair && b ? b + (nb - k2) : b;
    size_t total = k1 + k2 + n_added, padded = total;
    if (opts->pad_to_max_length && opts->max_length > 0 && (size_t)opts->max_length > total) {
        if (pad_id < 0)
            return bt_fail(BT_ECONFIG, "padding asked, but the tokenizer has no pad token: set pad_token in "
                           "tokenizer_config.json");
        padded = (size_t)opts->max_length;
    }
    bt_encoding_reserve(enc, padded);
    const tj_piece_tpl *tp = has_pair ? pp->pair : pp->single;
    size_t ntp = has_pair ? pp->n_pair : pp->n_single, i = 0;
    for (size_t k = 0; k < ntp; k++) {
        const tj_piece_tpl *x = &tp[k];
        const int32_t *src = x->is_seq ? (x->seq ? sb : sa) : x->ids;
        size_t n = x->is_seq ? (x->seq ? k2 : k1) : x->n_ids;
        if (n) memcpy(enc->input_ids + i, src, n * sizeof *src);
        for (size_t j = 0; j < n; j++) enc->token_type_ids[i + j] = x->type_id;
        i += n;
    }
    for (size_t j = 0; j < i; j++) enc->attention_mask[j] = 1;
    for (; i < padded; i++) {
        enc->input_ids[i] = pad_id;
        enc->token_type_ids[i] = 0;
        enc->attention_mask[i] = 0;
    }
    enc->len = padded;
    return 0;
}
