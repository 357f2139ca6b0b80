/* engine/tokjson_pretok.c — the pre-tokenizers of tokenizer.json and the
 * regular expressions they use.
 *
 * Owns: NormalizedString::split with its five delimiter behaviours (and
 * Invert), the hand-written matchers of the patterns the crate's files use
 * (refused by name otherwise, in engine/tokjson_load.c), and ByteLevel,
 * Metaspace, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation,
 * Digits, Split, CharDelimiterSplit.
 * Must not: normalize (engine/tokjson_norm.c) or know the model.
 *
 * A split piece's `shift` is the original offset of its first char (the
 * crate's original_shift after slicing); Metaspace's prepend_scheme "first"
 * prepends only to a piece whose shift is 0.
 */
#include "engine/tokjson.h"
#include "util/mem.h"

#include <string.h>

#define F(c) TJ_FLAGS(t, (c))

static void m_push(tj_scratch *w, size_t s, size_t e, int match)
{
    if (w->m_n == w->m_cap) {
        w->m_cap = w->m_cap ? 2 * w->m_cap : 64;
        w->m = bt_xrealloc(w->m, w->m_cap * sizeof *w->m);
    }
    w->m[w->m_n].s = s;
    w->m[w->m_n].e = e;
    w->m[w->m_n++].match = match;
}

/* ---------------------------------------------------------------- regexes */

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * at i (Oniguruma: leftmost alternative wins, greedy with backtracking):
 * returns the end of the match, or i when nothing matches. */
static size_t gpt2_at(const tj *t, const int32_t *c, size_t n, size_t i)
{
    if (c[i] == '\'' && i + 1 < n) {
        int32_t x = c[i + 1];
        if (x == 's' || x == 't' || x == 'm' || x == 'd') return i + 2;
        if (i + 2 < n && ((x == 'r' && c[i + 2] == 'e') || (x == 'v' && c[i + 2] == 'e') || (x == 'l' && c[i + 2] == 'l')))
            return i + 3;
    }
    size_t j = i + (c[i] == ' ' && i + 1 < n ? 1 : 0), k;
    if (j < n) {
        uint16_t f = F(c[j]);
        if (f & TJU_L) {
            for (k = j + 1; k < n && (F(c[k]) & TJU_L); k++) {}
            return k;
        }
        if (f & TJU_N) {
            for (k = j + 1; k < n && (F(c[k]) & TJU_N); k++) {}
            return k;
        }
        if (!(f & (TJU_WS | TJU_L | TJU_N))) {
            for (k = j + 1; k < n && !(F(c[k]) & (TJU_WS | TJU_L | TJU_N)); k++) {}
            return k;
        }
    }
    if (F(c[i]) & TJU_WS) {
        for (k = i + 1; k < n && (F(c[k]) & TJU_WS); k++) {}
        if (k < n && k - i >= 2) return k - 1; /* \s+(?!\S) backs off one */
        return k;                              /* at the end, or \s+ */
    }
    return i;
}

/* \w+|[^\w\s]+ with the given \w class */
static size_t words_at(const tj *t, const int32_t *c, size_t n, size_t i, uint16_t word)
{
    uint16_t f = F(c[i]);
    size_t k;
    if (f & word) {
        for (k = i + 1; k < n && (F(c[k]) & word); k++) {}
        return k;
    }
    if (!(f & TJU_WS)) {
        for (k = i + 1; k < n && !(F(c[k]) & (word | TJU_WS)); k++) {}
        return k;
    }
    return i;
}

size_t tj_find_matches(const tj *t, const int32_t *c, size_t n, int regex, const int32_t *pat, size_t pat_n,
                       tj_scratch *w)
{
    w->m_n = 0;
    size_t i = 0;
    if (regex == TJR_NONE) {
        if (!pat_n) return 0;
        while (i + pat_n <= n) {
            if (c[i] == pat[0] && !memcmp(c + i, pat, pat_n * sizeof *pat)) {
                m_push(w, i, i + pat_n, 1);
                i += pat_n;
            } else {
                i++;
            }
        }
        return w->m_n;
    }
    while (i < n) {
        size_t e = i;
        switch (regex) {
        case TJR_GPT2: e = gpt2_at(t, c, n, i); break;
        case TJR_WORDS: e = words_at(t, c, n, i, TJU_WORD_OG); break;
        case TJR_SPACES:
            while (e < n && (F(c[e]) & TJU_WS)) e++;
            break;
        case TJR_SPACES2:
            while (e < n && c[e] == ' ') e++;
            if (e - i < 2) e = i;
            break;
        }
        if (e > i) {
            m_push(w, i, e, 1);
            i = e;
        } else {
            i++;
        }
    }
    return w->m_n;
}

/* ---------------------------------------------------------------- split */

/* The matches in w->m -> the covering list of (range, is_match) the crate's
 * Pattern::find_matches returns (gaps included), in place. */
static void cover(tj_scratch *w, size_t n)
{
    size_t k = w->m_n;
    /* at most 2k+1 entries: grow, then fill from the back */
    for (size_t i = 0; i < k + 1; i++) m_push(w, 0, 0, 0);
    size_t o = w->m_n, end = n;
    w->m_n = k;
    for (size_t i = k; i-- > 0;) {
        if (w->m[i].e < end) { o--; w->m[o].s = w->m[i].e; w->m[o].e = end; w->m[o].match = 0; }
        o--;
        w->m[o] = w->m[i];
        end = w->m[o].s;
    }
    if (end > 0) { o--; w->m[o].s = 0; w->m[o].e = end; w->m[o].match = 0; }
    size_t total = (k + 1 + k) - o; /* entries from o to the old end */
    memmove(w->m, w->m + o, total * sizeof *w->m);
    w->m_n = total;
    if (!n) { w->m_n = 0; m_push(w, 0, 0, 0); }
}

/* Every char of the piece matching `flag` (or equal to `ch` when flag == 0)
 * is a match of its own. */
static void char_matches(const tj *t, const int32_t *c, size_t n, uint16_t flag, int32_t ch, tj_scratch *w)
{
    w->m_n = 0;
    for (size_t i = 0; i < n; i++)
        if (flag ? (F(c[i]) & flag) != 0 : c[i] == ch) m_push(w, i, i + 1, 1);
}

static void piece_push(tj_pieces *p, uint32_t off, uint32_t len, int32_t id, int32_t shift)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->v = bt_xrealloc(p->v, p->cap * sizeof *p->v);
    }
    p->v[p->n].off = off;
    p->v[p->n].len = len;
    p->v[p->n].id = id;
    p->v[p->n++].shift = shift;
}

/* Copies chars [a, b) of (c, o) into out as a new piece (dropped when empty). */
static void emit(tj_text *out, tj_pieces *op, const int32_t *c, const int32_t *o, size_t a, size_t b)
{
    if (b <= a) return;
    size_t at = out->n;
    tj_text_reserve(out, at + (b - a));
    memcpy(out->cp + at, c + a, (b - a) * sizeof *c);
    memcpy(out->orig + at, o + a, (b - a) * sizeof *o);
    out->n += b - a;
    piece_push(op, (uint32_t)at, (uint32_t)(b - a), -1, o[a]);
}

/* NormalizedString::split: the covering list in w->m (after Invert when
 * invert) cut by `behavior` into pieces of out. */
static void split_by(tj_scratch *w, int behavior, int invert, const int32_t *c, const int32_t *o, size_t n,
                     tj_text *out, tj_pieces *op)
{
    cover(w, n);
    if (invert)
        for (size_t i = 0; i < w->m_n; i++) w->m[i].match = !w->m[i].match;
    size_t k = w->m_n;
    switch (behavior) {
    case TJB_ISOLATED:
        for (size_t i = 0; i < k; i++) emit(out, op, c, o, w->m[i].s, w->m[i].e);
        break;
    case TJB_REMOVED:
        for (size_t i = 0; i < k; i++)
            if (!w->m[i].match) emit(out, op, c, o, w->m[i].s, w->m[i].e);
        break;
    case TJB_CONTIGUOUS:
    case TJB_MERGED_PREV: {
        size_t s = 0, e = 0;
        int have = 0, prev = 0;
        for (size_t i = 0; i < k; i++) {
            int m = w->m[i].match;
            int merge = behavior == TJB_CONTIGUOUS ? (m == prev) : (m && !prev);
            if (merge && have) {
                e = w->m[i].e;
            } else {
                if (have) emit(out, op, c, o, s, e);
                s = w->m[i].s;
                e = w->m[i].e;
                have = 1;
            }
            prev = m;
        }
        if (have) emit(out, op, c, o, s, e);
        break;
    }
    case TJB_MERGED_NEXT: {
        /* from the back: a match not preceded (in reverse) by a match joins the next piece */
        size_t first = op->n;
        size_t s = 0, e = 0;
        int have = 0, prev = 0;
        for (size_t i = k; i-- > 0;) {
            int m = w->m[i].match;
            if (m && !prev && have) {
                s = w->m[i].s;
            } else {
                if (have) emit(out, op, c, o, s, e);
                s = w->m[i].s;
                e = w->m[i].e;
                have = 1;
            }
            prev = m;
        }
        if (have) emit(out, op, c, o, s, e);
        /* the pieces came out last first: reverse them */
        for (size_t a = first, b = op->n; a + 1 < b; a++, b--) {
            tj_piece x = op->v[a];
            op->v[a] = op->v[b - 1];
            op->v[b - 1] = x;
        }
        break;
    }
    }
}

/* ---------------------------------------------------------------- pre-tokenizers */

static void byte_level(const tj *t, const tj_pretok *p, const int32_t *c, const int32_t *o, size_t n, tj_text *out,
                       tj_pieces *op, tj_scratch *w)
{
    tj_text *pre = &w->seg;
    pre->n = 0;
    if (p->add_prefix_space && c[0] != ' ') tj_text_push(pre, ' ', o[0]);
    for (size_t i = 0; i < n; i++) tj_text_push(pre, c[i], o[i]);
    size_t first = op->n;
    if (p->use_regex) {
        tj_find_matches(t, pre->cp, pre->n, TJR_GPT2, NULL, 0, w);
        split_by(w, TJB_ISOLATED, 0, pre->cp, pre->orig, pre->n, out, op);
    } else {
        emit(out, op, pre->cp, pre->orig, 0, pre->n);
    }
    /* map every byte of every char of the new pieces (pieces are contiguous at the end of out) */
    if (op->n == first) return;
    size_t from = op->v[first].off, to = out->n;
    tj_text *m = &w->tmp;
    m->n = 0;
    for (size_t pi = first; pi < op->n; pi++) {
        size_t a = op->v[pi].off, b = a + op->v[pi].len;
        op->v[pi].off = (uint32_t)(from + m->n);
        for (size_t i = a; i < b; i++) {
            uint8_t u[4];
            int k = bt_utf8_encode(out->cp[i], u);
            for (int j = 0; j < k; j++) tj_text_push(m, t->byte_char[u[j]], out->orig[i]);
        }
        op->v[pi].len = (uint32_t)(from + m->n - op->v[pi].off);
    }
    out->n = from;
    tj_text_reserve(out, from + m->n);
    memcpy(out->cp + from, m->cp, m->n * sizeof *m->cp);
    memcpy(out->orig + from, m->orig, m->n * sizeof *m->orig);
    out->n = from + m->n;
    (void)to;
}

static void metaspace(const tj *t, const tj_pretok *p, const int32_t *c, const int32_t *o, size_t n, int32_t shift,
                      tj_text *out, tj_pieces *op, tj_scratch *w)
{
    tj_text *s = &w->seg;
    s->n = 0;
    int32_t r = p->replacement;
    int pre = p->prepend_scheme == TJ_PREPEND_ALWAYS || (p->prepend_scheme == TJ_PREPEND_FIRST && shift == 0);
    int32_t first = c[0] == ' ' ? r : c[0];
    if (pre && first != r) tj_text_push(s, r, o[0]);
    for (size_t i = 0; i < n; i++) tj_text_push(s, c[i] == ' ' ? r : c[i], o[i]);
    if (p->split) {
        char_matches(t, s->cp, s->n, 0, r, w);
        split_by(w, TJB_MERGED_NEXT, 0, s->cp, s->orig, s->n, out, op);
    } else {
        emit(out, op, s->cp, s->orig, 0, s->n);
    }
}

static void pretok_one(const tj *t, const tj_pretok *p, const int32_t *c, const int32_t *o, size_t n, int32_t shift,
                       tj_text *out, tj_pieces *op, tj_scratch *w)
{
    switch (p->kind) {
    case TJP_BYTELEVEL: byte_level(t, p, c, o, n, out, op, w); return;
    case TJP_METASPACE: metaspace(t, p, c, o, n, shift, out, op, w); return;
    case TJP_WHITESPACE:
        w->m_n = 0;
        for (size_t i = 0; i < n;) {
            size_t e = words_at(t, c, n, i, TJU_WORD_RX);
            if (e > i) { m_push(w, i, e, 1); i = e; }
            else i++;
        }
        split_by(w, TJB_REMOVED, 1, c, o, n, out, op);
        return;
    case TJP_WHITESPACE_SPLIT:
        char_matches(t, c, n, TJU_WS, 0, w);
        split_by(w, TJB_REMOVED, 0, c, o, n, out, op);
        return;
    case TJP_BERT: {
        /* whitespace removed, then punctuation isolated: one pass gives the same pieces */
        size_t s = 0;
        for (size_t i = 0; i <= n; i++) {
            uint16_t f = i < n ? F(c[i]) : TJU_WS;
            if (f & TJU_WS) { emit(out, op, c, o, s, i); s = i + 1; }
            else if (f & TJU_PUNCT) { emit(out, op, c, o, s, i); emit(out, op, c, o, i, i + 1); s = i + 1; }
        }
        return;
    }
    case TJP_PUNCTUATION:
        char_matches(t, c, n, TJU_PUNCT, 0, w);
        split_by(w, p->behavior, 0, c, o, n, out, op);
        return;
    case TJP_DIGITS:
        char_matches(t, c, n, TJU_NUMERIC, 0, w);
        split_by(w, p->individual_digits ? TJB_ISOLATED : TJB_CONTIGUOUS, 0, c, o, n, out, op);
        return;
    case TJP_SPLIT:
        tj_find_matches(t, c, n, p->regex, p->pat, p->pat_n, w);
        split_by(w, p->behavior, p->invert, c, o, n, out, op);
        return;
    case TJP_CHAR_DELIMITER:
        char_matches(t, c, n, 0, p->delimiter, w);
        split_by(w, TJB_REMOVED, 0, c, o, n, out, op);
        return;
    }
}

void tj_pretokenize(const tj *t, const tj_text *text, const tj_pieces *in, tj_scratch *w, int *which)
{
    const tj_text *src = text;
    const tj_pieces *sp = in;
    int cur = 0;
    for (size_t k = 0; k < t->n_pretoks; k++) {
        tj_text *out = &w->buf[cur];
        tj_pieces *op = &w->pieces[cur];
        out->n = 0;
        op->n = 0;
        for (size_t i = 0; i < sp->n; i++) {
            const tj_piece *pc = &sp->v[i];
            if (pc->id >= 0) { piece_push(op, 0, 0, pc->id, pc->shift); continue; }
            pretok_one(t, &t->pretoks[k], src->cp + pc->off, src->orig + pc->off, pc->len, pc->shift, out, op, w);
        }
        src = out;
        sp = op;
        cur ^= 1;
    }
    if (!t->n_pretoks) { /* copy through */
        tj_text *out = &w->buf[0];
        tj_pieces *op = &w->pieces[0];
        out->n = 0;
        op->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            const tj_piece *pc = &in->v[i];
            if (pc->id >= 0) piece_push(op, 0, 0, pc->id, pc->shift);
            else emit(out, op, text->cp + pc->off, text->orig + pc->off, 0, pc->len);
        }
        *which = 0;
        return;
    }
    *which = cur ^ 1;
}
