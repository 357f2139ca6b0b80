/* engine/tokenizer.c — BERT WordPiece tokenizer identical to BertTokenizerFast.
 *
 * Owns: vocab.txt / tokenizer_config.json loading, the vocabulary hash, the
 * streaming normalizer -> pre-tokenizer -> WordPiece pipeline, special tokens
 * typed inside text, truncation, the [CLS]/[SEP] template and padding.
 * Must not: print, read data sets, allocate per token (all scratch lives in
 * bt_encoding and is reused), or abort on any input.
 *
 * Pipeline per text (the crate's order; every step is per character except
 * NFD's canonical reordering, which is done over runs of combining marks):
 *   split on special tokens typed in the raw text (leftmost-longest, exact
 *   bytes: "[MASK]" -> one id, "[mask]" is ordinary text), then per segment:
 *   clean_text -> CJK spacing -> strip accents (NFD, drop Mn) -> lowercase ->
 *   split on whitespace, isolate punctuation -> WordPiece (greedy longest
 *   match, "##" continuation, > 100 chars or any unmatched piece -> [UNK]).
 * ASCII takes a table-driven fast path; other code points use a 64K flag table
 * built at load (BMP) or utf8proc directly (other planes).
 */
#include "engine/tokenizer.h"
#include "engine/tokenizer_unicode.h"
#include "engine/tokenizer_internal.h"
#include "engine/tokjson.h"
#include "util/err.h"
#include "util/file.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/sha256.h"
#include "util/utf8.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct bt_tok_scratch {
    uint8_t *word;         /* [word_cap]: 2 bytes of headroom, then the word */
    size_t word_cap, word_len, word_chars;
    int32_t *run;          /* pending combining marks (NFD reordering) */
    size_t run_n, run_cap;
    int32_t *ids[2];       /* WordPiece ids of text A and B */
    size_t ids_n[2], ids_cap[2];
    int cur;
    bt_word_fn fn;
    void *ctx;
    tj_scratch *tjs;       /* tokenizer.json pipeline scratch */
};

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

static inline int32_t vocab_find(const bt_tokenizer *t, const uint8_t *key, size_t n)
{
    uint64_t h64 = hash_bytes(key, n);
    uint32_t h = (uint32_t)(h64 >> 32) | 1u;
    size_t i = (size_t)h64 & t->mask;
    for (;;) {
        const struct slot *s = &t->table[i];
        if (!s->hash) return -1;
        if (s->hash == h && t->tok_len[s->id] == n && !memcmp(t->arena + t->tok_off[s->id], key, n))
            return s->id;
        i = (i + 1) & t->mask;
    }
}

static void vocab_insert(bt_tokenizer *t, int32_t id)
{
    const uint8_t *key = (const uint8_t *)t->arena + t->tok_off[id];
    size_t n = t->tok_len[id];
    uint64_t h64 = hash_bytes(key, n);
    uint32_t h = (uint32_t)(h64 >> 32) | 1u;
    size_t i = (size_t)h64 & t->mask;
    for (;;) {
        struct slot *s = &t->table[i];
        if (!s->hash) { s->hash = h; s->id = id; return; }
        if (s->hash == h && t->tok_len[s->id] == n && !memcmp(t->arena + t->tok_off[s->id], key, n)) {
            s->id = id; /* duplicate line: the later one wins, as in both HF loaders */
            return;
        }
        i = (i + 1) & t->mask;
    }
}

/* ---------------------------------------------------------------- UTF-8 */

/* (bt_utf8_decode / bt_utf8_encode: util/utf8.h) */

/* ---------------------------------------------------------------- pipeline */

typedef struct {
    const bt_tokenizer *t;
    struct bt_tok_scratch *s;
} pipe;

static inline uint16_t FL(const bt_tokenizer *t, int32_t cp)
{
    return cp < 0x10000 ? t->flags[cp] : toku_flags(cp);
}

static inline void emit_id(struct bt_tok_scratch *s, int32_t id)
{
    int c = s->cur;
    if (s->ids_n[c] == s->ids_cap[c]) {
        s->ids_cap[c] = s->ids_cap[c] ? 2 * s->ids_cap[c] : 256;
        s->ids[c] = bt_xrealloc(s->ids[c], s->ids_cap[c] * sizeof(int32_t));
    }
    s->ids[c][s->ids_n[c]++] = id;
}

static void wordpiece(const bt_tokenizer *t, struct bt_tok_scratch *s)
{
    uint8_t *w = s->word + 2;
    size_t n = s->word_len;
    if (s->word_chars > MAX_WORD_CHARS) { emit_id(s, t->wp_unk); return; }
    size_t mark = s->ids_n[s->cur];
    size_t start = 0;
    while (start < n) {
        size_t pre = start ? 2 : 0;
        size_t end = n;
        if (end - start + pre > t->max_tok_len) {
            end = t->max_tok_len > pre ? start + t->max_tok_len - pre : start;
            while (end > start && (w[end] & 0xC0) == 0x80) end--;
        }
        if (pre) { w[start - 2] = '#'; w[start - 1] = '#'; } /* bytes already consumed */
        const uint8_t *key = w + start - pre;
        int32_t id = -1;
        while (end > start) {
            id = vocab_find(t, key, end - start + pre);
            if (id >= 0) break;
            do end--; while (end > start && (w[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            s->ids_n[s->cur] = mark;
            emit_id(s, t->wp_unk);
            return;
        }
        emit_id(s, id);
        start = end;
    }
}

static inline void word_end(pipe *P)
{
    struct bt_tok_scratch *s = P->s;
    if (!s->word_len) return;
    if (s->fn) s->fn((const char *)s->word + 2, s->word_len, 0, s->ctx);
    else wordpiece(P->t, s);
    s->word_len = s->word_chars = 0;
}

static inline void word_reserve(struct bt_tok_scratch *s, size_t more)
{
    if (s->word_len + more + 2 > s->word_cap) {
        size_t cap = s->word_cap ? s->word_cap : 256;
        while (s->word_len + more + 2 > cap) cap *= 2;
        s->word = bt_xrealloc(s->word, cap);
        s->word_cap = cap;
    }
}

static inline void word_push(struct bt_tok_scratch *s, int32_t cp)
{
    word_reserve(s, 4);
    s->word_len += bt_utf8_encode(cp, s->word + 2 + s->word_len);
    s->word_chars++;
}

static void stage_pretok(pipe *P, int32_t cp)
{
    uint16_t f = FL(P->t, cp);
    if (f & TOKU_WS) { word_end(P); return; }
    if (f & TOKU_PUNCT) { word_end(P); word_push(P->s, cp); word_end(P); return; }
    word_push(P->s, cp);
}

static void stage_lower(pipe *P, int32_t cp)
{
    if (P->t->cfg.lowercase && (FL(P->t, cp) & TOKU_LOWER)) {
        int32_t lo[2];
        int n = toku_lower(cp, lo);
        for (int i = 0; i < n; i++) stage_pretok(P, lo[i]);
    } else {
        stage_pretok(P, cp);
    }
}

/* Canonical ordering of the pending run (stable by combining class), then the
 * Mn filter and the later stages. */
static void run_flush(pipe *P)
{
    struct bt_tok_scratch *s = P->s;
    size_t n = s->run_n;
    if (!n) return;
    s->run_n = 0;
    int32_t *r = s->run;
    if (n > 1) {
        if (n <= 32) {
            for (size_t i = 1; i < n; i++) {
                int32_t x = r[i];
                int cx = toku_ccc(x);
                size_t j = i;
                while (j > 0 && toku_ccc(r[j - 1]) > cx) { r[j] = r[j - 1]; j--; }
                r[j] = x;
            }
        } else { /* long runs (adversarial input): stable counting sort, O(n) */
            size_t count[257] = {0};
            int32_t *tmp = bt_xmalloc(n * sizeof *tmp);
            for (size_t i = 0; i < n; i++) count[toku_ccc(r[i]) + 1]++;
            for (int c = 1; c < 257; c++) count[c] += count[c - 1];
            for (size_t i = 0; i < n; i++) tmp[count[toku_ccc(r[i])]++] = r[i];
            memcpy(r, tmp, n * sizeof *tmp);
            free(tmp);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!(FL(P->t, r[i]) & TOKU_MN)) stage_lower(P, r[i]);
}

static void stage_strip(pipe *P, int32_t cp)
{
    const bt_tokenizer *t = P->t;
    if (!t->strip) { stage_lower(P, cp); return; }
    int32_t d[4];
    int n = 1;
    d[0] = cp;
    if (FL(t, cp) & TOKU_DECOMP) n = toku_decompose(cp, d);
    for (int i = 0; i < n; i++) {
        uint16_t f = FL(t, d[i]);
        if (f & TOKU_CCC) {
            struct bt_tok_scratch *s = P->s;
            if (s->run_n == s->run_cap) {
                s->run_cap = s->run_cap ? 2 * s->run_cap : 64;
                s->run = bt_xrealloc(s->run, s->run_cap * sizeof(int32_t));
            }
            s->run[s->run_n++] = d[i];
        } else {
            run_flush(P);
            if (!(f & TOKU_MN)) stage_lower(P, d[i]);
        }
    }
}

/* clean_text and CJK spacing for a non-ASCII code point */
static void stage_input(pipe *P, int32_t cp)
{
    uint16_t f = FL(P->t, cp);
    if (f & TOKU_REMOVE) return;
    if (f & TOKU_SPACE) { run_flush(P); word_end(P); return; }
    if ((f & TOKU_CJK) && P->t->cfg.chinese_chars) {
        run_flush(P); word_end(P);
        stage_strip(P, cp);
        run_flush(P); word_end(P);
        return;
    }
    stage_strip(P, cp);
}

static inline void segment_end(pipe *P)
{
    run_flush(P);
    word_end(P);
}

/* Longest special token at p, or -1. */
static inline int special_at(const bt_tokenizer *t, const uint8_t *p, const uint8_t *end)
{
    int best = -1;
    size_t blen = 0, avail = (size_t)(end - p);
    for (int i = 0; i < t->n_sp; i++)
        if (t->sp[i].len <= avail && t->sp[i].len > blen && !memcmp(p, t->sp[i].text, t->sp[i].len)) {
            best = i;
            blen = t->sp[i].len;
        }
    return best;
}

/* Runs one text through the pipeline into ids[s->cur] (or the word callback). */
static int run_text(const bt_tokenizer *t, struct bt_tok_scratch *s, const char *text, size_t len,
                    int replace_invalid)
{
    pipe P = {t, s};
    const uint8_t *p = (const uint8_t *)text, *end = p + len, *begin = p;
    s->word_len = s->word_chars = 0;
    s->run_n = 0;
    while (p < end) {
        uint8_t b = *p;
        if (t->sp_first[b]) {
            int k = special_at(t, p, end);
            if (k >= 0) {
                segment_end(&P);
                if (s->fn) s->fn(t->sp[k].text, t->sp[k].len, 1, s->ctx);
                else emit_id(s, t->sp[k].id);
                p += t->sp[k].len;
                continue;
            }
        }
        if (b < 0x80) {
            switch (t->ascii_cls[b]) {
            case A_WORD:
                if (s->run_n) run_flush(&P);
                word_reserve(s, 1);
                s->word[2 + s->word_len++] = t->ascii_out[b];
                s->word_chars++;
                break;
            case A_SPACE:
                run_flush(&P);
                word_end(&P);
                break;
            case A_PUNCT:
                run_flush(&P);
                word_end(&P);
                word_reserve(s, 1);
                s->word[2 + s->word_len++] = b;
                s->word_chars++;
                word_end(&P);
                break;
            default: /* A_REMOVE */
                break;
            }
            p++;
            continue;
        }
        int32_t cp;
        int n = bt_utf8_decode(p, end, &cp);
        if (!n) {
            if (!replace_invalid) {
                s->run_n = 0;
                s->word_len = s->word_chars = 0;
                return bt_fail(BT_EDATA,
                               "invalid UTF-8 at byte offset %zu (byte 0x%02X): convert the input to UTF-8 "
                               "(e.g. iconv -f latin1 -t utf-8)",
                               (size_t)(p - begin), b);
            }
            p++; /* U+FFFD, which clean_text removes: the byte simply vanishes */
            continue;
        }
        stage_input(&P, cp);
        p += n;
    }
    segment_end(&P);
    return 0;
}

/* ---------------------------------------------------------------- encode */

static struct bt_tok_scratch *scratch_of(bt_encoding *enc)
{
    if (!enc->scratch) enc->scratch = bt_xcalloc(1, sizeof *enc->scratch);
    enc->scratch->fn = NULL;
    enc->scratch->ctx = NULL;
    return enc->scratch;
}

void bt_encoding_init(bt_encoding *enc) { memset(enc, 0, sizeof *enc); }

void bt_encoding_free(bt_encoding *enc)
{
    if (!enc) return;
    struct bt_tok_scratch *s = enc->scratch;
    if (s) {
        free(s->word);
        free(s->run);
        free(s->ids[0]);
        free(s->ids[1]);
        tj_scratch_free(s->tjs);
        free(s);
    }
    free(enc->input_ids);
    free(enc->token_type_ids);
    free(enc->attention_mask);
    memset(enc, 0, sizeof *enc);
}

int bt_truncate_lengths(size_t n1, size_t n2, int has_pair, size_t max_tokens, bt_truncation strategy,
                        size_t *keep1, size_t *keep2)
{
    if (!has_pair) n2 = 0;
    *keep1 = n1;
    *keep2 = n2;
    if (max_tokens == 0) { /* the crate truncates everything to 0 */
        *keep1 = *keep2 = 0;
        return 0;
    }
    size_t total = n1 + n2;
    if (total <= max_tokens) return 0;
    size_t to_remove = total - max_tokens;
    switch (strategy) {
    case BT_TRUNC_LONGEST_FIRST:
        if (has_pair) {
            size_t a = n1, b = n2;
            int swap = 0;
            if (a > b) { swap = 1; size_t x = a; a = b; b = x; }
            if (a > max_tokens) b = a;
            else b = (max_tokens - a) > a ? max_tokens - a : a;
            if (a + b > max_tokens) {
                a = max_tokens / 2;
                b = a + max_tokens % 2;
            }
            if (swap) { size_t x = a; a = b; b = x; }
            *keep1 = a < n1 ? a : n1;
            *keep2 = b < n2 ? b : n2;
        } else {
            *keep1 = max_tokens;
        }
        return 0;
    case BT_TRUNC_ONLY_FIRST:
        if (n1 > to_remove) { *keep1 = n1 - to_remove; return 0; }
        return bt_fail(BT_EDATA, "truncation only_first: the first text has %zu tokens, %zu must go to fit "
                       "max_length: sequence too short to truncate; use longest_first or a larger max_length",
                       n1, to_remove);
    case BT_TRUNC_ONLY_SECOND:
        if (!has_pair)
            return bt_fail(BT_EUSAGE, "truncation only_second needs a pair of texts (--pair)");
        if (n2 > to_remove) { *keep2 = n2 - to_remove; return 0; }
        return bt_fail(BT_EDATA, "truncation only_second: the second text has %zu tokens, %zu must go to fit "
                       "max_length: sequence too short to truncate; use longest_first or a larger max_length",
                       n2, to_remove);
    }
    return bt_fail(BT_EUSAGE, "unknown truncation strategy %d", (int)strategy);
}

void bt_encoding_reserve(bt_encoding *enc, size_t n)
{
    if (n <= enc->cap) return;
    size_t cap = enc->cap ? enc->cap : 64;
    while (cap < n) cap *= 2;
    enc->input_ids = bt_xrealloc(enc->input_ids, cap * sizeof(int32_t));
    enc->token_type_ids = bt_xrealloc(enc->token_type_ids, cap * sizeof(int32_t));
    enc->attention_mask = bt_xrealloc(enc->attention_mask, cap * sizeof(int32_t));
    enc->cap = cap;
}

static tj_scratch *tj_scratch_of(struct bt_tok_scratch *s)
{
    if (!s->tjs) s->tjs = bt_xcalloc(1, sizeof *s->tjs);
    return s->tjs;
}

static int encode_tj(const bt_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int has_pair,
                     const bt_encode_opts *opts, bt_encoding *enc)
{
    struct bt_tok_scratch *s = scratch_of(enc);
    tj_scratch *w = tj_scratch_of(s);
    s->ids_n[0] = s->ids_n[1] = 0;
    int rc = tj_encode_text(t->tj, a, alen, opts->replace_invalid, w, &s->ids[0], &s->ids_n[0], &s->ids_cap[0], NULL,
                            NULL);
    if (rc) return bt_fail_context(rc, "%s", has_pair ? "first text" : "text");
    if (has_pair) {
        rc = tj_encode_text(t->tj, b, blen, opts->replace_invalid, w, &s->ids[1], &s->ids_n[1], &s->ids_cap[1], NULL,
                            NULL);
        if (rc) return bt_fail_context(rc, "second text");
    }
    return tj_post_process(t->tj, s->ids[0], s->ids_n[0], s->ids[1], s->ids_n[1], has_pair, opts, t->ids.pad, enc);
}

static int encode_impl(const bt_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                       int has_pair, const bt_encode_opts *opts, bt_encoding *enc)
{
    static const bt_encode_opts none = {0, BT_TRUNC_LONGEST_FIRST, 0, 0};
    if (!opts) opts = &none;
    enc->len = 0;
    if (t->tj) return encode_tj(t, a, alen, b, blen, has_pair, opts, enc);
    size_t n_added = has_pair ? 3 : 2;
    if (opts->max_length < 0 || (opts->max_length > 0 && (size_t)opts->max_length < n_added))
        return bt_fail(BT_EUSAGE, "max_length %d is smaller than the %zu special tokens of a%s; use at least %zu",
                       opts->max_length, n_added, has_pair ? " pair" : " single text", n_added);
    struct bt_tok_scratch *s = scratch_of(enc);
    s->ids_n[0] = s->ids_n[1] = 0;
    s->cur = 0;
    int rc = run_text(t, s, a, alen, opts->replace_invalid);
    if (rc) return bt_fail_context(rc, "%s", has_pair ? "first text" : "text");
    if (has_pair) {
        s->cur = 1;
        rc = run_text(t, s, b, blen, opts->replace_invalid);
        if (rc) return bt_fail_context(rc, "second text");
    }
    size_t n1 = s->ids_n[0], n2 = has_pair ? s->ids_n[1] : 0, k1 = n1, k2 = n2;
    enc->n_first = n1;
    enc->n_second = n2;
    if (opts->max_length > 0) {
        rc = bt_truncate_lengths(n1, n2, has_pair, (size_t)opts->max_length - n_added, opts->truncation, &k1, &k2);
        if (rc) return rc;
    }
    size_t total = k1 + k2 + n_added;
    size_t padded = total;
    if (opts->pad_to_max_length && opts->max_length > 0 && (size_t)opts->max_length > total)
        padded = (size_t)opts->max_length;
    bt_encoding_reserve(enc, padded);
    int32_t *ids = enc->input_ids, *tt = enc->token_type_ids, *am = enc->attention_mask;
    size_t i = 0;
    ids[i] = t->ids.cls; tt[i++] = 0;
    if (k1) memcpy(ids + i, s->ids[0], k1 * sizeof(int32_t));
    for (size_t j = 0; j < k1; j++) tt[i + j] = 0;
    i += k1;
    ids[i] = t->ids.sep; tt[i++] = 0;
    if (has_pair) {
        if (k2) memcpy(ids + i, s->ids[1], k2 * sizeof(int32_t));
        for (size_t j = 0; j < k2; j++) tt[i + j] = 1;
        i += k2;
        ids[i] = t->ids.sep; tt[i++] = 1;
    }
    for (size_t j = 0; j < i; j++) am[j] = 1;
    for (; i < padded; i++) { ids[i] = t->ids.pad; tt[i] = 0; am[i] = 0; }
    enc->len = padded;
    return 0;
}

int bt_encode(const bt_tokenizer *tok, const char *text, size_t len, const bt_encode_opts *opts, bt_encoding *enc)
{
    return encode_impl(tok, text, len, NULL, 0, 0, opts, enc);
}

int bt_encode_pair(const bt_tokenizer *tok, const char *a, size_t alen, const char *b, size_t blen,
                   const bt_encode_opts *opts, bt_encoding *enc)
{
    return encode_impl(tok, a, alen, b, blen, 1, opts, enc);
}

int bt_tokenize_words(const bt_tokenizer *tok, const char *text, size_t len, int replace_invalid,
                      bt_encoding *enc, bt_word_fn fn, void *ctx)
{
    struct bt_tok_scratch *s = scratch_of(enc);
    if (tok->tj) {
        s->ids_n[0] = 0;
        return tj_encode_text(tok->tj, text, len, replace_invalid, tj_scratch_of(s), &s->ids[0], &s->ids_n[0],
                              &s->ids_cap[0], fn, ctx);
    }
    s->fn = fn;
    s->ctx = ctx;
    s->cur = 0;
    s->ids_n[0] = 0;
    int rc = run_text(tok, s, text, len, replace_invalid);
    s->fn = NULL;
    s->ctx = NULL;
    return rc;
}

/* ---------------------------------------------------------------- loading */

void tok_build_tables(bt_tokenizer *t)
{
    t->strip = t->cfg.strip_accents;
    t->flags = bt_xmalloc(0x10000 * sizeof(uint16_t));
    for (int32_t cp = 0; cp < 0x10000; cp++)
        t->flags[cp] = (cp >= 0xD800 && cp < 0xE000) ? TOKU_REMOVE : toku_flags(cp);
    for (int c = 0; c < 128; c++) {
        uint16_t f = t->flags[c];
        t->ascii_cls[c] = (f & TOKU_REMOVE) ? A_REMOVE : (f & TOKU_SPACE) ? A_SPACE
                          : (f & TOKU_PUNCT) ? A_PUNCT : A_WORD;
        t->ascii_out[c] = (uint8_t)((t->cfg.lowercase && c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
}

static const char *const special_names[N_SPECIAL] = {"cls_token", "sep_token", "pad_token", "unk_token", "mask_token"};
static const char *const special_defaults[N_SPECIAL] = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"};

/* Parses vocab text into t (ids = line numbers). */
int tok_parse_vocab(bt_tokenizer *t, const char *v, size_t len, const char *where)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += v[i] == '\n';
    if (len && v[len - 1] != '\n') lines++;
    if (lines == 0) return bt_fail(BT_ECONFIG, "%s: the vocabulary is empty: expected one token per line", where);
    if (lines > INT32_MAX / 2 || len > UINT32_MAX - lines)
        return bt_fail(BT_ECONFIG, "%s: vocabulary too large (%zu lines)", where, lines);
    t->arena = bt_xmalloc(len + lines + 1);
    t->tok_off = bt_xmalloc(lines * sizeof(uint32_t));
    t->tok_len = bt_xmalloc(lines * sizeof(uint32_t));
    size_t cap = 16;
    while (cap < lines * 2) cap *= 2;
    t->table = bt_xcalloc(cap, sizeof(struct slot));
    t->mask = cap - 1;
    size_t pos = 0, ap = 0, n = 0;
    while (pos < len && n < lines) {
        const char *nl = memchr(v + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (v + pos)) : len - pos;
        size_t tl = l;
        if (tl && v[pos + tl - 1] == '\r') tl--;
        const uint8_t *q = (const uint8_t *)v + pos, *qe = q + tl;
        while (q < qe) {
            int32_t cp;
            int k = bt_utf8_decode(q, qe, &cp);
            if (!k)
                return bt_fail(BT_EDATA, "%s:%zu: invalid UTF-8 in the vocabulary at byte %zu of the line",
                               where, n + 1, (size_t)(q - (const uint8_t *)v - pos));
            q += k;
        }
        memcpy(t->arena + ap, v + pos, tl);
        t->arena[ap + tl] = '\0';
        t->tok_off[n] = (uint32_t)ap;
        t->tok_len[n] = (uint32_t)tl;
        if (tl > t->max_tok_len) t->max_tok_len = tl;
        ap += tl + 1;
        vocab_insert(t, (int32_t)n);
        n++;
        pos += l + 1;
    }
    t->n_tokens = n;
    return 0;
}

static int setup_specials(bt_tokenizer *t, char *names[N_SPECIAL], const char *where)
{
    int32_t *dst[N_SPECIAL] = {&t->ids.cls, &t->ids.sep, &t->ids.pad, &t->ids.unk, &t->ids.mask};
    for (int i = 0; i < N_SPECIAL; i++) {
        const char *s = names[i] ? names[i] : special_defaults[i];
        int32_t id = vocab_find(t, (const uint8_t *)s, strlen(s));
        *dst[i] = id;
        if (id < 0) {
            if (i == 4) continue; /* no mask token: MLM is unavailable, encoding is unaffected */
            return bt_fail(BT_ECONFIG, "%s: %s \"%s\" is not in vocab.txt: add it to the vocabulary or set %s in "
                           "tokenizer_config.json to a token that is", where, special_names[i], s, special_names[i]);
        }
        tok_add_special(t, s, strlen(s), id);
    }
    return 0;
}

void tok_add_special(bt_tokenizer *t, const char *s, size_t n, int32_t id)
{
    if (!n) return;
    for (int j = 0; j < t->n_sp; j++)
        if (t->sp[j].len == n && !memcmp(t->sp[j].text, s, n)) return;
    t->sp = bt_xrealloc(t->sp, (size_t)(t->n_sp + 1) * sizeof *t->sp);
    t->sp[t->n_sp].text = bt_xstrndup(s, n);
    t->sp[t->n_sp].len = n;
    t->sp[t->n_sp].id = id;
    t->sp_first[(uint8_t)s[0]] = 1;
    t->n_sp++;
}

int bt_tokenizer_from_vocab(const char *vocab, size_t len, const bt_tokenizer_config *cfg, bt_tokenizer **out)
{
    *out = NULL;
    bt_tokenizer *t = bt_xcalloc(1, sizeof *t);
    t->cfg = *cfg;
    int rc = tok_parse_vocab(t, vocab, len, "vocabulary");
    char *names[N_SPECIAL] = {0};
    if (!rc) rc = setup_specials(t, names, "vocabulary");
    if (rc) { bt_tokenizer_free(t); return rc; }
    tok_build_tables(t);
    t->wp_unk = t->ids.unk;
    t->source = "vocab.txt";
    bt_sha256_ctx *h = bt_sha256_new();
    bt_sha256_update(h, "vocab.txt\n", 10);
    bt_sha256_update(h, vocab, len);
    bt_sha256_update(h, cfg, sizeof *cfg);
    bt_sha256_final(h, t->fingerprint);
    *out = t;
    return 0;
}

static int json_bool(json_t *root, const char *key, int dflt, int *out, const char *path)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) { *out = dflt; return 0; }
    if (!json_is_boolean(v))
        return bt_fail(BT_ECONFIG, "%s: \"%s\" must be true, false or null", path, key);
    *out = json_is_true(v);
    return 0;
}

static int load_config(const char *model_dir, bt_tokenizer_config *cfg, char *names[N_SPECIAL])
{
    cfg->lowercase = 1;
    cfg->strip_accents = 1;
    cfg->chinese_chars = 1;
    cfg->model_max_length = 0;
    char *path = bt_path_join(model_dir, "tokenizer_config.json");
    if (!bt_path_exists(path)) { free(path); return 0; } /* BERT defaults */
    json_t *root;
    int rc = bt_json_load_file_py(path, 16u << 20, "fix or remove the file (BERT defaults apply without it)", &root);
    if (rc) {
        free(path);
        return rc;
    }
    int strip = -1;
    if (!json_is_object(root)) rc = bt_fail(BT_ECONFIG, "%s: expected a JSON object", path);
    if (!rc) rc = json_bool(root, "do_lower_case", 1, &cfg->lowercase, path);
    if (!rc) rc = json_bool(root, "strip_accents", -1, &strip, path);
    if (!rc) rc = json_bool(root, "tokenize_chinese_chars", 1, &cfg->chinese_chars, path);
    if (!rc) cfg->strip_accents = strip < 0 ? cfg->lowercase : strip;
    if (!rc) {
        json_t *m = json_object_get(root, "model_max_length");
        if (m && json_is_number(m)) {
            double d = json_number_value(m);
            cfg->model_max_length = (d >= 1 && d <= INT32_MAX) ? (long)d : 0;
        } else if (m && !json_is_null(m)) {
            rc = bt_fail(BT_ECONFIG, "%s: \"model_max_length\" must be a number", path);
        }
    }
    for (int i = 0; !rc && i < N_SPECIAL; i++) {
        json_t *v = json_object_get(root, special_names[i]);
        if (!v || json_is_null(v)) continue;
        if (json_is_object(v)) v = json_object_get(v, "content"); /* serialized AddedToken */
        if (!json_is_string(v))
            rc = bt_fail(BT_ECONFIG, "%s: \"%s\" must be a string (or an AddedToken object with \"content\")",
                         path, special_names[i]);
        else names[i] = bt_xstrdup(json_string_value(v));
    }
    json_decref(root);
    free(path);
    return rc;
}

int bt_tokenizer_load(const char *model_dir, bt_tokenizer **out)
{
    *out = NULL;
    char *jpath = bt_path_join(model_dir, "tokenizer.json");
    if (bt_path_exists(jpath)) { /* as transformers' AutoTokenizer: tokenizer.json first */
        int rc = tok_load_json(model_dir, jpath, out);
        free(jpath);
        return rc;
    }
    free(jpath);
    static const char *const spm_names[2] = {"spm.model", "sentencepiece.bpe.model"}; /* DeBERTa-v2/v3, XLM-R */
    for (int k = 0; k < 2; k++) {
        char *spath = bt_path_join(model_dir, spm_names[k]);
        if (bt_path_exists(spath)) { /* converted as transformers does */
            char *text = NULL;
            int rc = tok_spm_json(model_dir, spath, &text);
            if (!rc) rc = tok_load_json_text(model_dir, text, strlen(text), spath, spm_names[k], out);
            free(text);
            free(spath);
            return rc;
        }
        free(spath);
    }
    char *added = NULL; /* added tokens beyond vocab.txt: the tokenizer.json pipeline applies them */
    tok_vocab_added_json(model_dir, &added);
    if (added) {
        char *where = bt_path_join(model_dir, "vocab.txt (with added tokens)");
        int rc = tok_load_json_text(model_dir, added, strlen(added), where, "vocab.txt + added tokens", out);
        free(where);
        free(added);
        return rc;
    }
    char *names[N_SPECIAL] = {0};
    bt_tokenizer_config cfg;
    int rc = load_config(model_dir, &cfg, names);
    char *vpath = bt_path_join(model_dir, "vocab.txt");
    char *v = NULL;
    size_t vlen = 0;
    bt_tokenizer *t = NULL;
    if (!rc) {
        rc = bt_read_file(vpath, (size_t)1 << 30, &v, &vlen);
        if (rc == BT_ENOINPUT)
            bt_fail(rc, "%s: no vocab.txt: a WordPiece model directory needs one (one token per line)", vpath);
    }
    if (!rc) {
        t = bt_xcalloc(1, sizeof *t);
        t->cfg = cfg;
        rc = tok_parse_vocab(t, v, vlen, vpath);
        if (!rc) rc = setup_specials(t, names, model_dir);
        if (!rc) tok_build_tables(t);
    }
    if (!rc) {
        t->wp_unk = t->ids.unk;
        t->source = "vocab.txt";
        bt_sha256_ctx *h = bt_sha256_new();
        bt_sha256_update(h, "vocab.txt\n", 10);
        bt_sha256_update(h, v, vlen);
        char *cpath = bt_path_join(model_dir, "tokenizer_config.json"), *c = NULL;
        size_t clen = 0;
        if (bt_read_file(cpath, (size_t)64 << 20, &c, &clen) == 0) {
            bt_sha256_update(h, "tokenizer_config.json\n", 22);
            bt_sha256_update(h, c, clen);
        }
        bt_err_clear();
        free(c);
        free(cpath);
        bt_sha256_final(h, t->fingerprint);
    }
    free(v);
    free(vpath);
    for (int i = 0; i < N_SPECIAL; i++) free(names[i]);
    if (rc) {
        bt_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void bt_tokenizer_free(bt_tokenizer *t)
{
    if (!t) return;
    free(t->arena);
    free(t->tok_off);
    free(t->tok_len);
    free(t->table);
    free(t->flags);
    for (int i = 0; i < t->n_sp; i++) free(t->sp[i].text);
    free(t->sp);
    tj_free(t->tj);
    free(t);
}

const bt_tokenizer_config *bt_tokenizer_get_config(const bt_tokenizer *t) { return &t->cfg; }
size_t bt_tokenizer_vocab_size(const bt_tokenizer *t) { return t->tj ? t->tj->vocab_size : t->n_tokens; }
const char *bt_tokenizer_source(const bt_tokenizer *t) { return t->source; }
void bt_tokenizer_fingerprint(const bt_tokenizer *t, uint8_t out[32]) { memcpy(out, t->fingerprint, 32); }

size_t bt_tokenizer_num_special(const bt_tokenizer *t, int pair)
{
    if (t->tj) return pair ? t->tj->post.added_pair : t->tj->post.added_single;
    return pair ? 3 : 2;
}
bt_special_ids bt_tokenizer_special_ids(const bt_tokenizer *t) { return t->ids; }

int bt_tokenizer_word_needs_space(const bt_tokenizer *t)
{
    if (!t->tj) return 0;
    for (size_t i = 0; i < t->tj->n_pretoks; i++)
        if (t->tj->pretoks[i].kind == TJP_BYTELEVEL) return !t->tj->pretoks[i].add_prefix_space;
    return 0;
}

int bt_tokenizer_is_wordpiece(const bt_tokenizer *t) { return !t->tj || t->tj->model.kind == TJM_WORDPIECE; }

int bt_encode_word(const bt_tokenizer *t, const char *word, bt_encoding *enc)
{
    if (!bt_tokenizer_word_needs_space(t)) return bt_encode(t, word, strlen(word), NULL, enc);
    char *spaced = bt_xasprintf(" %s", word);
    int rc = bt_encode(t, spaced, strlen(spaced), NULL, enc);
    free(spaced);
    return rc;
}

int32_t bt_tokenizer_token_id(const bt_tokenizer *t, const char *token)
{
    if (t->tj) return tj_token_id(t->tj, token, strlen(token));
    return vocab_find(t, (const uint8_t *)token, strlen(token));
}

const char *bt_tokenizer_id_to_token(const bt_tokenizer *t, int32_t id)
{
    if (t->tj) return id < 0 || (size_t)id >= t->tj->vocab_size ? NULL : t->tj->id_to_token[id];
    if (id < 0 || (size_t)id >= t->n_tokens) return NULL;
    return t->arena + t->tok_off[id];
}
